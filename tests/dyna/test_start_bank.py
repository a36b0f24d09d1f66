"""Imagined starts along visited trajectories (``agent.start_stride``): the bank holds
every k-th frame of every train episode with the robot state there and the episode's
goal, so short imagined rollouts branch from real states."""

from __future__ import annotations

import numpy as np
import pytest

from freeaction_gym.data.episodes import list_episodes, load_episode
from freeaction_gym.dyna.agent import start_bank
from freeaction_gym.dyna.config import config_from_dict

TASK = "reach-v3"


def test_stride_gives_every_kth_frame_with_its_state(base_root):
    paths = list_episodes(base_root, "train", [TASK])
    episodes = [load_episode(p, load_depth=False) for p in paths]
    first = start_bank(base_root, TASK)
    assert len(first) == len(paths) == 3
    bank = start_bank(base_root, TASK, stride=3)
    starts = [0, 3, 6]  # 8 actions: every start has at least one action left
    assert len(bank) == len(paths) * len(starts)
    for i, (p, ep) in enumerate(zip(paths, episodes, strict=True)):
        for j, t in enumerate(starts):
            row = i * len(starts) + j
            assert bank.episode[row] == (p.name if t == 0 else f"{p.name}@{t}")
            np.testing.assert_array_equal(bank.initial[row], ep.rgb[t])
            np.testing.assert_array_equal(bank.state[row], ep.state[t])
            np.testing.assert_array_equal(bank.keypoints[row], ep.keypoints[t])
            np.testing.assert_array_equal(bank.goal[row], first.goal[i])  # the episode's goal
            assert bank.layout[row] == first.layout[i]
    assert not np.array_equal(bank.initial[1], bank.initial[0])  # the arm moved
    assert len(start_bank(base_root, TASK, stride=1)) == 3 * 8
    assert len(start_bank(base_root, TASK, stride=100)) == 3  # frame 0 only


def test_bad_strides_are_refused(base_root, tmp_path):
    with pytest.raises(ValueError, match="stride must be >= 1"):
        start_bank(base_root, TASK, stride=0)
    with pytest.raises(ValueError, match="agent.start_stride must be >= 1"):
        config_from_dict({"output": str(tmp_path), "agent": {"start_stride": 0}})
