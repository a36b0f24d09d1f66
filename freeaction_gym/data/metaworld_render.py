"""Rendering a MetaWorld scene: camera presets and :class:`SceneRenderer` (rgb + metric
depth of the current simulation state through MuJoCo's offscreen renderer).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

FLIPPED_CAMERAS = frozenset({"corner", "corner2", "corner3", "corner4"})  # render upside down


@dataclass(frozen=True)
class FreeCamera:
    """A MuJoCo free camera: looks at ``lookat`` (m, world frame) from ``distance`` (m);
    ``azimuth``/``elevation`` in degrees (negative elevation looks down)."""

    lookat: tuple[float, float, float]
    azimuth: float
    elevation: float
    distance: float


# "workspace": a 3/4 view from the far end of the table, framing the reachable workspace
# (hand, object and goal ranges of reach/push/pick-place) so that the gripper fingers, the
# puck and the goal marker are several pixels wide at 64x64. The MetaWorld corner cameras
# show the whole table and the robot base, leaving objects at 1-2 pixels.
CAMERA_PRESETS: dict[str, FreeCamera] = {
    "workspace": FreeCamera(lookat=(0.0, 0.72, 0.1), azimuth=205.0, elevation=-35.0, distance=1.05),
}


class SceneRenderer:
    """Renders one MetaWorld env's current state: ``render()`` -> ``(rgb, depth)``.

    ``rgb`` uint8 (H, W, 3); ``depth`` float32 (H, W) metric meters clipped at ``depth_clip_m``
    (``None`` when ``depth=False``). Shadows, multisampling and reflections are off (7x
    faster, REFERENCE §6). Rendering first recomputes kinematics so the image shows the current
    state even right after ``reset``; it never changes the simulation. Close it when done.
    """

    def __init__(
        self, env: Any, camera: str, resolution: int, depth: bool = True, depth_clip_m: float = 10.0
    ) -> None:
        import mujoco

        self._mujoco = mujoco
        self.env = env
        self.depth_clip_m = depth_clip_m
        self.with_depth = depth
        model = env.unwrapped.model
        model.vis.quality.shadowsize = 0
        model.vis.quality.offsamples = 0
        if camera in CAMERA_PRESETS:
            pose = CAMERA_PRESETS[camera]
            cam = mujoco.MjvCamera()
            cam.type = mujoco.mjtCamera.mjCAMERA_FREE
            cam.lookat[:] = pose.lookat
            cam.azimuth, cam.elevation, cam.distance = pose.azimuth, pose.elevation, pose.distance
            self._camera: Any = cam
        else:
            names = [model.camera(i).name for i in range(model.ncam)]
            if camera not in names:
                raise ValueError(
                    f"unknown camera {camera!r}: use a preset {sorted(CAMERA_PRESETS)} "
                    f"or one of {names}"
                )
            self._camera = camera
        self._flip = camera in FLIPPED_CAMERAS
        self._renderer = mujoco.Renderer(model, resolution, resolution)

    def render(self) -> tuple[np.ndarray, np.ndarray | None]:
        r = self._renderer
        if r is None:
            raise RuntimeError("SceneRenderer.render() called after close()")
        model, data = self.env.unwrapped.model, self.env.unwrapped.data
        # MetaWorld's reset_model moves the goal site in the *model* after its last
        # mj_forward, so data.site_xpos still shows an earlier goal: the frame after reset
        # would depend on history. Recompute the position stage only (a no-op after
        # env.step). Not mj_forward: it also rewrites the solver warm start, which changed
        # the later physics (measured: actions diverged after ~9 frames).
        mj = self._mujoco
        mj.mj_kinematics(model, data)
        mj.mj_comPos(model, data)
        mj.mj_camlight(model, data)
        r.update_scene(data, camera=self._camera)
        r.scene.flags[self._mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        rgb = r.render().copy()  # (H, W, 3) uint8
        depth = None
        if self.with_depth:
            r.enable_depth_rendering()
            depth = np.minimum(r.render(), self.depth_clip_m).astype(np.float32)  # (H, W) m
            r.disable_depth_rendering()
        if self._flip:
            rgb = rgb[::-1].copy()
            depth = None if depth is None else depth[::-1].copy()
        return rgb, depth

    __call__ = render

    def close(self) -> None:
        """Free the renderer (idempotent).

        ``mujoco.Renderer.close`` frees the MuJoCo GL objects on whichever GL context is
        current, which corrupts the images of another live renderer that drew last (measured:
        wrong pixels and depth). Making our own context current first keeps others intact.
        """
        renderer, self._renderer = getattr(self, "_renderer", None), None
        if renderer is None:
            return
        gl_context = getattr(renderer, "_gl_context", None)
        if gl_context is not None:
            gl_context.make_current()
        renderer.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: GL bindings may already be gone
            pass


def headless_gl_defaults() -> None:
    """Without a display, render MuJoCo through OSMesa (``MUJOCO_GL=osmesa``,
    ``PYOPENGL_PLATFORM=osmesa``) unless the user chose a backend; must run before mujoco is
    first imported (scripts/setup.sh installs libosmesa6)."""
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "osmesa")
        os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
