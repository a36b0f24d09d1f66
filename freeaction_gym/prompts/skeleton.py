"""Visual action prompts: the arm's 3D keypoints rendered as a 2D skeleton image per frame.

Seed 004 (Visual Action Prompts) conditions a video model on ``v_{1:t} = R(a_{0:t-1})``,
skeleton images of the agent's action state. Here ``R`` draws the MetaWorld arm keypoints
(``metaworld_gen.KEYPOINT_BODIES``: shoulder, elbow, forearm, wrist, hand, two finger pads)
through the dataset's camera:

- arm limbs: lines between consecutive arm keypoints, shoulder -> ... -> wrist -> hand;
- fingers: a line per finger pad along its length, from its top to its tip (MetaWorld's pad
  geoms are boxes of half-length :data:`FINGER_HALF_LENGTH` m centred on the pad bodies and
  kept vertical by the mocap weld - measured on replayed episodes: the tip sites sit
  4.50 cm straight below the pads, std < 0.04 cm);
- the opening bar: a line between the two fingertips, its length the gripper opening;
- joints: a disc per keypoint (fingertips for the pads), each in its own colour.

Drawing is numpy only, vectorised over frames and deterministic: each primitive is a
capsule (a disc for a joint) whose per-pixel coverage comes from the distance of the pixel
centre (anti-aliased over a 1-pixel ramp; supersampling optional), composited over a black
background in a fixed order (arm limbs, arm joints, gripper) so the gripper is never hidden
by the arm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np

from freeaction_gym.data.metaworld_gen import KEYPOINT_BODIES
from freeaction_gym.prompts.camera import PinholeCamera

FINGER_HALF_LENGTH = 0.045
"""m: half the length of a MetaWorld finger pad (its geom's half-size along world z)."""
PADS = ("rightpad", "leftpad")
ARM_CHAIN = ("right_l1", "right_l3", "right_l5", "right_hand", "hand")
"""Consecutive arm keypoints joined by limbs (shoulder -> hand)."""
SKELETON_POINTS = (*KEYPOINT_BODIES, "rightpad_top", "leftpad_top", "rightpad_tip", "leftpad_tip")
"""Points of :func:`skeleton_points`: the keypoints, then the top and tip of each finger."""
Antialias = Literal["analytic", "supersample", "none"]
CHUNK_FRAMES = 64
"""Frames drawn at once (bounds the (T, H, W, S, 2) temporaries)."""

# One colour per keypoint, far apart in RGB (the fingertip discs take their pad's colour).
DEFAULT_JOINT_COLORS: dict[str, tuple[int, int, int]] = {
    "right_l1": (255, 0, 0),
    "right_l3": (255, 128, 0),
    "right_l5": (255, 255, 0),
    "right_hand": (0, 255, 0),
    "hand": (0, 255, 255),
    "rightpad": (0, 0, 255),
    "leftpad": (255, 0, 255),
}


@dataclass(frozen=True)
class SkeletonStyle:
    """How the skeleton is drawn; sizes are pixels at a 64-pixel-high image and scale with
    the image height."""

    joint_radius: float = 1.5
    """Joint disc radius; >= sqrt(2)/2 + 0.5 colours the pixel a joint falls in fully."""
    limb_width: float = 1.0
    """Width of limbs, fingers and the opening bar."""
    joint_colors: dict[str, tuple[int, int, int]] = field(
        default_factory=lambda: dict(DEFAULT_JOINT_COLORS)
    )
    """RGB per keypoint name (fingers and fingertips take their pad's colour)."""
    arm_limb_color: tuple[int, int, int] = (128, 128, 128)
    """Colour of the limbs between arm keypoints."""
    bar_color: tuple[int, int, int] = (255, 255, 255)
    """Colour of the fingertip-to-fingertip opening bar."""
    antialias: Antialias = "analytic"
    """Edge smoothing: "analytic" (coverage from the distance to the pixel centre, 1 px
    ramp), "supersample" (``samples`` x ``samples`` sub-pixel tests, 8x slower) or "none"."""
    samples: int = 3
    """Sub-pixel samples per axis of "supersample"."""

    def __post_init__(self) -> None:
        if self.antialias not in ("analytic", "supersample", "none"):
            raise ValueError(
                f"SkeletonStyle.antialias must be analytic, supersample or none, "
                f"got {self.antialias!r}"
            )
        if self.samples < 1:
            raise ValueError(f"SkeletonStyle.samples must be >= 1, got {self.samples}")
        if self.joint_radius <= 0 or self.limb_width <= 0:
            raise ValueError("SkeletonStyle.joint_radius and limb_width must be > 0")
        missing = sorted(set(KEYPOINT_BODIES) - set(self.joint_colors))
        if missing:
            raise ValueError(f"SkeletonStyle.joint_colors lacks {missing}")


@dataclass(frozen=True)
class Primitive:
    """A capsule: the points within ``radius`` pixels of segment ``a``-``b`` (a disc when
    ``a == b``); ``a``, ``b`` index :data:`SKELETON_POINTS`."""

    a: int
    b: int
    radius: float
    color: tuple[int, int, int]


def skeleton_points(keypoints: np.ndarray) -> np.ndarray:
    """(..., K, 3) keypoints per ``KEYPOINT_BODIES`` -> (..., K + 4, 3) points per
    :data:`SKELETON_POINTS` (finger tops and tips added)."""
    keypoints = np.asarray(keypoints, np.float64)
    if keypoints.shape[-2:] != (len(KEYPOINT_BODIES), 3):
        raise ValueError(
            f"keypoints must be (..., {len(KEYPOINT_BODIES)}, 3), got {keypoints.shape}"
        )
    pads = keypoints[..., [KEYPOINT_BODIES.index(p) for p in PADS], :]  # (..., 2, 3)
    half = np.array([0.0, 0.0, FINGER_HALF_LENGTH])
    return np.concatenate([keypoints, pads + half, pads - half], axis=-2)


def skeleton_primitives(style: SkeletonStyle, height: int) -> list[Primitive]:
    """The primitives in drawing order for an image ``height`` pixels high."""
    i = {n: k for k, n in enumerate(SKELETON_POINTS)}
    scale = height / 64
    r_joint, r_limb = style.joint_radius * scale, style.limb_width * scale / 2
    color = style.joint_colors
    arm = [
        Primitive(i[p], i[q], r_limb, style.arm_limb_color)
        for p, q in zip(ARM_CHAIN[:-1], ARM_CHAIN[1:], strict=True)
    ]
    arm += [Primitive(i[n], i[n], r_joint, color[n]) for n in ARM_CHAIN[:3]]
    gripper = [Primitive(i[f"{p}_top"], i[f"{p}_tip"], r_limb, color[p]) for p in PADS]
    gripper.append(Primitive(i["rightpad_tip"], i["leftpad_tip"], r_limb, style.bar_color))
    gripper += [Primitive(i[n], i[n], r_joint, color[n]) for n in ("right_hand", "hand")]
    gripper += [Primitive(i[f"{p}_tip"], i[f"{p}_tip"], r_joint, color[p]) for p in PADS]
    return arm + gripper


@lru_cache(maxsize=16)
def _sample_grid(height: int, width: int, ss: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel sample centres as ``(u, v)`` in camera.py's convention, each float32
    (H, W, ss*ss) (``ss`` = 1: the pixel centres); cached, read-only."""
    offsets = (np.arange(ss) + 0.5) / ss - 0.5  # (ss,) within (-0.5, 0.5)
    oy, ox = np.meshgrid(offsets, offsets, indexing="ij")
    v = np.arange(height)[:, None, None] + oy.reshape(1, 1, -1)  # (H, 1, S)
    u = np.arange(width)[None, :, None] + ox.reshape(1, 1, -1)  # (1, W, S)
    u, v = (np.ascontiguousarray(x, np.float32) for x in np.broadcast_arrays(u, v))
    u.flags.writeable = v.flags.writeable = False
    return u, v


Window = tuple[int, int, int, int]
"""Pixel rows ``v0:v1`` and columns ``u0:u1`` of the image that a computation covers."""


def segment_distance(
    a: np.ndarray,
    b: np.ndarray,
    height: int,
    width: int,
    ss: int = 1,
    window: Window | None = None,
):
    """Distance (px) of every sample point to segment ``a``-``b``: ``a``, ``b`` (T, 2) pixels
    ``(u, v)`` -> (T, H, W, ss*ss) float32 (``window``: only its rows and columns); NaN for
    NaN endpoints (behind the camera). The u and v components are separate arrays (no
    reduction over a size-2 axis: ~3x faster)."""
    gu, gv = _sample_grid(height, width, ss)  # (H, W, S) each
    if window is not None:
        v0, v1, u0, u1 = window
        gu, gv = gu[v0:v1, u0:u1], gv[v0:v1, u0:u1]
    a = np.asarray(a, np.float32)[:, None, None, None, :]  # (T, 1, 1, 1, 2)
    d = np.asarray(b, np.float32)[:, None, None, None, :] - a
    du, dv = d[..., 0], d[..., 1]  # (T, 1, 1, 1)
    pu, pv = gu[None] - a[..., 0], gv[None] - a[..., 1]  # (T, H, W, S)
    len2 = du * du + dv * dv
    t = np.clip((pu * du + pv * dv) / np.where(len2 > 0, len2, 1.0), 0.0, 1.0)
    eu, ev = pu - t * du, pv - t * dv
    return np.sqrt(eu * eu + ev * ev)  # (T, H, W, S)


def capsule_coverage(
    a: np.ndarray,
    b: np.ndarray,
    radius: float,
    height: int,
    width: int,
    antialias: Antialias = "analytic",
    samples: int = 3,
    window: Window | None = None,
) -> np.ndarray:
    """How much of each pixel the capsule of ``radius`` px around segment ``a``-``b`` covers:
    ``a``, ``b`` (T, 2) pixels -> (T, H, W) float32 in [0, 1] (``window``: only its pixels).

    "analytic": ``clip(radius + 0.5 - distance of the pixel centre, 0, 1)``, the covered
    fraction of a pixel cut by a straight edge parallel to its side; "supersample": the
    fraction of ``samples**2`` sub-pixel points within ``radius``; "none": 1 where the pixel
    centre is within ``radius``. Points behind the camera (NaN) cover nothing.
    """
    ss = samples if antialias == "supersample" else 1
    dist = segment_distance(a, b, height, width, ss, window)  # (T, H, W, S)
    with np.errstate(invalid="ignore"):
        if antialias == "analytic":
            return np.nan_to_num(np.clip(radius + 0.5 - dist[..., 0], 0.0, 1.0))
        return (dist <= radius).mean(-1, dtype=np.float32)


def capsule_window(ends: np.ndarray, radius: float, height: int, width: int) -> Window | None:
    """The image window outside which capsules of ``radius`` px around the segments
    ``ends`` (T, 2, 2) (endpoints ``(u, v)`` px; NaN: behind the camera) cover nothing in
    any frame: their finite endpoints' box grown by ``radius + 1`` px (a pixel centre farther
    than ``radius + 0.5`` from a segment is not covered, nor are any of its sub-pixel
    samples). None when nothing is finite or the box misses the image."""
    pts = ends.reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        return None
    pad = radius + 1.0
    u0, v0 = np.floor(pts.min(axis=0) - pad).astype(int)
    u1, v1 = np.ceil(pts.max(axis=0) + pad).astype(int) + 1
    u0, v0, u1, v1 = max(u0, 0), max(v0, 0), min(u1, width), min(v1, height)
    if u0 >= u1 or v0 >= v1:
        return None
    return int(v0), int(v1), int(u0), int(u1)


def render_prompts(
    keypoints: np.ndarray,
    camera: PinholeCamera,
    size: int | None = None,
    style: SkeletonStyle | None = None,
) -> np.ndarray:
    """Skeleton images of ``keypoints`` (T, K, 3) world meters per ``KEYPOINT_BODIES``,
    seen through ``camera`` -> (T, H, W, 3) uint8 RGB on black.

    ``size`` renders a ``size`` x ``size`` image of the same view (default: the camera's
    own size).
    """
    style = style or SkeletonStyle()
    if size is not None:
        camera = camera.resized(size)
    keypoints = np.asarray(keypoints)
    if keypoints.ndim != 3:
        raise ValueError(f"keypoints must be (T, K, 3), got {keypoints.shape}")
    uv, _ = camera.project(skeleton_points(keypoints))  # (T, K + 4, 2)
    h, w = camera.height, camera.width
    prims = skeleton_primitives(style, h)
    out = np.empty((len(uv), h, w, 3), np.uint8)
    for start in range(0, len(uv), CHUNK_FRAMES):
        part = uv[start : start + CHUNK_FRAMES]
        image = np.zeros((len(part), h, w, 3), np.float32)  # (t, H, W, 3)
        for p in prims:
            window = capsule_window(part[:, [p.a, p.b]], p.radius, h, w)
            if window is None:  # behind the camera or off the image in every frame
                continue
            v0, v1, u0, u1 = window
            alpha = capsule_coverage(
                part[:, p.a], part[:, p.b], p.radius, h, w, style.antialias, style.samples, window
            )
            crop = image[:, v0:v1, u0:u1]  # a view: composited in place
            hit = np.nonzero(alpha)  # composite only the covered pixels (a few percent)
            a = alpha[hit][:, None]  # (P, 1)
            crop[hit] = crop[hit] * (1 - a) + np.asarray(p.color, np.float32) * a
        out[start : start + CHUNK_FRAMES] = np.clip(np.rint(image), 0, 255)
    return out


def gripper_region(keypoints: np.ndarray, camera: PinholeCamera, radius: float = 1.0) -> np.ndarray:
    """(T, H, W) bool: the gripper as the skeleton places it - pixels whose centre lies within
    ``radius`` px (at a 64-pixel-high image) of the wrist-to-hand segment or of a finger (top
    to tip). Compared with MuJoCo's gripper segmentation."""
    keypoints = np.asarray(keypoints)
    uv, _ = camera.project(skeleton_points(keypoints))  # (T, K + 4, 2)
    i = {n: k for k, n in enumerate(SKELETON_POINTS)}
    segments = [("right_hand", "hand")] + [(f"{p}_top", f"{p}_tip") for p in PADS]
    h, w = camera.height, camera.width
    r = radius * h / 64
    region = np.zeros((len(uv), h, w), bool)
    for p, q in segments:
        region |= capsule_coverage(uv[:, i[p]], uv[:, i[q]], r, h, w, "none") > 0
    return region
