"""``freeaction dyna --config FILE [section.key=value ...]``: run or continue a Dyna run.

``freeaction dyna --branch-from RUN --at-iteration K output=NEW key=value ...``: continue
the run in ``RUN`` from iteration ``K`` under changed settings, in ``NEW``
(:mod:`freeaction_gym.dyna.branch`); continue it later with ``--config NEW/config.yaml``."""

from __future__ import annotations

import argparse
import json

from freeaction_gym.utils.errors import UserError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="freeaction dyna",
        description="Dyna loop: collect real episodes, fine-tune the world model, refit the "
        "reward head, train the agent in imagination, evaluate; resumable.",
    )
    p.add_argument("--config", help="YAML file (see configs/dyna/)")
    p.add_argument(
        "--branch-from",
        metavar="RUN",
        help="instead of --config: a run directory to branch (needs output=NEW and at least "
        "one changed setting); stages the changes cannot affect are copied, not rerun",
    )
    p.add_argument(
        "--at-iteration",
        type=int,
        metavar="K",
        help="with --branch-from: the iteration from which the changed settings apply",
    )
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. collect.episodes=4")
    args = p.parse_args(argv)
    if (args.config is None) == (args.branch_from is None):
        p.error("pass exactly one of --config and --branch-from")
    if (args.branch_from is None) != (args.at_iteration is None):
        p.error("--branch-from and --at-iteration go together")
    from freeaction_gym.dyna.config import check_inputs, load_dyna_config
    from freeaction_gym.utils.threads import configure_threads

    if args.branch_from is not None:
        from freeaction_gym.dyna.branch import branch_run, load_branch_config

        if not any(o.startswith("output=") for o in args.overrides):
            p.error("a branch needs its own output directory: pass output=NEW")
        try:  # a branch that changes nothing, or the wrong iteration, is the user's error
            cfg = load_branch_config(args.branch_from, args.overrides)
            check_inputs(cfg)
            record = branch_run(args.branch_from, cfg, args.at_iteration)
        except ValueError as err:
            raise UserError(f"--branch-from {args.branch_from}: {err}") from err
        print(f"branched {args.branch_from} at iteration {args.at_iteration} into "
              f"{cfg.output}: {record['first_stage']} onwards reruns with "
              f"{record['changed']}")  # fmt: skip
    else:
        cfg = load_dyna_config(args.config, args.overrides)
    configure_threads()
    from freeaction_gym.agents.dyna import SB3DynaAgent  # the composition root: the SB3 side
    from freeaction_gym.dyna.loop import DynaLoop

    rows = DynaLoop(cfg, SB3DynaAgent(cfg.agent, progress=cfg.progress)).run()
    print(json.dumps(rows[-1] if rows else {}, indent=2))
    print(f"metrics: {cfg.output}/metrics.jsonl, plot: {cfg.output}/dyna.png")
    return 0
