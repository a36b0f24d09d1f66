"""The pinhole camera of a MuJoCo free camera: world points (m) -> pixels + depth.

A MuJoCo free camera (``mjCAMERA_FREE``) is given by ``lookat`` (world, m), ``distance`` (m),
``azimuth`` and ``elevation`` (degrees). ``mjv_updateCamera`` places it at

    forward = (cos(el) cos(az), cos(el) sin(az), sin(el))
    up      = (-sin(el) cos(az), -sin(el) sin(az), cos(el))
    position = lookat - distance * forward

and OpenGL renders a symmetric frustum whose vertical field of view is the model's
``vis.global_.fovy`` (degrees; MuJoCo's default 45, which the MetaWorld models keep).
``mujoco.Renderer`` flips the OpenGL image so that row 0 is the top of the picture.

Pixel convention (as OpenCV's): ``(u, v)`` = (column, row), the centre of pixel
``[row, col]`` is at ``(col, row)``, so the image centre - where the ``lookat`` point lands -
is ``((W - 1) / 2, (H - 1) / 2)`` and ``np.rint(uv)`` indexes the pixel a point falls in.
Depth is the distance along the optical axis (OpenGL eye-space ``-z``), which is also what
MuJoCo's depth rendering returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from freeaction_gym.data.metaworld_gen import CAMERA_PRESETS, FreeCamera

MUJOCO_DEFAULT_FOVY = 45.0
"""``mjModel.vis.global_.fovy`` unless an MJCF sets ``<visual><global fovy=...>``."""


@dataclass(frozen=True)
class PinholeCamera:
    """An ideal pinhole camera (no distortion, square pixels, centred principal point)."""

    position: tuple[float, float, float]
    """Optical centre in world coordinates (m)."""
    forward: tuple[float, float, float]
    """Unit viewing direction (world)."""
    up: tuple[float, float, float]
    """Unit up direction of the image (world), orthogonal to ``forward``."""
    fovy: float
    """Vertical field of view, degrees."""
    width: int
    """Image width in pixels."""
    height: int
    """Image height in pixels."""

    @classmethod
    def from_free_camera(
        cls,
        camera: FreeCamera,
        width: int,
        height: int | None = None,
        fovy: float = MUJOCO_DEFAULT_FOVY,
    ) -> PinholeCamera:
        """The camera MuJoCo renders for ``camera`` into a ``width`` x ``height`` image
        (``height`` defaults to ``width``); ``fovy`` is the model's ``vis.global_.fovy``."""
        az, el = math.radians(camera.azimuth), math.radians(camera.elevation)
        forward = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        up = np.array([-math.sin(el) * math.cos(az), -math.sin(el) * math.sin(az), math.cos(el)])
        position = np.asarray(camera.lookat, np.float64) - camera.distance * forward
        return cls(
            position=tuple(map(float, position)),
            forward=tuple(map(float, forward)),
            up=tuple(map(float, up)),
            fovy=float(fovy),
            width=int(width),
            height=int(width if height is None else height),
        )

    @classmethod
    def from_preset(
        cls, name: str, size: int = 64, fovy: float = MUJOCO_DEFAULT_FOVY
    ) -> PinholeCamera:
        """The camera of ``metaworld_gen.CAMERA_PRESETS[name]`` at ``size`` x ``size``."""
        if name not in CAMERA_PRESETS:
            raise ValueError(f"unknown camera preset {name!r}: use one of {sorted(CAMERA_PRESETS)}")
        return cls.from_free_camera(CAMERA_PRESETS[name], size, size, fovy)

    def resized(self, width: int, height: int | None = None) -> PinholeCamera:
        """The same view rendered at another image size (the field of view is kept)."""
        height = width if height is None else height
        return PinholeCamera(self.position, self.forward, self.up, self.fovy, width, height)

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) world -> camera rotation; rows are the camera's right, down and forward
        axes (OpenCV camera frame: x right, y down, z forward)."""
        f, u = np.asarray(self.forward), np.asarray(self.up)
        right = np.cross(f, u)
        return np.stack([right, -u, f])

    @property
    def focal(self) -> float:
        """Focal length in pixels (the same along both axes)."""
        return 0.5 * self.height / math.tan(math.radians(self.fovy) / 2)

    @property
    def intrinsics(self) -> np.ndarray:
        """(3, 3) matrix K of the pixel convention above: ``uv1 ~ K @ p_cam``."""
        f = self.focal
        return np.array(
            [[f, 0.0, (self.width - 1) / 2], [0.0, f, (self.height - 1) / 2], [0.0, 0.0, 1.0]]
        )

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points (m) -> (..., 3) camera-frame points (m; x right, y down,
        z forward = depth)."""
        p = np.asarray(points, np.float64) - np.asarray(self.position)
        return p @ self.rotation.T

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(..., 3) world points (m) -> ``(uv (..., 2) pixels (column, row), depth (...,) m)``.

        Points behind the camera (depth <= 0) get NaN pixel coordinates.
        """
        cam = self.to_camera(points)  # (..., 3)
        depth = cam[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = cam[..., :2] / np.where(depth > 0, depth, np.nan)[..., None]  # (..., 2)
        centre = np.array([(self.width - 1) / 2, (self.height - 1) / 2])
        return xy * self.focal + centre, depth

    def unproject(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`project`: (..., 2) pixels and (...,) depth (m) -> (..., 3)
        world points."""
        centre = np.array([(self.width - 1) / 2, (self.height - 1) / 2])
        depth = np.asarray(depth, np.float64)
        xy = (np.asarray(uv, np.float64) - centre) / self.focal * depth[..., None]
        cam = np.concatenate([xy, depth[..., None]], axis=-1)  # (..., 3)
        return cam @ self.rotation + np.asarray(self.position)


def dataset_camera(root: str | Path) -> PinholeCamera:
    """The camera a MetaWorld dataset was rendered with (``meta.json``'s free camera at the
    dataset's resolution)."""
    from freeaction_gym.data.episodes import read_meta

    meta = read_meta(root)
    cam, size = meta.get("camera"), meta.get("config", {}).get("resolution")
    if not isinstance(cam, dict) or size is None:
        raise ValueError(
            f"{root}/meta.json has camera {cam!r}: visual action prompts need a free-camera "
            "preset (metaworld_gen.CAMERA_PRESETS, e.g. 'workspace') and a resolution"
        )
    free = FreeCamera(tuple(cam["lookat"]), cam["azimuth"], cam["elevation"], cam["distance"])
    return PinholeCamera.from_free_camera(free, int(size))
