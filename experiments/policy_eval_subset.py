"""Imagined-vs-real correlation of a subset of the policy family, from a finished study.

Reads ``results.json`` of ``experiments/policy_eval_study.py`` and recomputes Pearson and
Spearman over the (policy, task) points of the chosen policies (point estimates; the
bootstrap intervals need the episodes, i.e. a rerun of the study with that family).

    python experiments/policy_eval_subset.py outputs/policy_eval/results.json --exclude PPO
"""

from __future__ import annotations

import argparse
import json

from freeaction_gym.evaluation.agreement import correlations


def subset_table(results: dict, exclude: list[str]) -> str:
    variants = list(results["agreement"])
    policies = [p for p in results["real"] if not any(p.startswith(e) for e in exclude)]
    tasks = list(next(iter(results["real"].values())))
    lines = [
        f"{len(policies)} policies x {len(tasks)} tasks = {len(policies) * len(tasks)} points "
        f"(excluded: names starting with {exclude})",
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
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", help="results.json of policy_eval_study.py")
    p.add_argument("--exclude", nargs="*", default=[], help="policy-name prefixes to drop")
    a = p.parse_args(argv)
    with open(a.results) as f:
        print(subset_table(json.load(f), a.exclude))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
