"""``freeaction imagine``: a dataset replayed through the world model keeps the real labels,
starts from the real first frame, is deterministic, and feeds the reward-head trainer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from freeaction_gym.data.episodes import (
    FORMAT_VERSION,
    list_episodes,
    load_episode,
    write_episode,
    write_json_atomic,
)
from freeaction_gym.evaluation.imagine import ImagineArgs, imagine_dataset, parse_args

FAST = {"scheduler": "ddim", "num_steps": 2}


def small_dataset(root, hw: int, actions: int = 5) -> None:
    rng = np.random.default_rng(0)
    write_json_atomic(root / "meta.json", {"format_version": FORMAT_VERSION, "generator": "t"})
    for split, n in (("train", 3), ("val", 1), ("test", 2)):
        for task in ("reach-v3", "push-v3"):
            for e in range(n):
                write_episode(
                    root / split / f"{task}_{e:05d}.npz",
                    dict(
                        rgb=rng.integers(0, 256, (actions + 1, hw, hw, 3), dtype=np.uint8),
                        action=rng.uniform(-1, 1, (actions, 4)).astype(np.float32),
                        reward=rng.random(actions).astype(np.float32),
                        success=rng.random(actions) < 0.3,
                        layout=e,
                        seed=100 * e + len(task),
                        task=task,
                    ),
                )


@pytest.fixture(scope="module")
def source(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("imagine_src")
    small_dataset(root, tiny.hw)
    return root


def run(tiny, source, out, **kw) -> dict:
    args = ImagineArgs(
        data=str(source),
        out=str(out),
        env_kwargs={"model": str(tiny.world_dir), "sampling": FAST},
        batch_size=4,
        **kw,
    )
    return imagine_dataset(args)


def test_imagined_copy_keeps_labels_and_first_frame(tiny, source, tmp_path):
    summary = run(tiny, source, tmp_path / "a")
    assert summary["episodes"] == 12
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert (
        meta["imagined"]["sampling"]["num_steps"] == 2 and meta["format_version"] == FORMAT_VERSION
    )
    for split in ("train", "val", "test"):
        src = list_episodes(source, split)
        dst = list_episodes(tmp_path / "a", split)
        assert [p.name for p in src] == [p.name for p in dst]
        for s, d in zip(src, dst, strict=True):
            a, b = load_episode(s, action_dim=4), load_episode(d, action_dim=4)
            np.testing.assert_array_equal(b.rgb[0], a.rgb[0])
            assert b.rgb.shape == a.rgb.shape and b.rgb.dtype == np.uint8
            assert (b.rgb[1:] != a.rgb[1:]).any()  # imagined, not copied
            np.testing.assert_array_equal(b.action, a.action)
            np.testing.assert_array_equal(b.reward, a.reward)
            np.testing.assert_array_equal(b.success, a.success)
            assert (b.task, b.layout, b.seed) == (a.task, a.layout, a.seed)
            assert b.info["source"] == s.name and b.info["sample"] == 0


def test_imagine_is_deterministic_and_batch_independent(tiny, source, tmp_path):
    run(tiny, source, tmp_path / "a", splits=["test"])
    args = ImagineArgs(
        data=str(source),
        out=str(tmp_path / "b"),
        env_kwargs={"model": str(tiny.world_dir), "sampling": FAST},
        splits=["test"],
        batch_size=1,
    )
    imagine_dataset(args)
    pairs = zip(
        list_episodes(tmp_path / "a", "test"), list_episodes(tmp_path / "b", "test"), strict=True
    )
    for pa, pb in pairs:
        np.testing.assert_array_equal(load_episode(pa).rgb, load_episode(pb).rgb)


def test_samples_and_max_actions(tiny, source, tmp_path):
    run(tiny, source, tmp_path / "s", splits=["val"], samples=2, max_actions=3)
    eps = [load_episode(p) for p in list_episodes(tmp_path / "s", "val")]
    assert len(eps) == 4 and all(e.num_actions == 3 for e in eps)
    by_task = {}
    for e in eps:
        by_task.setdefault(e.task, []).append(e)
    for pair in by_task.values():
        assert sorted(e.info["sample"] for e in pair) == [0, 1]
        assert (pair[0].rgb[1:] != pair[1].rgb[1:]).any()  # different noise per sample


def test_bad_arguments(tiny, source, tmp_path):
    with pytest.raises(ValueError, match="samples"):
        run(tiny, source, tmp_path / "x", samples=0)
    with pytest.raises(FileNotFoundError, match="no episode dataset"):
        run(tiny, tmp_path / "missing", tmp_path / "x")
    a = parse_args(["--env-kwargs", "sampling.num_steps=3", "--splits", "val", "--samples", "2"])
    assert a.env_kwargs == {"sampling": {"num_steps": 3}} and a.splits == ["val"]


def test_reward_head_trains_on_real_plus_imagined(tiny, source, tmp_path):
    from freeaction_gym.training.train_reward_head import load_frame_set, main

    run(tiny, source, tmp_path / "im")
    roots = [str(source), str(tmp_path / "im")]
    pooled = load_frame_set(roots, "train", ["reach-v3", "push-v3"])
    single = load_frame_set(str(source), "train", ["reach-v3", "push-v3"])
    assert len(pooled) == 2 * len(single)
    np.testing.assert_array_equal(pooled.reward[: len(single)], single.reward)
    out = tmp_path / "head"
    argv = ["--data", *roots, "--out", str(out), "--steps", "4", "--eval-every", "2"]
    argv += ["--channels", "8", "8", "--hidden", "8", "--batch-size", "8"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test_by_data"]) == set(roots)
    assert metrics["args"]["data"] == roots
