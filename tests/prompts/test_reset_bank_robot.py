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
