"""``data.fraction``: a fixed, seeded, per-task share of the train split (nested across
fractions), validated in the config and applied by the training bank to the train split."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from freeaction_gym.data.episodes import (
    FORMAT_VERSION,
    stratified_subset,
    task_of_path,
    write_episode,
    write_json_atomic,
)
from freeaction_gym.training.config import config_from_dict
from freeaction_gym.training.data import EpisodeBank

COUNTS = {"reach-v3": 500, "push-v3": 30, "pick-place-v3": 7}
PATHS = [Path(f"train/{t}_{i:05d}.npz") for t, n in COUNTS.items() for i in range(n)]


def per_task(paths) -> Counter:
    return Counter(task_of_path(p) for p in paths)


def test_sizes_are_per_task_and_rounded():
    for fraction, want in [
        (0.1, {"reach-v3": 50, "push-v3": 3, "pick-place-v3": 1}),  # 0.7 -> 1
        (0.3, {"reach-v3": 150, "push-v3": 9, "pick-place-v3": 2}),  # 2.1 -> 2
        (0.5, {"reach-v3": 250, "push-v3": 15, "pick-place-v3": 4}),  # 3.5 -> 4 (half up)
        (1.0, COUNTS),
    ]:
        assert per_task(stratified_subset(PATHS, fraction)) == want, fraction
    tiny = stratified_subset(PATHS, 0.001)  # never drops a task
    assert per_task(tiny) == {"reach-v3": 1, "push-v3": 1, "pick-place-v3": 1}


def test_subsets_are_nested_deterministic_and_in_input_order():
    sets = {f: stratified_subset(PATHS, f, seed=3) for f in (0.1, 0.3, 1.0)}
    assert set(sets[0.1]) < set(sets[0.3]) < set(sets[1.0]) == set(PATHS)
    assert sets[0.3] == stratified_subset(PATHS, 0.3, seed=3)  # deterministic
    assert sets[0.3] == [p for p in PATHS if p in set(sets[0.3])]  # input order kept
    other = stratified_subset(PATHS, 0.3, seed=4)
    assert set(other) != set(sets[0.3]) and per_task(other) == per_task(sets[0.3])
    # a subset, not the first episodes of each task
    assert sets[0.1][:50] != PATHS[:50]
    # the choice among old episodes survives episodes added to the dataset
    grown = PATHS + [Path(f"train/reach-v3_{i:05d}.npz") for i in range(500, 520)]
    old = set(stratified_subset(PATHS, 1.0, seed=3))
    kept = set(stratified_subset(grown, 0.3, seed=3)) & old
    assert kept <= set(stratified_subset(PATHS, 0.4, seed=3))


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, "half", None, True])
def test_fraction_is_validated_with_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"fraction must be .*\(0, 1\]"):
        stratified_subset(PATHS, bad)
    with pytest.raises(ValueError, match=r"data\.fraction must be"):
        config_from_dict({"kind": "dit", "data": {"fraction": bad}})


def test_config_records_the_fraction_and_refuses_it_for_irasim():
    cfg = config_from_dict({"kind": "dit", "data": {"fraction": 0.3, "fraction_seed": 2}})
    assert cfg.to_dict()["data"]["fraction"] == 0.3
    assert cfg.to_dict()["data"]["fraction_seed"] == 2
    assert config_from_dict({"kind": "dit", "data": {"fraction": 1}}).data.fraction == 1.0
    assert config_from_dict({"kind": "dit"}).data.fraction == 1.0
    with pytest.raises(ValueError, match="MetaWorld-format"):
        config_from_dict({"kind": "dit", "data": {"format": "irasim", "fraction": 0.5}})


def write_tiny_dataset(root: Path, per_task_split: dict[str, dict[str, int]]) -> Path:
    write_json_atomic(root / "meta.json", {"format_version": FORMAT_VERSION, "generator": "test"})
    for split, counts in per_task_split.items():
        for task, n in counts.items():
            for i in range(n):
                write_episode(
                    root / split / f"{task}_{i:05d}.npz",
                    {
                        "rgb": np.full((3, 4, 4, 3), i, np.uint8),
                        "action": np.full((2, 4), i, np.float32),
                        "reward": np.zeros(2, np.float32),
                        "success": np.zeros(2, bool),
                        "layout": np.array(i),
                        "seed": np.array(i),
                        "task": np.array(task),
                    },
                )
    return root


def test_bank_keeps_the_subset_of_the_train_split(tmp_path):
    counts = {"reach-v3": 10, "push-v3": 20}
    root = write_tiny_dataset(tmp_path, {"train": counts, "val": counts})
    full = EpisodeBank.from_metaworld(root, "train", None)
    part = EpisodeBank.from_metaworld(root, "train", None, fraction=0.3, fraction_seed=1)
    assert len(full) == 30 and len(part) == 3 + 6
    assert Counter(part.tasks) == {"reach-v3": 3, "push-v3": 6}
    paths = sorted((root / "train").glob("*.npz"))
    want = stratified_subset(paths, 0.3, seed=1)
    # each episode's frames hold its index: the bank holds exactly the chosen episodes
    got = [(t, int(z[0, 0, 0, 0])) for t, z in zip(part.tasks, part.latents, strict=True)]
    assert got == [(task_of_path(p), int(p.stem.rsplit("_", 1)[1])) for p in want]
