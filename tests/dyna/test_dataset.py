"""LoopDataset: base episodes linked (the base untouched), collected ones beside them,
readable by the unchanged dataset readers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from freeaction_gym.data.episodes import list_episodes, load_episode, write_episode
from freeaction_gym.dyna.dataset import COLLECTED_OFFSET, LoopDataset, collected_index


def fake_episode(task: str = "reach-v3", t: int = 4, size: int = 32) -> dict:
    rng = np.random.default_rng(t)
    return {
        "rgb": rng.integers(0, 256, (t + 1, size, size, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (t, 4)).astype(np.float32),
        "reward": np.ones(t, np.float32),
        "success": np.zeros(t, bool),
        "layout": np.int64(3),
        "seed": np.int64(0),
        "task": np.str_(task),
        "state": np.zeros((t + 1, 7), np.float32),
        "keypoints": np.zeros((t + 1, 7, 3), np.float32),
    }


def test_loop_dataset_links_the_base_and_leaves_it_untouched(base_root, tmp_path, fingerprint):
    before = fingerprint(base_root)
    ds = LoopDataset.create(tmp_path / "loop", base_root)
    for split in ("train", "val", "test"):
        names = [p.name for p in list_episodes(ds.root, split)]
        assert names == [p.name for p in list_episodes(base_root, split)]
        assert all((ds.root / split / n).is_symlink() for n in names)
    meta, base_meta = (json.loads((r / "meta.json").read_text()) for r in (ds.root, base_root))
    assert meta["dyna"]["base"] == str(base_root.resolve())
    assert {k: v for k, v in meta.items() if k != "dyna"} == base_meta
    assert (ds.root / "stats.json").read_text() == (base_root / "stats.json").read_text()

    write_episode(ds.collected_path("reach-v3", 0, 0), fake_episode())
    write_episode(ds.collected_path("reach-v3", 1, 1), fake_episode())
    train = [p.name for p in list_episodes(ds.root, "train")]
    assert train[-2:] == ["reach-v3_100000.npz", "reach-v3_200001.npz"]  # after the base's
    assert [p.name for p in ds.collected(1)] == ["reach-v3_200001.npz"]
    assert ds.counts() == {"base_train": 3, "collected": 2, "val": 1, "test": 2}
    ep = load_episode(ds.root / "train" / "reach-v3_200001.npz")
    assert ep.task == "reach-v3" and ep.state.shape == (5, 7)

    again = LoopDataset.create(tmp_path / "loop", base_root)  # reopened, collected kept
    assert len(again.collected()) == 2
    assert fingerprint(base_root) == before


def test_subsets_of_the_base(base_root, tmp_path):
    ds = LoopDataset.create(tmp_path / "loop", base_root, tasks=["reach-v3"], train_per_task=2)
    assert ds.counts()["base_train"] == 2 and ds.counts()["test"] == 2
    none = LoopDataset.create(tmp_path / "none", base_root, tasks=["push-v3"])
    assert ds.counts()["val"] == 1 and none.counts() == {
        "base_train": 0, "collected": 0, "val": 0, "test": 0
    }  # fmt: skip


def test_errors(base_root, tmp_path):
    LoopDataset.create(tmp_path / "loop", base_root)
    with pytest.raises(ValueError, match="links the base"):
        LoopDataset.create(tmp_path / "loop", tmp_path)
    with pytest.raises(ValueError, match="not a dyna loop dataset"):
        LoopDataset(base_root)
    assert collected_index(2, 5) == 3 * COLLECTED_OFFSET + 5
    with pytest.raises(ValueError, match="out of range"):
        collected_index(0, COLLECTED_OFFSET)
