"""Quality bar of a trained world model on held-out episodes.

Every number is measured against copying the context frame (the easy minimum on
static-camera robot video, REFERENCE §7), for plain sampling (no guidance, Gaussian
noise) and for the FreeAction defaults (action-scaled CFG + action-scaled noise
truncation, ``world.default_sampling(K)``):

(a) short rollouts: 1 context frame + K actions (K = the model's chunk, the env step);
    PSNR / SSIM (colour), Latent L2, moving-region PSNR; and the action-sensitivity check:
    the same random draws with the actions rolled by one across clips;
(b) IRASim's short setting: 1 context + 15 actions (16 frames), generated autoregressively
    in chunks of K; grayscale PSNR / SSIM (as IRASim) and colour;
(c) long rollouts over whole episodes: per-frame PSNR vs copy, NaN and pixel-drift check;
(d) side-by-side videos (truth | model | model+FreeAction | copy) and PNG strips.

Rollouts and scores are :func:`freeaction_gym.evaluation.study.run_methods`'s: clip ``i``'s
noise comes from a generator seeded by (seed, i), so numbers do not depend on ``--batch``
(beyond float rounding), and PSNR is capped per frame at ``study.PSNR_CAP``.

Outputs in ``--out``: metrics.json, results.md (tables for docs/RESULTS.md), plots, videos.

    python experiments/eval_world_model.py                     # the bundled model
    python experiments/eval_world_model.py --quick             # a few seconds
    python experiments/eval_world_model.py --model /tmp/evalrun/model --data /tmp/evaldata
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when OpenMP starts

import dataclasses  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Literal  # noqa: E402

import imageio  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats as st  # noqa: E402

from freeaction_gym.assets import resolve_model_path  # noqa: E402
from freeaction_gym.evaluation.paired_stats import mean_ci  # noqa: E402
from freeaction_gym.evaluation.rollout import (  # noqa: E402
    Clips,
    collect_clips,
    encode_frames,
    max_chunk,
)
from freeaction_gym.evaluation.study import (  # noqa: E402
    PSNR_CAP,
    Method,
    MethodResult,
    copy_baseline,
    merge,
    run_methods,
)
from freeaction_gym.models import count_parameters  # noqa: E402
from freeaction_gym.utils.args import parse_args  # noqa: E402
from freeaction_gym.utils.threads import configure_threads  # noqa: E402
from freeaction_gym.world_model import load_world_model  # noqa: E402

IRASIM_FRAMES = 16  # IRASim's short trajectories: 1 context frame + 15 actions


@dataclass
class Args:
    """Evaluate a world model against the copy-the-context baseline on held-out episodes."""

    model: str = "bundled:metaworld_default"
    """World model directory (``freeaction train``), bundled:<name>, or an IRASim .pt."""
    vae: str | None = None
    """diffusers AutoencoderKL directory for an IRASim checkpoint."""
    data: str = "data/metaworld_default"
    """Episode dataset root (``freeaction data metaworld``)."""
    split: Literal["train", "val", "test"] = "test"
    """Dataset split to evaluate on (held-out: test)."""
    out: str = "outputs/eval_world_model"
    """Output directory for metrics.json, results.md, plots and videos."""
    num_clips: int = 64
    """Clips per short setting (a fixed random subset of non-overlapping windows)."""
    num_episodes: int = 20
    """Whole episodes for the long-rollout setting."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Noise seeds; per-clip metrics are averaged over seeds, CIs are across clips."""
    steps: int = 10
    """Sampler steps."""
    scheduler: Literal["ddim", "ddpm", "pndm", "dpmsolver++"] = "ddim"
    """Diffusers scheduler used for sampling."""
    batch: int = 16
    """Clips per denoiser batch."""
    num_videos: int = 4
    """Clips shown in each side-by-side video / PNG strip."""
    fps: int = 4
    """Frame rate of the mp4 videos."""
    threads: int | None = None
    """Torch intra-op threads (default: torch's choice; FREEACTION_THREADS overrides)."""
    quick: bool = False
    """Smoke mode: 4 clips, 2 episodes, 1 seed, 2 sampler steps (runs in seconds)."""


args = parse_args(Args)
if args.quick:
    args.num_clips, args.num_episodes, args.seeds = 4, 2, [0]
    args.steps, args.num_videos = 2, 2
threads = configure_threads(args.threads)
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
t_start = time.time()

# -- model, sampler settings -------------------------------------------------------------
try:
    world = load_world_model(args.model, args.vae)
except (FileNotFoundError, ValueError) as e:
    sys.exit(f"{e}\n(train one with `freeaction train --config configs/metaworld_default.yaml`)")
n = world.num_context
K = max_chunk(world)  # frames per denoiser call = the env's action chunk
BASE = {"scheduler": args.scheduler, "num_steps": args.steps}
METHODS = [  # rows; overrides of world.default_sampling(k) (mu_act from the model's stats)
    Method("model", {"guidance": {"mode": "none"}, "truncation": {"mode": "none"}}),
    Method("model+truncation", {"guidance": {"mode": "none"}}),
    Method("model+FreeAction", {}),
]
SAMPLERS = [m.name for m in METHODS]
if world.mu_act(world.default_sampling(K).norm, K) is None:
    print(f"warning: {args.model} has no mu_act statistics; truncation is centred on 0")
print(
    f"[eval] {args.model}: {count_parameters(world.dit) / 1e6:.2f}M params, "
    f"{world.dit.config.num_frames} frames ({n} context, chunk {K}), codec "
    f"{type(world.codec).__name__}, {args.scheduler} x {args.steps} steps, seeds {args.seeds}, "
    f"{threads} threads"
)


# -- helpers -----------------------------------------------------------------------------
def row_of(res: MethodResult) -> dict:
    """Per-clip values (N,) averaged over seeds, per-frame curves (N, F - n), seed spread."""
    row = {k: v.mean(axis=0) for k, v in res.scores.items()}
    row["psnr_per_frame"] = res.per_frame_psnr.mean(axis=0)
    row["pixel_drift_per_frame"] = res.per_frame_drift.mean(axis=0)
    row["seed_spread_psnr"] = float(np.std(res.scores["psnr"].mean(axis=1)))
    return row


def summarise(per_clip: np.ndarray) -> dict:
    """Mean and 95% t-interval half-width across clips (non-finite clips dropped)."""
    n = int(np.isfinite(np.asarray(per_clip, dtype=np.float64)).sum())
    mean, _, hi = mean_ci(per_clip)
    return {"mean": mean, "ci95": hi - mean if n > 1 else float("nan"), "n": n}


def evaluate_setting(name: str, clips: Clips, shuffle: bool) -> dict:
    """All rows (copy, samplers, shuffled) of one setting; per-clip metrics seed-averaged."""
    true_z = encode_frames(world, clips.frames, args.batch)
    variants = {"": clips}
    if shuffle:  # clip i gets clip i-1's actions, with clip i's noise
        variants[" (shuffled)"] = dataclasses.replace(clips, actions=clips.actions.roll(1, 0))
    results = {"copy": copy_baseline(clips, true_z, n)}
    for suffix, c in variants.items():
        res = run_methods(
            world, c, true_z, METHODS, BASE, args.seeds, K, args.batch, desc=f"{name}{suffix}"
        )
        results |= {f"{label}{suffix}": r for label, r in res.items()}
    shown = {"truth": clips.frames[: args.num_videos]}
    shown |= {row: results[row].frames[: args.num_videos] for row in ["copy", *SAMPLERS]}
    health = {row: r.health for row, r in results.items() if r.health}
    return {
        "rows": {row: row_of(r) for row, r in results.items()},
        "shown": shown,
        "health": health,
    }


def report(res: dict) -> dict:
    """JSON-able summary: per-row metric means/CIs, paired differences, per-frame curves."""
    rows = res["rows"]
    summary = {
        row: {
            k: (v if k == "seed_spread_psnr" else summarise(v))
            for k, v in m.items()
            if not k.endswith("per_frame")
        }
        for row, m in rows.items()
    }
    paired = {}
    for label in SAMPLERS:
        for metric in ("psnr", "moving_psnr"):
            gain = rows[label][metric] - rows["copy"][metric]
            paired[f"{label} - copy: {metric}"] = summarise(gain)
            if f"{label} (shuffled)" in rows:
                drop = rows[label][metric] - rows[f"{label} (shuffled)"][metric]
                paired[f"{label} - shuffled: {metric}"] = summarise(drop)
    out_ = {"num_clips": len(res["clips"]), "frames": int(res["clips"].frames.shape[1])}
    out_ |= {"rows": summary, "paired": paired, "health": res["health"]}
    if "psnr_per_frame" in rows["copy"]:
        out_["per_frame"] = {
            row: {
                "psnr": np.nanmean(m["psnr_per_frame"], axis=0).tolist(),
                "pixel_drift": np.mean(m["pixel_drift_per_frame"], axis=0).tolist(),
            }
            for row, m in rows.items()
            if "shuffled" not in row
        }
    return out_


def fmt(s: dict, digits: int = 2) -> str:
    if s["n"] == 0:
        return "-"
    ci = "" if not np.isfinite(s["ci95"]) else f" ± {s['ci95']:.{digits}f}"
    return f"{s['mean']:.{digits}f}{ci}"


COLUMNS = {  # metric -> (header, digits)
    "psnr": ("PSNR (dB)", 2),
    "ssim": ("SSIM", 3),
    "psnr_gray": ("PSNR gray (dB)", 2),
    "ssim_gray": ("SSIM gray", 3),
    "latent_l2": ("Latent L2", 4),
    "moving_psnr": ("moving PSNR (dB)", 2),
}


def table(summary: dict, metrics: list[str]) -> str:
    order = [
        "model",
        "copy",
        "model+truncation",
        "model+FreeAction",
        "model (shuffled)",
        "model+truncation (shuffled)",
        "model+FreeAction (shuffled)",
    ]
    head = "| | " + " | ".join(COLUMNS[m][0] for m in metrics) + " |"
    lines = [head, "|---" * (len(metrics) + 1) + "|"]
    for row in [r for r in order if r in summary["rows"]]:
        cells = [fmt(summary["rows"][row][m], COLUMNS[m][1]) for m in metrics]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines += ["", "| paired, dB | " + " | ".join(PAIRED.values()) + " |", "|---" * 5 + "|"]
    for label in SAMPLERS:
        cells = [summary["paired"].get(f"{label} - {k}") for k in PAIRED]
        lines.append(f"| {label} | " + " | ".join(fmt(c, 3) if c else "-" for c in cells) + " |")
    return "\n".join(lines)


PAIRED = {  # paired per-clip differences shown under each table
    "copy: psnr": "PSNR - copy",
    "copy: moving_psnr": "moving PSNR - copy",
    "shuffled: psnr": "PSNR - shuffled",
    "shuffled: moving_psnr": "moving PSNR - shuffled (action sensitivity)",
}


def git(*cmd: str) -> str:
    try:
        return subprocess.run(["git", *cmd], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""


def upscale(video: np.ndarray, s: int = 3) -> np.ndarray:
    return video.repeat(s, axis=-3).repeat(s, axis=-2)  # nearest neighbour on H, W


def save_videos(name: str, shown: dict, stride: int = 1) -> None:
    """mp4: one row per clip, columns truth | model | model+FreeAction | copy; PNG strip of
    every ``stride``-th frame (per clip: one row per column above)."""
    cols = ["truth", *SAMPLERS, "copy"]
    grid = np.concatenate([upscale(shown[c]) for c in cols], axis=3)  # (N, F, 3H, 4*3W, 3)
    grid = np.concatenate(list(grid), axis=1)  # (F, N*3H, 4*3W, 3)
    imageio.mimwrite(out / f"{name}.mp4", grid, fps=args.fps, macro_block_size=16)
    idx = np.arange(0, shown["truth"].shape[1], stride)
    strips = []
    for i in range(shown["truth"].shape[0]):
        block = np.concatenate(
            [np.concatenate(list(upscale(shown[c][i, idx], 2)), axis=1) for c in cols], axis=0
        )
        strips += [block, np.full((8, *block.shape[1:]), 255, np.uint8)]
    imageio.imwrite(out / f"{name}_strip.png", np.concatenate(strips[:-1], axis=0))


def plot_over_time(name: str, res: dict) -> None:
    rows = res["rows"]
    labels = ["copy", *SAMPLERS]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for row in labels:
        curve = rows[row]["psnr_per_frame"]  # (N, T)
        t = np.arange(n, n + curve.shape[1])
        mean = curve.mean(0)
        half = st.t.ppf(0.975, max(1, len(curve) - 1)) * curve.std(0, ddof=1) / np.sqrt(len(curve))
        ax.plot(t, mean, label=row)
        if len(curve) > 1:
            ax.fill_between(t, mean - half, mean + half, alpha=0.2)
        ax2.plot(t, rows[row]["pixel_drift_per_frame"].mean(0), label=row)
    ax.set(xlabel="frame", ylabel="PSNR (dB, colour)", title=f"{name}: PSNR over time")
    ax2.set(xlabel="frame", ylabel="mean pixel (pred - truth), uint8", title="mean pixel drift")
    ax2.axhline(0, color="k", lw=0.5)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / f"psnr_over_time_{name}.png", dpi=110)
    plt.close(fig)


# -- (a) short, (b) IRASim 16 frames, (c) whole episodes -----------------------------------
SETTINGS = {  # name -> (frames per clip, clips, shuffle check, per-frame curves)
    "short": (n + K, args.num_clips, True, False),
    "irasim16": (IRASIM_FRAMES, args.num_clips, True, True),
    "long": (None, args.num_episodes, False, True),
}
results, summaries = {}, {}
for name, (frames, count, shuffle, per_frame) in SETTINGS.items():
    clips = collect_clips(args.data, args.split, frames, count, seed=0)
    res = evaluate_setting(name, clips, shuffle)
    if not per_frame:
        for row in res["rows"].values():
            del row["psnr_per_frame"], row["pixel_drift_per_frame"]
    res["clips"] = clips
    results[name], summaries[name] = res, report(res)
    s = summaries[name]["rows"]
    print(
        f"[{name}] {len(clips)} clips x {clips.frames.shape[1]} frames: PSNR model "
        f"{fmt(s['model']['psnr'])} / FreeAction {fmt(s['model+FreeAction']['psnr'])} / "
        f"copy {fmt(s['copy']['psnr'])} dB"
    )
    if per_frame:
        plot_over_time(name, res)
    # (d) side-by-side videos and strips
    save_videos(name, res["shown"], stride=max(1, clips.frames.shape[1] // 16))

# -- outputs ------------------------------------------------------------------------------
metrics = {
    "command": shlex.join(["python", *sys.argv]),
    "cwd": os.getcwd(),
    "model_dir": str(Path(args.model).resolve() if args.vae else resolve_model_path(args.model)),
    "data": str(Path(args.data).resolve()),
    "git_commit": git("rev-parse", "HEAD").strip() or None,
    "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no").strip()),
    "args": asdict(args),
    "threads": threads,
    "model": {
        "params": count_parameters(world.dit),
        "dit": world.dit.config.to_dict(),
        "diffusion": asdict(world.diffusion),
        "codec": type(world.codec).__name__,
        "chunk": K,
    },
    "sampling": {
        m.name: world.default_sampling(K, **merge(BASE, m.overrides)).to_dict() for m in METHODS
    },
    "psnr_cap_db": PSNR_CAP,
    "settings": summaries,
    "seconds": round(time.time() - t_start, 1),
}
(out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

lg = summaries["long"]
md = [
    f"## World model quality (`{args.model}`, {args.split} split)",
    "",
    f"`{metrics['command']}` at commit `{metrics['git_commit']}`"
    + (" (uncommitted changes)" if metrics["git_dirty"] else "")
    + f"; {args.scheduler} x {args.steps} steps, seeds {args.seeds}; mean ± 95% CI over clips "
    "(per-clip values averaged over seeds). Latent L2 is in the model's latent space (pixel "
    f"codec: MSE in [-1, 1] units). PSNR capped at {PSNR_CAP:.0f} dB. Shuffled = the same "
    "random draws with the actions rolled by one clip; the paired tables give per-clip "
    "differences (a model that follows its actions loses moving PSNR when they are shuffled).",
    "",
    f"### (a) Short rollouts: {n} context frame + {K} actions ({summaries['short']['num_clips']} "
    "clips, colour)",
    "",
    table(summaries["short"], ["psnr", "ssim", "latent_l2", "moving_psnr"]),
    "",
    f"### (b) IRASim short setting: {n} context + {IRASIM_FRAMES - n} actions, chunks of {K} "
    f"({summaries['irasim16']['num_clips']} clips)",
    "",
    table(
        summaries["irasim16"],
        ["psnr_gray", "ssim_gray", "psnr", "ssim", "latent_l2", "moving_psnr"],
    ),
    "",
    f"### (c) Long rollouts: whole episodes ({lg['num_clips']} episodes x {lg['frames']} frames)",
    "",
    table(lg, ["psnr", "ssim", "latent_l2", "moving_psnr"]),
    "",
    "| | last-frame PSNR (dB) | last-frame mean pixel drift | non-finite latents |",
    "|---|---|---|---|",
]
for row in ["model", "copy", "model+truncation", "model+FreeAction"]:
    pf = lg["per_frame"][row]
    bad = lg["health"].get(row, {}).get("nonfinite_latents", 0)
    md.append(f"| {row} | {pf['psnr'][-1]:.2f} | {pf['pixel_drift'][-1]:+.2f} | {bad} |")
md += [
    "",
    "Plots: `psnr_over_time_long.png`, `psnr_over_time_irasim16.png`; videos "
    "(columns truth | model | model+FreeAction | copy): `short.mp4`, `irasim16.mp4`, "
    "`long.mp4` and `*_strip.png`.",
    "",
]
(out / "results.md").write_text("\n".join(md))
print("\n".join(md))
print(f"[eval] wrote {out}/metrics.json, results.md, plots and videos in {metrics['seconds']} s")
