"""Clips and actions from data in the IRASim layout (RT-1, Bridge, Language-Table).

Layout (one root per dataset, e.g. ``opensource_robotdata/rt1`` in the IRASim release)::

    {root}/annotation/{train,val,test}/<id>.json
    {root}/videos/{split}/<id>/rgb.mp4            (RT-1/Bridge also ship state.npy)
    {root}/latent_videos/{split}/<id>/0.pt        (optional, SDXL-VAE latents)

Annotation fields, as read by the public IRASim code (bytedance/IRASim
``dataset/dataset_3D.py``, ``dataset/dataset_2D.py``, ``dataset/dataset_util.py``,
``dataset_structure.txt``):

* RT-1 / Bridge (7-D actions)
    - ``state``: per frame, a list whose first 6 entries are the end-effector position
      xyz and orientation roll/pitch/yaw (IRASim reads ``state[:, :6]``; extra columns are
      ignored). Units are not written down in the code; the angles are radians (they go
      through sin/cos), the positions are the datasets' metric units (metres).
    - ``continuous_gripper_state``: per frame, one continuous gripper value.
    - ``videos``: list over cameras of ``{"video_path": ...}`` relative to ``root``
      (IRASim uses camera 0); ``latent_videos``: likewise ``{"latent_video_path": ...}``,
      a ``torch.save``-d tensor (T, 4, h, w).
    - ``episode_id``. The number of frames is ``len(state)``.
* Language-Table (2-D actions)
    - ``actions``: per frame, the 2-D end-effector delta stored by the dataset;
      the action of frame k drives frame k -> k+1 (IRASim takes ``actions[frame_ids[:-1]]``).
      The number of frames is ``len(actions)``.
    - ``video_path``, ``latent_video_path`` (a dict whose ``"obs"`` is (T, 4, h, w)),
      ``episode_id``.

Actions (REFERENCE §2, IRASim's non-accumulated setting): for RT-1/Bridge,
``rel_xyz = R_{k-1}^T (p_k - p_{k-1})``, ``rel_rpy = euler(R_{k-1}^T R_k)`` with
``R = Rz(yaw) Ry(pitch) Rx(roll)``, gripper = absolute state of frame k; xyz and rpy are
multiplied by 20, the gripper is not. Language-Table: 2-D deltas x 20.

Clips: ``clip_len`` consecutive frames starting every ``stride`` frames (1 for train, 16
for val/test, as IRASim), only full clips; ordered by annotation file name then start.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch.utils.data import Dataset

DatasetName = Literal["rt1", "bridge", "languagetable"]
Split = Literal["train", "val", "test"]
ACTION_DIMS: dict[str, int] = {"rt1": 7, "bridge": 7, "languagetable": 2}
ACTION_SCALE = 20.0  # IRASim multiplies xyz / rpy deltas (not the gripper) by 20
_LAYOUT_HINT = (
    "expected the IRASim data layout: {root}/annotation/{train,val,test}/*.json and "
    "{root}/videos/{split}/<id>/rgb.mp4, where root is one dataset directory such as "
    "opensource_robotdata/rt1 (see dataset_structure.txt in github.com/bytedance/IRASim)"
)


def _check_dataset(dataset: str) -> None:
    if dataset not in ACTION_DIMS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(ACTION_DIMS)}")


def irasim_actions(states: np.ndarray, dataset: DatasetName) -> np.ndarray:
    """IRASim actions from per-frame states. (T, S) -> (T-1, A), float64.

    rt1 / bridge: ``states`` (T, 7) = xyz, roll, pitch, yaw (rad), gripper. Row k-1 of
    the result is ``[20 * R_{k-1}^T (p_k - p_{k-1}), 20 * euler_xyz(R_{k-1}^T R_k), g_k]``
    with ``R = Rz Ry Rx`` (scipy's extrinsic ``"xyz"``); the relative angles lie in
    [-pi, pi] with |pitch| <= pi/2. At gimbal lock (relative pitch = +-pi/2, never met for
    consecutive frames) scipy warns and the split between roll and yaw is arbitrary.
    languagetable: ``states`` (T, 2) = planar end-effector position; rows are
    ``20 * (s_k - s_{k-1})``.
    """
    _check_dataset(dataset)
    s = np.asarray(states, dtype=np.float64)
    want = 7 if dataset in ("rt1", "bridge") else 2
    if s.ndim != 2 or s.shape[1] != want or s.shape[0] < 2:
        raise ValueError(f"{dataset} states must have shape (T>=2, {want}), got {tuple(s.shape)}")
    if dataset == "languagetable":
        return ACTION_SCALE * np.diff(s, axis=0)
    rot_prev = Rotation.from_euler("xyz", s[:-1, 3:6])  # R_{k-1}, (T-1,)
    rot_curr = Rotation.from_euler("xyz", s[1:, 3:6])  # R_k
    rel_xyz = rot_prev.inv().apply(s[1:, :3] - s[:-1, :3])  # (T-1, 3), previous frame's axes
    rel_rpy = (rot_prev.inv() * rot_curr).as_euler("xyz")  # (T-1, 3)
    return np.concatenate([ACTION_SCALE * rel_xyz, ACTION_SCALE * rel_rpy, s[1:, 6:7]], axis=1)


@dataclass
class IRASimEpisode:
    """One annotation file, indexed without decoding its video."""

    episode_id: str
    annotation: Path
    video: Path
    latent: Path | None
    num_frames: int
    actions: np.ndarray  # (num_frames - 1, A) float32, already scaled


def _field(ann: dict, key: str, path: Path, dataset: str):
    if key not in ann:
        raise KeyError(
            f"annotation {path} has no {key!r} field (keys: {sorted(ann)}); "
            f"is dataset={dataset!r} right for this data?"
        )
    return ann[key]


def _camera_entry(ann: dict, key: str, sub: str, camera: int) -> str | None:
    entries = ann.get(key)
    if isinstance(entries, list) and len(entries) > camera and sub in entries[camera]:
        return entries[camera][sub]
    return None


def load_episode(
    path: Path, root: Path, split: str, dataset: DatasetName, camera: int = 0
) -> IRASimEpisode:
    """Read one annotation file into an :class:`IRASimEpisode` (actions computed here)."""
    with open(path) as f:
        ann = json.load(f)
    if dataset == "languagetable":
        raw = np.asarray(_field(ann, "actions", path, dataset), dtype=np.float64)
        if raw.ndim != 2 or raw.shape[1] != 2:
            raise ValueError(f"{path}: 'actions' must have shape (T, 2), got {raw.shape}")
        num_frames = raw.shape[0]
        actions = ACTION_SCALE * raw[:-1]  # action k drives frame k -> k+1
        video_rel, latent_rel = ann.get("video_path"), ann.get("latent_video_path")
    else:
        state = np.asarray(_field(ann, "state", path, dataset), dtype=np.float64)
        grip = np.asarray(_field(ann, "continuous_gripper_state", path, dataset), np.float64)
        grip = np.atleast_1d(grip)
        grip = grip[:, None] if grip.ndim == 1 else grip  # (T, 1)
        if state.ndim != 2 or state.shape[1] < 6:
            raise ValueError(
                f"{path}: 'state' must have shape (T, >=6) (xyz, roll, pitch, yaw, ...), "
                f"got {state.shape}"
            )
        if grip.shape != (state.shape[0], 1):
            raise ValueError(
                f"{path}: 'continuous_gripper_state' must hold one value per frame "
                f"({state.shape[0]}), got shape {grip.shape}"
            )
        num_frames = state.shape[0]
        full = np.concatenate([state[:, :6], grip], axis=1)  # (T, 7)
        actions = irasim_actions(full, dataset) if num_frames >= 2 else np.zeros((0, 7))
        video_rel = _camera_entry(ann, "videos", "video_path", camera)
        latent_rel = _camera_entry(ann, "latent_videos", "latent_video_path", camera)
    stem = path.stem
    video = root / video_rel if video_rel else root / "videos" / split / stem / "rgb.mp4"
    latent = root / latent_rel if latent_rel else root / "latent_videos" / split / stem / "0.pt"
    return IRASimEpisode(
        episode_id=str(ann.get("episode_id", stem)),
        annotation=path,
        video=video,
        latent=latent if latent.exists() else None,
        num_frames=num_frames,
        actions=actions.astype(np.float32),
    )


def read_video_frames(
    path: Path, frame_ids: list[int], annotation: Path | None = None
) -> np.ndarray:
    """Decode the given frames of an mp4 -> uint8 (len(frame_ids), H, W, 3).

    Decodes sequentially up to the last requested frame (mp4 seeking is inexact) and
    raises if the video ends first, naming the file.
    """
    import imageio.v2 as iio

    wanted, last = set(frame_ids), max(frame_ids)
    got: dict[int, np.ndarray] = {}
    count = 0
    reader = iio.get_reader(str(path), "ffmpeg")
    try:
        for i, frame in enumerate(reader):
            count = i + 1
            if i in wanted:
                got[i] = frame[..., :3]
            if i >= last:
                break
    finally:
        reader.close()
    if last >= count:
        src = f" but its annotation {annotation} needs frame {last}" if annotation else ""
        raise ValueError(
            f"video {path} has only {count} decodable frames{src} (frame {last} requested); "
            "the mp4 is shorter than the annotation - re-export it or fix the annotation"
        )
    return np.stack([got[i] for i in frame_ids])


def _resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear, antialiased resize of uint8 (F, H, W, 3) frames, rounded back to uint8.

    IRASim resizes with torchvision ``F.resize(antialias=True)`` on [0, 1] floats; this
    is the same filter (IRASim truncates when it converts back to uint8; we round)."""
    if frames.shape[1:3] == tuple(size):
        return frames
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0  # (F, 3, H, W)
    x = torch.nn.functional.interpolate(
        x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True
    )
    x = (x.clamp(0, 1) * 255.0).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


class IRASimClipDataset(Dataset):
    """Fixed-length clips + IRASim actions from one split of an IRASim-layout dataset.

    Items: ``frames`` uint8 (F, H, W, 3), ``actions`` float32 (F-1, A) (A = 7 for rt1 /
    bridge, 2 for languagetable; already x20), ``episode_id`` str, ``start`` int, and
    with ``load_latents=True`` also ``latents`` float32 (F, 4, h, w).

    root: one dataset directory (e.g. ``.../opensource_robotdata/rt1``).
    stride: start-frame spacing; None means 1 for train and 16 for val/test (IRASim).
    resolution: (H, W) to resize to, or None for the video's own size.
    camera: index into the annotation's ``videos`` list (IRASim uses 0).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: Split = "train",
        dataset: DatasetName = "rt1",
        clip_len: int = 16,
        stride: int | None = None,
        resolution: tuple[int, int] | None = None,
        camera: int = 0,
        load_latents: bool = False,
    ) -> None:
        _check_dataset(dataset)
        if clip_len < 2:
            raise ValueError(f"clip_len must be >= 2, got {clip_len}")
        self.root, self.split, self.dataset = Path(root), split, dataset
        self.clip_len = clip_len
        self.stride = stride if stride is not None else (1 if split == "train" else 16)
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        self.resolution, self.load_latents = resolution, load_latents
        if not self.root.is_dir():
            raise FileNotFoundError(f"data root {self.root} does not exist; {_LAYOUT_HINT}")
        ann_dir = self.root / "annotation" / split
        if not ann_dir.is_dir():
            raise FileNotFoundError(
                f"annotation directory {ann_dir} does not exist; {_LAYOUT_HINT}"
            )
        files = sorted(ann_dir.glob("*.json"))
        if not files:
            raise ValueError(f"split {split!r} is empty: no *.json files in {ann_dir}")
        self.episodes = [load_episode(f, self.root, split, dataset, camera) for f in files]
        for ep in self.episodes:
            if not ep.video.is_file():
                raise FileNotFoundError(
                    f"video {ep.video} (from annotation {ep.annotation}) is missing; {_LAYOUT_HINT}"
                )
            if load_latents and ep.latent is None:
                raise FileNotFoundError(f"no latent video for annotation {ep.annotation}")
        self.samples = [
            (e, start)
            for e, ep in enumerate(self.episodes)
            for start in range(0, ep.num_frames - clip_len + 1, self.stride)
        ]  # (episode index, start frame)
        if not self.samples:
            raise ValueError(
                f"no clip of {clip_len} frames in {ann_dir}: all {len(files)} episodes "
                f"have fewer frames (longest: {max(ep.num_frames for ep in self.episodes)})"
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        e, start = self.samples[index]
        ep = self.episodes[e]
        ids = list(range(start, start + self.clip_len))
        frames = read_video_frames(ep.video, ids, ep.annotation)  # (F, H, W, 3)
        if self.resolution is not None:
            frames = _resize(frames, self.resolution)
        item = {
            "frames": torch.from_numpy(frames),
            "actions": torch.from_numpy(ep.actions[start : start + self.clip_len - 1].copy()),
            "episode_id": ep.episode_id,
            "start": start,
        }
        if self.load_latents:
            lat = torch.load(ep.latent, map_location="cpu", weights_only=True)
            lat = lat["obs"] if isinstance(lat, dict) else lat  # languagetable: {"obs": ...}
            if lat.shape[0] <= ids[-1]:
                raise ValueError(
                    f"latent video {ep.latent} has {lat.shape[0]} frames, annotation "
                    f"{ep.annotation} needs frame {ids[-1]}"
                )
            item["latents"] = lat[ids].float()  # (F, 4, h, w)
        return item

    def check_video_lengths(self) -> list[tuple[Path, int, int]]:
        """Count every video's frames with ffmpeg (slow: decodes all videos).

        Returns (video, frames in mp4, frames in annotation) for every mp4 shorter than
        its annotation; an empty list means all videos are long enough."""
        from imageio_ffmpeg import count_frames_and_secs

        short = []
        for ep in self.episodes:
            n = count_frames_and_secs(str(ep.video))[0]
            if n < ep.num_frames:
                short.append((ep.video, n, ep.num_frames))
        return short
