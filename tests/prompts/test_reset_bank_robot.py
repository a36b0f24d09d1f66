"""The reset bank keeps each start's robot state and keypoints (what ``conditioning: vap``
integrates its proprio model from), read here straight from the episodes."""

from __future__ import annotations

import numpy as np

from freeaction_gym.data.episodes import list_episodes, load_episode
from freeaction_gym.envs.bank import ResetBank


def test_bank_from_dataset_stores_the_initial_robot(prompt_root, tmp_path):
    bank = ResetBank.from_dataset(prompt_root, "test")
    episodes = [load_episode(p) for p in list_episodes(prompt_root, "test")]
    assert bank.has_robot_state and len(bank) == len(episodes) == 2
    for i, ep in enumerate(episodes):
        np.testing.assert_array_equal(bank.state[i], ep.state[0])
        np.testing.assert_array_equal(bank.keypoints[i], ep.keypoints[0])
        np.testing.assert_array_equal(bank.initial[i], ep.rgb[0])
    bank.save(tmp_path / "bank.npz")
    back = ResetBank.load(tmp_path / "bank.npz")
    np.testing.assert_array_equal(back.keypoints, bank.keypoints)


def test_strided_bank_stores_how_the_arm_moves(prompt_root, tmp_path):
    """Entries mid-episode keep the robot one frame earlier and MetaWorld's mocap target
    (the exact rule over the episode's actions); frame-0 entries are at rest."""
    import torch

    from freeaction_gym.prompts.proprio import ProprioModel, mocap_track, pose_of

    bank = ResetBank.from_dataset(prompt_root, "test", stride=5)
    assert bank.has_motion
    rule = ProprioModel()
    for j, name in enumerate(bank.episode):
        file, _, at = str(name).partition("@")
        t = int(at or 0)
        ep = load_episode(next(p for p in list_episodes(prompt_root, "test") if p.name == file))
        track = mocap_track(rule, pose_of(ep.state, ep.keypoints), torch.tensor(ep.action))
        np.testing.assert_allclose(bank.mocap[j], track[t].numpy(), atol=1e-6)
        np.testing.assert_array_equal(bank.state[j], ep.state[t])
        np.testing.assert_array_equal(bank.prev_state[j], ep.state[max(t - 1, 0)])
        np.testing.assert_array_equal(bank.prev_keypoints[j], ep.keypoints[max(t - 1, 0)])
    assert len(bank) > 2 and (bank.mocap != bank.state[:, :3] - rule.config.rest_offset).any()
    bank.save(tmp_path / "bank.npz")
    back = ResetBank.load(tmp_path / "bank.npz")
    assert back.has_motion
    np.testing.assert_array_equal(back.mocap, bank.mocap)
    np.testing.assert_array_equal(back.prev_keypoints, bank.prev_keypoints)


def test_tracker_started_mid_episode_follows_the_moving_hand(prompt_root):
    """The bundled proprio model started at frame 5 of real episodes: with the bank's motion
    its hand stays near the real one over the next 5 actions, from an arm at rest it does
    not (a moving arm's mocap target runs centimetres ahead of the hand)."""
    from freeaction_gym.assets import resolve_asset_path
    from freeaction_gym.envs.prompting import ProprioTracker
    from freeaction_gym.prompts.proprio import ProprioModel

    proprio = ProprioModel.from_pretrained(resolve_asset_path("bundled:metaworld_vap/proprio"))
    bank = ResetBank.from_dataset(prompt_root, "test", stride=5)
    mid = [j for j, name in enumerate(bank.episode) if str(name).endswith("@5")]
    episodes = {p.name: load_episode(p) for p in list_episodes(prompt_root, "test")}
    errors = {"moving": [], "rest": []}
    for j in mid:
        ep = episodes[str(bank.episode[j]).partition("@")[0]]
        state, keypoints, previous, mocap = bank.robot(j)
        for how, args in (("moving", (previous, mocap)), ("rest", (None, None))):
            tracker = ProprioTracker(proprio, 1)
            tracker.reset(0, state, keypoints, *args)
            tracker.step(torch_actions(ep.action[5:10]), np.ones(1, bool))
            hand = tracker.chunk_states[0, :, :3]  # (5, 3) after actions 5..9
            errors[how].append(np.linalg.norm(hand - ep.state[6:11, :3], axis=1).mean())
    assert len(mid) == 2
    assert np.mean(errors["moving"]) < 0.01  # m
    assert np.mean(errors["moving"]) < 0.5 * np.mean(errors["rest"])


def torch_actions(actions: np.ndarray):
    import torch

    return torch.tensor(actions, dtype=torch.float32)[None]  # (1, K, 4)
