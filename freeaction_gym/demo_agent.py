"""The agent part of ``freeaction demo``: train a small PPO agent purely in imagination and
evaluate it, next to a random policy, in imagination and in the real simulator.

The agent learns on ``FreeActionMetaWorldReach-v0`` (the bundled world model, learned
reward) for ``timesteps`` environment steps with the hyperparameters of
``agents/hyperparams/FreeActionMetaWorld-v0.yaml`` (shorter rollouts so a few-minute budget
still gives several updates). Both policies then run on the same held-out reach scenes in
both worlds (:mod:`freeaction_gym.evaluation.worlds`). Writes into ``out``:
``final_model.zip`` (+ TensorBoard logs), ``agent.json`` and ``agent_real_vs_imagined.mp4``
(per scene: real | imagined).
"""

from __future__ import annotations

import json
from pathlib import Path

from freeaction_gym.utils.video import write_comparison

ENV_ID = "FreeActionMetaWorldReach-v0"


def train_agent(out: Path, model: str, timesteps: int, seed: int) -> Path:
    """PPO in imagination; returns the path of the saved model."""
    from agents.train import TrainArgs, train

    summary = train(
        TrainArgs(
            env=ENV_ID,
            algo="ppo",
            timesteps=timesteps,
            num_envs=8,
            out=str(out),
            env_kwargs={"model": model},
            hp={"n_steps": 64, "batch_size": 128},
            seed=seed,
            eval_freq=0,
            checkpoint_freq=0,
            video_freq=0,
            verbose=0,
        )
    )
    return Path(summary["final_model"])


def evaluate_agent(
    model_zip: Path, model: str, scenes_per_world: int, steps: int, seed: int
) -> tuple[dict, dict]:
    """Success/return of the agent and of a random policy in both worlds; also returns the
    rollouts (for the video)."""
    from freeaction_gym.evaluation.policies import RandomPolicy, SB3Policy, load_model
    from freeaction_gym.evaluation.worlds import ImaginedWorld, RealWorld, scenes_from_bank

    imagined = ImaginedWorld(ENV_ID, model=model)
    scenes = scenes_from_bank(imagined.bank, ["reach-v3"], scenes_per_world)
    real = RealWorld(model=model, reset_bank=imagined.config.reset_bank)
    policies = [SB3Policy("ppo (imagination)", load_model(model_zip)), RandomPolicy()]
    report: dict = {"scenes": scenes.bank_index.tolist(), "steps": steps}
    rolls: dict = {}
    try:
        for p in policies:
            for world_name, world in (("imagined", imagined), ("real", real)):
                r = world.run(p, scenes, steps, seed, keep_frames=True)
                rolls[(p.name, world_name)] = r
                report.setdefault(p.name, {})[world_name] = {
                    "success_rate": float(r.succeeded.mean()),
                    "return_mean": float(r.returns.mean()),
                    "success": r.succeeded.tolist(),
                }
    finally:
        real.close()
    return report, rolls


def run_agent_demo(
    out: Path,
    model: str,
    timesteps: int,
    scenes_per_world: int = 10,
    steps: int = 40,
    seed: int = 0,
) -> dict:
    import time

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model_zip = train_agent(out, model, timesteps, seed)
    t1 = time.perf_counter()
    report, rolls = evaluate_agent(model_zip, model, scenes_per_world, steps, seed)
    report.update(
        env=ENV_ID,
        timesteps=timesteps,
        train_seconds=t1 - t0,
        eval_seconds=time.perf_counter() - t1,
        model_zip=str(model_zip),
    )
    name = "ppo (imagination)"
    k = min(4, scenes_per_world)
    write_comparison(
        out / "agent_real_vs_imagined.mp4",
        [rolls[(name, "real")].frames[:k], rolls[(name, "imagined")].frames[:k]],
    )
    (out / "agent.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def markdown(report: dict) -> str:
    lines = [
        f"PPO trained {report['timesteps']} steps in imagination "
        f"({report['train_seconds']:.0f} s), "
        f"evaluated on {len(report['scenes'])} held-out reach scenes x {report['steps']} actions:",
        "",
        "| policy | imagined success | real success | imagined return | real return |",
        "|---|---|---|---|---|",
    ]
    for name in ("ppo (imagination)", "random"):
        r = report[name]
        lines.append(
            f"| {name} | {r['imagined']['success_rate']:.2f} | {r['real']['success_rate']:.2f} "
            f"| {r['imagined']['return_mean']:.0f} | {r['real']['return_mean']:.0f} |"
        )
    return "\n".join(lines) + "\n"
