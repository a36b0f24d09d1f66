"""Recorded episodes into a replay buffer (``freeaction_gym/agents/prefill.py``,
``agents.train --prefill``):
the stored transitions equal what SB3's own wrappers (``VecFrameStack`` + ``VecTransposeImage``)
give an agent stepping through the same episodes, n-step returns stop at each episode's end,
actions are rescaled like SAC's, and bad input is refused with a clear error."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecTransposeImage

from freeaction_gym.agents.augment import RandomShiftDictReplayBuffer, n_step_targets
from freeaction_gym.agents.prefill import (
    count_transitions,
    episode_paths,
    prefill,
    scale_actions,
    stack_frames,
    used_paths,
)

HW, T = 16, 6
BOX = gym.spaces.Box(-2.0, 2.0, (4,), np.float32)


def write_episode(path: Path, seed: int, steps: int = T) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ep = {
        "rgb": rng.integers(0, 256, (steps + 1, HW, HW, 3), dtype=np.uint8),
        "action": rng.uniform(-2.5, 2.5, (steps, 4)).astype(np.float32),  # some outside BOX
        "reward": rng.normal(size=steps).astype(np.float32),
        "state": rng.normal(size=(steps + 1, 7)).astype(np.float32),
    }
    np.savez(path, **ep)
    return ep


class ReplayEnv(gym.Env):
    """Steps through a recorded episode whatever the action; truncated at its end."""

    action_space = BOX

    def __init__(self, ep: dict[str, np.ndarray], proprio: bool) -> None:
        self.ep, self.proprio = ep, proprio
        image = gym.spaces.Box(0, 255, (HW, HW, 3), np.uint8)
        self.observation_space = (
            gym.spaces.Dict({"image": image, "proprio": gym.spaces.Box(-np.inf, np.inf, (4,))})
            if proprio
            else image
        )

    def _obs(self):
        if self.proprio:
            return {"image": self.ep["rgb"][self.t], "proprio": self.ep["state"][self.t, :4]}
        return self.ep["rgb"][self.t]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        r = float(self.ep["reward"][self.t - 1])
        return self._obs(), r, False, self.t == len(self.ep["action"]), {}


def sb3_transitions(episodes: list[dict], proprio: bool, stack: int = 3):
    """(obs, next_obs) per step of each env, as SAC stores them after SB3's wrappers."""
    fns = [lambda ep=ep: ReplayEnv(ep, proprio) for ep in episodes]
    vec = VecTransposeImage(VecFrameStack(DummyVecEnv(fns), stack, channels_order="last"))
    obs, stored = vec.reset(), []
    for _ in range(T):
        new, _, dones, infos = vec.step(np.zeros((len(episodes), 4), np.float32))
        nxt = new
        if dones.any():  # SAC stores the terminal observation, not the reset one
            assert dones.all()
            if proprio:
                nxt = {k: np.stack([i["terminal_observation"][k] for i in infos]) for k in new}
            else:
                nxt = np.stack([i["terminal_observation"] for i in infos])
        stored.append((obs, nxt))
        obs = new
    vec.close()
    return vec.observation_space, stored


@pytest.mark.parametrize("proprio", [False, True])
def test_prefilled_transitions_equal_what_sb3_wrappers_store(tmp_path, proprio):
    eps = [write_episode(tmp_path / f"ep_{i}.npz", i) for i in range(2)]
    space, stored = sb3_transitions(eps, proprio)
    cls = DictReplayBuffer if proprio else ReplayBuffer
    buffer = cls(100, space, BOX, n_envs=2)
    added = prefill(buffer, [tmp_path / "ep_0.npz", tmp_path / "ep_1.npz"], BOX)
    assert added == 2 * T and buffer.pos == T and not buffer.full
    for t, (obs, nxt) in enumerate(stored):
        if proprio:
            for key in ("image", "proprio"):
                np.testing.assert_array_equal(buffer.observations[key][t], obs[key])
                np.testing.assert_allclose(buffer.next_observations[key][t], nxt[key])
        else:
            np.testing.assert_array_equal(buffer.observations[t], obs)
            np.testing.assert_array_equal(buffer.next_observations[t], nxt)
        for i, ep in enumerate(eps):
            assert buffer.rewards[t, i] == ep["reward"][t]
            a = np.clip(ep["action"][t], -2, 2) / 2  # SAC's scale_action on Box(-2, 2)
            np.testing.assert_allclose(buffer.actions[t, i], a, rtol=1e-6)
    images = buffer.observations["image"] if proprio else buffer.observations
    assert images.dtype == np.uint8 and images.shape[2:] == (9, HW, HW)  # 3 frames, C first
    # only each episode's last step ends it, as a time-limit truncation
    np.testing.assert_array_equal(buffer.dones[:T, 0], [0] * (T - 1) + [1])
    np.testing.assert_array_equal(buffer.timeouts[:T, 1], [0] * (T - 1) + [1])


def test_n_step_returns_stop_at_each_prefilled_episode(tmp_path):
    eps = [write_episode(tmp_path / f"ep_{i}.npz", 10 + i) for i in range(3)]
    space, _ = sb3_transitions(eps[:1], proprio=True)
    gamma = 0.9
    buffer = RandomShiftDictReplayBuffer(100, space, BOX, n_envs=1, n_steps=3, gamma=gamma)
    prefill(buffer, sorted(tmp_path.glob("*.npz")), BOX)
    assert buffer.pos == 3 * T
    r0, r1 = eps[0]["reward"], eps[1]["reward"]
    rows = np.array([0, T - 2, T - 1, T])  # mid, second-to-last and last of episode 0; start of 1
    returns, discounts, final, done = n_step_targets(
        buffer.rewards, buffer.dones, buffer.timeouts, buffer.pos, rows, np.zeros(4, int), 3, gamma
    )
    expected = [
        r0[0] + gamma * r0[1] + gamma**2 * r0[2],
        r0[T - 2] + gamma * r0[T - 1],  # stops at the episode's end ...
        r0[T - 1],  # ... and never runs into episode 1
        r1[0] + gamma * r1[1] + gamma**2 * r1[2],
    ]
    np.testing.assert_allclose(returns[:, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(discounts[:, 0], [gamma**3, gamma**2, gamma, gamma**3], rtol=1e-6)
    np.testing.assert_array_equal(final, [2, T - 1, T - 1, T + 2])
    assert not done.any()  # truncations bootstrap


def test_stack_frames_pads_with_zeros_oldest_first():
    x = np.arange(1, 4, dtype=np.float32)[:, None] * np.ones((3, 2), np.float32)  # rows 1, 2, 3
    out = stack_frames(x, 3)
    np.testing.assert_array_equal(out[0], [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(out[2], [1, 1, 2, 2, 3, 3])


def test_prefill_uses_whole_blocks_of_the_newest_episodes(tmp_path):
    for i in range(3):
        write_episode(tmp_path / f"ep_{i}.npz", i)
    paths = episode_paths([tmp_path])
    assert [p.name for p in paths] == ["ep_0.npz", "ep_1.npz", "ep_2.npz"]
    assert count_transitions(paths) == 3 * T
    space, _ = sb3_transitions([{**np.load(paths[0])}], proprio=False)
    buffer = ReplayBuffer(100, space, BOX, n_envs=2)
    assert prefill(buffer, paths, BOX) == 2 * T  # episode 0 dropped: 3 do not fill 2 columns
    assert used_paths(paths, 2) == paths[1:] and used_paths(paths, 3) == paths
    newest = buffer.observations[T - 1, 0, -3:]  # column 0 holds episode 1
    np.testing.assert_array_equal(newest, np.load(paths[1])["rgb"][T - 1].transpose(2, 0, 1))


def test_scale_actions_maps_the_box_to_unit():
    a = np.array([[-2.0, 0.0, 1.0, 3.0]], np.float32)
    np.testing.assert_allclose(scale_actions(a, BOX), [[-1.0, 0.0, 0.5, 1.0]])


def test_prefill_errors_name_the_problem(tmp_path):
    write_episode(tmp_path / "ep.npz", 0)
    space, _ = sb3_transitions([{**np.load(tmp_path / "ep.npz")}], proprio=True)
    with pytest.raises(ValueError, match="raise buffer_size"):
        prefill(DictReplayBuffer(T - 1, space, BOX), [tmp_path / "ep.npz"], BOX)
    np.savez(tmp_path / "big.npz", rgb=np.zeros((T + 1, 24, 24, 3), np.uint8),
             action=np.zeros((T, 4), np.float32), reward=np.zeros(T, np.float32))  # fmt: skip
    with pytest.raises(ValueError, match="do not fit the agent's image space"):
        prefill(DictReplayBuffer(100, space, BOX), [tmp_path / "big.npz"], BOX)
    ep = dict(np.load(tmp_path / "ep.npz"))
    del ep["state"]
    np.savez(tmp_path / "nostate.npz", **ep)
    with pytest.raises(ValueError, match="'state'.*proprio"):
        prefill(DictReplayBuffer(100, space, BOX), [tmp_path / "nostate.npz"], BOX)
    with pytest.raises(FileNotFoundError, match="missing.npz does not exist"):
        episode_paths([tmp_path / "missing.npz"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no"):
        episode_paths([tmp_path / "empty"])


def test_train_refuses_prefill_for_ppo(tmp_path):
    from freeaction_gym.agents.train import TrainArgs, _prefill_paths

    write_episode(tmp_path / "ep.npz", 0)
    with pytest.raises(ValueError, match="off-policy"):
        _prefill_paths(TrainArgs(algo="ppo", prefill=[str(tmp_path / "ep.npz")]))
    assert _prefill_paths(TrainArgs(algo="drq", prefill=[str(tmp_path)])) == [tmp_path / "ep.npz"]
