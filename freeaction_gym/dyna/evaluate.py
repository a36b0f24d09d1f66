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


def run_worlds(
    cfg: DynaConfig,
    policy: Policy,
    bank_path: str | Path,
    imagined_kwargs: dict[str, Any] | None,
    seed: int,
    scenes: Scenes | None = None,
    keep_frames: bool = False,
    steps: int | None = None,
    batch_size: int | None = None,
) -> tuple[Rollouts, Rollouts | None]:
    """``policy``'s rollouts on ``scenes`` (default: the evaluation's) in the real simulator
    and, unless ``imagined_kwargs`` is None, in the agent's imagined env (those options)
    started from the same bank, ``steps`` (default ``eval.steps``) actions each, in batches
    of ``batch_size`` envs (default ``eval.batch_size``); with ``keep_frames`` the rollouts
    keep their frames."""
    if scenes is None:
        scenes = eval_scenes(ResetBank.load(bank_path), cfg.task, cfg.eval.episodes)
    steps = steps or cfg.eval.steps
    batch = batch_size or cfg.eval.batch_size
    real = RealWorld(
        batch, reset_bank=str(bank_path), task=cfg.task, data=cfg.data.base, **cfg.real_options()
    )
    try:
        real_roll = real.run(policy, scenes, steps, seed, keep_frames=keep_frames)
    finally:
        real.close()
    if imagined_kwargs is None:
        return real_roll, None
    kwargs = {**imagined_kwargs, "reset_bank": str(bank_path)}
    imagined = ImaginedWorld(IMAGINED_PRESET, batch, **kwargs)
    return real_roll, imagined.run(policy, scenes, steps, seed, keep_frames=keep_frames)


def evaluate_policy(
    cfg: DynaConfig,
    policy: Policy,
    bank_path: str | Path,
    imagined_kwargs: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Real (and, with ``eval.imagined``, imagined) rollouts of ``policy`` on the
    evaluation's scenes (:func:`run_worlds`), summarised."""
    real_roll, roll = run_worlds(
        cfg, policy, bank_path, imagined_kwargs if cfg.eval.imagined else None, seed
    )
    out = {
        "episodes": len(real_roll.succeeded),
        "steps": cfg.eval.steps,
        **summarize("real", real_roll, seed),
    }
    if roll is not None:
        out |= summarize("imagined", roll, seed)
        out["gap_success"] = out["imagined_success"] - out["real_success"]
        out["gap_return"] = out["imagined_return"] - out["real_return"]
        out["agreement"] = float(np.mean(roll.succeeded == real_roll.succeeded))
    return out
