"""A tiny MetaWorld dataset, generated once per session for the training tests."""

from __future__ import annotations

import pytest

TASK = "reach-v3"
RESOLUTION = 32
FRAMES = 8  # actions per episode; 9 frames stored


@pytest.fixture(scope="session")
def metaworld_root(tmp_path_factory):
    """``{root}`` with meta.json, stats.json and train 3 / val 2 / test 1 reach-v3 episodes."""
    pytest.importorskip("metaworld")
    pytest.importorskip("mujoco")
    from freeaction_gym.data.metaworld_gen import MetaWorldDataConfig, generate_dataset

    root = tmp_path_factory.mktemp("metaworld_tiny")
    cfg = MetaWorldDataConfig(
        tasks=[TASK],
        train_episodes=3,
        val_episodes=2,
        test_episodes=1,
        frames=FRAMES,
        resolution=RESOLUTION,
    )
    summary = generate_dataset(root, cfg, num_workers=1, progress=False, log=lambda s: None)
    assert summary["generated"] == 6
    return root
