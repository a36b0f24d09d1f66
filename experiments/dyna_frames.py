"""Look at a Dyna iteration's agent: the same held-out scenes in the real simulator and in
the iteration's imagined world, side by side.

Runs the agent of ``--iteration`` (its policy and imagined-env options from the run's
``state.json``) on the first ``--scenes`` scenes of the run's evaluation bank, as the loop's
evaluation does (same seed, same scenes), and writes ``strip_iterK.png`` (per scene a real
row and an imagined row at a few steps, with per-row success and return) and
``frames_iterK.mp4`` (real | imagined, scenes stacked) to ``--out``.

    python experiments/dyna_frames.py --run outputs/metaworld_k/runs/dyna/reach-v3/s0 \\
        --iteration 1 --out outputs/dyna_frames
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import json  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import imageio.v2 as imageio  # noqa: E402
import numpy as np  # noqa: E402

from freeaction_gym.dyna.config import load_dyna_config, merge  # noqa: E402
from freeaction_gym.dyna.evaluate import eval_scenes, run_worlds, score_head  # noqa: E402
from freeaction_gym.dyna.state import RunState  # noqa: E402
from freeaction_gym.envs.bank import ResetBank  # noqa: E402
from freeaction_gym.evaluation.figures import save_strip  # noqa: E402
from freeaction_gym.evaluation.policies import SB3Policy, load_model  # noqa: E402
from freeaction_gym.utils.args import parse_args, parse_assignments  # noqa: E402
from freeaction_gym.utils.threads import configure_threads  # noqa: E402


@dataclass
class Args:
    """Real vs imagined frames of one Dyna iteration's agent on held-out scenes."""

    run: str = ""
    """Required: a ``freeaction dyna`` output directory (config.yaml, state.json, banks/)."""
    iteration: int = -1
    """Which iteration's agent (-1: the last one with a trained agent)."""
    scenes: int = 4
    steps: int | None = None
    """Actions per episode (default: the run's eval.steps)."""
    every: int = 5
    """Strip columns: every this many steps."""
    strip_scenes: int = 8
    """At most this many scenes in the strip (the video shows all)."""
    disagreements_first: bool = False
    """Strip the scenes where the two worlds disagree about success first."""
    env: list[str] = field(default_factory=list)
    """Imagined-env option overrides ``key=value`` over the agent's (e.g.
    ``sampling.truncation.mode=none``), to see what a setting changes."""
    heads: list[str] = field(default_factory=list)
    """Extra reward heads ``name=DIR`` that score the same real and imagined frames (the
    iteration's own head is always scored, as ``iteration``): what would each credit?"""
    out: str = "outputs/dyna_frames"


def score_heads(heads: dict[str, str], task: str, real, imagined) -> dict[str, dict]:
    """Per head and world: what the head credits the frames with (:func:`score_head`),
    each head loaded once."""
    from freeaction_gym.rewards.learned import LearnedReward

    out = {}
    for name, path in heads.items():
        head = LearnedReward.from_pretrained(path)
        out[name] = {
            world: score_head(head, task, roll, real.succeeded)
            for world, roll in (("real", real), ("imagined", imagined))
        }
    return out


def main(args: Args) -> dict:
    configure_threads()
    if not args.run:
        raise SystemExit("--run DIR is required (a freeaction dyna output directory)")
    bad = [h for h in args.heads if "=" not in h]
    if bad:
        raise SystemExit(f"--heads entries are name=DIR, got {bad}")
    run = Path(args.run)
    cfg = load_dyna_config(run / "config.yaml", [])
    state = RunState(run / "state.json")
    trained = [i for i in range(len(state.iterations)) if state.result(i, "agent")]
    if not trained:
        raise SystemExit(f"{run} has no iteration with a trained agent yet")
    k = trained[-1] if args.iteration < 0 else args.iteration
    if k not in trained:
        raise SystemExit(f"iteration {k} has no trained agent; trained: {trained}")
    agent = state.result(k, "agent")
    steps = args.steps or cfg.eval.steps
    bank_path = run / "banks" / "eval.npz"
    scenes = eval_scenes(ResetBank.load(bank_path), cfg.task, cfg.eval.episodes)
    scenes = scenes.subset(np.arange(min(args.scenes, len(scenes))))

    policy = SB3Policy(f"{cfg.agent.algo} iter {k}", load_model(agent["policy"], cfg.agent.algo))
    env = merge(agent["env_kwargs"], parse_assignments(args.env))
    real_roll, imag_roll = run_worlds(
        cfg, policy, bank_path, env, cfg.seed, scenes, True, steps, len(scenes)
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cols = list(range(0, steps + 1, args.every))
    rows = []
    order = np.arange(len(scenes))
    if args.disagreements_first:
        agree = real_roll.succeeded == imag_roll.succeeded
        order = np.concatenate([order[~agree], order[agree]])
    for i in order[: args.strip_scenes]:
        for name, roll in (("real", real_roll), ("imagined", imag_roll)):
            label = (
                f"scene {int(scenes.bank_index[i])} {name}\n"
                f"success {bool(roll.succeeded[i])}, return {roll.returns[i]:.0f}"
            )
            rows.append((label, roll.frames[i, cols]))
    strip = save_strip(
        out / f"strip_iter{k}.png", rows, cols, gap_every=2,
        title=f"{run.name}: iteration {k}'s agent, real vs imagined ({cfg.task})",
    )  # fmt: skip
    video = np.concatenate([real_roll.frames, imag_roll.frames], axis=3)  # (N, T, H, 2W, 3)
    video = np.concatenate(list(video), axis=1)  # scenes stacked vertically: (T, N*H, 2W, 3)
    mp4 = out / f"frames_iter{k}.mp4"
    imageio.mimwrite(mp4, list(video), fps=8, macro_block_size=1)
    summary = {
        "iteration": k,
        "scenes": scenes.bank_index.tolist(),
        "real_success": real_roll.succeeded.tolist(),
        "imagined_success": imag_roll.succeeded.tolist(),
        "real_return": real_roll.returns.round(1).tolist(),
        "imagined_return": imag_roll.returns.round(1).tolist(),
        "env_overrides": args.env,
        "heads": score_heads(
            {
                **(
                    {"iteration": head}
                    if (head := state.result(k, "reward")["reward_head"])
                    else {}  # reward.mode state: no head
                ),
                **dict(h.split("=", 1) for h in args.heads),
            },
            cfg.task,
            real_roll,
            imag_roll,
        ),
        "strip": str(strip),
        "video": str(mp4),
    }
    (out / f"summary_iter{k}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main(parse_args(Args))
