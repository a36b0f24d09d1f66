"""IRASim-layout reader: actions checked against hand-computed values, windows, errors."""

import json
import math

import imageio.v2 as iio
import numpy as np
import pytest
import torch

from freeaction_gym.data.irasim_layout import IRASimClipDataset, irasim_actions

H, W = 64, 80
HALF_PI = math.pi / 2


def block_frames(n: int, seed: int) -> np.ndarray:
    """(n, 64, 80, 3) uint8 of flat 16x16 colour blocks (survive mp4 almost exactly)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(n, H // 16, W // 16, 3), dtype=np.uint8)
    return blocks.repeat(16, axis=1).repeat(16, axis=2)


def write_mp4(path, frames) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # lossless x264 in 4:4:4, so decoded frames differ by YUV rounding only
    iio.mimwrite(
        path,
        frames,
        fps=4,
        codec="libx264",
        pixelformat="yuv444p",
        output_params=["-qp", "0"],
        macro_block_size=16,
    )


def translation_states(n: int, extra_column: bool = True) -> tuple[list, list]:
    """x moves +0.01 per frame, identity rotation; gripper k / n."""
    state = [
        [0.01 * k, 0.5, 0.2, 0.0, 0.0, 0.0] + ([1.0] if extra_column else []) for k in range(n)
    ]
    return state, [k / n for k in range(n)]


def write_rt1_episode(
    root, split, eid, n_frames, video_frames=None, paths_in_json=True, latents=None
):
    state, grip = translation_states(n_frames)
    ann = {"episode_id": str(eid), "state": state, "continuous_gripper_state": grip}
    video = root / "videos" / split / str(eid) / "rgb.mp4"
    if paths_in_json:
        ann["videos"] = [{"video_path": str(video.relative_to(root))}]
    frames = block_frames(n_frames if video_frames is None else video_frames, seed=eid)
    write_mp4(video, frames)
    if latents is not None:
        lat_path = root / "latent_videos" / split / str(eid) / "0.pt"
        lat_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(latents, lat_path)
        ann["latent_videos"] = [{"latent_video_path": str(lat_path.relative_to(root))}]
    ann_path = root / "annotation" / split / f"{eid}.json"
    ann_path.parent.mkdir(parents=True, exist_ok=True)
    ann_path.write_text(json.dumps(ann))
    return frames


@pytest.fixture(scope="module")
def rt1_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("rt1")
    frames = {}
    for split in ("train", "val"):
        frames[split, 0] = write_rt1_episode(root, split, 0, 20)
        frames[split, 1] = write_rt1_episode(root, split, 1, 35, paths_in_json=False)
    return root, frames


# ---------------------------------------------------------------- actions, by hand


def test_pure_translation_identity_rotation():
    states = [[0, 0, 0, 0, 0, 0, 0.0], [0.01, 0.02, -0.03, 0, 0, 0, 0.7]]
    expected = [[0.2, 0.4, -0.6, 0, 0, 0, 0.7]]  # x20 on xyz, gripper absolute
    np.testing.assert_allclose(irasim_actions(states, "rt1"), expected, atol=1e-12)


def test_yaw_then_move_along_rotated_axis():
    states = [
        [0, 0, 0, 0, 0, 0, 0.0],
        [0, 0, 0, 0, 0, HALF_PI, 0.5],  # turn 90 deg about z in place
        [0, 0.05, 0, 0, 0, HALF_PI, 1.0],  # world +y = the gripper's own +x after the yaw
    ]
    expected = [
        [0, 0, 0, 0, 0, 20 * HALF_PI, 0.5],
        [1.0, 0, 0, 0, 0, 0, 1.0],  # R_z(90)^T (0, .05, 0) = (.05, 0, 0), x20
    ]
    np.testing.assert_allclose(irasim_actions(states, "bridge"), expected, atol=1e-12)


def test_pure_roll_and_move_in_rolled_frame():
    states = [
        [0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0.1, 0, 0, 0],  # pure roll step
        [0, 0, 0, HALF_PI, 0, 0, 0],
        [0, 0, 0.05, HALF_PI, 0, 0, 0],  # rolled 90 deg: world +z is the local +y
    ]
    expected = [
        [0, 0, 0, 2.0, 0, 0, 0],
        [0, 0, 0, 20 * (HALF_PI - 0.1), 0, 0, 0],
        [0, 1.0, 0, 0, 0, 0, 0],  # Rx(90)^T (0, 0, .05) = (0, .05, 0)
    ]
    np.testing.assert_allclose(irasim_actions(states, "rt1"), expected, atol=1e-12)


def test_roll_after_yaw_pins_the_euler_convention():
    # R = Rz(yaw) Ry(pitch) Rx(roll): from (0,0,90deg) to (0.1,0,90deg) the relative
    # rotation is Rx(0.1) -> (0.1, 0, 0). With R = Rx Ry Rz it would be (0, -0.1, 0).
    states = [[0.1, 0.2, 0.3, 0, 0, HALF_PI, 0], [0.1, 0.2, 0.3, 0.1, 0, HALF_PI, 0]]
    np.testing.assert_allclose(irasim_actions(states, "rt1"), [[0, 0, 0, 2.0, 0, 0, 0]], atol=1e-12)


def _rz(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _ry(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rx(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def test_random_states_match_plain_matrix_recomputation():
    rng = np.random.default_rng(0)
    states = np.concatenate(
        [rng.normal(0, 0.3, (12, 3)), rng.uniform(-1.2, 1.2, (12, 3)), rng.uniform(0, 1, (12, 1))],
        axis=1,
    )
    got = irasim_actions(states, "rt1")
    for k in range(1, 12):
        r0 = _rz(states[k - 1, 5]) @ _ry(states[k - 1, 4]) @ _rx(states[k - 1, 3])
        r1 = _rz(states[k, 5]) @ _ry(states[k, 4]) @ _rx(states[k, 3])
        rel = r0.T @ r1
        rpy = [
            math.atan2(rel[2, 1], rel[2, 2]),
            math.atan2(-rel[2, 0], math.hypot(rel[0, 0], rel[1, 0])),
            math.atan2(rel[1, 0], rel[0, 0]),
        ]
        want = np.concatenate(
            [20 * r0.T @ (states[k, :3] - states[k - 1, :3]), 20 * np.array(rpy), states[k, 6:]]
        )
        np.testing.assert_allclose(got[k - 1], want, atol=1e-9)


def test_languagetable_deltas():
    states = [[0.0, 0.0], [0.01, 0.0], [0.01, -0.02]]
    np.testing.assert_allclose(
        irasim_actions(states, "languagetable"), [[0.2, 0.0], [0.0, -0.4]], atol=1e-12
    )


def test_irasim_actions_errors():
    with pytest.raises(ValueError, match=r"shape \(T>=2, 7\)"):
        irasim_actions(np.zeros((5, 6)), "rt1")
    with pytest.raises(ValueError, match=r"shape \(T>=2, 2\)"):
        irasim_actions(np.zeros((5, 7)), "languagetable")
    with pytest.raises(ValueError, match="unknown dataset 'droid'"):
        irasim_actions(np.zeros((5, 7)), "droid")


# ---------------------------------------------------------------- dataset


def test_window_counts_stride_1_and_16(rt1_root):
    root, _ = rt1_root
    train = IRASimClipDataset(root, "train", "rt1")
    assert train.stride == 1 and len(train) == (20 - 15) + (35 - 15)
    val = IRASimClipDataset(root, "val", "rt1")
    assert val.stride == 16
    assert [(val.episodes[e].episode_id, s) for e, s in val.samples] == [
        ("0", 0),
        ("1", 0),
        ("1", 16),
    ]
    assert len(IRASimClipDataset(root, "val", "rt1", clip_len=8, stride=4)) == 4 + 7


def test_item_frames_and_actions(rt1_root):
    root, frames = rt1_root
    ds = IRASimClipDataset(root, "val", "rt1")
    item = ds[2]  # episode 1, start 16 (video path from the layout, not the JSON)
    assert item["episode_id"] == "1" and item["start"] == 16
    assert item["frames"].dtype == torch.uint8 and item["frames"].shape == (16, H, W, 3)
    diff = item["frames"].numpy().astype(int) - frames["val", 1][16:32]
    assert np.abs(diff).max() <= 3
    assert item["actions"].dtype == torch.float32 and item["actions"].shape == (15, 7)
    # x moves 0.01 per frame with identity rotation -> 0.2; gripper = (k+1)/35 of frame k+1
    want = np.zeros((15, 7), np.float32)
    want[:, 0] = 0.2
    want[:, 6] = np.arange(17, 32) / 35
    np.testing.assert_allclose(item["actions"].numpy(), want, atol=1e-6)


def test_resolution(rt1_root):
    root, frames = rt1_root
    item = IRASimClipDataset(root, "val", "rt1", resolution=(32, 40))[0]
    assert item["frames"].shape == (16, 32, 40, 3)
    # block centres keep their colour (8x8 blocks after halving)
    centre = item["frames"].numpy()[:, 4::8, 4::8].astype(int)
    assert np.abs(centre - frames["val", 0][:16, 8::16, 8::16]).max() <= 4


def test_languagetable_and_latents(tmp_path):
    n = 18
    raw = np.round(np.random.default_rng(1).uniform(-0.03, 0.03, (n, 2)), 4)
    write_mp4(tmp_path / "videos/test/000027/rgb.mp4", block_frames(n, 3))
    lat = torch.randn(n, 4, 8, 10)
    (tmp_path / "latent_videos/test/000027").mkdir(parents=True)
    torch.save({"obs": lat}, tmp_path / "latent_videos/test/000027/0.pt")
    ann = {
        "episode_id": "000027",
        "actions": raw.tolist(),
        "video_path": "videos/test/000027/rgb.mp4",
        "latent_video_path": "latent_videos/test/000027/0.pt",
    }
    (tmp_path / "annotation/test").mkdir(parents=True)
    (tmp_path / "annotation/test/000027.json").write_text(json.dumps(ann))
    ds = IRASimClipDataset(
        tmp_path, "test", "languagetable", clip_len=8, stride=8, load_latents=True
    )
    assert [s for _, s in ds.samples] == [0, 8]  # frames = len(actions) = 18; start 16 short
    item = ds[1]
    np.testing.assert_allclose(item["actions"].numpy(), 20 * raw[8:15], atol=1e-6)
    torch.testing.assert_close(item["latents"], lat[8:16])


def test_rt1_latents_tensor(tmp_path):
    lat = torch.randn(17, 4, 8, 10)
    write_rt1_episode(tmp_path, "test", 5, 17, latents=lat)
    item = IRASimClipDataset(tmp_path, "test", "rt1", load_latents=True)[0]
    torch.testing.assert_close(item["latents"], lat[:16])


# ---------------------------------------------------------------- errors


def test_missing_root_and_annotation_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope.*IRASim data layout"):
        IRASimClipDataset(tmp_path / "nope", "train")
    with pytest.raises(FileNotFoundError, match=r"annotation/train.*IRASim data layout"):
        IRASimClipDataset(tmp_path, "train")


def test_empty_split_and_unknown_dataset(tmp_path):
    (tmp_path / "annotation" / "val").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"split 'val' is empty"):
        IRASimClipDataset(tmp_path, "val")
    with pytest.raises(ValueError, match="unknown dataset 'rt2'"):
        IRASimClipDataset(tmp_path, "val", dataset="rt2")


def _write_json(root, split, name, ann):
    (root / "annotation" / split).mkdir(parents=True, exist_ok=True)
    (root / "annotation" / split / f"{name}.json").write_text(json.dumps(ann))


def test_wrong_state_dims(tmp_path):
    _write_json(
        tmp_path, "train", "7", {"state": [[0.0] * 5] * 20, "continuous_gripper_state": [0.0] * 20}
    )
    with pytest.raises(ValueError, match=r"7\.json: 'state' must have shape \(T, >=6\)"):
        IRASimClipDataset(tmp_path, "train", "rt1")
    _write_json(
        tmp_path, "train", "7", {"state": [[0.0] * 6] * 20, "continuous_gripper_state": [0.0] * 19}
    )
    with pytest.raises(ValueError, match="one value per frame"):
        IRASimClipDataset(tmp_path, "train", "rt1")
    _write_json(tmp_path, "train", "7", {"actions": [[0.0] * 3] * 20})
    with pytest.raises(ValueError, match=r"'actions' must have shape \(T, 2\)"):
        IRASimClipDataset(tmp_path, "train", "languagetable")
    with pytest.raises(KeyError, match="no 'state' field"):
        IRASimClipDataset(tmp_path, "train", "bridge")


def test_short_video_and_missing_video(tmp_path):
    write_rt1_episode(tmp_path, "val", 3, 20, video_frames=10)
    ds = IRASimClipDataset(tmp_path, "val", "rt1")  # indexing does not decode
    with pytest.raises(ValueError, match=r"videos/val/3/rgb.mp4 has only 10 decodable frames"):
        ds[0]
    assert [(p.name, n, m) for p, n, m in ds.check_video_lengths()] == [("rgb.mp4", 10, 20)]
    (tmp_path / "videos/val/3/rgb.mp4").unlink()
    with pytest.raises(FileNotFoundError, match=r"rgb.mp4 \(from annotation .*3.json\)"):
        IRASimClipDataset(tmp_path, "val", "rt1")


def test_episodes_too_short_for_a_clip(tmp_path):
    _write_json(
        tmp_path, "train", "0", {"state": [[0.0] * 6] * 10, "continuous_gripper_state": [0.0] * 10}
    )
    write_mp4(tmp_path / "videos/train/0/rgb.mp4", block_frames(10, 0))
    with pytest.raises(ValueError, match="no clip of 16 frames"):
        IRASimClipDataset(tmp_path, "train", "rt1")
