"""``state_source: proprio`` and ``reward: state``: success and reward from the robot state
the proprio model integrates over the actions (checked against ``prompts.proprio.integrate``
and metaworld's own reward), in the single, vector and SB3 envs, with errors that name the
option."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.prompts.proprio import ProprioConfig, ProprioModel, integrate
from freeaction_gym.rewards.state_success import TCP_OFFSET

ENV_ID = "FreeActionMetaWorldV2-v0"  # the action-path preset (tiny models)
HW = 32  # tiny model frames (conftest MW_HW)
FAST = {"scheduler": "ddim", "num_steps": 2}
FAR = np.array([0.3, 0.0, 0.0], np.float32)  # entry 1's goal: 30 cm off the path


def actions(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, arm_pose):
    """(kwargs of an env on the tiny world with this bank and proprio model, the bank, the
    proprio model, the actions): entry 0's goal is where the integrated tcp is after the
    first action, entry 1's 30 cm beyond it."""
    root = tmp_path_factory.mktemp("proprio_state")
    g = torch.Generator().manual_seed(1)
    proprio = ProprioModel(ProprioConfig(hidden=32, depth=2))
    with torch.no_grad():  # a "trained" pose model: the hand moves with the actions
        proprio.mlp[-1].weight.normal_(0.0, 2e-3, generator=g)
    proprio.save_pretrained(root / "proprio")
    proprio = ProprioModel.from_pretrained(root / "proprio")
    keypoints, state = arm_pose
    n = 2
    frames = np.random.default_rng(0).integers(0, 256, (n, HW, HW, 3), dtype=np.uint8)
    states, kps = np.repeat(state[None], n, 0), np.repeat(keypoints[None], n, 0)
    acts = actions(4)
    path, _ = integrate(proprio, states[:1], kps[:1], acts[None])  # (1, T + 1, 7)
    tcp1 = path[0, 1, :3] + np.array(TCP_OFFSET, np.float32)
    bank = ResetBank(
        frames, frames.copy(), np.array(["reach-v3"] * n), np.array(["e0", "e1"]),
        state=states, keypoints=kps, goal_pos=np.stack([tcp1, tcp1 + FAR]),
    )  # fmt: skip
    bank.save(root / "bank.npz")
    return root, bank, proprio, acts


def make(tiny, root, **overrides) -> gym.Env:
    kw = dict(
        model=str(tiny.world_dir), reset_bank=str(root / "bank.npz"), sampling=dict(FAST),
        proprio_model=str(root / "proprio"), state_source="proprio", reward="state",
        terminate_on_success=False, task="reach-v3",
    )  # fmt: skip
    return gym.make(ENV_ID, **(kw | overrides))


def expected(bank, proprio, acts, j: int):
    """(states (T, 7) after each action, reward (T,), success (T,)) by hand for entry j."""
    from metaworld.utils import reward_utils

    path, _ = integrate(proprio, bank.state[j : j + 1], bank.keypoints[j : j + 1], acts[None])
    states = path[0, 1:]
    goal = bank.goal_pos[j].astype(np.float64)
    tcp = states[:, :3].astype(np.float64) + TCP_OFFSET
    d = np.linalg.norm(tcp - goal, axis=1)
    margin = np.linalg.norm(np.array([0.0, 0.6, 0.2]) - goal)
    per_step = 10 * reward_utils.tolerance(d, bounds=(0, 0.05), margin=margin, sigmoid="long_tail")
    return states, 4 * per_step, d <= 0.05


@pytest.mark.parametrize("j", [0, 1])
def test_reward_and_success_come_from_the_integrated_state(tiny, setup, j):
    pytest.importorskip("metaworld")
    root, bank, proprio, acts = setup
    env = make(tiny, root)
    env.reset(seed=0, options={"bank_index": j})
    out = [env.step(a) for a in acts]
    states, reward, success = expected(bank, proprio, acts, j)
    for t, (_, r, term, _, info) in enumerate(out):
        np.testing.assert_allclose(info["predicted_state"], states[t], atol=1e-6)
        assert r == pytest.approx(reward[t], rel=1e-4)
        assert info["success"] == success[t] and not term  # terminate_on_success off
    if j == 0:  # at the goal after action 1: the full 4 x 10
        assert success[0] and reward[0] == pytest.approx(40.0)
    else:  # 30 cm away: a small share of it
        assert not success.any() and reward.max() < 20


def test_success_state_from_proprio_keeps_the_reward_functions_reward(tiny, setup):
    root, bank, proprio, acts = setup
    env = make(tiny, root, reward="none", success="state", terminate_on_success=True)
    env.reset(seed=0, options={"bank_index": 0})
    _, r, term, _, info = env.step(acts[0])
    assert r == 0.0 and info["success"] and term  # goal reached after action 1: terminates
    np.testing.assert_allclose(info["predicted_state"], expected(bank, proprio, acts, 0)[0][0])


def test_vector_and_sb3_envs_match_the_single_env(tiny, setup):
    pytest.importorskip("stable_baselines3")
    from freeaction_gym.envs.vector import make_sb3_vec_env

    root, _, _, acts = setup
    single = []
    for j in (0, 1):
        env = make(tiny, root)
        env.reset(seed=0, options={"bank_index": j})
        single.append([env.step(a)[1] for a in acts[:2]])
    kw = dict(
        model=str(tiny.world_dir), reset_bank=str(root / "bank.npz"), sampling=dict(FAST),
        proprio_model=str(root / "proprio"), state_source="proprio", reward="state",
        terminate_on_success=False, task="reach-v3",
    )  # fmt: skip
    venv = gym.make_vec(ENV_ID, num_envs=2, **kw)
    venv.reset(seed=[0, 0], options=[{"bank_index": 0}, {"bank_index": 1}])
    sb3 = make_sb3_vec_env(num_envs=2, seed=0, **kw)
    sb3.reset()
    for t in range(2):
        _, r, *_ = venv.step(np.stack([acts[t], acts[t]]))
        np.testing.assert_allclose(r, [single[0][t], single[1][t]], rtol=1e-5)
        _, r_sb3, _, infos = sb3.step(np.stack([acts[t], acts[t]]))
        assert all(i["predicted_state"].shape == (7,) for i in infos)
        assert np.isfinite(r_sb3).all() and (r_sb3 >= 0).all()


def test_own_frame_needs_the_robot_state_and_goal(tiny, setup, arm_pose):
    root, _, _, acts = setup
    keypoints, state = arm_pose
    frame = np.zeros((HW, HW, 3), np.uint8)
    env = make(tiny, root)
    with pytest.raises(ValueError, match="state_source='proprio' with initial_frame needs"):
        env.reset(options={"initial_frame": frame, "goal_pos": np.zeros(3)})
    env = make(tiny, root)
    opts = {"initial_frame": frame, "initial_state": state, "initial_keypoints": keypoints}
    with pytest.raises(ValueError, match="needs reset option goal_pos"):
        env.reset(options=opts)
    env = make(tiny, root)
    env.reset(seed=0, options={**opts, "goal_pos": np.array([0.0, 0.6, 0.15])})
    assert np.isfinite(env.step(acts[0])[1])


def test_options_are_checked_at_make_time(tiny, setup, arm_pose, tmp_path):
    root, bank, _, _ = setup
    door = tmp_path / "door.npz"  # a task without a reward rule here
    ResetBank(
        bank.initial, bank.goal, np.array(["door-open-v3"] * 2), bank.episode,
        state=bank.state, keypoints=bank.keypoints, goal_pos=bank.goal_pos,
    ).save(door)  # fmt: skip
    with pytest.raises(ValueError, match=r"reward='state' has MetaWorld's reward only for"):
        make(tiny, root, reset_bank=str(door), task=None)
    bare = tmp_path / "bare.npz"
    ResetBank(bank.initial, bank.goal, bank.task, bank.episode, goal_pos=bank.goal_pos).save(bare)
    with pytest.raises(ValueError, match="state_source='proprio' starts from each reset-bank"):
        make(tiny, root, reset_bank=str(bare))
    with pytest.raises(FileNotFoundError, match="state_source='proprio' needs a proprioceptive"):
        make(tiny, root, proprio_model=None)
    with pytest.raises(ValueError, match="state_source"):
        make(tiny, root, state_source="imagined")
    with pytest.raises(ValueError, match="sim_steps_per_action must be >= 1"):
        make(tiny, root, sim_steps_per_action=0)
