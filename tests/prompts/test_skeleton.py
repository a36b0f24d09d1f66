"""Skeleton prompts: deterministic, joints on their projected pixels, gripper opening visible,
coverage against a brute-force per-pixel re-computation."""

from __future__ import annotations

import numpy as np
import pytest

from freeaction_gym.data.metaworld_gen import KEYPOINT_BODIES, FreeCamera
from freeaction_gym.prompts.camera import PinholeCamera
from freeaction_gym.prompts.skeleton import (
    CHUNK_FRAMES,
    DEFAULT_JOINT_COLORS,
    SKELETON_POINTS,
    SkeletonStyle,
    capsule_coverage,
    gripper_region,
    render_prompts,
    skeleton_points,
)

# A level camera looking along +y at the x-z plane y = 0 from 2 m: image right = +x, up = +z.
CAMERA = PinholeCamera.from_free_camera(FreeCamera((0.0, 0.0, 0.3), 90.0, 0.0, 2.0), 64)


def arm(opening: float = 0.3, shift: float = 0.0) -> np.ndarray:
    """(K, 3) well-separated keypoints in the plane y = 0 (pads ``opening`` m apart)."""
    pts = {
        "right_l1": (-0.6, 0.0, 0.75),
        "right_l3": (-0.35, 0.0, 0.6),
        "right_l5": (-0.1, 0.0, 0.75),
        "right_hand": (0.3, 0.0, 0.6),
        "hand": (0.3, 0.0, 0.2),
        "rightpad": (0.3 - opening / 2, 0.0, 0.2),
        "leftpad": (0.3 + opening / 2, 0.0, 0.2),
    }
    return np.array([pts[n] for n in KEYPOINT_BODIES]) + [shift, 0.0, 0.0]


def test_shape_dtype_and_determinism():
    kp = np.stack([arm(), arm(0.1, 0.05), arm(0.2, -0.05)])
    a = render_prompts(kp, CAMERA)
    b = render_prompts(kp.copy(), CAMERA)
    assert a.shape == (3, 64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert render_prompts(kp, CAMERA, size=32).shape == (3, 32, 32, 3)
    assert not np.array_equal(a[0], a[1])


def test_frames_are_independent_and_chunking_is_invisible():
    rng = np.random.default_rng(0)
    kp = np.stack(
        [arm(rng.uniform(0.05, 0.3), rng.uniform(-0.1, 0.1)) for _ in range(CHUNK_FRAMES + 3)]
    )
    batch = render_prompts(kp, CAMERA, style=SkeletonStyle(antialias="none"))
    single = np.concatenate(
        [
            render_prompts(kp[i : i + 1], CAMERA, style=SkeletonStyle(antialias="none"))
            for i in (0, CHUNK_FRAMES - 1, CHUNK_FRAMES, CHUNK_FRAMES + 2)
        ]
    )
    np.testing.assert_array_equal(
        batch[[0, CHUNK_FRAMES - 1, CHUNK_FRAMES, CHUNK_FRAMES + 2]], single
    )


@pytest.mark.parametrize("shift", [0.0, 0.013, -0.021])
def test_joints_land_on_their_projected_pixels(shift):
    """The pixel each joint disc falls in has exactly the joint's colour (discs are drawn
    over limbs; fingertip discs carry their pad's colour)."""
    kp = arm(shift=shift)[None]
    image = render_prompts(kp, CAMERA)[0]
    uv, _ = CAMERA.project(skeleton_points(kp)[0])
    names = [n for n in KEYPOINT_BODIES if n not in ("rightpad", "leftpad")]
    expected = {n: DEFAULT_JOINT_COLORS[n] for n in names}
    expected |= {f"{p}_tip": DEFAULT_JOINT_COLORS[p] for p in ("rightpad", "leftpad")}
    for name, color in expected.items():
        u, v = np.rint(uv[SKELETON_POINTS.index(name)]).astype(int)
        assert tuple(image[v, u]) == color, name


def test_gripper_opening_is_visible():
    """The white opening bar between the fingertips grows with the opening (hard edges, so
    white pixels are bar pixels; with anti-aliasing its brightness mass grows too)."""
    hard = SkeletonStyle(antialias="none")
    white = [
        int((render_prompts(arm(o)[None], CAMERA, style=hard)[0] == 255).all(-1).sum())
        for o in (0.06, 0.3)
    ]
    assert white[1] > white[0] + 5
    mass = [int(render_prompts(arm(o)[None], CAMERA)[0].min(-1).sum()) for o in (0.06, 0.3)]
    assert mass[1] > mass[0] + 5 * 255


def test_points_behind_the_camera_draw_nothing():
    kp = arm()[None] + [0.0, -5.0, 0.0]  # camera at y = -2
    assert render_prompts(kp, CAMERA).max() == 0


def brute_force_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    d = b - a
    s = 0.0 if d @ d == 0 else min(1.0, max(0.0, (p - a) @ d / (d @ d)))
    return float(np.linalg.norm(p - a - s * d))


def test_capsule_coverage_matches_a_brute_force_recomputation():
    rng = np.random.default_rng(1)
    h, w, r = 12, 15, 1.7
    a, b = rng.uniform(0, 12, (3, 2)), rng.uniform(0, 12, (3, 2))
    b[0] = a[0]  # a disc
    analytic = capsule_coverage(a, b, r, h, w, "analytic")
    hard = capsule_coverage(a, b, r, h, w, "none")
    supersampled = capsule_coverage(a, b, r, h, w, "supersample", samples=2)
    for t in range(3):
        ref_analytic, ref_hard, ref_ss = np.zeros((h, w)), np.zeros((h, w)), np.zeros((h, w))
        for row in range(h):
            for col in range(w):
                dist = brute_force_distance(np.array([col, row]), a[t], b[t])
                ref_analytic[row, col] = min(1.0, max(0.0, r + 0.5 - dist))
                ref_hard[row, col] = dist <= r
                sub = [(col + du, row + dv) for du in (-0.25, 0.25) for dv in (-0.25, 0.25)]
                ref_ss[row, col] = np.mean(
                    [brute_force_distance(np.array(q), a[t], b[t]) <= r for q in sub]
                )
        np.testing.assert_allclose(analytic[t], ref_analytic, atol=1e-5)
        np.testing.assert_array_equal(hard[t], ref_hard)
        np.testing.assert_allclose(supersampled[t], ref_ss, atol=1e-6)
    assert np.all(capsule_coverage(np.full((1, 2), np.nan), b[:1], r, h, w) == 0)


def test_style_validation_names_the_option():
    with pytest.raises(ValueError, match="antialias"):
        SkeletonStyle(antialias="msaa")


def test_gripper_region_covers_fingers_and_wrist_only():
    kp = arm()[None]
    region = gripper_region(kp, CAMERA)[0]
    uv, _ = CAMERA.project(skeleton_points(kp)[0])
    on = [SKELETON_POINTS.index(n) for n in ("right_hand", "hand", "rightpad_tip", "leftpad_tip")]
    off = [SKELETON_POINTS.index(n) for n in ("right_l1", "right_l3", "right_l5")]
    pix = np.rint(uv).astype(int)
    assert all(region[pix[i, 1], pix[i, 0]] for i in on)
    assert not any(region[pix[i, 1], pix[i, 0]] for i in off)
