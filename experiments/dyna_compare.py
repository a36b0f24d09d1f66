"""Compare Dyna runs iteration by iteration: a source run and its branches
(``freeaction dyna --branch-from``), or any runs of the same task.

For every run (``--runs name=DIR``, the first is the reference) and every finished
iteration from ``--from-iteration`` on: real and imagined success and return on the
held-out scenes (95% bootstrap intervals over the scenes, as the loop records them), the
episode agreement of the two worlds, and what a branch changed (its ``branch.json``). Then
the mean over the iterations every run finished, and a plot of real and imagined success
per iteration. Reads only ``state.json`` and ``branch.json``; nothing is rerun.

    python experiments/dyna_compare.py --from-iteration 5 --out outputs/dyna_compare \\
        --runs 'as run=outputs/metaworld_k/runs/dyna/reach-v3/s0' \\
        'imagined-copy reward=outputs/metaworld_k_ablate/dyna_imagined_reward_s0'
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from freeaction_gym.dyna.report import metric_rows
from freeaction_gym.dyna.state import RunState
from freeaction_gym.utils.args import parse_args
from freeaction_gym.utils.markdown import update_block


@dataclass
class Args:
    """Iteration-by-iteration comparison of Dyna runs."""

    runs: list[str] = field(default_factory=list)
    """``name=DIR`` per run (a ``freeaction dyna`` output directory); the first is the
    reference."""
    from_iteration: int = 0
    """First iteration shown (e.g. a branch's ``--at-iteration``)."""
    out: str = "outputs/dyna_compare"
    """Writes ``compare.md``, ``compare.json`` and ``compare.png`` here."""
    update_doc: str | None = None
    """Also write the table between the ``--key`` markers of this markdown file."""
    key: str = "dyna-compare"


def load_runs(specs: list[str]) -> dict[str, dict]:
    """``name -> {"dir", "rows" (one per finished iteration), "branch" (or None)}``."""
    runs = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name:
            raise SystemExit(f"--runs entries are name=DIR, got {spec!r}")
        state = Path(path) / "state.json"
        if not state.is_file():
            raise SystemExit(f"{path} is not a dyna run (no state.json)")
        branch = Path(path) / "branch.json"
        runs[name] = {
            "dir": path,
            "rows": metric_rows(RunState(state)),
            "branch": json.loads(branch.read_text()) if branch.is_file() else None,
        }
    return runs


def cell(row: dict, key: str, digits: int) -> str:
    if key not in row:
        return "-"
    lo, hi = row[f"{key}_ci"]
    return f"{row[key]:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def table(runs: dict[str, dict], first: int) -> tuple[str, dict]:
    """The markdown table, notes and the summary of the common iterations."""
    lines = [
        "| run | iteration | real steps | real success | real return | imagined success "
        "| imagined return | agreement |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, run in runs.items():
        for r in run["rows"]:
            if r["iteration"] < first:
                continue
            lines.append(
                f"| {name} | {r['iteration']} | {r['real_env_steps']:,} | "
                f"{cell(r, 'real_success', 2)} | {cell(r, 'real_return', 0)} | "
                f"{cell(r, 'imagined_success', 2)} | {cell(r, 'imagined_return', 0)} | "
                f"{r.get('agreement', float('nan')):.2f} |"
            )
    common = set.intersection(
        *({r["iteration"] for r in run["rows"] if r["iteration"] >= first} for run in runs.values())
    )
    summary = {}
    if common:
        its = sorted(common)
        lines += [
            "",
            f"Mean over iterations {its[0]}-{its[-1]} (every run finished them):",
            "",
            "| run | real success | real return | imagined success | imagined - real success "
            "| agreement |",
            "|---|---|---|---|---|---|",
        ]
        for name, run in runs.items():
            rows = [r for r in run["rows"] if r["iteration"] in common]
            mean = {
                k: float(np.mean([r[k] for r in rows]))
                for k in (
                    "real_success",
                    "real_return",
                    "imagined_success",
                    "gap_success",
                    "agreement",
                )  # fmt: skip
                if all(k in r for r in rows)
            }
            summary[name] = {"iterations": its, **mean}
            lines.append(
                f"| {name} | {mean['real_success']:.2f} | {mean['real_return']:.0f} | "
                f"{mean.get('imagined_success', float('nan')):.2f} | "
                f"{mean.get('gap_success', float('nan')):+.2f} | "
                f"{mean.get('agreement', float('nan')):.2f} |"
            )
    notes = []
    for name, run in runs.items():
        b = run["branch"]
        if b is not None:
            changed = ", ".join(f"{k}: {b['was'][k]!r} -> {v!r}" for k, v in b["changed"].items())
            notes.append(
                f"- {name}: branch of `{b['source']}` at iteration {b['iteration']} "
                f"({b['first_stage']} onwards rerun): {changed}"
            )
    text = "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else "")
    return text, summary


def plot(runs: dict[str, dict], first: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, (name, run) in enumerate(runs.items()):
        rows = [r for r in run["rows"] if r["iteration"] >= first]
        it = [r["iteration"] for r in rows]
        color = f"C{i}"
        for ax, key in zip(axes, ("success", "return"), strict=True):
            ax.plot(it, [r[f"real_{key}"] for r in rows], "-o", color=color, label=f"{name} real")
            if rows and f"imagined_{key}" in rows[0]:
                ax.plot(it, [r[f"imagined_{key}"] for r in rows], "--s", color=color,
                        alpha=0.6, label=f"{name} imagined")  # fmt: skip
    for ax, key in zip(axes, ("success rate", "return"), strict=True):
        ax.set_xlabel("iteration")
        ax.set_ylabel(key)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(args: Args) -> dict:
    if len(args.runs) < 1:
        raise SystemExit("give at least one --runs name=DIR")
    runs = load_runs(args.runs)
    text, summary = table(runs, args.from_iteration)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python experiments/dyna_compare.py " + shlex.join(sys.argv[1:])
    text = f"Command: `{command}`\n\n{text}"
    (out / "compare.md").write_text(text + "\n")
    (out / "compare.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(runs, args.from_iteration, out / "compare.png")
    if args.update_doc:
        update_block(args.update_doc, args.key, text)
    print(text)
    return summary


if __name__ == "__main__":
    main(parse_args(Args))
