"""Command line: ``freeaction <command> ...``.

Commands:
  data metaworld ...   generate a MetaWorld video dataset (see ``--help``)
  train --config F     train a DiT world model or an autoencoder from a YAML config
  demo [--out DIR]     imagined rollouts of the bundled model vs the real simulator
  play [--keys S|--web] drive the imagined robot by keyboard (terminal or browser page)
  train-reward ...     train the learned reward/success head on a MetaWorld dataset
  train-probe ...      train the state probe (frame -> hand, gripper, object) for evaluation
  train-idm ...        train the inverse-dynamics model of the Action Error Ratio (frames -> action)
  bank --data D --out F  build a reset bank (initial/goal frames) from a dataset split
  bundle ...           package a trained run (fp16 weights, reset bank, reward head, proprio)
  pad-train ...        train the PAD-style image/depth/action policy on demonstrations
  imagine ...          replay a dataset's actions through the world model (imagined copy)
  train-proprio ...    train the proprioceptive dynamics model (actions -> state, keypoints)
  dyna --config F      Dyna loop: real episodes -> world model -> reward -> agent (resumable)
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")


def _train(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="freeaction train", description="Train from a YAML config.")
    p.add_argument("--config", required=True, help="YAML file (see configs/)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint.pt")
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. optim.steps=100")
    args = p.parse_args(argv)
    from freeaction_gym.training.config import load_config

    cfg = load_config(args.config, args.overrides)
    if cfg.kind == "autoencoder":
        from freeaction_gym.training.train_autoencoder import train_autoencoder

        out = train_autoencoder(cfg, resume=not args.no_resume)
    else:
        from freeaction_gym.training.train_dit import train_dit

        out = train_dit(cfg, resume=not args.no_resume)
    print(f"model written to {out}")
    return 0


def _data(argv: list[str]) -> int:
    if not argv or argv[0] != "metaworld":
        print("usage: freeaction data metaworld [options]  (see --help)", file=sys.stderr)
        return 2
    from freeaction_gym.data.metaworld_gen import main_metaworld

    return main_metaworld(argv[1:])


def _bundle(argv: list[str]) -> int:
    from freeaction_gym.bundle import main as bundle_main

    return bundle_main(argv)


def _demo(argv: list[str]) -> int:
    from freeaction_gym.demo import main as demo_main

    return demo_main(argv)


def _play(argv: list[str]) -> int:
    from freeaction_gym.play import main as play_main

    return play_main(argv)


def _bank(argv: list[str]) -> int:
    from freeaction_gym.envs.bank import main as bank_main

    return bank_main(argv)


def _train_reward(argv: list[str]) -> int:
    from freeaction_gym.training.train_reward_head import main as reward_main

    return reward_main(argv)


def _train_probe(argv: list[str]) -> int:
    from freeaction_gym.training.train_probe import main as probe_main

    return probe_main(argv)


def _train_idm(argv: list[str]) -> int:
    from freeaction_gym.training.train_idm import main as idm_main

    return idm_main(argv)


def _train_proprio(argv: list[str]) -> int:
    from freeaction_gym.training.train_proprio import main as proprio_main

    return proprio_main(argv)


def _pad_train(argv: list[str]) -> int:
    from freeaction_gym.pad.train import PADTrainArgs, train_pad
    from freeaction_gym.utils.args import parse_args

    print(train_pad(parse_args(PADTrainArgs, argv)))
    return 0


def _imagine(argv: list[str]) -> int:
    from freeaction_gym.evaluation.imagine import main as imagine_main

    return imagine_main(argv)


def _dyna(argv: list[str]) -> int:
    from freeaction_gym.dyna.cli import main as dyna_main

    return dyna_main(argv)


COMMANDS = {
    "dyna": _dyna,
    "imagine": _imagine,
    "pad-train": _pad_train,
    "train": _train,
    "train-reward": _train_reward,
    "train-probe": _train_probe,
    "train-idm": _train_idm,
    "train-proprio": _train_proprio,
    "data": _data,
    "bundle": _bundle,
    "demo": _demo,
    "play": _play,
    "bank": _bank,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
