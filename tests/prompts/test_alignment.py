"""Prompts against MuJoCo's own renders on a generated episode, and the experiment scripts
(prompt_alignment.py, proprio_error.py) end to end on the tiny dataset."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_replay_projection_and_gripper_iou(prompt_root):
    from freeaction_gym.data.episodes import list_episodes, load_episode
    from freeaction_gym.data.metaworld_gen import CAMERA_PRESETS
    from freeaction_gym.prompts.alignment import AlignmentRenderer, iou, replay_states
    from freeaction_gym.prompts.camera import PinholeCamera
    from freeaction_gym.prompts.skeleton import gripper_region

    episode = load_episode(list_episodes(prompt_root, "test")[0], load_depth=False)
    camera = PinholeCamera.from_preset("workspace", 64)
    masks, errors = [], []
    for k, frame in enumerate(replay_states(episode, with_rgb=True)):
        np.testing.assert_array_equal(frame.keypoints, episode.keypoints[k])
        np.testing.assert_array_equal(frame.rgb, episode.rgb[k])
        if k == 0:
            renderer = AlignmentRenderer(frame.env, CAMERA_PRESETS["workspace"], 64)
            assert renderer.camera == camera
        if k % 5 == 0:
            masks.append(renderer.gripper_mask())
            centroid = renderer.marker_centroids(frame.keypoints[3:], radius_px=3.0)
            uv, _ = camera.project(frame.keypoints[3:])
            errors.append(np.linalg.norm(centroid - uv, axis=-1))
    renderer.close()
    assert np.nanmax(errors) < 0.5  # px; wrist, hand and pads are inside the image
    masks = np.stack(masks)
    assert masks.sum((1, 2)).min() > 15  # the gripper is visible
    region = gripper_region(episode.keypoints[::5], camera)
    aligned = np.nanmean(iou(region, masks))
    shifted = np.nanmean(iou(np.roll(region, 3, axis=2), masks))
    assert aligned > 0.25 and aligned > shifted + 0.1


def test_iou_matches_a_set_computation():
    from freeaction_gym.prompts.alignment import iou

    rng = np.random.default_rng(0)
    a, b = rng.random((3, 8, 9)) > 0.6, rng.random((3, 8, 9)) > 0.5
    b[2] = a[2] = False
    for i in range(2):
        sa = set(zip(*np.nonzero(a[i]), strict=True))
        sb = set(zip(*np.nonzero(b[i]), strict=True))
        assert iou(a, b)[i] == pytest.approx(len(sa & sb) / len(sa | sb))
    assert np.isnan(iou(a, b)[2])


def test_prompt_alignment_script(prompt_root, tmp_path):
    script = load_script("prompt_alignment")
    args = script.Args(data=str(prompt_root), episodes=1, every=8, markers=4, out=str(tmp_path))
    results = script.main(args)
    saved = json.loads((tmp_path / "alignment.json").read_text())
    assert (tmp_path / "alignment.png").is_file()
    assert saved["replay"] == {"max_keypoint_diff_m": 0.0, "max_rgb_diff": 0}
    assert saved["projection"]["64"]["mean_px"] < 0.3
    assert results["iou"]["r1.0"]["mean"] > results["controls"]["shifted"]["mean"]


def test_proprio_error_script(prompt_root, tmp_path):
    from freeaction_gym.assets import resolve_asset_path
    from freeaction_gym.prompts.proprio import ProprioConfig, ProprioModel

    ProprioModel(ProprioConfig(hidden=8, depth=1)).save_pretrained(tmp_path / "m")
    bundled = str(resolve_asset_path("bundled:metaworld_vap/proprio"))
    script = load_script("proprio_error")
    results = script.main(
        script.Args(
            models=[str(tmp_path / "m"), bundled],
            data=[str(prompt_root)],
            out=str(tmp_path),
            mid_starts=[5],
        )
    )
    rows = results["data"][str(prompt_root)]
    assert set(rows) == {"hold", "mocap rule", str(tmp_path / "m"), bundled, "mid_starts"}
    # an untrained (zero-initialised) model is the hold baseline, however it is started
    assert rows["hold"]["hand_cm"] == rows[str(tmp_path / "m")]["hand_cm"]
    untrained = rows["mid_starts"][str(tmp_path / "m")]["5"]
    assert untrained["rest"] == untrained["motion"]
    # the trained one follows a moving arm only when started with its motion
    trained = rows["mid_starts"][bundled]["5"]
    for k in ("1", "5"):
        assert trained["motion"][k]["mean"] < 0.5 * trained["rest"][k]["mean"]
    assert (tmp_path / "proprio_rollout.png").is_file()
