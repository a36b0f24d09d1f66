"""Do the visual action prompts sit on the robot? Projection and gripper-IoU checks (issue 15).

Seed 004 validates its skeletons by overlaying them on frames and measuring pixel IoU. Here:

1. Projection: spheres rendered by MuJoCo, alone, at the keypoints of each episode's first
   frame and at random workspace points; the centroid of their pixels vs
   ``PinholeCamera.project`` (at 64 px and at 384 px, where rasterisation noise is small).
2. Replay: each test episode is re-simulated from its actions; the replayed keypoints and
   frames must equal the stored ones (so the stored keypoints describe the stored frames).
3. Gripper IoU: on every ``--every``-th frame, the skeleton's gripper region (capsules of
   radius r px around wrist-to-hand and both fingers) vs MuJoCo's segmentation of the
   gripper bodies, at the model's 64 px; with two controls that show what a misalignment
   costs: the same region shifted by 2 px, and the region of the frame 8 actions later.
4. A figure, one row per frame (two frames of one episode per task): real frame, prompt
   overlaid (drawn at 4x), the prompt at 64 px, and the IoU masks at the middle radius
   (white: gripper only, red: region only, green: both).

    python experiments/prompt_alignment.py --data data/metaworld_v2 --split test

Writes ``--out``/alignment.json and ``--out``/alignment.png.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from freeaction_gym.data.episodes import list_episodes, load_episode  # noqa: E402
from freeaction_gym.data.metaworld_gen import CAMERA_PRESETS, config_from_meta  # noqa: E402
from freeaction_gym.evaluation.paired_stats import mean_ci  # noqa: E402
from freeaction_gym.prompts.alignment import AlignmentRenderer, iou, replay_states  # noqa: E402
from freeaction_gym.prompts.camera import PinholeCamera  # noqa: E402
from freeaction_gym.prompts.skeleton import gripper_region, render_prompts  # noqa: E402
from freeaction_gym.utils.args import parse_args  # noqa: E402

SHIFT_PX = 2  # control: the region moved right by this many pixels
LATER = 8  # control: the region of the frame this many actions later (earlier at the end)


@dataclass
class Args:
    """Projection check, replay check and gripper IoU of the skeleton prompts."""

    data: str = "data/metaworld_v2"
    """Dataset root (its meta.json names the camera and resolution)."""
    split: str = "test"
    episodes: int = 0
    """Episodes of the split to use (0: all)."""
    every: int = 8
    """Score every n-th frame of an episode (frame 0 included)."""
    radii: list[float] = field(default_factory=lambda: [0.75, 1.0, 1.5])
    """Gripper-region capsule radii (px at 64) to report."""
    markers: int = 30
    """Random workspace points for the projection check."""
    figure_episodes: int = 3
    """Episodes (one per task where possible) in the figure."""
    out: str = "docs/figures/prompts"
    """Output directory (alignment.json, alignment.png)."""


def projection_check(episode_path: Path, camera_name: str, markers: int) -> dict:
    """Marker centroid vs projection (px) at 64 and 384 px."""
    episode = load_episode(episode_path, load_depth=False)
    rng = np.random.default_rng(0)
    points = rng.uniform([-0.3, 0.4, 0.0], [0.3, 0.9, 0.4], (markers, 3))
    frame = next(replay_states(episode, camera=camera_name))
    points = np.concatenate([frame.keypoints, points])
    out = {}
    for size in (64, 384):
        renderer = AlignmentRenderer(frame.env, CAMERA_PRESETS[camera_name], size)
        uv, _ = renderer.camera.project(points)
        centroid = renderer.marker_centroids(points, radius_px=6.0)
        renderer.close()
        inside = np.all((uv > 8) & (uv < size - 9), axis=-1)  # marker wholly in the image
        err = np.linalg.norm(centroid - uv, axis=-1)[inside]
        bias = (centroid - uv)[inside].mean(0)
        out[str(size)] = {
            "points": int(inside.sum()),
            "mean_px": float(err.mean()),
            "max_px": float(err.max()),
            "bias_uv_px": [float(b) for b in bias],
            "fovy": renderer.fovy,
        }
    return out


def main(args: Args) -> dict:
    cfg = config_from_meta(args.data)
    camera = PinholeCamera.from_preset(cfg.camera, cfg.resolution)
    paths = list_episodes(args.data, args.split)
    if args.episodes:
        paths = paths[: args.episodes]
    results: dict = {"args": asdict(args), "camera": asdict(camera)}
    results["projection"] = projection_check(paths[0], cfg.camera, args.markers)
    print("projection:", json.dumps(results["projection"]))

    ious = {f"r{r}": [] for r in args.radii}
    controls = {"shifted": [], "later": []}
    replay_kp_err, replay_rgb_err, mask_px = 0.0, 0, []
    figure_rows, figure_tasks = [], set()
    for n, path in enumerate(paths):
        episode = load_episode(path, load_depth=False)
        frames = list(range(0, episode.num_frames, args.every))
        masks = []
        renderer = None
        for k, frame in enumerate(
            replay_states(episode, cfg.action_repeat, cfg.camera, cfg.resolution, with_rgb=True)
        ):
            replay_kp_err = max(
                replay_kp_err, float(np.abs(frame.keypoints - episode.keypoints[k]).max())
            )
            replay_rgb_err = max(
                replay_rgb_err, int(np.abs(frame.rgb.astype(int) - episode.rgb[k]).max())
            )
            if renderer is None:
                renderer = AlignmentRenderer(frame.env, CAMERA_PRESETS[cfg.camera], cfg.resolution)
            if k in frames:
                masks.append(renderer.gripper_mask())
        renderer.close()
        masks = np.stack(masks)  # (F, H, W)
        mask_px += masks.sum((1, 2)).tolist()
        kp = episode.keypoints[frames]  # (F, K, 3)
        for r in args.radii:
            ious[f"r{r}"] += iou(gripper_region(kp, camera, radius=r), masks).tolist()
        base_r = args.radii[len(args.radii) // 2]
        region = gripper_region(kp, camera, radius=base_r)
        controls["shifted"] += iou(np.roll(region, SHIFT_PX, axis=2), masks).tolist()
        later = [k + LATER if k + LATER < episode.num_frames else k - LATER for k in frames]
        controls["later"] += iou(
            gripper_region(episode.keypoints[later], camera, radius=base_r), masks
        ).tolist()
        if episode.task not in figure_tasks and len(figure_tasks) < args.figure_episodes:
            figure_tasks.add(episode.task)
            pick = [len(frames) // 2, len(frames) - 1]
            figure_rows += figure_rows_of(
                episode.rgb[[frames[i] for i in pick]], kp[pick], masks[pick], region[pick], camera
            )
        mean_iou = np.nanmean(iou(region, masks))
        print(f"[{n + 1}/{len(paths)}] {path.name}: IoU r{base_r} {mean_iou:.3f}")

    def cell(x: list[float]) -> dict:
        m, lo, hi = mean_ci(np.asarray(x))
        return {"mean": m, "lo": lo, "hi": hi, "n": int(np.isfinite(x).sum())}

    results["replay"] = {"max_keypoint_diff_m": replay_kp_err, "max_rgb_diff": replay_rgb_err}
    results["gripper_mask_px"] = cell(mask_px)
    results["iou"] = {k: cell(v) for k, v in ious.items()}
    results["controls"] = {k: cell(v) for k, v in controls.items()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_figure(out / "alignment.png", figure_rows)
    (out / "alignment.json").write_text(json.dumps(results, indent=2) + "\n")
    print(
        json.dumps(
            {k: results[k] for k in ("replay", "iou", "controls", "gripper_mask_px")}, indent=2
        )
    )
    return results


def figure_rows_of(rgb, keypoints, masks, regions, camera, scale: int = 4) -> list[np.ndarray]:
    """One (H*s, 4*W*s, 3) row per frame: real | overlay | prompt | IoU masks."""
    up = lambda x: x.repeat(scale, 0).repeat(scale, 1)  # noqa: E731
    big = render_prompts(keypoints, camera, size=camera.height * scale)
    small = render_prompts(keypoints, camera)
    rows = []
    for i in range(len(rgb)):
        real = up(rgb[i])
        overlay = np.where(big[i].any(-1, keepdims=True), big[i], real)
        compare = np.zeros_like(rgb[i])
        compare[masks[i]] = (255, 255, 255)
        compare[regions[i] & ~masks[i]] = (255, 0, 0)
        compare[regions[i] & masks[i]] = (0, 255, 0)
        gap = np.full((real.shape[0], 4, 3), 255, np.uint8)
        rows.append(np.concatenate([real, gap, overlay, gap, up(small[i]), gap, up(compare)], 1))
    return rows


def save_figure(path: Path, rows: list[np.ndarray]) -> None:
    import imageio.v2 as iio

    gap = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    iio.imwrite(path, np.concatenate([x for r in rows for x in (r, gap)][:-1], axis=0))


if __name__ == "__main__":
    main(parse_args(Args))
