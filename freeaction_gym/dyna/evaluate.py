"""Step (e): the policy in the real simulator and, on the same scenes, in imagination.

Scenes are the first ``eval.episodes`` entries of the task in the evaluation bank (the
base's held-out test layouts, never collected on). Both worlds run fixed-length episodes
(:mod:`freeaction_gym.evaluation.worlds`): success at any step, return = summed reward
(MetaWorld's in reality, the learned head's in imagination). The imagined-vs-real gap is
imagined minus real, for the success rate and the mean return; ``agreement`` is the
fraction of scenes on which both worlds agree about success.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from freeaction_gym.dyna.agent import IMAGINED_PRESET
from freeaction_gym.dyna.config import DynaConfig
from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.evaluation.paired_stats import bootstrap_ci
from freeaction_gym.evaluation.worlds import (
    ImaginedWorld,
    Policy,
    RealWorld,
    Rollouts,
    Scenes,
    scenes_from_bank,
)


def eval_scenes(bank: ResetBank, task: str, episodes: int) -> Scenes:
    """The first ``episodes`` scenes of ``task``; an error if the bank has fewer."""
    scenes = scenes_from_bank(bank, [task], per_task=episodes)
    if len(scenes) < episodes:
        raise ValueError(
            f"dyna option eval.episodes={episodes}, but the evaluation bank has only "
            f"{len(scenes)} {task} scenes (the base's test split): lower eval.episodes"
        )
    return scenes


def summarize(world: str, roll: Rollouts, seed: int) -> dict[str, Any]:
    """``{world}_success``, ``{world}_return`` and their bootstrap 95% CIs."""
    success, returns = roll.succeeded.astype(float), roll.returns.astype(float)
    return {
        f"{world}_success": float(success.mean()),
        f"{world}_success_ci": list(bootstrap_ci(success, seed=seed)),
        f"{world}_return": float(returns.mean()),
        f"{world}_return_ci": list(bootstrap_ci(returns, seed=seed)),
    }


def evaluate_policy(
    cfg: DynaConfig,
    policy: Policy,
    bank_path: str | Path,
    imagined_kwargs: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Real (and, with ``eval.imagined``, imagined) rollouts of ``policy``; the imagined env
    is the agent's (``imagined_kwargs``) started from the evaluation bank."""
    bank = ResetBank.load(bank_path)
    scenes = eval_scenes(bank, cfg.task, cfg.eval.episodes)
    real = RealWorld(
        cfg.eval.batch_size, reset_bank=str(bank_path), task=cfg.task, data=cfg.data.base
    )
    try:
        real_roll = real.run(policy, scenes, cfg.eval.steps, seed)
    finally:
        real.close()
    out = {"episodes": len(scenes), "steps": cfg.eval.steps, **summarize("real", real_roll, seed)}
    if cfg.eval.imagined:
        kwargs = {**imagined_kwargs, "reset_bank": str(bank_path)}
        imagined = ImaginedWorld(IMAGINED_PRESET, cfg.eval.batch_size, **kwargs)
        roll = imagined.run(policy, scenes, cfg.eval.steps, seed)
        out |= summarize("imagined", roll, seed)
        out["gap_success"] = out["imagined_success"] - out["real_success"]
        out["gap_return"] = out["imagined_return"] - out["real_return"]
        out["agreement"] = float(np.mean(roll.succeeded == real_roll.succeeded))
    return out
