"""``freeaction dyna --config FILE [section.key=value ...]``: run or continue a Dyna run."""

from __future__ import annotations

import argparse
import json


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="freeaction dyna",
        description="Dyna loop: collect real episodes, fine-tune the world model, refit the "
        "reward head, train the agent in imagination, evaluate; resumable.",
    )
    p.add_argument("--config", required=True, help="YAML file (see configs/dyna/)")
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. collect.episodes=4")
    args = p.parse_args(argv)
    from freeaction_gym.dyna.config import load_dyna_config
    from freeaction_gym.utils.threads import configure_threads

    cfg = load_dyna_config(args.config, args.overrides)
    configure_threads()
    from agents.dyna import SB3DynaAgent  # the composition root: agents/ holds the SB3 side
    from freeaction_gym.dyna.loop import DynaLoop

    rows = DynaLoop(cfg, SB3DynaAgent(cfg.agent, progress=cfg.progress)).run()
    print(json.dumps(rows[-1] if rows else {}, indent=2))
    print(f"metrics: {cfg.output}/metrics.jsonl, plot: {cfg.output}/dyna.png")
    return 0
