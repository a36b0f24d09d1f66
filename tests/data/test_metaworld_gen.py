"""MetaWorld generator on a tiny config: format, determinism, splits, metric depth, resume.

Depth is checked against MuJoCo ray casting (``mj_ray``) through the camera geometry,
not against the renderer under test.
"""

import dataclasses
import json
import os

import numpy as np
import pytest

pytest.importorskip("metaworld")
mujoco = pytest.importorskip("mujoco")

from freeaction_gym.data.episodes import load_episode  # noqa: E402
from freeaction_gym.data.metaworld_gen import (  # noqa: E402
    CAMERA_PRESETS,
    ExplorationPolicy,
    MetaWorldDataConfig,
    generate_dataset,
    generate_episode,
    make_metaworld_env,
)

TASK = "reach-v3"
RES = 32
T = 8
CFG = MetaWorldDataConfig(
    tasks=[TASK], train_episodes=2, val_episodes=1, test_episodes=1, frames=T, resolution=RES
)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mw")
    summary = generate_dataset(root, CFG, num_workers=1, progress=False, log=lambda s: None)
    assert summary["generated"] == 4 and summary["skipped"] == 0
    return root


def npz(path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def test_files_shapes_and_dtypes(root):
    meta = json.loads((root / "meta.json").read_text())
    assert meta["format_version"] == 1 and meta["config"]["frames"] == T
    assert (root / "stats.json").is_file()
    names = {s: sorted(p.name for p in (root / s).glob("*.npz")) for s in ("train", "val", "test")}
    assert names == {
        "train": [f"{TASK}_00000.npz", f"{TASK}_00001.npz"],
        "val": [f"{TASK}_00000.npz"],
        "test": [f"{TASK}_00000.npz"],
    }
    a = npz(root / "train" / f"{TASK}_00001.npz")
    assert a["rgb"].dtype == np.uint8 and a["rgb"].shape == (T + 1, RES, RES, 3)
    assert a["depth"].dtype == np.float16 and a["depth"].shape == (T + 1, RES, RES)
    assert a["action"].dtype == np.float32 and a["action"].shape == (T, 4)
    assert a["reward"].dtype == np.float32 and a["reward"].shape == (T,)
    assert a["success"].dtype == bool and a["success"].shape == (T,)
    assert str(a["task"]) == TASK and int(a["layout"]) == 1 and int(a["layout_seed"]) == 0
    assert not list(root.rglob("*.tmp"))  # atomic writes left nothing behind


def test_actions_in_range_and_frames_move(root):
    for p in sorted(root.rglob("*.npz")):
        ep = load_episode(p)
        assert np.all(np.abs(ep.action) <= 1.0)
        assert ep.action.std() > 0.01
        # the arm moves: consecutive frames are not all identical
        assert np.abs(np.diff(ep.rgb.astype(int), axis=0)).max() > 10


def test_deterministic_regeneration(root):
    """A fresh env regenerates the stored episode bit for bit."""
    again = generate_episode(CFG, TASK, "train", 1)
    stored = npz(root / "train" / f"{TASK}_00001.npz")
    assert set(again) == set(stored)
    for k in stored:
        np.testing.assert_array_equal(again[k], stored[k], err_msg=k)


def test_reused_env_matches_fresh_env():
    """An env that already ran another episode renders the same episode bit for bit
    (MetaWorld leaves stale site positions after reset; push-v3 showed it in frame 0)."""
    cfg = dataclasses.replace(CFG, tasks=["push-v3"], frames=3)
    fresh = generate_episode(cfg, "push-v3", "train", 57)
    env, render = make_metaworld_env("push-v3", 0, 0, resolution=RES)
    try:
        # a full-length previous episode: what reset leaves stale depends on where it ended
        generate_episode(dataclasses.replace(cfg, frames=64), "push-v3", "train", 56, (env, render))
        reused = generate_episode(cfg, "push-v3", "train", 57, (env, render))
    finally:
        render.close()
        env.close()
    for k in fresh:
        np.testing.assert_array_equal(reused[k], fresh[k], err_msg=k)


def test_rendering_does_not_change_the_physics():
    """Actions of a rendered episode equal an unrendered rollout of the same policy (an
    mj_forward per render rewrote the solver warm start and diverged after ~9 frames)."""
    cfg = dataclasses.replace(CFG, tasks=["push-v3"], frames=14, resolution=16)
    rendered = generate_episode(cfg, "push-v3", "train", 3)
    env, render = make_metaworld_env("push-v3", 0, 3, resolution=16)
    render.close()
    policy = ExplorationPolicy("push-v3", cfg, np.random.default_rng(int(rendered["seed"])))
    obs, _ = env.reset()
    actions = []
    for _ in range(cfg.frames):
        actions.append(policy(obs))
        for _ in range(cfg.action_repeat):
            obs, *_ = env.step(actions[-1])
    env.close()
    np.testing.assert_array_equal(np.stack(actions), rendered["action"])


def test_closing_a_renderer_keeps_other_renderers_intact():
    env_a, render_a = make_metaworld_env(TASK, 0, 0, resolution=16)
    env_b, render_b = make_metaworld_env(TASK, 0, 1, resolution=16)
    env_a.reset()
    env_b.reset()
    render_a()
    ref_rgb, ref_depth = render_b()  # b's GL context is now current
    render_a.close()
    env_a.close()
    rgb, depth = render_b()
    render_b.close()
    env_b.close()
    np.testing.assert_array_equal(rgb, ref_rgb)
    np.testing.assert_array_equal(depth, ref_depth)
    with pytest.raises(RuntimeError, match="after close"):
        render_b()


def test_splits_use_different_layouts(root):
    tr, va, te = (npz(root / s / f"{TASK}_00000.npz") for s in ("train", "val", "test"))
    assert len({int(tr["seed"]), int(va["seed"]), int(te["seed"])}) == 3
    assert len({int(tr["layout_seed"]), int(va["layout_seed"]), int(te["layout_seed"])}) == 3
    # same layout index 0, different MT1 seeds -> the goal is elsewhere in the first frame
    assert not np.array_equal(tr["rgb"][0], va["rgb"][0])
    assert not np.array_equal(tr["rgb"][0], te["rgb"][0])


def test_depth_is_metric(root):
    """Stored depth of frame 0 equals MuJoCo ray-cast distances along the camera axis."""
    env, render = make_metaworld_env(TASK, 0, 0, resolution=RES)
    try:
        env.reset()
        rgb, depth = render()
        stored = npz(root / "train" / f"{TASK}_00000.npz")
        np.testing.assert_array_equal(rgb, stored["rgb"][0])  # the env reproduces the data
        np.testing.assert_array_equal(depth.astype(np.float16), stored["depth"][0])
        assert np.isfinite(stored["depth"]).all() and (stored["depth"] > 0).all()
        assert stored["depth"].max() <= CFG.depth_clip_m

        m, d = env.unwrapped.model, env.unwrapped.data
        pose = CAMERA_PRESETS["workspace"]
        az, el = np.deg2rad(pose.azimuth), np.deg2rad(pose.elevation)
        fwd = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        cam_pos = np.array(pose.lookat) - pose.distance * fwd
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, fwd)
        tan_half = np.tan(np.deg2rad(m.vis.global_.fovy) / 2)
        geomid = np.zeros(1, np.int32)
        for r, c in [(16, 16), (5, 5), (28, 4), (20, 28), (10, 20)]:
            ray = fwd + ((c + 0.5) / RES * 2 - 1) * tan_half * right
            ray += (1 - (r + 0.5) / RES * 2) * tan_half * up
            ray /= np.linalg.norm(ray)
            visible = np.array([1, 1, 1, 0, 0, 0], np.uint8)
            dist = mujoco.mj_ray(m, d, cam_pos, ray, visible, 1, -1, geomid)
            assert dist > 0
            assert depth[r, c] == pytest.approx(dist * ray @ fwd, abs=2e-3)
    finally:
        render.close()
        env.close()


def test_resume_skips_existing_and_regenerates_missing(root):
    files = sorted(root.rglob("*.npz"))
    mtimes = {p: os.stat(p).st_mtime_ns for p in files}
    summary = generate_dataset(root, CFG, num_workers=1, progress=False, log=lambda s: None)
    assert summary["generated"] == 0 and summary["skipped"] == 4
    assert {p: os.stat(p).st_mtime_ns for p in files} == mtimes

    victim = root / "val" / f"{TASK}_00000.npz"
    before = npz(victim)
    victim.unlink()
    summary = generate_dataset(root, CFG, num_workers=1, progress=False, log=lambda s: None)
    assert summary["generated"] == 1
    after = npz(victim)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


def test_refuses_to_mix_settings(root):
    with pytest.raises(ValueError, match="different settings.*frames"):
        generate_dataset(root, dataclasses.replace(CFG, frames=T + 1), num_workers=1)


def test_config_validation():
    with pytest.raises(ValueError, match="frames"):
        MetaWorldDataConfig(frames=0)
    with pytest.raises(ValueError, match="layout_seeds"):
        MetaWorldDataConfig(layout_seeds={"train": 0, "val": 0, "test": 1})
    with pytest.raises(ValueError, match="unknown camera"):
        make_metaworld_env(TASK, 0, 0, camera="nope", resolution=16)


@pytest.mark.slow
def test_worker_processes_write_the_same_files(root, tmp_path):
    """Two spawned workers produce the same bytes as the in-process run."""
    summary = generate_dataset(tmp_path, CFG, num_workers=2, progress=False, log=lambda s: None)
    assert summary["generated"] == 4
    for p in sorted(root.rglob("*.npz")):
        a, b = npz(p), npz(tmp_path / p.relative_to(root))
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{p.name}:{k}")


def test_demonstrations_are_clean_and_cut_after_first_success():
    cfg = MetaWorldDataConfig.demonstrations(tasks=["reach-v3"], frames=40, resolution=16)
    assert cfg.noise_sigma_range == (0.0, 0.0) and cfg.random_action_prob == 0.0
    ep = generate_episode(cfg, "reach-v3", "train", 0)
    first = int(np.argmax(ep["success"]))
    assert ep["success"].any() and first < 30  # the clean expert reaches in ~12-23 actions
    assert len(ep["action"]) == first + 3 and ep["rgb"].shape[0] == first + 4
    assert ep["depth"].shape[0] == first + 4
    again = generate_episode(cfg, "reach-v3", "train", 0)  # deterministic
    np.testing.assert_array_equal(again["action"], ep["action"])
    fixed = dataclasses.replace(cfg, stop_after_success=-1, frames=first + 6)
    assert len(generate_episode(fixed, "reach-v3", "train", 0)["action"]) == first + 6


def test_state_and_keypoints_follow_the_simulation(root):
    """Per-frame state = (hand xyz, gripper, object xyz) of the observation, keypoints the
    arm's body positions; both change with the frames, and the hand keypoint stays within
    a few cm of the reported hand position (tcp vs the hand body)."""
    from freeaction_gym.data.metaworld_gen import KEYPOINT_BODIES, STATE_NAMES

    ep = load_episode(sorted((root / "train").glob("*.npz"))[0])
    assert ep.state.shape == (T + 1, len(STATE_NAMES)) and ep.state.dtype == np.float32
    assert ep.keypoints.shape == (T + 1, len(KEYPOINT_BODIES), 3)
    hand_kp = ep.keypoints[:, KEYPOINT_BODIES.index("hand")]
    dist = np.linalg.norm(hand_kp - ep.state[:, :3], axis=1)
    assert dist.max() < 0.12, dist
    assert np.abs(np.diff(ep.state[:, :3], axis=0)).max() > 1e-3  # the hand moved
    assert 0.0 <= ep.state[:, 3].min() and ep.state[:, 3].max() <= 1.05  # gripper opening
    # a fresh env at the same layout reports the same first state
    env, render = make_metaworld_env(TASK, 0, ep.layout, resolution=RES)
    try:
        obs, _ = env.reset()
        np.testing.assert_allclose(obs[:7], ep.state[0], atol=1e-6)
    finally:
        render.close()
        env.close()


def test_random_walk_episodes_and_layout_seeds():
    cfg = dataclasses.replace(CFG, frames=12, random_walk_prob=1.0, train_layout_seeds=3)
    assert cfg.layout_of("train", 0) == (0, 0)
    assert cfg.layout_of("train", 57) == (1, 7)
    assert cfg.layout_of("train", 149) == (2, 49)
    assert cfg.layout_of("train", 150) == (0, 0)
    assert cfg.layout_of("test", 57) == (1000, 7)
    ep = generate_episode(cfg, TASK, "train", 57)
    assert bool(ep["random_walk"]) and int(ep["layout_seed"]) == 1
    # smooth motion: consecutive xyz actions correlate (AR(1) with rho >= 0.5)
    a = ep["action"][:, :3]
    assert np.corrcoef(a[:-1].ravel(), a[1:].ravel())[0, 1] > 0.2
    assert set(np.unique(ep["action"][:, 3])) <= {-1.0, 1.0}
    expert = generate_episode(dataclasses.replace(cfg, random_walk_prob=0.0), TASK, "train", 57)
    assert not bool(expert["random_walk"])
    with pytest.raises(ValueError, match="val/test layout seeds"):
        dataclasses.replace(CFG, train_layout_seeds=501)
    with pytest.raises(ValueError, match="random_walk_prob"):
        dataclasses.replace(CFG, random_walk_prob=1.5)
