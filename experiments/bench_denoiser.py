"""Milliseconds per denoiser forward on CPU, with and without a passive OpenMP wait policy.

Measures ``VideoDiT.forward`` under ``torch.inference_mode`` (warmup, then the median of
``--runs`` timed calls) for the ``tiny`` and ``S`` presets on IRASim's RT-1 layout (16
frames, 32x40x4 latent, patch 2 = 320 tokens per frame) and, with ``--model``, for a
saved world model at its own clip shape; at batch 1 and 8.

``OMP_WAIT_POLICY`` is read once, when the OpenMP runtime starts, so each thread setting
runs in its own subprocess: ``default`` (the variable unset, OpenMP's spin-waiting) and
``passive`` (``OMP_WAIT_POLICY=PASSIVE``). On small CPUs the difference was 4-15x
(REFERENCE §7). Run it on an otherwise idle machine:

    python experiments/bench_denoiser.py --model runs/metaworld_default/model \\
        --out outputs/bench_denoiser.md
    python experiments/bench_denoiser.py --quick      # a few seconds: checks that it works
"""

from __future__ import annotations

import os
import sys

POLICY_AT_START = os.environ.get("OMP_WAIT_POLICY")
if "--worker" in sys.argv:
    # libgomp reads OMP_WAIT_POLICY once, when torch loads it. Load it now: importing
    # freeaction_gym sets OMP_WAIT_POLICY=PASSIVE when unset, which would turn the
    # "default" setting into a second "passive" one.
    import torch  # noqa: F401

import json  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Literal  # noqa: E402

from freeaction_gym.utils.args import parse_args  # noqa: E402

THREAD_SETTINGS = {"default": None, "passive": "PASSIVE"}  # -> OMP_WAIT_POLICY


@dataclass
class Args:
    """Benchmark the video DiT denoiser forward pass on CPU."""

    presets: list[str] = field(default_factory=lambda: ["tiny", "S"])
    """Size presets to time on the IRASim RT-1 layout."""
    model: str | None = None
    """Also time this saved world model (a WorldModel directory) at its own clip shape."""
    batches: list[int] = field(default_factory=lambda: [1, 8])
    """Batch sizes."""
    frames: int = 16
    """Frames per clip for the presets (IRASim: 16)."""
    warmup: int = 2
    """Untimed calls before timing."""
    runs: int = 10
    """Timed calls; the median is reported."""
    threads: int | None = None
    """torch.set_num_threads in every setting (default: torch's choice)."""
    settings: list[Literal["default", "passive"]] = field(
        default_factory=lambda: ["default", "passive"]
    )
    """Thread settings, each in a fresh subprocess."""
    out: str | None = None
    """Write the markdown table to this file too."""
    quick: bool = False
    """Smoke mode: tiny preset only, 4 frames, batch 1 and 2, 3 runs (seconds)."""
    worker: str | None = None
    """Internal: JSON job for one subprocess (prints a RESULT line)."""


def build_cases(args: Args) -> list[dict]:
    """(name, DiT config, batch) of every timed configuration."""
    from freeaction_gym.models import irasim_config
    from freeaction_gym.models.pretrained import load_pretrained_dit

    configs = {
        f"{p} (RT-1 layout)": irasim_config(p, "rt1", num_frames=args.frames) for p in args.presets
    }
    if args.model:
        configs[f"{args.model} (own clip)"] = load_pretrained_dit(args.model).config
    return [{"name": k, "config": c, "batch": b} for k, c in configs.items() for b in args.batches]


def time_forward(config, batch: int, warmup: int, runs: int) -> dict:
    """Median / quartiles of ms per forward of a randomly initialised VideoDiT."""
    import numpy as np
    import torch

    from freeaction_gym.models import VideoDiT, count_parameters

    torch.manual_seed(0)
    model = VideoDiT(config).eval()
    f, (h, w), c = config.num_frames, config.input_size, config.in_channels
    x = torch.randn(batch, f, c, h, w)  # (B, F, C, H, W)
    t = torch.randint(0, 1000, (batch,))
    actions = torch.randn(batch, f - 1, config.action_dim)  # (B, F-1, A)
    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            start = time.perf_counter()
            model(x, t, actions)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    gh, gw = config.grid
    return {
        "params_m": count_parameters(model) / 1e6,
        "clip": f"{f}x{c}x{h}x{w}",
        "tokens_per_frame": gh * gw,
        "ms_median": float(med),
        "ms_iqr": [float(q1), float(q3)],
        "ms_per_frame": float(med) / (batch * f),
    }


def worker(job: dict) -> None:
    import torch
    from tqdm.auto import tqdm

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    args = Args(**job["args"])
    results = []
    for case in tqdm(build_cases(args), desc=f"{job['setting']} threads", file=sys.stderr):
        r = time_forward(case["config"], case["batch"], args.warmup, args.runs)
        results.append({"name": case["name"], "batch": case["batch"], **r})
    meta = {
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": POLICY_AT_START,
        "torch": torch.__version__,
    }
    print("RESULT " + json.dumps({"meta": meta, "results": results}), flush=True)


def run_setting(args: Args, setting: str) -> dict:
    """One subprocess with OMP_WAIT_POLICY set (passive) or removed (default)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "FREEACTION_THREADS")
    }
    if THREAD_SETTINGS[setting]:
        env["OMP_WAIT_POLICY"] = THREAD_SETTINGS[setting]
    job = {"setting": setting, "threads": args.threads, "args": asdict(args) | {"worker": None}}
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(job)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def markdown(args: Args, by_setting: dict[str, dict]) -> str:
    settings = list(by_setting)
    first = by_setting[settings[0]]["results"]
    head = ["model", "params (M)", "clip FxCxHxW", "tokens/frame", "batch"]
    for s in settings:
        meta = by_setting[s]["meta"]
        head.append(f"{s} ({meta['torch_threads']} thr) ms")
    if {"default", "passive"} <= set(settings):
        head.append("default / passive")
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for i, r in enumerate(first):
        row = [r["name"], f"{r['params_m']:.2f}", r["clip"], str(r["tokens_per_frame"])]
        row.append(str(r["batch"]))
        ms = {s: by_setting[s]["results"][i]["ms_median"] for s in settings}
        row += [f"{ms[s]:.1f}" for s in settings]
        if "default / passive" in head:
            row.append(f"{ms['default'] / ms['passive']:.2f}x")
        lines.append("| " + " | ".join(row) + " |")
    meta = by_setting[settings[0]]["meta"]
    note = (
        f"\nMedian of {args.runs} forwards after {args.warmup} warmup calls, "
        f"torch.inference_mode, fp32, torch {meta['torch']}, {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}). "
        f"`{shlex.join(['python', *sys.argv])}`\n"
    )
    return "\n".join(lines) + "\n" + note


if __name__ == "__main__":
    args = parse_args(Args)
    if args.worker:
        worker(json.loads(args.worker))
        sys.exit(0)
    if args.quick:
        args.presets, args.frames, args.batches = ["tiny"], 4, [1, 2]
        args.warmup, args.runs = 1, 3
    by_setting = {s: run_setting(args, s) for s in args.settings}
    table = markdown(args, by_setting)
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table)
        print(f"wrote {args.out}")
