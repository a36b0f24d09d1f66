"""Bookkeeping of a sample-efficiency benchmark (MetaWorld-K, issue 16): evaluation records,
their summaries with intervals, the markdown table and the plot.

A record (:class:`EvalRecord`) is one evaluation of one method on one task with one seed
after ``real_steps`` real environment steps of learning (0 for the references, which do not
learn): per-episode success and return on the task's held-out scenes, the same scenes for
every method, so two methods pair up episode by episode. Records are JSON files, written
once and skipped afterwards (a resumed benchmark evaluates only what is missing).

Summaries pool a cell's episodes over seeds: the mean with a percentile-bootstrap 95%
interval over episodes (:func:`~freeaction_gym.evaluation.paired_stats.bootstrap_ci`), the
per-seed means with a Student-t interval over seeds (:func:`~freeaction_gym.evaluation.
paired_stats.mean_ci`; wide with 3 seeds, and the honest one for seed-to-seed variation),
and, for a method against a baseline, the paired difference over (seed, scene) pairs
(:func:`~freeaction_gym.evaluation.paired_stats.paired_diff_ci`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from freeaction_gym.evaluation.paired_stats import bootstrap_ci, mean_ci, paired_diff_ci

METRICS = ("success", "return")


@dataclass
class EvalRecord:
    """One method x task x seed x budget evaluation (JSON on disk)."""

    method: str
    task: str
    seed: int
    real_steps: int
    """Real environment steps the policy learned from (0: a reference)."""
    scenes: list[int]
    """Reset-bank entries of the held-out scenes, in episode order."""
    success: list[bool]
    """Success at any step, per episode."""
    returns: list[float]
    """Summed reward, per episode."""
    train_seconds: float | None
    """Wall time of learning up to ``real_steps`` (None for references)."""
    eval_seconds: float
    policy: str
    """What was evaluated (a file, or the reference's name)."""

    def __post_init__(self) -> None:  # plain Python values (numpy's are not JSON)
        self.scenes = [int(j) for j in self.scenes]
        self.success = [bool(x) for x in self.success]
        self.returns = [float(x) for x in self.returns]
        if not len(self.scenes) == len(self.success) == len(self.returns):
            raise ValueError("an evaluation record needs one scene, success and return per episode")

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self)) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> EvalRecord:
        return cls(**json.loads(Path(path).read_text()))

    def values(self, metric: str) -> np.ndarray:
        """float (episodes,) of ``success`` (0/1) or ``return``."""
        return np.asarray(self.success if metric == "success" else self.returns, np.float64)


def curve_points(budgets: Sequence[int], every: int | None) -> list[int]:
    """The budgets and every multiple of ``every`` up to the largest, sorted."""
    top = max(budgets)
    points = set(budgets)
    if every:
        points |= set(range(every, top + 1, every))
    return sorted(points)


def load_records(root: str | Path) -> list[EvalRecord]:
    return [EvalRecord.load(p) for p in sorted(Path(root).rglob("*.json"))]


def cell_key(method: str, task: str, steps: int) -> str:
    return f"{method}|{task}|{steps}"


def summarize(records: Sequence[EvalRecord], n_boot: int = 2000, seed: int = 0) -> dict:
    """``{"method|task|steps": cell}``; a cell has, per metric, ``<m>`` (mean over all
    episodes), ``<m>_ci`` (bootstrap over episodes), ``<m>_per_seed`` and ``<m>_seed_ci``
    (t-interval of the per-seed means), plus ``seeds``, ``episodes`` and
    ``train_minutes`` (mean over seeds; None for references)."""
    cells: dict[str, list[EvalRecord]] = {}
    for r in records:
        cells.setdefault(cell_key(r.method, r.task, r.real_steps), []).append(r)
    out = {}
    for key, recs in sorted(cells.items()):
        recs = sorted(recs, key=lambda r: r.seed)
        cell: dict[str, Any] = {
            "method": recs[0].method,
            "task": recs[0].task,
            "real_steps": recs[0].real_steps,
            "seeds": [r.seed for r in recs],
            "episodes": sum(len(r.success) for r in recs),
        }
        for m in METRICS:
            pooled = np.concatenate([r.values(m) for r in recs])
            per_seed = [float(r.values(m).mean()) for r in recs]
            cell[m] = float(pooled.mean())
            cell[f"{m}_ci"] = list(bootstrap_ci(pooled, n_resamples=n_boot, seed=seed))
            cell[f"{m}_per_seed"] = per_seed
            cell[f"{m}_seed_ci"] = list(mean_ci(np.array(per_seed))[1:])
        times = [r.train_seconds for r in recs if r.train_seconds is not None]
        cell["train_minutes"] = float(np.mean(times)) / 60 if times else None
        out[key] = cell
    return out


def paired_difference(
    a: Sequence[EvalRecord], b: Sequence[EvalRecord], metric: str
) -> dict[str, float]:
    """``a - b`` over the (seed, scene) pairs both evaluated: ``diff``, ``lo``, ``hi`` (95%
    t-interval of the paired differences) and ``p`` (paired t-test), ``pairs``."""
    by_b = {(r.seed, s): v for r in b for s, v in zip(r.scenes, r.values(metric), strict=True)}
    x, y = [], []
    for r in a:
        for s, v in zip(r.scenes, r.values(metric), strict=True):
            if (r.seed, s) in by_b:
                x.append(v)
                y.append(by_b[(r.seed, s)])
    if not x:
        return {"diff": float("nan"), "lo": float("nan"), "hi": float("nan"), "p": float("nan"),
                "pairs": 0}  # fmt: skip
    diff, lo, hi, p = paired_diff_ci(np.array(x), np.array(y))
    return {"diff": diff, "lo": lo, "hi": hi, "p": p, "pairs": len(x)}


def _cell_text(cell: dict, metric: str, fmt: str) -> str:
    lo, hi = cell[f"{metric}_ci"]
    return f"{cell[metric]:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def difference_text(d: dict, fmt: str) -> str:
    """A :func:`paired_difference` as ``diff [lo, hi]`` in ``fmt`` (e.g. ``"+.2f"``), bold
    when the interval excludes 0."""
    text = f"{d['diff']:{fmt}} [{d['lo']:{fmt}}, {d['hi']:{fmt}}]"
    return f"**{text}**" if d["lo"] > 0 or d["hi"] < 0 else text


def markdown_table(
    summary: dict,
    diffs: dict,
    tasks: Sequence[str],
    budgets: Sequence[int],
    learners: Sequence[str],
    references: Sequence[str],
    names: dict[str, str] | None = None,
) -> str:
    """One row per task x budget x learner and per task x reference: success and return
    (mean [bootstrap 95% CI over episodes]), per-seed success (each value named by its seed,
    ``s1 0.25``, in a cell that lacks some of the task's seeds), training minutes, and the
    paired difference to the baseline in ``diffs`` (``{"method|task|steps": {metric:
    paired_difference}}``; bold when its interval excludes 0)."""
    names = names or {}
    lines = [
        "| task | real steps | method | success | return | success per seed "
        "| training min | vs model-free: success, return |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task in tasks:
        rows = [(b, m) for b in budgets for m in learners] + [(0, m) for m in references]
        cells = [(st, m, summary.get(cell_key(m, task, st))) for st, m in rows]
        every = sorted({s for *_, c in cells if c is not None for s in c["seeds"]})
        for steps, method, cell in cells:
            if cell is None:
                continue
            values = [f"{v:.2f}" for v in cell["success_per_seed"]]
            if cell["seeds"] != every:
                values = [f"s{s} {v}" for s, v in zip(cell["seeds"], values, strict=True)]
            seeds = ", ".join(values)
            minutes = "" if cell["train_minutes"] is None else f"{cell['train_minutes']:.1f}"
            vs = []
            for m, fmt in (("success", "+.2f"), ("return", "+.0f")):
                d = diffs.get(cell_key(method, task, steps), {}).get(m)
                if d is None or not np.isfinite(d["diff"]):
                    continue
                vs.append(difference_text(d, fmt))
            lines.append(
                f"| {task} | {f'{steps:,}' if steps else '-'} | {names.get(method, method)} "
                f"| {_cell_text(cell, 'success', '.2f')} | {_cell_text(cell, 'return', '.0f')} "
                f"| {seeds} | {minutes} | {'; '.join(vs)} |"
            )
    return "\n".join(lines)


def plot_curves(
    summary: dict,
    tasks: Sequence[str],
    learners: Sequence[str],
    references: Sequence[str],
    path: str | Path,
    names: dict[str, str] | None = None,
) -> None:
    """Per task, real success and return vs real environment steps: each learner's mean
    over seeds and scenes with its bootstrap band, the references as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = names or {}
    fig, axes = plt.subplots(2, len(tasks), figsize=(5 * len(tasks), 7), squeeze=False)
    for col, task in enumerate(tasks):
        for row, (metric, label) in enumerate((("success", "success rate"), ("return", "return"))):
            ax = axes[row, col]
            for method in learners:
                cells = sorted(
                    (c for c in summary.values() if c["method"] == method and c["task"] == task),
                    key=lambda c: c["real_steps"],
                )
                if not cells:
                    continue
                x = [c["real_steps"] for c in cells]
                ax.plot(x, [c[metric] for c in cells], "-o", label=names.get(method, method))
                lo, hi = zip(*(c[f"{metric}_ci"] for c in cells), strict=True)
                ax.fill_between(x, lo, hi, alpha=0.2)
            for k, method in enumerate(references):
                cell = summary.get(cell_key(method, task, 0))
                if cell is not None:
                    ax.axhline(cell[metric], ls="--", lw=1, color=f"C{len(learners) + k}",
                               label=names.get(method, method))  # fmt: skip
            if metric == "success":
                ax.set_ylim(-0.05, 1.05)
            ax.set_xlabel("real environment steps learned from")
            ax.set_ylabel(f"real {label}")
            ax.set_title(task, fontsize=10)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
