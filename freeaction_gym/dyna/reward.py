"""Step (c): the imagined env's reward/success signal, refit on the grown dataset.

The signal is the learned head (:class:`~freeaction_gym.rewards.learned.RewardHead`, the
imagined MetaWorld envs' ``reward: learned``), retrained from scratch each iteration by
its own trainer (:func:`~freeaction_gym.training.train_reward_head.train_reward_head`) on
every train transition of the loop dataset (base + collected) with the conv and MLP
widths of the head it replaces; val/test are the base's splits. Reward from a predicted robot state
would need a state read-out of imagined frames that the env does not have yet (the state
probe of ``freeaction train-probe`` is an evaluation tool, and MetaWorld's reward also
needs the goal position), so the head it is.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from freeaction_gym.assets import bundled_dir, resolve_model_path
from freeaction_gym.dyna.config import RewardConfig


def default_head(world_model_init: str) -> Path:
    """``<model>/reward_head`` if the model directory has one, else the bundled head."""
    own = resolve_model_path(world_model_init) / "reward_head"
    return own if (own / "config.json").is_file() else bundled_dir() / "reward_head"


def refit_reward_head(
    cfg: RewardConfig, like: str | Path, data_root: str | Path, out: str | Path, seed: int
) -> dict:
    """Train a head shaped like the one at ``like`` on ``data_root`` into ``out``; returns
    ``reward_head`` (its directory) and its val/test success AUROC and reward MAE."""
    from freeaction_gym.training.train_reward_head import TrainRewardArgs, train_reward_head

    shape = json.loads((Path(like) / "config.json").read_text())["config"]
    args = TrainRewardArgs(
        data=[str(data_root)],
        out=str(out),
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        seed=seed,
        max_minutes=cfg.max_minutes,
        eval_every=min(cfg.eval_every, cfg.steps),
        channels=list(shape["channels"]),
        hidden=int(shape["hidden"]),
    )
    metrics = train_reward_head(args)

    def clean(x: float) -> float | None:  # JSON has no NaN (AUROC of a one-class split)
        return None if math.isnan(x) else float(x)

    return {
        "reward_head": str(out),
        "steps": int(metrics["steps_done"]),
        **{
            f"{split}_{key}": clean(metrics[split][key])
            for split in ("val", "test")
            for key in ("success_auroc", "reward_mae")
        },
    }
