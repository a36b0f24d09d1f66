"""The report of the AVID study (experiments/avid_study.py): every run's per-clip scores
turned into summaries with paired differences to the equal-size scratch model, the tables,
the seed's claim checked row by row and the figures.

``results`` is ``{run: scores.json blob | done.json | {variant, fraction}}`` with per-clip
``scores`` (PSNR, SSIM, Action Error Ratio, gripper error) and, for the mask modes, the
``masks`` statistics; runs are named :func:`run_name` and compared with the
:data:`BASELINE` run at the same data fraction, paired over clips. ``labels`` name the
variants in the tables (``{variant: label}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from freeaction_gym.evaluation.avid_masks import plot_mask_per_step
from freeaction_gym.evaluation.cell_format import format_interval as fmt
from freeaction_gym.evaluation.cell_format import format_paired as fmt_diff
from freeaction_gym.evaluation.replay import ci_cell, diff_cell

BASELINE = "scratch"
CLAIMED = ("avid", "avid_aux", "avid_open")
"""Rows checked against the seed's claim: AVID and our two fixes of its mask collapse."""
"""The adapter-size model trained from scratch: every other run is paired against it."""


def run_name(variant: str, fraction: float) -> str:
    """The run of ``variant`` trained on ``fraction`` of the train split."""
    return f"{variant}_f{fraction:g}"


def summarize(results: dict) -> dict:
    """{run: {metric: ci_cell, metric - scratch: diff_cell}} (paired over clips)."""
    out = {}
    for run, r in results.items():
        s = {m: np.asarray(v) for m, v in r["scores"].items()}
        cells = {m: ci_cell(v) for m, v in s.items()}
        base = results.get(run_name(BASELINE, r["fraction"]))
        if base is not None and r["variant"] != BASELINE:
            for m in ("psnr", "ssim", "aer", "gripper"):
                if m in s and m in base["scores"]:
                    cells[f"{m} - {BASELINE}"] = diff_cell(s[m], np.asarray(base["scores"][m]))
        out[run] = cells
    return out


def tables(results: dict, summary: dict, notes: list[str], labels: Mapping[str, str]) -> str:
    """The scores table, the mask table of the mask modes, the claims and ``notes``."""
    head = (
        "| data | model | trainable params | steps | PSNR dB | SSIM | Action Error Ratio | "
        f"gripper error | PSNR - {BASELINE} | SSIM - {BASELINE} |"
    )
    lines = [head, "|" + "---|" * 10]
    for run, r in results.items():
        c = summary[run]
        grip = fmt(c["gripper"], 3) if "gripper" in c else "-"
        dp, ds = c.get(f"psnr - {BASELINE}"), c.get(f"ssim - {BASELINE}")
        lines.append(
            f"| {r['fraction']:.0%} | {labels[r['variant']]} | "
            f"{r['trainable_parameters'] / 1e6:.2f}M | {r['steps']} | {fmt(c['psnr'])} | "
            f"{fmt(c['ssim'], 3)} | {fmt(c['aer'])} | {grip} | {fmt_diff(dp)} | "
            f"{fmt_diff(ds, 3)} |"
        )
    mask_rows = [run for run, r in results.items() if r.get("masks")]
    if mask_rows:
        lines += [
            "",
            "| data | model | mask on moving pixels | mask on static pixels | "
            "mean mask per DDIM step, noisiest first |",
            "|---|---|---|---|---|",
        ]
        for run in mask_rows:
            r, m = results[run], results[run]["masks"]
            per_step = ", ".join(f"{v:.2f}" for v in m["per_step"])
            lines.append(
                f"| {r['fraction']:.0%} | {labels[r['variant']]} | "
                f"{fmt(ci_cell(np.asarray(m['moving'], float)))} | "
                f"{fmt(ci_cell(np.asarray(m['static'], float)))} | {per_step} |"
            )
    lines += ["", *claims(results, summary, labels), *[f"- {n}" for n in notes]]
    return "\n".join(lines)


def claims(results: dict, summary: dict, labels: Mapping[str, str] | None = None) -> list[str]:
    """The seed's central claim, checked row by row (paired over clips) for the
    :data:`CLAIMED` variants."""
    out = []
    for run, r in results.items():
        if r["variant"] not in CLAIMED or f"psnr - {BASELINE}" not in summary[run]:
            continue
        dp, ds = summary[run][f"psnr - {BASELINE}"], summary[run][f"ssim - {BASELINE}"]
        beats = dp["lo"] > 0 and ds["lo"] > 0
        verdict = "beats" if beats else "does not beat (95% paired CIs)"
        name = "AVID" if labels is None or r["variant"] == "avid" else labels[r["variant"]]
        out.append(
            f"- {r['fraction']:.0%} data: {name} {verdict} the equal-size scratch model: "
            f"PSNR {dp['mean']:+.2f} dB [{dp['lo']:+.2f}, {dp['hi']:+.2f}], "
            f"SSIM {ds['mean']:+.3f} [{ds['lo']:+.3f}, {ds['hi']:+.3f}]."
        )
        m = r.get("masks")
        if m:
            mv, st = np.nanmean(m["moving"]), np.nanmean(m["static"])
            verdict = "is lower" if mv < st - 0.005 else "is not lower"
            out.append(
                f"  Its mask (1 = frozen model) {verdict} on the moving pixels (arm, pushed "
                f"objects) than on the static ones: {mv:.2f} vs {st:.2f}."
            )
    return out


def figures(results: dict, fig_dir: Path) -> list[Path]:
    """The masks over a rollout (made when scoring), the mask per step, PSNR vs data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = [fig_dir / f"mask_rollout_{run}.png" for run, r in results.items() if r.get("masks")]
    paths = [p for p in paths if p.is_file()]
    curves = {run: r["masks"] for run, r in results.items() if r.get("masks")}
    if curves:
        paths.append(plot_mask_per_step(fig_dir / "mask_per_step.png", curves))
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for variant in dict.fromkeys(r["variant"] for r in results.values()):
        rows = sorted((r["fraction"], r["scores"]["psnr"]) for r in results.values()
                      if r["variant"] == variant)  # fmt: skip
        ax.plot([f for f, _ in rows], [np.mean(v) for _, v in rows], "-o", ms=3, label=variant)
    ax.set_xscale("log")
    ax.set_xlabel("share of the action-labelled train split")
    ax.set_ylabel("PSNR dB (imagined frames)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(fig_dir / "psnr_vs_data.png", dpi=100)
    plt.close(fig)
    return [*paths, fig_dir / "psnr_vs_data.png"]
