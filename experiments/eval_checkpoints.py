"""Saved agents (SB3 ``.zip``, e.g. the checkpoints of one training run) on the same held-out
scenes in imagination and in the real simulator: success and return per world.

    python -m agents.train --env FreeActionMetaWorldReach-v0 --algo drq --timesteps 10000 \\
        --checkpoint-freq 2500 --eval-freq 0 --video-freq 0 --seed 0 --out runs/drq_imagined
    python experiments/eval_checkpoints.py runs/drq_imagined/checkpoints/drq_*_steps.zip

Deterministic actions, ``--steps`` actions per episode without early termination, success
at any step; scenes are the first ``--scenes`` reset-bank entries of the env's task.
"""

from __future__ import annotations

import argparse
import re

from freeaction_gym.utils.errors import cli_main


def evaluate(zips: list[str], env_id: str, scenes: int, steps: int, seed: int) -> str:
    from freeaction_gym.evaluation.policies import SB3Policy, load_model
    from freeaction_gym.evaluation.worlds import ImaginedWorld, RealWorld, scenes_from_bank

    imagined = ImaginedWorld(env_id)
    task = imagined.config.task
    chosen = scenes_from_bank(imagined.bank, [task] if task else None, scenes)
    real = RealWorld(model=imagined.config.model, reset_bank=imagined.config.reset_bank)
    lines = [
        f"{env_id}, {len(chosen)} held-out scenes x {steps} actions, seed {seed}:",
        "",
        "| agent | imagined success | real success | imagined return | real return |",
        "|---|---|---|---|---|",
    ]
    try:
        for path in sorted(zips, key=lambda p: [int(n) for n in re.findall(r"\d+", p)] or [0]):
            policy = SB3Policy(path, load_model(path))
            im = imagined.run(policy, chosen, steps, seed)
            re_ = real.run(policy, chosen, steps, seed)
            lines.append(
                f"| {path} | {im.succeeded.mean():.2f} | {re_.succeeded.mean():.2f} | "
                f"{im.returns.mean():.0f} | {re_.returns.mean():.0f} |"
            )
    finally:
        real.close()
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("zips", nargs="+", help="SB3 .zip files")
    p.add_argument("--env", default="FreeActionMetaWorldReach-v0", help="imagined env id")
    p.add_argument("--scenes", type=int, default=20)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    print(evaluate(a.zips, a.env, a.scenes, a.steps, a.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main)())
