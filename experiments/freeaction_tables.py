"""FreeAction's tables on held-out data, one command per table (issue 5).

    python experiments/freeaction_tables.py --table 1       # baseline / +CFG / +CFG+trunc
    python experiments/freeaction_tables.py --table 2       # fixed w, fixed tau ablations
    python experiments/freeaction_tables.py --table extras  # cutoff, tau pairs, ||a||, ...
    python experiments/freeaction_tables.py --table 1 --quick   # seconds

Every row runs on the same clips with the same initial-noise uniforms per (seed, clip)
(``freeaction_gym.evaluation.study``), so row - baseline is a paired difference; cells are
means over clips (each clip averaged over seeds) with 95% t-intervals, and the paired
difference to the table's baseline with its interval (bold when it excludes 0).

Settings: *short* = 1 context frame + 15 actions (IRASim's 16-frame clips), generated in
chunks of the model's window; *long* = whole held-out episodes rolled out autoregressively
(table 1 only). The same script runs on the IRASim datasets and checkpoints a user brings:

    python experiments/freeaction_tables.py --table 1 --model rt1_0400000.pt \\
        --vae sdxl/vae --data opensource_robotdata/rt1 --data-format irasim --dataset rt1

Outputs in ``--out`` (default ``outputs/tables/table<N>``): metrics.json, results.md, plots
(PSNR over rollout time; metric vs lambda / tau) and video grids of the clips where the
last row gains most and least over the baseline. ``--update-doc docs/RESULTS.md`` replaces
the block between ``<!-- table<N>:begin -->`` and ``<!-- table<N>:end -->`` there.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when OpenMP starts

import json  # noqa: E402
import shlex  # noqa: E402
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

from freeaction_gym.evaluation.irasim_clips import collect_irasim_clips  # noqa: E402
from freeaction_gym.evaluation.rollout import (  # noqa: E402
    collect_clips,
    demo_clips,
    encode_frames,
    max_chunk,
)
from freeaction_gym.evaluation.study import (  # noqa: E402
    Method,
    copy_baseline,
    markdown_table,
    merge,
    run_methods,
    summarize,
)
from freeaction_gym.utils.args import parse_args  # noqa: E402
from freeaction_gym.utils.markdown import update_block  # noqa: E402
from freeaction_gym.utils.threads import configure_threads  # noqa: E402
from freeaction_gym.world_model import load_world_model  # noqa: E402

SHORT_FRAMES = 16  # IRASim's short setting: 1 context frame + 15 actions
DEFAULT_DATA = "data/metaworld_default"  # `freeaction data metaworld data/metaworld_default`
QUICK_DATA = "bundled:metaworld_default/demo_episodes.npz"  # package data: any fresh clone
SHOWN = ("psnr", "ssim", "psnr_gray", "ssim_gray", "latent_l2", "moving_psnr")

PLAIN = {"guidance": {"mode": "none"}, "truncation": {"mode": "none"}}
CFG = {"guidance": {"mode": "action_scaled"}, "truncation": {"mode": "none"}}
FREEACTION = {"guidance": {"mode": "action_scaled"}, "truncation": {"mode": "action_scaled"}}


def table1() -> list[Method]:
    return [
        Method("baseline", PLAIN),
        Method("+ action-scaled CFG", CFG),
        Method("+ CFG + action-scaled truncation", FREEACTION),
    ]


def table2() -> list[Method]:
    def cfg_fixed(w: float) -> dict:
        return {"guidance": {"mode": "fixed", "scale": w}, "truncation": {"mode": "none"}}

    def trunc_fixed(tau: float) -> dict:
        return {
            "guidance": {"mode": "action_scaled"},
            "truncation": {"mode": "fixed", "fixed_tau": tau},
        }

    return [
        Method("baseline (w = 1, no truncation)", PLAIN),
        Method("CFG fixed w = 3", cfg_fixed(3.0)),
        Method("CFG action-scaled", CFG),
        Method("action-scaled CFG + fixed tau = 1.0", trunc_fixed(1.0)),
        Method("action-scaled CFG + fixed tau = 1.5", trunc_fixed(1.5)),
        Method("action-scaled CFG + action-scaled tau", FREEACTION),
    ]


def extras(steps: int) -> list[Method]:
    def fa(**parts: dict) -> dict:
        return merge(FREEACTION, parts)

    rows = [Method(f"FreeAction (cutoff T/2, tau 0.5-1.5, lambda 1), {steps} steps", FREEACTION)]
    rows += [
        Method(f"cutoff {c}", fa(guidance={"cutoff": f}))
        for c, f in (("T/4", 0.25), ("3T/4", 0.75))
    ]
    rows += [Method(f"lambda {lam}", fa(guidance={"lam": lam})) for lam in (0.5, 2.0)]
    rows += [
        Method(f"tau ({lo}, {hi})", fa(truncation={"tau_min": lo, "tau_max": hi}))
        for lo, hi in ((0.25, 1.0), (0.75, 1.25), (1.0, 2.0))
    ]
    rows += [
        Method("norm: chunk L2 (raw)", fa(norm={"kind": "chunk_l2", "space": "raw"})),
        Method(
            "norm: mean step L2 (normalised)",
            fa(norm={"kind": "mean_step_l2", "space": "normalized"}),
        ),
        Method("negative = null action (IRASim)", fa(guidance={"negative": "null"})),
        Method(
            "truncation only",
            {"guidance": {"mode": "none"}, "truncation": {"mode": "action_scaled"}},
        ),
        Method("plain (no CFG, no truncation)", PLAIN),
    ]
    for sched, n in (("ddim", 2), ("ddim", 10), ("dpmsolver++", 4)):
        if (sched, n) != ("ddim", steps):
            rows += [
                Method(f"plain, {sched} {n} steps", PLAIN | {"scheduler": sched, "num_steps": n}),
                Method(
                    f"FreeAction, {sched} {n} steps",
                    FREEACTION | {"scheduler": sched, "num_steps": n},
                ),
            ]
    return rows


@dataclass
class Args:
    """Regenerate one of FreeAction's tables on held-out clips with paired noise."""

    table: Literal["1", "2", "extras"] = "1"
    """Which table: 1 (main), 2 (fixed-w / fixed-tau ablations), extras (our additions)."""
    model: str = "bundled:metaworld_default"
    """World model directory, bundled:<name>, or an IRASim checkpoint (.pt, with --vae)."""
    vae: str | None = None
    """diffusers AutoencoderKL directory for an IRASim checkpoint (SDXL's vae/)."""
    data: str | None = None
    """Held-out data: a `freeaction data metaworld` root, one IRASim dataset directory or a
    bundle's demo_episodes.npz; default DEFAULT_DATA, with --quick QUICK_DATA (the bundled
    model's 6 held-out test episodes, so --quick needs no generated data)."""
    data_format: Literal["metaworld", "irasim"] = "metaworld"
    """Layout of --data."""
    dataset: Literal["rt1", "bridge", "languagetable"] = "rt1"
    """IRASim dataset name (action layout) when --data-format irasim."""
    resolution: list[int] | None = None
    """Resize IRASim videos to H W (default: the video's own size)."""
    split: Literal["train", "val", "test"] = "test"
    """Split to evaluate (held out: test)."""
    num_clips: int | None = None
    """Short 16-frame clips (a fixed random subset of non-overlapping windows); default 120
    for tables 1 and 2, 80 for the 20-row extras table."""
    num_episodes: int = 40
    """Whole episodes for the long setting (table 1)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    """Initial-noise seeds; each clip's scores are averaged over them."""
    scheduler: Literal["ddim", "ddpm", "pndm", "dpmsolver++"] = "ddim"
    """Sampler of every row (the extras table also varies it)."""
    steps: int = 4
    """Sampler steps of every row (the extras table also varies it)."""
    batch: int = 40
    """Clips per denoiser batch."""
    out: str | None = None
    """Output directory (default outputs/tables/table<N>)."""
    update_doc: str | None = None
    """Markdown file whose <!-- table<N>:begin/end --> block gets the results."""
    threads: int | None = None
    """Torch intra-op threads (default: torch's choice; FREEACTION_THREADS overrides)."""
    quick: bool = False
    """Smoke mode: 4 clips, 2 short episodes, 1 seed, 2 steps, bundled demo episodes unless
    --data (seconds)."""


def load_clips(args: Args, num_frames: int | None, num_clips: int):
    if args.data_format == "irasim":
        res = tuple(args.resolution) if args.resolution else None
        return collect_irasim_clips(
            args.data, args.split, args.dataset, num_frames, num_clips, 0, res
        )
    if args.data.endswith(".npz"):  # a bundle's demo episodes (held-out test episodes)
        return demo_clips(args.data, num_frames, num_clips, seed=0)
    return collect_clips(args.data, args.split, num_frames, num_clips, seed=0)


def run_setting(world, args, methods, base, clips, name) -> dict:
    true_z = encode_frames(world, clips.frames, args.batch)
    res = run_methods(world, clips, true_z, methods, base, args.seeds, None, args.batch, desc=name)
    res = {"copy context": copy_baseline(clips, true_z, world.num_context)} | res
    table = summarize(res, methods[0].name)
    return {"clips": clips, "results": res, "table": table}


def save_grids(out: Path, name: str, setting: dict, rows: list[str], k: int = 3) -> list[str]:
    """mp4 + PNG strips (truth | rows) of the k clips where the last row gains most and
    least colour PSNR over the first row."""
    res, clips = setting["results"], setting["clips"]
    gain = res[rows[-1]].scores["psnr"].mean(0) - res[rows[0]].scores["psnr"].mean(0)
    order = np.argsort(gain)
    written = []
    for label, idx in (("best", order[::-1][:k]), ("worst", order[:k])):
        videos = [clips.frames[idx]] + [res[r].frames[idx] for r in rows]  # each (k, F, H, W, 3)
        grid = np.concatenate([np.concatenate(list(v), axis=2) for v in videos], axis=1)
        path = out / f"{name}_{label}.mp4"
        imageio.mimwrite(path, grid, fps=4, macro_block_size=1)
        step = max(1, grid.shape[0] // 4)
        strip = np.concatenate(list(grid[::step][:5]), axis=1)
        imageio.imwrite(out / f"{name}_{label}.png", strip)
        written += [path.name, f"{name}_{label}.png"]
    return written


def plot_over_time(out: Path, setting: dict, rows: list[str]) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r in rows:
        pf = setting["results"][r].per_frame_psnr.mean(axis=(0, 1))
        ax.plot(np.arange(2, pf.size + 2), pf, label=r)
    ax.set_xlabel("frame")
    ax.set_ylabel("PSNR (dB, colour)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "psnr_over_time_long.png", dpi=120)
    plt.close(fig)
    return "psnr_over_time_long.png"


def plot_sweeps(out: Path, table: dict) -> str | None:
    """PSNR vs lambda and vs tau from the rows that vary them (extras table)."""
    lam = {0.5: "lambda 0.5", 1.0: None, 2.0: "lambda 2.0"}
    first = next(iter(k for k in table if k.startswith("FreeAction (")), None)
    if first is None:
        return None
    lam[1.0] = first
    taus = {r: r for r in table if r.startswith("tau (")}
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    xs = [x for x, r in lam.items() if r in table]
    for metric, style in (("psnr", "o-"), ("moving_psnr", "s--")):
        axes[0].errorbar(
            xs,
            [table[lam[x]][metric]["mean"] for x in xs],
            yerr=[table[lam[x]][metric]["hi"] - table[lam[x]][metric]["mean"] for x in xs],
            fmt=style,
            label=metric,
        )
    axes[0].set_xlabel("lambda (guidance weight per unit ||a||)")
    axes[0].set_ylabel("dB")
    axes[0].legend(fontsize=7)
    labels = [first, *taus]
    axes[1].bar(range(len(labels)), [table[r]["psnr"]["mean"] for r in labels])
    axes[1].set_xticks(range(len(labels)), ["(0.5, 1.5)"] + [r[4:] for r in taus], fontsize=7)
    axes[1].set_xlabel("(tau_min, tau_max)")
    lo = min(table[r]["psnr"]["mean"] for r in labels)
    axes[1].set_ylim(lo - 0.5, lo + 1.0)
    fig.tight_layout()
    fig.savefig(out / "metric_vs_lambda_tau.png", dpi=120)
    plt.close(fig)
    return "metric_vs_lambda_tau.png"


def main() -> None:
    args = parse_args(Args)
    if args.num_clips is None:
        args.num_clips = 80 if args.table == "extras" else 120
    if args.quick:
        args.num_clips, args.num_episodes, args.seeds, args.steps = 4, 2, [0], 2
    args.data = args.data or (QUICK_DATA if args.quick else DEFAULT_DATA)
    out = Path(args.out or f"outputs/tables/table{args.table}")
    out.mkdir(parents=True, exist_ok=True)
    threads = configure_threads(args.threads)
    t0 = time.time()
    world = load_world_model(args.model, args.vae)
    base = {"scheduler": args.scheduler, "num_steps": args.steps}
    methods = {"1": table1, "2": table2}.get(args.table, lambda: extras(args.steps))()
    short_frames = 9 if args.quick else SHORT_FRAMES
    settings = {
        "short": run_setting(
            world, args, methods, base, load_clips(args, short_frames, args.num_clips), "short"
        )
    }
    if args.table == "1":
        long_frames = 12 if args.quick else None
        clips = load_clips(args, long_frames, args.num_episodes)
        settings["long"] = run_setting(world, args, methods, base, clips, "long")
    minutes = (time.time() - t0) / 60
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    names = [m.name for m in methods]
    files = []
    md = [
        f"Command: `{command}`  ",
        f"Model `{args.model}`, data `{args.data}` ({args.split}), {args.scheduler} x "
        f"{args.steps} steps, chunk {max_chunk(world)}, seeds {args.seeds}, {threads} threads, "
        f"{minutes:.1f} min. Cells: mean [95% CI] over clips; second line: paired difference "
        f"vs `{names[0]}` [95% CI], bold when the interval excludes 0.",
    ]
    for sname, s in settings.items():
        n, f = s["clips"].frames.shape[:2]
        first = world.num_context + 1  # the first imagined frame (1-based)
        md += ["", f"**{sname}** ({n} clips of {f} frames; frames {first}..{f} scored)", ""]
        md.append(markdown_table(s["table"], SHOWN, names[0]))
        files += save_grids(out, sname, s, names)
    if "long" in settings:
        files.append(plot_over_time(out, settings["long"], ["copy context", *names]))
    if args.table == "extras" and (p := plot_sweeps(out, settings["short"]["table"])):
        files.append(p)
    md.append("\nFiles: " + ", ".join(f"`{out / f}`" for f in files))
    text = "\n".join(md) + "\n"
    (out / "results.md").write_text(text)
    metrics = {
        "command": command,
        "args": asdict(args),
        "minutes": minutes,
        "threads": threads,
        "settings": {
            k: {
                "num_clips": int(s["clips"].frames.shape[0]),
                "frames": int(s["clips"].frames.shape[1]),
                "table": s["table"],
                "sampling": {r: v.sampling for r, v in s["results"].items()},
            }
            for k, s in settings.items()
        },
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
    if args.update_doc:
        update_block(args.update_doc, f"table{args.table}", text)
    print(text)


if __name__ == "__main__":
    main()
