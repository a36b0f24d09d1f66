"""The report of the prompt study (experiments/prompt_study.py): the fidelity evaluation's
scores of every run, per dataset and prompt source, turned into summaries, tables, issue
15's targets and figures.

A row is a (model, prompt source) pair, scored by experiments/world_model_fidelity.py on the
same episodes and noise; :func:`summarize` gives its 95% intervals over episodes, the paired
differences and ratios to the ``adaln`` row (:data:`BASELINE`) and, for proprio prompts, the
paired difference to the same model with true prompts. ``labels`` name the rows' models in
the tables (``{variant: label}``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from freeaction_gym.evaluation.cell_format import format_half_width_p as cell
from freeaction_gym.evaluation.cell_format import format_ratio as ratio_cell
from freeaction_gym.evaluation.figures import frames_at_steps, save_strip
from freeaction_gym.evaluation.paired_stats import paired_ratio_ci
from freeaction_gym.evaluation.prompt_source import clip_prompts
from freeaction_gym.evaluation.replay import ci_cell, diff_cell
from freeaction_gym.evaluation.rollout import collect_clips
from freeaction_gym.prompts.proprio import ProprioModel

BASELINE = "adaln"
"""The action-adaLN run: every other row is paired against it."""
DATASETS = {"test": "in-domain", "fresh": "transfer"}  # world_model_fidelity's labels
STEPS = (1, 5, 10, 20, 40)
KEY_STEP = 10  # issue 15's target step


def load_scores(directory: Path, source: str) -> dict:
    """{dataset label: {episodes, steps, horizon, strip, rows: {(model, prompts):
    {metric: {step: (N,)}, ms_per_frame}}}} of one fidelity run."""
    metrics = json.loads((directory / "metrics.json").read_text())
    per_clip = json.loads((directory / "per_clip.json").read_text())
    out = {}
    for label, d in metrics["datasets"].items():
        rows = {}
        for name, clips in per_clip[label].items():
            scores = {m: {int(k): np.asarray(v, float) for k, v in by.items()}
                      for m, by in clips["per_episode"].items()}  # fmt: skip
            short = {m: np.asarray(v, float) for m, v in clips["per_short_clip"].items()}
            scores["action_sensitivity"] = {0: short["moving_psnr"] - short["moving_psnr_shuffled"]}
            prompts = source if metrics["models"][name]["prompts"] else "-"
            rows[(name, prompts)] = scores | {"ms": d["models"][name]["ms_per_frame"]}
        strip = directory / d["strip"]
        out[DATASETS.get(label, label)] = {
            "episodes": d["episodes"], "steps": d["steps"], "horizon": d["horizon"],
            "strips": {source: strip}, "rows": rows, "root": d["root"],
            "num_context": max(m["num_context"] for m in metrics["models"].values()),
        }  # fmt: skip
    return out


def merge_sources(blobs: list[dict]) -> dict:
    """One blob per dataset with the rows of every prompt source; ValueError when two
    sources replayed other episodes."""
    out = {}
    for blob in blobs:
        for label, d in blob.items():
            if label not in out:
                out[label] = d
                continue
            if d["episodes"] != out[label]["episodes"]:
                raise ValueError(f"{label}: the score runs replayed other episodes; re-score")
            out[label]["rows"] |= d["rows"]
            out[label]["strips"] |= d["strips"]
    return out


def summarize(d: dict) -> dict:
    """Per row of a dataset: CIs of the scored quantities, paired differences and ratios to
    the adaLN row, proprio - true prompts of the same model; plus the probe floor."""
    rows, h = d["rows"], d["horizon"]
    k = KEY_STEP if KEY_STEP in d["steps"] else max(d["steps"])
    base = rows.get((BASELINE, "-"))
    any_row = next(iter(rows.values()))
    floor = {s: ci_cell(any_row["floor_gripper"][s]) for s in d["steps"]}
    out = {"key_step": k, "floor": floor, "rows": {}}
    for (name, src), r in rows.items():
        g = r["gripper"][k]
        c = {
            "psnr": ci_cell(r["psnr_rollout"][h]),
            "ssim": ci_cell(r["ssim_rollout"][h]),
            "gripper": {s: ci_cell(r["gripper"][s]) for s in d["steps"]},
            "gripper_floor": float(np.nanmean(g) / np.nanmean(any_row["floor_gripper"][k])),
            "hand_cm": ci_cell(r["hand_cm"][k]),
            "sharpness": ci_cell(r["sharpness_moving"][k]),
            "action_sensitivity": ci_cell(r["action_sensitivity"][0]),
            "ms": r["ms"],
        }
        if base is not None and name != BASELINE:
            floor_k = any_row["floor_gripper"][k]
            ratio = paired_ratio_ci(g, base["gripper"][k])
            excess = paired_ratio_ci(g - floor_k, base["gripper"][k] - floor_k)
            c["vs_base"] = {
                "gripper": diff_cell(g, base["gripper"][k]),
                "gripper_ratio": dict(zip(("mean", "lo", "hi"), ratio, strict=True)),
                "excess_ratio": dict(zip(("mean", "lo", "hi"), excess, strict=True)),
                "psnr": diff_cell(r["psnr_rollout"][h], base["psnr_rollout"][h]),
                "ssim": diff_cell(r["ssim_rollout"][h], base["ssim_rollout"][h]),
            }
        true = rows.get((name, "true"))
        if src == "proprio" and true is not None:
            c["proprio_minus_true"] = {
                "gripper": diff_cell(g, true["gripper"][k]),
                "hand_cm": diff_cell(r["hand_cm"][k], true["hand_cm"][k]),
                "psnr": diff_cell(r["psnr_rollout"][h], true["psnr_rollout"][h]),
            }
        out["rows"][f"{name}|{src}"] = c
    return out


def dataset_tables(
    label: str, d: dict, s: dict, runs: dict, labels: Mapping[str, str]
) -> list[str]:
    """A dataset's table (a row per model and prompt source, the probe floor first) and its
    paired comparison with the baseline; ``runs``: ``{variant: done record}``."""
    k, steps = s["key_step"], d["steps"]
    head = ["model", "prompts", "train steps", "ms/frame", f"PSNR dB (1..{d['horizon']})",
            f"SSIM (1..{d['horizon']})", *[f"gripper @{t}" for t in steps],
            f"gripper / floor @{k}", f"hand cm @{k}", f"sharpness moving @{k}",
            "action sensitivity dB"]  # fmt: skip
    lines = [
        f"#### {label}: `{d['root']}` test split, {len(d['episodes'])} episodes", "",
        "| " + " | ".join(head) + " |", "|---" * len(head) + "|",
        "| *real frames (probe floor)* | | | | | | "
        + " | ".join(cell(s["floor"][t], 3) for t in steps) + " | 1.0x | | | |",
    ]  # fmt: skip
    for row, c in s["rows"].items():
        name, src = row.split("|")
        cells = [labels[name], src, str(runs.get(name, {}).get("steps", "-")),
                 f"{c['ms']:.1f}", cell(c["psnr"], 2), cell(c["ssim"], 3),
                 *[cell(c["gripper"][t], 3) for t in steps], f"{c['gripper_floor']:.1f}x",
                 cell(c["hand_cm"], 1), cell(c["sharpness"], 2),
                 cell(c["action_sensitivity"], 2)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    paired = [(row, c["vs_base"]) for row, c in s["rows"].items() if "vs_base" in c]
    if paired:
        lines += [
            "", f"Paired over episodes, against {labels[BASELINE]}:", "",
            f"| model | prompts | gripper @{k} - adaLN | gripper @{k} / adaLN | "
            f"(gripper - floor) @{k} / adaLN's | PSNR - adaLN | SSIM - adaLN |",
            "|---|---|---|---|---|---|---|",
        ]  # fmt: skip
        for row, v in paired:
            name, src = row.split("|")
            lines.append(
                f"| {labels[name]} | {src} | {cell(v['gripper'], 3)} | "
                f"{ratio_cell(v['gripper_ratio'])} | {ratio_cell(v['excess_ratio'])} | "
                f"{cell(v['psnr'], 2)} | {cell(v['ssim'], 3)} |"
            )
    return lines


def skeleton_table(summaries: dict, labels: Mapping[str, str]) -> list[str]:
    """Proprio - true prompts of each model and dataset (paired over episodes)."""
    rows = [(label, row, c["proprio_minus_true"]) for label, s in summaries.items()
            for row, c in s["rows"].items() if "proprio_minus_true" in c]  # fmt: skip
    if not rows:
        return []
    k = next(iter(summaries.values()))["key_step"]
    lines = [
        "#### Skeleton quality: prompts from the proprio model - from the true states", "",
        f"| data | model | gripper @{k} | hand cm @{k} | PSNR dB (rollout) |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    for label, row, v in rows:
        lines.append(f"| {label} | {labels[row.split('|')[0]]} | {cell(v['gripper'], 3)} | "
                     f"{cell(v['hand_cm'], 1)} | {cell(v['psnr'], 2)} |")  # fmt: skip
    return lines


def gap_table(summaries: dict, labels: Mapping[str, str]) -> list[str]:
    """In-domain vs transfer per row (different episodes: unpaired across datasets)."""
    if not {"in-domain", "transfer"} <= summaries.keys():
        return []
    a, b = summaries["in-domain"], summaries["transfer"]
    k = a["key_step"]
    lines = [
        "#### In-domain -> unseen tasks", "",
        f"| model | prompts | PSNR in-domain | PSNR transfer | gripper / floor @{k} in-domain | "
        f"transfer | gripper @{k} / adaLN in-domain | transfer |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for row in a["rows"]:
        if row not in b["rows"]:
            continue
        ca, cb = a["rows"][row], b["rows"][row]
        name, src = row.split("|")
        ra = ratio_cell(ca["vs_base"]["gripper_ratio"]) if "vs_base" in ca else "-"
        rb = ratio_cell(cb["vs_base"]["gripper_ratio"]) if "vs_base" in cb else "-"
        lines.append(
            f"| {labels[name]} | {src} | {cell(ca['psnr'], 2)} | {cell(cb['psnr'], 2)} | "
            f"{ca['gripper_floor']:.1f}x | {cb['gripper_floor']:.1f}x | {ra} | {rb} |"
        )
    return lines


def targets(summaries: dict, labels: Mapping[str, str]) -> list[str]:
    """Issue 15's targets, row by row (paired over episodes, 95% intervals)."""
    out = []
    for label, s in summaries.items():
        k = s["key_step"]
        for row, c in s["rows"].items():
            if "vs_base" not in c:
                continue
            name, src = row.split("|")
            v = c["vs_base"]
            r, d = v["gripper_ratio"], v["gripper"]
            better = d["hi"] < 0  # the paired interval excludes no change
            what = f"{labels[name]} ({src} prompts)"
            nums = (f"gripper @{k} {r['mean']:.2f}x adaLN's [{r['lo']:.2f}, {r['hi']:.2f}], "
                    f"difference {d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]")  # fmt: skip
            if label == "in-domain":
                met = r["mean"] <= 0.5 and better
                verdict = "**met**" if met else "**missed**"
                out.append(f"- In-domain, halves the gripper error at step {k}: {what} "
                           f"{verdict}: {nums}.")  # fmt: skip
            elif label == "transfer":
                verdict = "**met**" if better else "**missed**"
                out.append(f"- Unseen tasks, beats adaLN: {what} {verdict}: {nums}; PSNR "
                           f"{v['psnr']['mean']:+.2f} dB [{v['psnr']['lo']:+.2f}, "
                           f"{v['psnr']['hi']:+.2f}].")  # fmt: skip
                home = summaries.get("in-domain", {}).get("rows", {}).get(row, {})
                if "vs_base" in home:  # the paper's claim: prompts transfer better
                    a = home["vs_base"]["gripper_ratio"]["mean"]
                    grows = "grows" if r["mean"] < a else "does not grow"
                    out.append(f"  Its advantage {grows} on the unseen tasks: gripper @{k} "
                               f"{a:.2f}x adaLN's in-domain -> {r['mean']:.2f}x.")  # fmt: skip
    return out


def gripper_figure(summaries: dict, path: Path) -> Path:
    """Gripper probe error / floor vs imagined step, one panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summaries), figsize=(5 * len(summaries), 3.5), squeeze=False)
    for ax, (label, s) in zip(axes[0], summaries.items(), strict=True):
        steps = sorted(s["floor"])
        for row, c in s["rows"].items():
            name, src = row.split("|")
            y = [c["gripper"][t]["mean"] / s["floor"][t]["mean"] for t in steps]
            ax.plot(steps, y, "--" if src == "proprio" else "-", marker="o", ms=3,
                    label=f"{name} ({src})")  # fmt: skip
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_title(label)
        ax.set_xlabel("imagined step")
        ax.set_ylabel("gripper probe error / floor")
        ax.legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def prompt_strip(
    d: dict, path: Path, seed: int, proprio: str | None = None, count: int = 3
) -> Path:
    """Real frames and the skeletons of the true prompts and (``proprio``: that proprio
    model's directory) the proprio ones for the first ``count`` replayed episodes of a
    dataset (replayed with noise seed ``seed``), at the strip steps (0 = the last context
    frame)."""
    n, steps = d["num_context"], [k for k in (0, *STEPS) if k <= d["horizon"]]
    clips = collect_clips(d["root"], "test", n + d["horizon"], len(d["episodes"]), seed)
    if clips.episodes != d["episodes"]:
        raise RuntimeError("the strip's clips are not the scored ones")
    clips = replace(clips, frames=clips.frames[:count], actions=clips.actions[:count],
                    episodes=clips.episodes[:count], starts=clips.starts[:count])  # fmt: skip
    videos = {"true skeleton": clip_prompts(d["root"], "test", clips, "true")}
    if proprio is not None:
        model = ProprioModel.from_pretrained(proprio)
        videos["proprio skeleton"] = clip_prompts(d["root"], "test", clips, "proprio", model)
    real, rows = frames_at_steps(clips.frames, n, steps), []
    for i, name in enumerate(clips.episodes):
        rows.append((f"real\n{name.removesuffix('.npz')}", real[i]))
        rows += [(k, frames_at_steps(v, n, steps)[i]) for k, v in videos.items()]
    return save_strip(path, rows, steps, gap_every=1 + len(videos))
