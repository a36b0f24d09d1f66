"""Command line: ``freeaction <command> ...`` (``freeaction --help`` lists the commands,
``freeaction <command> --help`` their options).

A user error (a missing input, a bad number, an unknown command) prints one line,
``error: ...``, on stderr and exits with status 2; ``--debug`` or ``FREEACTION_DEBUG=1``
shows its traceback instead (:mod:`freeaction_gym.utils.errors`).
"""

from __future__ import annotations

import argparse
import os

from freeaction_gym.utils.errors import UserError, cli_main

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")


def _train(argv: list[str]) -> int:
    """Train a DiT world model or an autoencoder from a YAML config (--config F)."""
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
    """Generate a MetaWorld video dataset (data metaworld ROOT ...)."""
    if argv and argv[0] in ("-h", "--help"):
        print("usage: freeaction data metaworld ROOT [options]  (see --help)")
        return 0
    if not argv or argv[0] != "metaworld":
        got = f"unknown dataset {argv[0]!r}" if argv else "no dataset given"
        raise UserError(f"{got}: usage: freeaction data metaworld ROOT [options] (see --help)")
    from freeaction_gym.data.metaworld_gen import main_metaworld

    return main_metaworld(argv[1:])


def _bundle(argv: list[str]) -> int:
    """Package a trained run (fp16 weights, reset bank, reward head, proprio)."""
    from freeaction_gym.bundle import main as bundle_main

    return bundle_main(argv)


def _demo(argv: list[str]) -> int:
    """Imagined rollouts of the bundled model vs the real simulator."""
    from freeaction_gym.demo import main as demo_main

    return demo_main(argv)


def _play(argv: list[str]) -> int:
    """Drive the imagined robot with the keyboard; writes a video."""
    from freeaction_gym.play import main as play_main

    return play_main(argv)


def _bank(argv: list[str]) -> int:
    """Build a reset bank (initial/goal frames) from a dataset split."""
    from freeaction_gym.envs.bank import main as bank_main

    return bank_main(argv)


def _train_reward(argv: list[str]) -> int:
    """Train the learned reward/success head on a MetaWorld dataset."""
    from freeaction_gym.training.train_reward_head import main as reward_main

    return reward_main(argv)


def _train_probe(argv: list[str]) -> int:
    """Train the state probe (frame -> hand, gripper, object) for evaluation."""
    from freeaction_gym.training.train_probe import main as probe_main

    return probe_main(argv)


def _train_idm(argv: list[str]) -> int:
    """Train the inverse-dynamics model of the Action Error Ratio (frames -> action)."""
    from freeaction_gym.training.train_idm import main as idm_main

    return idm_main(argv)


def _train_proprio(argv: list[str]) -> int:
    """Train the proprioceptive dynamics model (actions -> state, keypoints)."""
    from freeaction_gym.training.train_proprio import main as proprio_main

    return proprio_main(argv)


def _pad_train(argv: list[str]) -> int:
    """Train the PAD-style image/depth/action policy on demonstrations."""
    from freeaction_gym.pad.train import PADTrainArgs, train_pad
    from freeaction_gym.utils.args import parse_args

    print(train_pad(parse_args(PADTrainArgs, argv)))
    return 0


def _imagine(argv: list[str]) -> int:
    """Replay a dataset's actions through the world model (imagined copy)."""
    from freeaction_gym.evaluation.imagine import main as imagine_main

    return imagine_main(argv)


def _dyna(argv: list[str]) -> int:
    """Dyna loop: real episodes -> world model -> reward -> agent (resumable)."""
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


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: one subcommand per :data:`COMMANDS` entry (its help is the
    command function's docstring); each command parses its own options."""
    p = argparse.ArgumentParser(
        prog="freeaction",
        description="FreeAction Gym: video world-model environments, their training and "
        "evaluation.",
        epilog="User errors print one line and exit with status 2; pass --debug (or set "
        "FREEACTION_DEBUG=1) for the traceback.",
    )
    sub = p.add_subparsers(dest="command", metavar="<command>")
    for name, fn in COMMANDS.items():
        sub.add_parser(name, help=(fn.__doc__ or "").strip().rstrip("."), add_help=False)
    return p


@cli_main
def main(argv: list[str]) -> int:
    """``freeaction <command> [options]``: run ``command`` on the rest of ``argv``."""
    if not argv or argv[0] in ("-h", "--help"):
        build_parser().print_help()
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        raise UserError(
            f"unknown command {argv[0]!r}; the commands are {', '.join(sorted(COMMANDS))} "
            "(freeaction --help)"
        )
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
