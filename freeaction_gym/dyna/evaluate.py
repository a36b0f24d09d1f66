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


def score_head(head, task: str, roll: Rollouts, truth: np.ndarray, batch: int = 256) -> dict:
    """What a learned reward head (a ``LearnedReward`` or its saved directory) credits
    ``roll`` (kept frames) with: mean summed reward
    (``return``), success rate (success at any step) and the share of scenes whose success
    agrees with ``truth`` (bool (N,), the real simulator's), from the frames after each
    action, ``batch`` frames per head call."""
    import torch

    from freeaction_gym.rewards.learned import LearnedReward

    if not isinstance(head, LearnedReward):
        head = LearnedReward.from_pretrained(head)
    task_id = torch.tensor([head.head.config.tasks.index(task)])
    frames = torch.from_numpy(roll.frames[:, 1:]).flatten(0, 1)  # (N * T, H, W, 3) uint8
    n, t = roll.frames.shape[0], roll.frames.shape[1] - 1
    chunks = [
        head(frames[i : i + batch], None, None, task_id.expand(len(frames[i : i + batch])))
        for i in range(0, n * t, batch)
    ]  # bounded memory for many long episodes
    reward = torch.cat([r for r, _ in chunks]).reshape(n, t)
    succeeded = torch.cat([s for _, s in chunks]).reshape(n, t).numpy().any(axis=1)
    return {
        "return": round(float(reward.sum(1).mean()), 1),
        "success": float(succeeded.mean()),
        "agrees_with_real_success": float(np.mean(succeeded == truth)),
    }


def evaluate_policy(
    cfg: DynaConfig,
    policy: Policy,
    bank_path: str | Path,
    imagined_kwargs: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Real (and, with ``eval.imagined``, imagined) rollouts of ``policy`` on the
    evaluation's scenes (:func:`run_worlds`), summarised. With a learned reward head the
    head also scores the real frames (``head_on_real_*``): what it credits where the
    simulator's answer is known, so a head the agent fools shows up apart from the video
    model."""
    learned = imagined_kwargs.get("reward") == "learned" and imagined_kwargs.get("reward_head")
    real_roll, roll = run_worlds(
        cfg, policy, bank_path, imagined_kwargs if cfg.eval.imagined else None, seed,
        keep_frames=bool(learned),
    )  # fmt: skip
    out = {
        "episodes": len(real_roll.succeeded),
        "steps": cfg.eval.steps,
        **summarize("real", real_roll, seed),
    }
    if learned:
        scored = score_head(
            imagined_kwargs["reward_head"], cfg.task, real_roll, real_roll.succeeded
        )
        out |= {
            "head_on_real_success": scored["success"],
            "head_on_real_return": scored["return"],
            "head_on_real_agreement": scored["agrees_with_real_success"],
        }
    if roll is not None:
        out |= summarize("imagined", roll, seed)
        out["gap_success"] = out["imagined_success"] - out["real_success"]
        out["gap_return"] = out["imagined_return"] - out["real_return"]
        out["agreement"] = float(np.mean(roll.succeeded == real_roll.succeeded))
    return out
