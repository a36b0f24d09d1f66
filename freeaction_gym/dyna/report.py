"""A run's numbers: ``metrics.jsonl`` (one row per finished iteration) and ``dyna.png``.

Rows are rebuilt from ``state.json`` each time, so a resumed run never repeats a line.
``real_env_steps`` counts the real transitions the loop *learned from* (collected, summed
over iterations so far); the evaluation's real episodes are not counted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from freeaction_gym.dyna.state import STAGES, RunState


def metric_rows(state: RunState) -> list[dict[str, Any]]:
    """One row per finished iteration: cumulative real steps/episodes, the collected
    episodes' success, the fine-tune's last loss, the reward head's val AUROC, the agent's
    timesteps, the evaluation (``real_*``, ``imagined_*``, ``gap_*``) and stage seconds."""
    rows, steps, episodes = [], 0, 0
    for it in range(len(state.iterations)):
        if not state.finished(it):
            break
        res = {s: state.result(it, s) for s in STAGES}
        steps += res["collect"]["steps"]
        episodes += res["collect"]["episodes"]
        rows.append(
            {
                "iteration": it,
                "real_env_steps": steps,
                "real_episodes": episodes,
                "collect_success": res["collect"]["success_rate"],
                "collect_return": res["collect"]["return_mean"],
                "world_model_steps": res["world_model"]["steps"],
                "world_model_loss": res["world_model"]["loss"],
                "reward_val_success_auroc": res["reward"].get("val_success_auroc"),
                "agent_timesteps": res["agent"]["timesteps"],
                **{k: v for k, v in res["evaluate"].items() if k != "seconds"},
                "seconds": {s: round(res[s].get("seconds", 0.0), 1) for s in STAGES},
            }
        )
    return rows


def write_metrics(rows: list[dict[str, Any]], path: str | Path) -> None:
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))


def plot_metrics(rows: list[dict[str, Any]], path: str | Path):
    """Success and return vs cumulative real env steps (real solid, imagined dashed, and
    dotted what a learned reward head credits on the real episodes' frames when the rows
    have ``head_on_real_*``) and the imagined-minus-real gap per iteration. Returns the
    (closed) matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    x = [r["real_env_steps"] for r in rows]
    for ax, key, label in ((axes[0], "success", "success rate"), (axes[1], "return", "return")):
        for world, style in (("real", "-o"), ("imagined", "--s")):
            if rows and f"{world}_{key}" in rows[0]:
                y = [r[f"{world}_{key}"] for r in rows]
                lo = [r[f"{world}_{key}_ci"][0] for r in rows]
                hi = [r[f"{world}_{key}_ci"][1] for r in rows]
                ax.plot(x, y, style, label=world)
                ax.fill_between(x, lo, hi, alpha=0.2)
        if rows and f"head_on_real_{key}" in rows[0]:
            y = [r[f"head_on_real_{key}"] for r in rows]
            ax.plot(x, y, ":^", color="tab:red", label="head on real frames")
        ax.set_xlabel("real environment steps (collected)")
        ax.set_ylabel(label)
        ax.legend()
    ax = axes[2]
    it = [r["iteration"] for r in rows]
    if rows and "gap_success" in rows[0]:
        ax.plot(it, [r["gap_success"] for r in rows], "-o", label="success gap")
        ax.set_ylabel("imagined - real success")
        twin = ax.twinx()
        twin.plot(
            it, [r["gap_return"] for r in rows], "--s", color="tab:orange", label="return gap"
        )
        twin.set_ylabel("imagined - real return")
        ax.legend(loc="upper left")
        twin.legend(loc="upper right")
    ax.axhline(0.0, color="gray", lw=0.8)
    ax.set_xlabel("iteration")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return fig


TRACE_COLUMNS = (
    ("real_success", "real success", "{:.2f}"),
    ("head_on_real_success", "head's credit on the real frames", "{:.2f}"),
    ("imagined_success", "imagined success", "{:.2f}"),
    ("real_return", "real return", "{:.0f}"),
    ("imagined_return", "imagined return", "{:.0f}"),
    ("agreement", "agreement", "{:.2f}"),
)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.jsonl``."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def trace_table(runs: dict[int, list[dict[str, Any]]]) -> str:
    """Markdown table of several seeds' loops (``{seed: metric rows}``), one line per
    iteration: cumulative real steps, the seeds that finished it, and the seed means of the
    loop's own evaluation (``TRACE_COLUMNS`` that any row logged, e.g. no
    ``head_on_real_*`` for a state reward; "-" in an iteration no seed logged it)."""
    depth = max((len(rows) for rows in runs.values()), default=0)
    logged = {k for rows in runs.values() for r in rows for k, v in r.items() if v is not None}
    columns = [c for c in TRACE_COLUMNS if c[0] in logged]
    head = ["iteration (real steps)", "seeds"] + [title for _, title, _ in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for it in range(depth):
        rows = {s: r[it] for s, r in sorted(runs.items()) if len(r) > it}
        steps = sorted({r["real_env_steps"] for r in rows.values()})
        cells = [f"{it} ({'/'.join(map(str, steps))})", ",".join(map(str, rows))]
        for key, _, fmt in columns:
            values = [r[key] for r in rows.values() if r.get(key) is not None]
            cells.append(fmt.format(sum(values) / len(values)) if values else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
