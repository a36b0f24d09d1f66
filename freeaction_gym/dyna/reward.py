"""Step (c): the imagined env's reward/success signal, refit on the grown dataset.

The signal is the learned head (:class:`~freeaction_gym.rewards.learned.RewardHead`, the
imagined MetaWorld envs' ``reward: learned``), retrained from scratch each iteration by
its own trainer (:func:`~freeaction_gym.training.train_reward_head.train_reward_head`) on
every train transition of the loop dataset (base + collected) with the conv and MLP
widths of the head it replaces; val/test are the base's splits. (``reward.mode: state``
fits nothing: the imagined env then scores MetaWorld's own reward on the robot state the
proprio model integrates over the actions, :mod:`freeaction_gym.rewards.state_reward`.)

A head trained on real frames alone has never seen the world model's blur, and an agent in
imagination finds the blurred frames it overpays. With ``reward.imagined_episodes`` N the
refit also reads an imagined copy (:func:`imagined_copy`, ``freeaction imagine``'s replay):
N train episodes, the newest collected first, then the base's, and the task's val and test
episodes, replayed through this iteration's world model with the agent's sampler and
labelled with the real rewards and success, as the bundled head was trained.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from freeaction_gym.assets import bundled_dir, resolve_model_path
from freeaction_gym.dyna.config import RewardConfig
from freeaction_gym.dyna.dataset import COLLECTED_PATTERN, LoopDataset


def default_head(world_model_init: str) -> Path:
    """``<model>/reward_head`` if the model directory has one, else the bundled head."""
    own = resolve_model_path(world_model_init) / "reward_head"
    return own if (own / "config.json").is_file() else bundled_dir() / "reward_head"


def refit_reward_head(
    cfg: RewardConfig,
    like: str | Path,
    data_root: str | Path | list[str | Path],
    out: str | Path,
    seed: int,
) -> dict:
    """Train a head shaped like the one at ``like`` on ``data_root`` (or a list of roots,
    pooled) into ``out``; returns ``reward_head`` (its directory) and its val/test success
    AUROC and reward MAE."""
    from freeaction_gym.training.train_reward_head import TrainRewardArgs, train_reward_head

    shape = json.loads((Path(like) / "config.json").read_text())["config"]
    args = TrainRewardArgs(
        data=[str(r) for r in (data_root if isinstance(data_root, list) else [data_root])],
        out=str(out),
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        seed=seed,
        max_minutes=cfg.max_minutes,
        eval_every=min(cfg.eval_every, cfg.steps),
        channels=list(shape["channels"]),
        hidden=int(shape["hidden"]),
        oversample_pattern=COLLECTED_PATTERN if cfg.collected_share > 0 else None,
        oversample_share=cfg.collected_share,
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


def replay_choice(dataset: LoopDataset, task: str, n_train: int) -> dict[str, list[Path]]:
    """Episodes to replay per split: ``n_train`` train episodes of ``task``, the newest
    collected first, then the base's in order; every val and test episode of ``task``."""
    from freeaction_gym.data.episodes import list_episodes, task_of_path

    collected = [p for p in reversed(dataset.collected()) if task_of_path(p) == task]
    base = [p for p in list_episodes(dataset.root, "train", [task]) if p.is_symlink()]
    return {
        "train": (collected + base)[:n_train],
        "val": list_episodes(dataset.root, "val", [task]),
        "test": list_episodes(dataset.root, "test", [task]),
    }


def imagined_copy(
    dataset: LoopDataset,
    task: str,
    n_train: int,
    env_kwargs: dict[str, Any],
    out: str | Path,
    seed: int,
    max_actions: int,
) -> dict[str, Any]:
    """Write ``{out}/imagined``: the episodes of :func:`replay_choice` replayed open loop
    through the imagined env ``env_kwargs`` (its model and sampler) for at most
    ``max_actions`` actions, with the real labels. Returns ``out`` (the dataset root), the
    episodes per split and the minutes taken."""
    from freeaction_gym.data.episodes import read_meta, write_json_atomic
    from freeaction_gym.dyna.agent import IMAGINED_PRESET
    from freeaction_gym.evaluation.imagine import ImagineArgs, imagine_dataset

    out = Path(out)
    source, copy = out / "source", out / "imagined"
    for d in (source, copy):  # a rerun after a crash starts clean
        if d.exists():
            shutil.rmtree(d)
    chosen = replay_choice(dataset, task, n_train)
    for split, paths in chosen.items():
        (source / split).mkdir(parents=True)
        for p in paths:
            os.symlink(p.resolve(), source / split / p.name)
    if (dataset.root / "stats.json").is_file():
        shutil.copyfile(dataset.root / "stats.json", source / "stats.json")
    write_json_atomic(source / "meta.json", read_meta(dataset.root))
    env = {k: v for k, v in env_kwargs.items() if k not in ("max_episode_steps", "reset_bank")}
    summary = imagine_dataset(
        ImagineArgs(
            data=str(source),
            out=str(copy),
            preset=IMAGINED_PRESET,
            env_kwargs=env,
            splits=[s for s, paths in chosen.items() if paths],
            tasks=[task],
            max_actions=max_actions,
            seed=seed,
        )
    )
    return {
        "out": str(copy),
        "episodes": {s: len(p) for s, p in chosen.items()},
        "minutes": summary["minutes"],
    }
