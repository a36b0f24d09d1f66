"""Imagined-vs-real agreement of a subset of the policy family, from a finished study.

Reads ``results.json`` of ``experiments/policy_eval_study.py`` and recomputes Pearson and
Spearman over the (policy, task) points of the chosen policies and tasks (point estimates;
the bootstrap intervals need the episodes, i.e. a rerun of the study with that family),
then lists the points whose imagined success misses the real one by more than
``--max-gap`` (issue 16's target: at most 0.1 for every policy).

    python experiments/policy_eval_subset.py outputs/policy_eval/results.json --exclude PPO
    python experiments/policy_eval_subset.py outputs/policy_eval/results.json \\
        --exclude expert random --tasks reach-v3          # the learned agents on reach only
"""

from __future__ import annotations

import argparse
import json

from freeaction_gym.evaluation.agreement import correlations


def subset_points(
    results: dict, exclude: list[str], tasks: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """(policies, tasks) of the subset: names not starting with an ``exclude`` prefix, and
    ``tasks`` (None: all) checked to be in the study."""
    policies = [p for p in results["real"] if not any(p.startswith(e) for e in exclude)]
    known = list(next(iter(results["real"].values())))
    tasks = known if tasks is None else tasks
    unknown = sorted(set(tasks) - set(known))
    if unknown:
        raise ValueError(f"task(s) {unknown} are not in the study (it has {known})")
    if not policies:
        raise ValueError(f"--exclude {exclude} leaves no policy")
    return policies, tasks


def subset_table(
    results: dict, exclude: list[str], tasks: list[str] | None = None, max_gap: float = 0.1
) -> str:
    """Markdown: the correlation table per imagined sampler, then the points whose
    |imagined - real| success exceeds ``max_gap``."""
    variants = list(results["agreement"])
    policies, tasks = subset_points(results, exclude, tasks)
    lines = [
        f"{len(policies)} policies x {len(tasks)} tasks = {len(policies) * len(tasks)} points "
        f"(excluded: names starting with {exclude}; tasks {tasks})",
        "",
        "| imagined sampler | success Pearson | success Spearman | return Pearson "
        "| return Spearman |",
        "|---|---|---|---|---|",
    ]
    for v in variants:
        cells = []
        for metric in ("success", "return"):
            x = [results["real"][p][t][metric] for p in policies for t in tasks]
            y = [results[v][p][t][metric] for p in policies for t in tasks]
            c = correlations(x, y)
            cells += [f"{c['pearson']:.3f}", f"{c['spearman']:.3f}"]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines += ["", f"Success gaps above {max_gap:g} (imagined - real):", ""]
    misses = [
        (v, p, t, results["real"][p][t]["success"], results[v][p][t]["success"])
        for v in variants
        for p in policies
        for t in tasks
        if abs(results[v][p][t]["success"] - results["real"][p][t]["success"]) > max_gap + 1e-9
    ]
    if not misses:
        lines.append(f"none: every point is within {max_gap:g}")
    else:
        lines += ["| sampler | policy | task | real | imagined | gap |", "|---" * 6 + "|"]
        lines += [f"| {v} | {p} | {t} | {r:.2f} | {i:.2f} | {i - r:+.2f} |"
                  for v, p, t, r, i in misses]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", help="results.json of policy_eval_study.py")
    p.add_argument("--exclude", nargs="*", default=[], help="policy-name prefixes to drop")
    p.add_argument("--tasks", nargs="*", default=None, help="only these tasks (default: all)")
    p.add_argument("--max-gap", type=float, default=0.1, help="list success gaps above this")
    a = p.parse_args(argv)
    with open(a.results) as f:
        print(subset_table(json.load(f), a.exclude, a.tasks, a.max_gap))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
