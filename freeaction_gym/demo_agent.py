"""The agent part of ``freeaction demo``: train small PPO agents purely in imagination and
evaluate them, next to a random policy, in imagination and in the real simulator.

Each agent learns on ``FreeActionMetaWorldReach-v0`` (the grounded default world: reward and
success are MetaWorld's own on the integrated state) for ``timesteps`` environment steps
with the hyperparameters of ``FreeActionMetaWorld-v0.yaml`` in
``freeaction_gym/agents/hyperparams/`` (shorter rollouts so a few-minute budget still gives
several updates), once per training seed. Every
policy then runs on the same held-out reach scenes in both worlds
(:mod:`freeaction_gym.evaluation.worlds`). The headline is the mean over seeds with a 95%
t-interval, because one seed's success moves by tenths. Writes into ``out``:
``seed_<k>/final_model.zip`` (+ TensorBoard logs), ``agent.json`` and
``agent_real_vs_imagined.mp4`` (first seed's agent, per scene: real | imagined).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from freeaction_gym.utils.video import write_comparison

ENV_ID = "FreeActionMetaWorldReach-v0"
AGENT = "ppo (imagination)"


def train_agent(out: Path, model: str | None, timesteps: int, seed: int) -> Path:
    """PPO in imagination; returns the path of the saved model."""
    from freeaction_gym.agents.train import TrainArgs, train

    summary = train(
        TrainArgs(
            env=ENV_ID,
            algo="ppo",
            timesteps=timesteps,
            num_envs=8,
            out=str(out),
            env_kwargs={} if model is None else {"model": model},
            hp={"n_steps": 64, "batch_size": 128},
            seed=seed,
            eval_freq=0,
            checkpoint_freq=0,
            video_freq=0,
            verbose=0,
        )
    )
    return Path(summary["final_model"])


def interval(
    values: list[float],
    confidence: float = 0.95,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> dict:
    """Mean, sample std and the two-sided t-interval of the mean over ``values`` (one per
    seed; a single value has a zero-width interval), clipped to ``bounds`` (e.g. (0, 1) for
    success rates)."""
    from scipy import stats

    x = np.asarray(values, np.float64)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    half = 0.0
    if std > 0:
        half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * std / np.sqrt(len(x)))
    low, high = max(mean - half, bounds[0]), min(mean + half, bounds[1])
    return {"mean": mean, "std": std, "low": low, "high": high, "n": len(x)}


class _Worlds:
    """Both worlds on the same held-out reach scenes, loaded once for every policy."""

    def __init__(self, model: str | None, scenes_per_world: int) -> None:
        from freeaction_gym.evaluation.worlds import ImaginedWorld, RealWorld, scenes_from_bank

        kwargs = {} if model is None else {"model": model}
        self.imagined = ImaginedWorld(ENV_ID, **kwargs)
        self.scenes = scenes_from_bank(self.imagined.bank, ["reach-v3"], scenes_per_world)
        self.real = RealWorld(
            model=self.imagined.config.model, reset_bank=self.imagined.config.reset_bank
        )

    def run(self, policy, steps: int, seed: int) -> tuple[dict, dict]:
        """Per world: the summary dict and the rollouts (frames kept)."""
        report, rolls = {}, {}
        for name, world in (("imagined", self.imagined), ("real", self.real)):
            r = world.run(policy, self.scenes, steps, seed, keep_frames=True)
            rolls[name] = r
            report[name] = {
                "success_rate": float(r.succeeded.mean()),
                "return_mean": float(r.returns.mean()),
                "success": r.succeeded.tolist(),
            }
        return report, rolls


def run_agent_demo(
    out: Path,
    model: str | None,
    timesteps: int,
    scenes_per_world: int = 10,
    steps: int = 40,
    seed: int = 0,
    num_seeds: int = 3,
) -> dict:
    """Train ``num_seeds`` agents (seeds ``seed .. seed + num_seeds - 1``) and evaluate them
    and a random policy; returns (and writes as ``agent.json``) the report."""
    from freeaction_gym.evaluation.policies import RandomPolicy, SB3Policy, load_model

    out.mkdir(parents=True, exist_ok=True)
    worlds = _Worlds(model, scenes_per_world)
    report: dict = {
        "env": ENV_ID,
        "timesteps": timesteps,
        "scenes": worlds.scenes.bank_index.tolist(),
        "steps": steps,
        "seeds": {},
    }
    first_rolls = None
    try:
        for k in range(num_seeds):
            t0 = time.perf_counter()
            model_zip = train_agent(out / f"seed_{seed + k}", model, timesteps, seed + k)
            t1 = time.perf_counter()
            policy = SB3Policy(AGENT, load_model(model_zip))
            per_world, rolls = worlds.run(policy, steps, seed)
            first_rolls = first_rolls or rolls
            report["seeds"][str(seed + k)] = {
                **per_world,
                "train_seconds": t1 - t0,
                "eval_seconds": time.perf_counter() - t1,
                "model_zip": str(model_zip),
            }
        report["random"], _ = worlds.run(RandomPolicy(), steps, seed)
    finally:
        worlds.real.close()
    runs = list(report["seeds"].values())
    report[AGENT] = {
        w: {
            "success_rate": interval([r[w]["success_rate"] for r in runs], bounds=(0.0, 1.0)),
            "return_mean": interval([r[w]["return_mean"] for r in runs]),
        }
        for w in ("imagined", "real")
    }
    report[AGENT]["gap"] = interval(
        [r["imagined"]["success_rate"] - r["real"]["success_rate"] for r in runs]
    )
    k = min(4, scenes_per_world)
    write_comparison(
        out / "agent_real_vs_imagined.mp4",
        [first_rolls["real"].frames[:k], first_rolls["imagined"].frames[:k]],
    )
    (out / "agent.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _ci(s: dict, digits: int) -> str:
    return f"{s['mean']:.{digits}f} [{s['low']:.{digits}f}, {s['high']:.{digits}f}]"


def markdown(report: dict) -> str:
    """The agent table: mean over seeds with 95% t-intervals, then each seed's numbers."""
    seeds = report["seeds"]
    train_s = np.mean([r["train_seconds"] for r in seeds.values()])
    a, r = report[AGENT], report["random"]
    lines = [
        f"PPO trained {report['timesteps']} steps in imagination ({len(seeds)} seeds, "
        f"{train_s:.0f} s each), evaluated on {len(report['scenes'])} held-out reach scenes x "
        f"{report['steps']} actions; mean over seeds [95% t-interval]:",
        "",
        "| policy | imagined success | real success | imagined return | real return |",
        "|---|---|---|---|---|",
        f"| {AGENT} | {_ci(a['imagined']['success_rate'], 2)} | "
        f"{_ci(a['real']['success_rate'], 2)} | {_ci(a['imagined']['return_mean'], 0)} | "
        f"{_ci(a['real']['return_mean'], 0)} |",
        f"| random | {r['imagined']['success_rate']:.2f} | {r['real']['success_rate']:.2f} | "
        f"{r['imagined']['return_mean']:.0f} | {r['real']['return_mean']:.0f} |",
        "",
        f"Imagined minus real success per seed: {_ci(a['gap'], 2)}; per seed (imagined / "
        "real): "
        + ", ".join(
            f"seed {k}: {v['imagined']['success_rate']:.2f} / {v['real']['success_rate']:.2f}"
            for k, v in seeds.items()
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"
