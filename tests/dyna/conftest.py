"""A tiny base dataset for the Dyna tests (generated once per session, ~4 s)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

TASK = "reach-v3"
RESOLUTION = 32  # the session's tiny world model renders 32x32


@pytest.fixture(scope="session")
def base_root(tmp_path_factory) -> Path:
    """reach-v3 only: train 3 / val 1 / test 2 episodes of 8 actions at 32x32, with depth,
    state and keypoints (the generator's format)."""
    pytest.importorskip("metaworld")
    pytest.importorskip("mujoco")
    from freeaction_gym.data.metaworld_gen import MetaWorldDataConfig, generate_dataset

    root = tmp_path_factory.mktemp("dyna_base")
    cfg = MetaWorldDataConfig(
        tasks=[TASK], train_episodes=3, val_episodes=1, test_episodes=2, frames=8,
        resolution=RESOLUTION,
    )  # fmt: skip
    generate_dataset(root, cfg, num_workers=1, progress=False, log=lambda s: None)
    return root


def tree_fingerprint(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones too) -> its SHA-256: equal fingerprints mean
    nothing was added, removed or changed."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def fingerprint():
    """:func:`tree_fingerprint` (test modules cannot import conftest)."""
    return tree_fingerprint
