"""Collection: real episodes of a policy written in the dataset format; replaying their
actions in a freshly built MetaWorld env (an independent reference) reproduces frames,
rewards, states and keypoints."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("metaworld")

from freeaction_gym.data.episodes import load_episode  # noqa: E402
from freeaction_gym.data.metaworld_gen import (  # noqa: E402
    KEYPOINT_BODIES,
    ExplorationPolicy,
    config_from_meta,
    make_metaworld_env,
    robot_state,
)
from freeaction_gym.dyna.collect import (  # noqa: E402
    CollectPlan,
    GeneratorMix,
    NoisyPolicy,
    RecordingRealWorld,
    batch_seed,
    collect,
)
from freeaction_gym.dyna.dataset import LoopDataset  # noqa: E402
from freeaction_gym.envs.bank import ResetBank  # noqa: E402
from freeaction_gym.evaluation.policies import PlanPolicy  # noqa: E402
from freeaction_gym.evaluation.worlds import Scenes  # noqa: E402

STEPS = 5


def replay(ep, resolution: int):
    """Frames, rewards, states and keypoints of ``ep``'s actions in a new env."""
    env, render = make_metaworld_env(
        ep.task, int(ep.info["layout_seed"]), ep.layout, "workspace", resolution, depth=False
    )
    try:
        obs, _ = env.reset()
        frames, rewards, states = [render()[0]], [], [robot_state(env, obs)]
        for a in ep.action:
            r = 0.0
            for _ in range(4):
                obs, reward, *_ = env.step(a)
                r += reward
            frames.append(render()[0])
            rewards.append(r)
            states.append(robot_state(env, obs))
    finally:
        render.close()
        env.close()
    return np.stack(frames), np.array(rewards), states


def test_collected_episodes_have_the_format_and_replay_exactly(base_root, tmp_path):
    ds = LoopDataset.create(tmp_path / "loop", base_root)
    bank_path = tmp_path / "collect.npz"
    ResetBank.from_dataset(ds.root, "train", ["reach-v3"]).save(bank_path)
    bank = ResetBank.load(bank_path)
    scenes = Scenes(np.array([2, 0, 2]), bank.task[[2, 0, 2]])  # a scene twice: new noise
    plan = CollectPlan(scenes, [ds.collected_path("reach-v3", 0, k) for k in range(3)], 2)
    world = RecordingRealWorld(2, reset_bank=str(bank_path), task="reach-v3", data=str(base_root))
    policy = GeneratorMix(config_from_meta(base_root))
    try:
        res = collect(plan, policy, world, bank, STEPS, lambda b: batch_seed(0, 0, b),
                      {"dyna_iteration": np.int64(0)}, progress=False)  # fmt: skip
        again = collect(plan, policy, world, bank, STEPS, lambda b: 1 / 0, progress=False)
    finally:
        world.close()
    assert res["written"] == 3 and again["written"] == 0  # a rerun skips finished batches
    assert res["steps"] == 3 * STEPS and {k: again[k] for k in res if k != "written"} == {
        k: res[k] for k in res if k != "written"
    }
    eps = [load_episode(p) for p in plan.paths]  # validates shapes and dtypes
    assert [p.name for p in ds.collected(0)] == [p.name for p in plan.paths]
    assert not np.array_equal(eps[0].action, eps[2].action)  # same scene, own noise stream
    for k, ep in enumerate(eps):
        j = int(scenes.bank_index[k])
        assert ep.rgb.shape == (STEPS + 1, 32, 32, 3) and ep.depth is None
        assert ep.state.shape == (STEPS + 1, 7)
        assert ep.keypoints.shape == (STEPS + 1, len(KEYPOINT_BODIES), 3)
        assert (ep.layout, ep.info["layout_seed"]) == (bank.layout[j], bank.layout_seed[j])
        assert ep.info["dyna_iteration"] == 0 and ep.info["policy"] == "generator mix"
        b, i = divmod(k, 2)  # the documented seeding: batch seed, then batch position
        assert (ep.seed, ep.info["batch_position"]) == (batch_seed(0, 0, b), i)
        rng = np.random.default_rng([batch_seed(0, 0, b), 7877, i])
        sigma = ExplorationPolicy("reach-v3", config_from_meta(base_root), rng).sigma
        assert ep.info["noise_sigma"] == pytest.approx(sigma)
        np.testing.assert_array_equal(ep.rgb[0], bank.initial[j])
        frames, rewards, states = replay(ep, 32)
        assert np.abs(frames.astype(int) - ep.rgb.astype(int)).max() <= 2
        np.testing.assert_allclose(rewards, ep.reward, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.stack([s for s, _ in states]), ep.state, atol=1e-6)
        np.testing.assert_allclose(np.stack([kp for _, kp in states]), ep.keypoints, atol=1e-6)


def test_noisy_policy_adds_one_noise_stream_per_episode():
    scenes = Scenes(np.array([4, 4]), np.array(["reach-v3"] * 2))
    base = {4: np.full((3, 4), 0.5, np.float32)}
    policy = NoisyPolicy(PlanPolicy("plan", base), sigma=0.3)
    policy.reset(scenes, seed=11)
    actions = np.stack([policy.act(None, t, None) for t in range(3)], axis=1)  # (2, 3, 4)
    for i in range(2):  # recomputed from the documented generator
        rng = np.random.default_rng([11, 7877, i])
        expected = np.clip(0.5 + np.stack([rng.normal(0.0, 0.3, 4) for _ in range(3)]), -1, 1)
        np.testing.assert_allclose(actions[i], expected, rtol=1e-6)
    assert policy.name == "plan + noise 0.3" and policy.episode_sigmas == [0.3, 0.3]
