"""Alignment of prompts with MuJoCo's own renders (needs MetaWorld + MuJoCo).

Two checks, as seed 004 validates its skeletons (overlay + pixel IoU):

- **Projection**: small marker spheres added to MuJoCo's scene at known world points; the
  centroid of each marker's pixels in a segmentation render is compared with
  :meth:`PinholeCamera.project` (:meth:`AlignmentRenderer.marker_centroids`).
- **Gripper IoU**: the skeleton's gripper region
  (:func:`~freeaction_gym.prompts.skeleton.gripper_region`) against the pixels of the
  gripper's geoms in a segmentation render (:meth:`AlignmentRenderer.gripper_mask`).

Episodes are re-simulated from their stored actions (:func:`replay_states`): generation
is deterministic, so the replayed keypoints equal the stored ones (checked by the caller).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from freeaction_gym.data.episodes import Episode
from freeaction_gym.data.metaworld_gen import (
    FreeCamera,
    headless_gl_defaults,
    make_metaworld_env,
    robot_state,
)
from freeaction_gym.prompts.camera import PinholeCamera

GRIPPER_BODIES = ("right_hand", "hand", "rightclaw", "rightpad", "leftclaw", "leftpad")
"""Bodies whose visible geoms form the gripper's segmentation mask (wrist flange, gripper
base, both claws and pads) - the parts the skeleton's gripper primitives stand for."""
MARKER_ID = 1_000_000  # object id given to marker geoms in segmentation renders


class AlignmentRenderer:
    """Segmentation renders of a MetaWorld env through a :class:`FreeCamera`.

    Uses its own ``mujoco.Renderer`` with the settings of ``SceneRenderer`` (the dataset's
    renderer); close it when done.
    """

    def __init__(self, env: Any, camera: FreeCamera, size: int) -> None:
        headless_gl_defaults()
        import mujoco

        self._mj = mujoco
        self.env = env
        model = env.unwrapped.model
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = camera.lookat
        cam.azimuth, cam.elevation, cam.distance = camera.azimuth, camera.elevation, camera.distance
        self._camera = cam
        self.camera = PinholeCamera.from_free_camera(camera, size, size, model.vis.global_.fovy)
        """The pinhole model of this renderer's view (the model's own ``fovy``)."""
        self._renderer = mujoco.Renderer(model, size, size)
        self._renderer.enable_segmentation_rendering()
        self.gripper_geoms = np.array(
            [
                g
                for g in range(model.ngeom)
                if model.body(model.geom_bodyid[g]).name in GRIPPER_BODIES
            ]
        )

    @property
    def fovy(self) -> float:
        """The model's vertical field of view (degrees)."""
        return float(self.env.unwrapped.model.vis.global_.fovy)

    def _update(self) -> None:
        model, data = self.env.unwrapped.model, self.env.unwrapped.data
        self._mj.mj_kinematics(model, data)  # as SceneRenderer: the current state, no physics
        self._mj.mj_comPos(model, data)
        self._renderer.update_scene(data, camera=self._camera)

    def segmentation(self) -> np.ndarray:
        """(H, W, 2) int32 ``(object id, object type)`` per pixel, (-1, -1) for background."""
        self._update()
        return self._renderer.render().copy()

    def gripper_mask(self) -> np.ndarray:
        """(H, W) bool: pixels showing a geom of :data:`GRIPPER_BODIES`."""
        seg = self.segmentation()
        is_geom = seg[..., 1] == int(self._mj.mjtObj.mjOBJ_GEOM)
        return is_geom & np.isin(seg[..., 0], self.gripper_geoms)

    def marker_centroids(self, points: np.ndarray, radius_px: float = 2.0) -> np.ndarray:
        """Render a sphere at each of ``points`` (N, 3) world m, one at a time and alone (the
        scene's own geoms are dropped, so nothing occludes it), ``radius_px`` pixels in
        radius; returns (N, 2) centroids ``(u, v)`` of its pixels in the pixel convention of
        camera.py (NaN where a marker is off-image)."""
        mj = self._mj
        points = np.asarray(points, np.float64)
        _, depth = self.camera.project(points)
        radii = radius_px * depth / self.camera.focal  # (N,) m
        out = np.full((len(points), 2), np.nan)
        for i, (p, radius) in enumerate(zip(points, radii, strict=True)):
            self._update()
            scene = self._renderer.scene
            scene.ngeom = 0
            geom = scene.geoms[0]
            mj.mjv_initGeom(
                geom,
                int(mj.mjtGeom.mjGEOM_SPHERE),
                np.array([radius, 0.0, 0.0]),
                p,
                np.eye(3).ravel(),
                np.array([1.0, 0.0, 0.0, 1.0], np.float32),
            )
            geom.objtype, geom.objid, geom.segid = int(mj.mjtObj.mjOBJ_UNKNOWN), MARKER_ID, 0
            scene.ngeom = 1
            seg = self._renderer.render()
            rows, cols = np.nonzero(seg[..., 0] == MARKER_ID)
            if rows.size:
                out[i] = cols.mean(), rows.mean()
        return out

    def close(self) -> None:
        renderer, self._renderer = getattr(self, "_renderer", None), None
        if renderer is None:
            return
        gl_context = getattr(renderer, "_gl_context", None)
        if gl_context is not None:  # see SceneRenderer.close
            gl_context.make_current()
        renderer.close()


@dataclass
class ReplayFrame:
    """One re-simulated frame; ``env`` is left at this frame's state until the next one."""

    env: Any
    state: np.ndarray
    """(7,) per ``metaworld_gen.STATE_NAMES``."""
    keypoints: np.ndarray
    """(K, 3) world m per ``metaworld_gen.KEYPOINT_BODIES``."""
    rgb: np.ndarray | None
    """(H, W, 3) uint8 as the dataset renders it, when asked for."""


def replay_states(
    episode: Episode,
    action_repeat: int = 4,
    camera: str = "workspace",
    resolution: int = 64,
    with_rgb: bool = False,
) -> Iterator[ReplayFrame]:
    """Re-simulate ``episode`` from its stored actions: yields its T+1 frames in order.
    The env (and its renderer) is closed when the iteration ends."""
    layout_seed = int(episode.info.get("layout_seed", 0))
    env, render = make_metaworld_env(
        episode.task, layout_seed, episode.layout, camera, resolution, depth=False
    )

    def frame(obs: np.ndarray) -> ReplayFrame:
        return ReplayFrame(env, *robot_state(env, obs), render()[0] if with_rgb else None)

    try:
        env.max_path_length = max(env.max_path_length, episode.num_actions * action_repeat)
        obs, _ = env.reset()
        yield frame(obs)
        for action in episode.action:
            for _ in range(action_repeat):
                obs, *_ = env.step(action)
            yield frame(obs)
    finally:
        render.close()
        env.close()


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image intersection over union of boolean masks (..., H, W) -> (...,); NaN where
    both are empty."""
    inter = (a & b).sum((-2, -1))
    union = (a | b).sum((-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)
