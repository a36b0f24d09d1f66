"""A tiny MetaWorld dataset at the model's 64 px (reach-v3, 16 actions per episode),
generated once per session for the prompt tests (~15 s)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def prompt_root(tmp_path_factory):
    """``{root}`` with train 6 / val 1 / test 2 reach-v3 episodes with state and keypoints."""
    pytest.importorskip("metaworld")
    pytest.importorskip("mujoco")
    from freeaction_gym.data.metaworld_gen import MetaWorldDataConfig, generate_dataset

    root = tmp_path_factory.mktemp("metaworld_prompts")
    cfg = MetaWorldDataConfig(
        tasks=["reach-v3"],
        train_episodes=6,
        val_episodes=1,
        test_episodes=2,
        frames=16,
        depth=False,
        random_walk_prob=0.5,
    )
    summary = generate_dataset(root, cfg, num_workers=1, progress=False, log=lambda s: None)
    assert summary["generated"] == 9
    return root
