"""PinholeCamera: synthetic cameras against closed-form pixels, and against MuJoCo itself."""

from __future__ import annotations

import math

import numpy as np
import pytest

from freeaction_gym.data.metaworld_gen import FreeCamera
from freeaction_gym.prompts.camera import PinholeCamera

# Looks along +y (azimuth 90, level): image right is world +x, image up is world +z.
LEVEL = FreeCamera(lookat=(0.1, 0.5, 0.2), azimuth=90.0, elevation=0.0, distance=2.0)


def test_lookat_lands_on_image_centre_at_its_distance():
    workspace = FreeCamera((0.0, 0.72, 0.1), 205.0, -35.0, 1.05)
    for free, w, h, fovy in (
        (LEVEL, 64, 64, 45.0),
        (LEVEL, 80, 48, 30.0),
        (workspace, 64, 64, 45.0),
    ):
        cam = PinholeCamera.from_free_camera(free, w, h, fovy)
        uv, depth = cam.project(np.array(free.lookat))
        np.testing.assert_allclose(uv, [(w - 1) / 2, (h - 1) / 2], atol=1e-9)
        assert depth == pytest.approx(free.distance)
    assert PinholeCamera.from_preset("workspace", 64) == PinholeCamera.from_free_camera(
        workspace, 64
    )


def test_points_on_the_optical_axis_project_to_the_centre_with_growing_depth():
    cam = PinholeCamera.from_preset("workspace", 64)
    axis = np.asarray(cam.position) + np.outer([0.3, 1.0, 2.5, 10.0], cam.forward)  # (4, 3)
    uv, depth = cam.project(axis)
    np.testing.assert_allclose(uv, np.full((4, 2), 31.5), atol=1e-9)
    np.testing.assert_allclose(depth, [0.3, 1.0, 2.5, 10.0], atol=1e-12)
    assert np.all(np.diff(depth) > 0)


def test_known_offsets_land_on_closed_form_pixels():
    """Level camera looking along +y: x offsets move right, z offsets move up (smaller row);
    pixel = centre + f * offset / distance with f = (H / 2) / tan(fovy / 2)."""
    w, h, fovy = 80, 48, 45.0
    cam = PinholeCamera.from_free_camera(LEVEL, w, h, fovy)
    f = (h / 2) / math.tan(math.radians(fovy) / 2)
    lookat = np.array(LEVEL.lookat)
    points = lookat + np.array([[0.2, 0.0, 0.0], [0.0, 0.0, 0.1], [-0.1, 0.0, -0.05], [0, 1.0, 0]])
    uv, depth = cam.project(points)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    expected = [
        [cx + f * 0.2 / 2, cy],
        [cx, cy - f * 0.1 / 2],
        [cx - f * 0.1 / 2, cy + f * 0.05 / 2],
        [cx, cy],
    ]
    np.testing.assert_allclose(uv, expected, atol=1e-9)
    np.testing.assert_allclose(depth, [2.0, 2.0, 2.0, 3.0])


def test_depth_ordering_and_points_behind_the_camera():
    cam = PinholeCamera.from_free_camera(LEVEL, 64)
    near, far, behind = [0.1, 0.0, 0.2], [0.1, 2.0, 0.2], [0.1, -3.0, 0.2]  # camera at y = -1.5
    uv, depth = cam.project(np.array([near, far, behind]))
    assert depth[0] < depth[1] and depth[2] < 0
    assert np.all(np.isnan(uv[2])) and np.all(np.isfinite(uv[:2]))


def test_unproject_inverts_project_and_resize_keeps_the_view():
    cam = PinholeCamera.from_preset("workspace", 64)
    pts = np.random.default_rng(0).uniform([-0.3, 0.4, 0.0], [0.3, 0.9, 0.4], (20, 3))
    uv, depth = cam.project(pts)
    np.testing.assert_allclose(cam.unproject(uv, depth), pts, atol=1e-12)
    big = cam.resized(256)
    uv4, _ = big.project(pts)
    # continuous image coordinates (pixel edges at -0.5) scale with the image
    np.testing.assert_allclose(uv4 + 0.5, (uv + 0.5) * 4, atol=1e-9)
    K = cam.intrinsics
    p = cam.to_camera(pts)
    np.testing.assert_allclose((p @ K.T)[:, :2] / p[:, 2:], uv, atol=1e-9)


def test_matches_mujocos_own_free_camera():
    """mjv_updateScene's GL cameras (no rendering needed): the same centre, axes and fovy."""
    mujoco = pytest.importorskip("mujoco")
    model = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><geom type='sphere' size='0.1'/></worldbody></mujoco>"
    )
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    for free in (LEVEL, FreeCamera((0.0, 0.72, 0.1), 205.0, -35.0, 1.05)):
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = free.lookat
        cam.azimuth, cam.elevation, cam.distance = free.azimuth, free.elevation, free.distance
        scene = mujoco.MjvScene(model, maxgeom=10)
        mujoco.mjv_updateScene(
            model, data, mujoco.MjvOption(), None, cam, mujoco.mjtCatBit.mjCAT_ALL, scene
        )
        left, right = scene.camera[0], scene.camera[1]
        ours = PinholeCamera.from_free_camera(free, 64, fovy=model.vis.global_.fovy)
        np.testing.assert_allclose((np.array(left.pos) + right.pos) / 2, ours.position, atol=1e-6)
        np.testing.assert_allclose(left.forward, ours.forward, atol=1e-6)
        np.testing.assert_allclose(left.up, ours.up, atol=1e-6)
        half = math.tan(math.radians(ours.fovy) / 2)
        assert left.frustum_top / left.frustum_near == pytest.approx(half, rel=1e-5)


def test_matches_a_mujoco_render():
    """A sphere rendered by MuJoCo (segmentation, non-square image) lands where we project it."""
    mujoco = pytest.importorskip("mujoco")
    xml = """<mujoco><visual><global offwidth='96' offheight='64'/></visual><worldbody>
      <geom name='ball' type='sphere' size='0.06' pos='0.23 0.5 0.08'/></worldbody></mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    try:
        renderer = mujoco.Renderer(model, 64, 96)
    except Exception as e:  # no GL backend
        pytest.skip(f"no MuJoCo rendering: {e}")
    cam = mujoco.MjvCamera()
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
    cam.lookat[:] = (0.1, 0.5, 0.2)
    cam.azimuth, cam.elevation, cam.distance = 120.0, -25.0, 1.2
    renderer.enable_segmentation_rendering()
    renderer.update_scene(data, camera=cam)
    seg = renderer.render()
    renderer.close()
    rows, cols = np.nonzero(seg[..., 0] == 0)  # geom 0: the ball
    ours = PinholeCamera.from_free_camera(FreeCamera((0.1, 0.5, 0.2), 120.0, -25.0, 1.2), 96, 64)
    uv, _ = ours.project(np.array([0.23, 0.5, 0.08]))
    assert rows.size > 30
    np.testing.assert_allclose([cols.mean(), rows.mean()], uv, atol=0.15)
