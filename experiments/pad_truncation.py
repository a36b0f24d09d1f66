"""Modality-selective noise truncation on a PAD-style visual policy (issue 7; seed Table 3).

The trained policy runs closed-loop in the real MetaWorld simulator on held-out layouts
(``MT1(task, seed=--layout-seed)``, a seed no demonstration used) under configurations that
differ only in which modalities' initial noise is truncated (|z| <= tau, DDIM eta = 0):
baseline / image / depth+image / action+depth+image at tau = 1.0, plus a tau sweep for
depth+image. Every configuration sees the same layouts and the same per-episode noise
uniforms (paired), so differences vs baseline are paired differences over episodes. The
scripted expert and a uniform random policy run on the same layouts for reference.

    python experiments/pad_truncation.py --policy runs/pad/policy --update-doc docs/RESULTS.md
    python experiments/pad_truncation.py --quick          # bundled policy, seconds
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import imageio  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from freeaction_gym.assets import ASSETS  # noqa: E402
from freeaction_gym.evaluation.paired_stats import paired_diff_ci  # noqa: E402
from freeaction_gym.pad.evaluate import (  # noqa: E402
    expert_chunk_policy,
    pad_chunk_policy,
    random_chunk_policy,
    run_task,
)
from freeaction_gym.pad.io import load_pad  # noqa: E402
from freeaction_gym.pad.policy import PADPolicy  # noqa: E402
from freeaction_gym.utils.args import parse_args  # noqa: E402
from freeaction_gym.utils.markdown import update_block  # noqa: E402
from freeaction_gym.utils.threads import configure_threads  # noqa: E402

CONFIGS = {  # name -> truncated modalities (tau from the row)
    "baseline": (),
    "truncate image": ("image",),
    "truncate depth+image": ("depth", "image"),
    "truncate action+depth+image": ("action", "depth", "image"),
}
BUNDLED_POLICY = ASSETS / "pad_metaworld"
"""The bundled fp16 copy of the policy in docs/RESULTS.md (package data, found from any cwd)."""
QUICK_TASK = "reach-v3"
"""--quick's task when the policy knows it: the scripted expert reaches in ~7-12 actions,
the shortest of the five tasks (button-press needs ~15, drawer-open ~21)."""


@dataclass
class Args:
    """Closed-loop success of a PAD policy under modality-selective noise truncation."""

    policy: str | None = None
    """Directory with pad.json + pad.safetensors (``freeaction pad-train``); default: the
    bundled fp16 copy of the policy in docs/RESULTS.md (``BUNDLED_POLICY``)."""
    tasks: list[str] | None = None
    """Tasks to evaluate (default: every task the policy was trained on)."""
    episodes: int = 20
    """Held-out layouts per task (layouts 0..N-1 of MT1(task, layout_seed))."""
    layout_seed: int = 2000
    """MT1 seed of the evaluation layouts (demonstrations used 0 / 500 / 1000)."""
    max_actions: int = 40
    """Actions per episode (each held --action-repeat simulator steps)."""
    action_repeat: int = 4
    execute: int = 2
    """Actions of each predicted chunk executed before re-planning."""
    steps: int = 10
    """DDIM steps per policy call."""
    tau: float = 1.0
    """Threshold of the four main configurations."""
    tau_sweep: list[float] = field(default_factory=lambda: [0.5, 1.5])
    """Extra taus for depth+image truncation."""
    seed: int = 0
    """Noise seed (shared by all configurations)."""
    expert_sigma: float = 0.0
    """Gaussian action noise of the scripted expert reference."""
    out: str = "outputs/pad_truncation"
    update_doc: str | None = None
    """Markdown file whose <!-- pad:begin/end --> block gets the table."""
    threads: int | None = None
    quick: bool = False
    """1 task (reach-v3 if the policy has it, unless --tasks) and ``QUICK`` for every option
    left at its default: 4 episodes, 16 actions (the scripted expert reaches in ~7-12),
    2 DDIM steps, no sweep (well under a minute)."""


QUICK = {"episodes": 4, "max_actions": 16, "steps": 2, "tau_sweep": []}
"""--quick's settings, for the options not given on the command line (left at the default)."""


def apply_quick(args: Args, policy_tasks: list[str]) -> list[str]:
    """Set ``QUICK`` on the options of ``args`` left at their defaults; return the tasks."""
    defaults = Args()
    for name, value in QUICK.items():
        if getattr(args, name) == getattr(defaults, name):
            setattr(args, name, value)
    return args.tasks or ([QUICK_TASK] if QUICK_TASK in policy_tasks else policy_tasks[:1])


def evaluate(args: Args, model, stats, tasks) -> tuple[dict, dict]:
    rows = {name: (mods, args.tau) for name, mods in CONFIGS.items()}
    rows |= {f"truncate depth+image, tau {t}": (("depth", "image"), t) for t in args.tau_sweep}
    success: dict[str, dict[str, np.ndarray]] = {}
    videos = {}
    layouts = list(range(args.episodes))
    common = dict(layout_seed=args.layout_seed, max_actions=args.max_actions,
                  action_repeat=args.action_repeat, seed=args.seed)  # fmt: skip
    jobs = [(r, t) for r in [*rows, "scripted expert", "random"] for t in tasks]
    for row, task in tqdm(jobs, desc="pad eval"):
        if row == "scripted expert":
            pol, execute = expert_chunk_policy(task, args.expert_sigma), 1
        elif row == "random":
            pol, execute = random_chunk_policy(), 1
        else:
            mods, tau = rows[row]
            pad = PADPolicy(model, stats, mods, tau, args.steps)
            pol, execute = pad_chunk_policy(pad, task), args.execute
        keep = row == "baseline"
        res = run_task(task, pol, layouts, execute=execute, keep_frames=keep, **common)
        success.setdefault(row, {})[task] = np.array([r.success for r in res], dtype=float)
        if keep:
            videos[task] = res
    return success, videos


def table(success: dict, tasks: list[str]) -> tuple[str, dict]:
    base = np.concatenate([success["baseline"][t] for t in tasks])
    head = (
        "| configuration | " + " | ".join(tasks) + " | all tasks [95% CI] | vs baseline [95% CI] |"
    )
    lines = [head, "|" + "---|" * (len(tasks) + 3)]
    summary = {}
    for row, per_task in success.items():
        allx = np.concatenate([per_task[t] for t in tasks])
        m = float(allx.mean())
        ci = stats.binomtest(int(allx.sum()), allx.size).proportion_ci(method="wilson")
        lo, hi = float(ci.low), float(ci.high)
        cells = [f"{100 * per_task[t].mean():.0f}%" for t in tasks]
        diff = ""
        entry = {
            "success": m,
            "lo": lo,
            "hi": hi,
            "per_task": {t: per_task[t].mean() for t in tasks},
        }
        if row not in ("baseline", "scripted expert", "random"):
            d, dlo, dhi, p = paired_diff_ci(allx, base)
            diff = f"{100 * d:+.1f} pp [{100 * dlo:+.1f}, {100 * dhi:+.1f}]"
            entry |= {"diff": d, "diff_lo": dlo, "diff_hi": dhi, "p": p}
        summary[row] = entry
        lines.append(
            f"| {row} | "
            + " | ".join(cells)
            + f" | {100 * m:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] | {diff} |"
        )
    return "\n".join(lines), summary


def save_videos(out: Path, videos: dict) -> list[str]:
    """One success and one failure of the baseline per task, side by side with the others."""
    written = []
    for task, res in videos.items():
        for label, want in (("success", True), ("failure", False)):
            pick = next((r for r in res if r.success == want), None)
            if pick is None:
                continue
            path = out / f"{task}_{label}.mp4"
            big = np.kron(pick.frames, np.ones((1, 2, 2, 1), np.uint8))
            imageio.mimwrite(path, big, fps=8, macro_block_size=1)
            written.append(path.name)
    return written


def main() -> None:
    args = parse_args(Args)
    threads = configure_threads(args.threads)
    args.policy = args.policy or str(BUNDLED_POLICY)
    model, stats, meta = load_pad(args.policy)
    tasks = apply_quick(args, stats.tasks) if args.quick else args.tasks or stats.tasks
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    success, videos = evaluate(args, model, stats, tasks)
    md_table, summary = table(success, tasks)
    files = save_videos(out, videos)
    minutes = (time.time() - t0) / 60
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    text = (
        f"Command: `{command}` ({minutes:.1f} min, {threads} threads). Policy `{args.policy}` "
        f"(step {meta.get('step')}), {args.episodes} held-out layouts per task "
        f"(MT1 seed {args.layout_seed}), {args.max_actions} actions x {args.action_repeat} sim "
        f"steps, re-planning every {args.execute} actions, DDIM {args.steps} steps (eta 0), "
        f"tau {args.tau}; success = success at any step (Wilson 95% interval). Same layouts and "
        "noise uniforms in every row; the last column is the paired difference vs baseline "
        "over all episodes (t-interval).\n\n"
        + md_table
        + ("\n\nVideos (baseline): " + ", ".join(f"`{out / f}`" for f in files) if files else "")
        + "\n"
    )
    (out / "results.md").write_text(text)
    (out / "metrics.json").write_text(
        json.dumps(
            {
                "command": command,
                "args": asdict(args),
                "summary": summary,
                "episodes": {r: {t: v.tolist() for t, v in d.items()} for r, d in success.items()},
            },
            indent=1,
        )  # fmt: skip
    )
    if args.update_doc:
        update_block(args.update_doc, "pad", text)
    print(text)


if __name__ == "__main__":
    main()
