"""An agent trained purely in imagination vs the same budget in the real simulator (issue 6).

Trains PPO (``freeaction_gym/agents/hyperparams``) on the imagined env (``--env``, learned reward;
with
the hyperparameters' ``support`` guard, and without it as an ablation) and on its real
MetaWorld counterpart for the same number of environment steps and seed, then
evaluates both, and a uniform random policy, on the same held-out scenes in the real
simulator (the number that matters) and in imagination, with 95% bootstrap intervals and
the paired difference in real success vs random. Reuses finished runs in ``--out`` unless
``--retrain``.

    python experiments/imagination_agent.py --timesteps 40000 --update-doc docs/RESULTS.md
    python experiments/imagination_agent.py --quick         # seconds
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

from freeaction_gym.agents.train import TrainArgs, train  # noqa: E402
from freeaction_gym.evaluation.paired_stats import bootstrap_ci, paired_diff_ci  # noqa: E402
from freeaction_gym.evaluation.policies import RandomPolicy, SB3Policy  # noqa: E402
from freeaction_gym.evaluation.worlds import (  # noqa: E402
    ImaginedWorld,
    RealWorld,
    scenes_from_bank,
)
from freeaction_gym.utils.args import parse_args  # noqa: E402
from freeaction_gym.utils.markdown import update_block  # noqa: E402
from freeaction_gym.utils.threads import configure_threads  # noqa: E402
from freeaction_gym.utils.video import write_comparison  # noqa: E402


@dataclass
class Args:
    """PPO trained in imagination vs in the real simulator, evaluated in both."""

    env: str = "FreeActionMetaWorldReach-v0"
    """Imagined training env; its real counterpart is ``FreeActionReal...`` of the same name."""
    timesteps: int = 40_000
    """Environment steps of each training run."""
    seed: int = 0
    scenes: int = 20
    """Held-out evaluation scenes (reset-bank entries of the env's task)."""
    steps: int = 40
    """Actions per evaluation episode (no early termination)."""
    hp: list[str] = field(default_factory=list)
    """Hyperparameter overrides for both runs (``n_steps=32``)."""
    out: str = "runs/imagination_agent"
    ablate_support: bool = True
    """Also train in imagination without the ``support`` guard of the hyperparameters."""
    retrain: bool = False
    """Train again even if ``final_model.zip`` exists."""
    quick: bool = False
    """Tiny budget (256 steps, 2 scenes, 5 actions)."""
    update_doc: str | None = None


def real_id(env_id: str) -> str:
    return env_id.replace("FreeAction", "FreeActionReal", 1)


def train_run(args: Args, env_id: str, out: Path, env_kwargs: dict | None = None) -> dict:
    from freeaction_gym.utils.args import parse_assignments

    final = out / "final_model.zip"
    cfg_file = out / "train_config.json"
    if final.is_file() and cfg_file.is_file() and not args.retrain:
        summary = json.loads(cfg_file.read_text())["summary"]
        if summary["timesteps"] >= args.timesteps:
            return {**summary, "final_model": str(final)}  # the run may have been moved
    hp = parse_assignments(args.hp)
    if args.quick:
        hp.update(n_envs=2, n_steps=64, batch_size=64, n_epochs=1)
    return train(
        TrainArgs(
            env=env_id,
            algo="ppo",
            timesteps=args.timesteps,
            out=str(out),
            hp=hp,
            env_kwargs=env_kwargs or {},
            seed=args.seed,
            eval_freq=0,
            checkpoint_freq=max(args.timesteps // 4, 1),
            video_freq=0,
            verbose=0,
        )
    )


def main(args: Args) -> dict:
    configure_threads()
    if args.quick:
        args.timesteps, args.scenes, args.steps = 256, 2, 5
    t0 = time.time()
    out = Path(args.out)
    runs = {"PPO in imagination": train_run(args, args.env, out / "imagined")}
    if args.ablate_support:  # the same run without the hyperparameters' support guard
        runs["PPO in imagination, no support guard"] = train_run(
            args, args.env, out / "imagined_no_support", {"support": None}
        )
    runs["PPO in real simulator"] = train_run(args, real_id(args.env), out / "real")
    imagined = ImaginedWorld(args.env)
    task = imagined.config.task
    scenes = scenes_from_bank(imagined.bank, [task] if task else None, args.scenes)
    real = RealWorld(model=imagined.config.model, reset_bank=imagined.config.reset_bank)
    policies = [SB3Policy(name, r["final_model"]) for name, r in runs.items()]
    policies.append(RandomPolicy())
    rolls = {}
    try:
        for p in policies:
            for w_name, world in (("real", real), ("imagined", imagined)):
                rolls[(p.name, w_name)] = world.run(p, scenes, args.steps, args.seed, True)
    finally:
        real.close()
    results: dict = {"runs": runs, "policies": {}}
    for p in policies:
        row = {}
        for w in ("real", "imagined"):
            r = rolls[(p.name, w)]
            s = r.succeeded.astype(float)
            row[w] = {
                "success": float(s.mean()),
                "success_ci": bootstrap_ci(s, seed=args.seed),
                "return": float(r.returns.mean()),
                "return_ci": bootstrap_ci(r.returns, seed=args.seed),
            }
        base = rolls[("random", "real")]
        mine = rolls[(p.name, "real")]
        row["real_return_vs_random"] = paired_diff_ci(mine.returns, base.returns)
        results["policies"][p.name] = row
    vid = out / "videos"
    vid.mkdir(parents=True, exist_ok=True)
    for p in policies[:-1]:
        fname = p.name.replace(" ", "_") + "_real_vs_imagined.mp4"
        k = min(4, len(scenes))
        real_frames, imag_frames = (
            rolls[(p.name, "real")].frames,
            rolls[(p.name, "imagined")].frames,
        )
        write_comparison(vid / fname, [real_frames[:k], imag_frames[:k]])
    results["meta"] = {
        "args": asdict(args),
        "scenes": scenes.bank_index.tolist(),
        "minutes": (time.time() - t0) / 60,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    command = "python experiments/imagination_agent.py " + shlex.join(sys.argv[1:])
    text = markdown(results, args, command.strip())
    (out / "table.md").write_text(text)
    print(text)
    if args.update_doc:
        update_block(args.update_doc, "imagination-agent", text)
    return results


def markdown(results: dict, args: Args, command: str) -> str:
    runs = results["runs"]
    lines = [
        f"Command: `{command}` (training: "
        + ", ".join(f"{k} {v['seconds'] / 60:.1f} min" for k, v in runs.items())
        + f"; evaluation {results['meta']['minutes']:.1f} min in total incl. reused runs). "
        f"PPO, {args.timesteps} environment steps each, seed {args.seed}; evaluated "
        f"deterministically on {args.scenes} held-out scenes of {args.env} x {args.steps} "
        "actions (no early termination); 95% bootstrap intervals; return difference vs random "
        "is paired over scenes (t-interval).",
        "",
        "| policy | real success | real return | real return - random | imagined success "
        "| imagined return |",
        "|---|---|---|---|---|---|",
    ]

    def f(d, k, fmt):
        lo, hi = d[f"{k}_ci"]
        return f"{d[k]:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"

    for name, row in results["policies"].items():
        dm, dlo, dhi, _ = row["real_return_vs_random"]
        diff = "-" if name == "random" else f"{dm:+.0f} [{dlo:+.0f}, {dhi:+.0f}]"
        lines.append(
            f"| {name} | {f(row['real'], 'success', '.2f')} | {f(row['real'], 'return', '.0f')} "
            f"| {diff} | {f(row['imagined'], 'success', '.2f')} "
            f"| {f(row['imagined'], 'return', '.0f')} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main(parse_args(Args))
