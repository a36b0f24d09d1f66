"""Episode reader, clip windows and dataset statistics on synthetic episodes.

Episodes are written with plain ``np.savez`` where the reader is tested (independent of the
writer); window contents are checked against hand-computed indices and the statistics
against a straightforward numpy recomputation.
"""

import json

import numpy as np
import pytest
import torch

from freeaction_gym.data.episodes import (
    ClipDataset,
    EpisodeFormatError,
    list_episodes,
    load_episode,
    stems_matching,
    write_episode,
)
from freeaction_gym.data.stats import compute_stats, load_stats

H = W = 8


def make_arrays(task: str, t: int, seed: int, action_dim: int = 4) -> dict[str, np.ndarray]:
    """Frame k is filled with value k (+ a per-episode offset), so windows are checkable."""
    rng = np.random.default_rng(seed)
    frame_value = (np.arange(t + 1) + 10 * seed).astype(np.uint8)
    rgb = np.broadcast_to(frame_value[:, None, None, None], (t + 1, H, W, 3)).copy()
    rgb[:, 0, 0, 1] = rng.integers(0, 256, t + 1)  # some per-pixel variety
    return {
        "rgb": rgb,
        "depth": rng.uniform(0.5, 3.0, (t + 1, H, W)).astype(np.float16),
        "action": rng.uniform(-1, 1, (t, action_dim)).astype(np.float32),
        "reward": rng.uniform(0, 10, t).astype(np.float32),
        "success": rng.random(t) < 0.3,
        "layout": np.int64(seed % 50),
        "seed": np.int64(1000 + seed),
        "task": np.str_(task),
        "noise_sigma": np.float32(0.25),
    }


@pytest.fixture()
def root(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"format_version": 1, "config": {}}))
    for i in range(3):
        write_episode(tmp_path / "train" / f"push-v3_{i:05d}.npz", make_arrays("push-v3", 8, i))
    write_episode(tmp_path / "train" / "reach-v3_00000.npz", make_arrays("reach-v3", 5, 7))
    write_episode(tmp_path / "val" / "push-v3_00000.npz", make_arrays("push-v3", 8, 20))
    return tmp_path


def test_load_roundtrip(root):
    ref = make_arrays("push-v3", 8, 1)
    ep = load_episode(root / "train" / "push-v3_00001.npz")
    np.testing.assert_array_equal(ep.rgb, ref["rgb"])
    np.testing.assert_array_equal(ep.depth, ref["depth"])
    np.testing.assert_array_equal(ep.action, ref["action"])
    np.testing.assert_array_equal(ep.success, ref["success"])
    assert (ep.task, ep.layout, ep.seed, ep.num_actions, ep.num_frames) == (
        "push-v3",
        1,
        1001,
        8,
        9,
    )
    assert ep.info == {"noise_sigma": pytest.approx(0.25)}
    assert not ep.rgb.flags.writeable
    assert load_episode(root / "train" / "push-v3_00001.npz", load_depth=False).depth is None


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip_bytes"])
def test_corrupt_file_names_the_file(root, damage):
    path = root / "train" / "push-v3_00002.npz"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"not an npz at all" * 10)
    else:  # corrupt compressed payload in the middle (zip CRC / zlib error)
        mid = len(data) // 2
        data[mid : mid + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(EpisodeFormatError, match="push-v3_00002.npz"):
        load_episode(path)


def test_missing_file(root):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_episode(root / "train" / "nope.npz")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("action"), "missing keys \\['action'\\]"),
        (lambda a: a.update(action=a["action"][:, :3]), "action dim is 3, expected 4"),
        (lambda a: a.update(action=a["action"][:-1]), "7 actions need 8 frames, rgb has 9"),
        (lambda a: a.update(reward=a["reward"][:-2]), "reward must have shape \\(8,\\)"),
        (lambda a: a.update(depth=a["depth"][:, :4]), "depth must have shape"),
        (lambda a: a.update(rgb=a["rgb"].astype(np.float32)), "rgb must be uint8"),
    ],
)
def test_inconsistent_arrays(tmp_path, change, message):
    arrays = make_arrays("push-v3", 8, 0)
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(EpisodeFormatError, match=f"bad.npz.*{message}"):
        load_episode(path)


def test_action_dim_none_accepts_other_widths(tmp_path):
    np.savez(tmp_path / "a7.npz", **make_arrays("x", 4, 0, action_dim=7))
    assert load_episode(tmp_path / "a7.npz", action_dim=None).action.shape == (4, 7)


def test_list_episodes(root, tmp_path_factory):
    train = list_episodes(root, "train")
    assert [p.name for p in train] == [
        "push-v3_00000.npz",
        "push-v3_00001.npz",
        "push-v3_00002.npz",
        "reach-v3_00000.npz",
    ]
    assert [p.name for p in list_episodes(root, "train", tasks=["reach-v3"])] == [
        "reach-v3_00000.npz"
    ]
    with pytest.raises(FileNotFoundError, match="test.*freeaction data metaworld"):
        list_episodes(root, "test")
    with pytest.raises(FileNotFoundError, match="pick-place-v3"):
        list_episodes(root, "train", tasks=["pick-place-v3"])
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(FileNotFoundError, match="meta.json.*freeaction data metaworld"):
        list_episodes(empty, "train")
    with pytest.raises(ValueError, match="split"):
        list_episodes(root, "training")


def test_clip_windows_match_episode_arrays(root):
    paths = list_episodes(root, "train")  # 3 push episodes of 9 frames, 1 reach of 6 frames
    ds = ClipDataset(paths, clip_len=4, stride=2, load_depth=True)
    # 9 frames: starts 0, 2, 4 (4+4 = 8 <= 9; 6+4 = 10 > 9); 6 frames: starts 0, 2
    expected = [(e, s) for e in range(3) for s in (0, 2, 4)] + [(3, 0), (3, 2)]
    assert [ds.window(i) for i in range(len(ds))] == expected
    assert ds.tasks == ["push-v3", "reach-v3"]

    item = ds[4]  # episode 1 (push-v3_00001), start 2
    ref = make_arrays("push-v3", 8, 1)
    assert (item["episode"], item["start"], item["task_id"]) == (1, 2, 0)
    assert item["frames"].dtype == torch.uint8 and item["frames"].shape == (4, H, W, 3)
    np.testing.assert_array_equal(item["frames"].numpy(), ref["rgb"][2:6])
    assert item["frames"][0, 3, 3, 0] == 2 + 10  # frame index 2 + episode offset 10
    np.testing.assert_array_equal(item["actions"].numpy(), ref["action"][2:5])
    np.testing.assert_array_equal(item["reward"].numpy(), ref["reward"][2:5])
    np.testing.assert_array_equal(item["success"].numpy(), ref["success"][2:5])
    np.testing.assert_array_equal(item["depth"].numpy(), ref["depth"][2:6].astype(np.float32))

    last = ds[len(ds) - 1]  # reach episode, start 2: frames 2..5
    assert (last["task_id"], last["start"]) == (1, 2)
    np.testing.assert_array_equal(last["frames"].numpy(), make_arrays("reach-v3", 5, 7)["rgb"][2:6])

    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["frames"].shape == (3, 4, H, W, 3) and batch["actions"].shape == (3, 3, 4)
    assert "depth" not in ClipDataset(paths, clip_len=4)[0]


def test_clip_dataset_lru_and_cache(root):
    paths = list_episodes(root, "train")
    lazy = ClipDataset(paths, clip_len=3, stride=3, lru_size=2)
    for i in range(len(lazy)):
        lazy[i]
    assert len(lazy._episodes) == 2  # only the two most recent episodes stay loaded
    assert list(lazy._episodes) == [2, 3]
    held = ClipDataset(paths, clip_len=3, stride=3, cache=True, lru_size=1)
    for i in range(len(held)):
        held[i]
    assert len(held._episodes) == 4


def test_clip_dataset_errors(root):
    paths = list_episodes(root, "train")
    with pytest.raises(ValueError, match="clip_len"):
        ClipDataset(paths, clip_len=1)
    with pytest.raises(ValueError, match="clip_len too long"):
        ClipDataset(paths, clip_len=20)
    with pytest.raises(ValueError, match="reach-v3"):
        ClipDataset(paths, clip_len=3, tasks=["push-v3"])


def test_stats_match_numpy(root):
    stats = compute_stats(root)
    assert load_stats(root) == json.loads(json.dumps(stats))
    eps = [make_arrays("push-v3", 8, i) for i in range(3)] + [make_arrays("reach-v3", 5, 7)]
    acts = [e["action"].astype(np.float64) for e in eps]
    flat = np.concatenate(acts)
    mean, std = flat.mean(0), flat.std(0)
    np.testing.assert_allclose(stats["action_mean"], mean, rtol=1e-6)
    np.testing.assert_allclose(stats["action_std"], std, rtol=1e-6)
    np.testing.assert_allclose(stats["action_min"], flat.min(0), rtol=1e-6)
    np.testing.assert_allclose(stats["action_max"], flat.max(0), rtol=1e-6)
    assert stats["action_step_l2_mean"] == pytest.approx(np.sqrt((flat**2).sum(1)).mean())

    for space in ("raw", "normalized"):
        for chunk in (1, 4, 15):
            chunk_norms, step_norms = [], []
            for a in acts:
                a = (a - mean) / std if space == "normalized" else a
                for k in range(len(a) // chunk):
                    w = a[k * chunk : (k + 1) * chunk]
                    chunk_norms.append(np.sqrt((w**2).sum()))
                    step_norms.append(np.sqrt((w**2).sum(1)).mean())
            got = stats["mu_act"]
            if chunk_norms:
                assert got["chunk_l2"][space][str(chunk)] == pytest.approx(np.mean(chunk_norms))
                assert got["mean_step_l2"][space][str(chunk)] == pytest.approx(np.mean(step_norms))
            else:  # no episode is 15 steps long
                assert np.isnan(got["chunk_l2"][space][str(chunk)])

    rgb = np.concatenate([e["rgb"] for e in eps]).reshape(-1, 3) / 255.0
    np.testing.assert_allclose(stats["pixel_mean"], rgb.mean(0), rtol=1e-9)
    np.testing.assert_allclose(stats["pixel_std"], rgb.std(0), rtol=1e-6)
    depth = np.concatenate([e["depth"].astype(np.float64).ravel() for e in eps])
    assert stats["depth_mean"] == pytest.approx(depth.mean())
    assert stats["depth_max"] == pytest.approx(depth.max())
    changed = [
        (np.abs(np.diff(e["rgb"].astype(int), axis=0)).max(-1) > 10).mean(axis=(1, 2)) for e in eps
    ]
    assert stats["frame_change_frac"] == pytest.approx(np.concatenate(changed).mean())
    push_success = np.mean([eps[i]["success"].any() for i in range(3)])
    assert stats["per_task"]["push-v3"] == {
        "episodes": 3,
        "success_rate": pytest.approx(push_success),
        "mean_return": pytest.approx(np.mean([eps[i]["reward"].sum() for i in range(3)])),
    }
    assert stats["split_counts"] == {
        "train": {"push-v3": 3, "reach-v3": 1},
        "val": {"push-v3": 1},
        "test": {},
    }


def test_load_stats_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="stats-only"):
        load_stats(tmp_path)


def test_stems_matching_is_a_full_match_of_each_stem():
    stems = ["reach-v3_0003", "collected_i001_e004", "xcollected_i002_e000", "collected_i01"]
    got = stems_matching(stems, r"collected_i\d{3}_e\d{3}")
    np.testing.assert_array_equal(got, [False, True, False, False])
    assert stems_matching(stems, None).tolist() == [False] * 4
    assert stems_matching([], r".*").shape == (0,)
