"""Step (b): fine-tune the world model from its last weights on the grown dataset.

A thin client of the world-model trainer (:func:`~freeaction_gym.training.train_dit.
train_dit`): :func:`finetune_config` writes the :class:`~freeaction_gym.training.config.
TrainConfig` of one fine-tune - the model section and the diffusion settings of the weights
it starts from (``loop.init_from``), the data/optim settings of the YAML that trained them,
the loop dataset as ``data.root`` (replay: the trainer samples windows from the base and
the collected train episodes, the latter with probability ``collected_share``) and a fixed
budget of steps and/or minutes. The trainer's own checkpoint makes an interrupted fine-tune
resume where it stopped.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml

from freeaction_gym.assets import resolve_model_path
from freeaction_gym.dyna.config import WorldModelConfig, merge
from freeaction_gym.dyna.dataset import COLLECTED_PATTERN
from freeaction_gym.training.config import TrainConfig, config_from_dict


def finetune_config(
    cfg: WorldModelConfig, init: str | Path, data_root: str | Path, out: str | Path, seed: int
) -> TrainConfig:
    """The training config of one fine-tune of the model at ``init`` into ``out``."""
    init_dir = resolve_model_path(init)
    meta = json.loads((init_dir / "config.json").read_text())
    if meta.get("class") == "AVIDModel":
        raise ValueError(f"{init_dir} is an AVID adapter; the dyna loop fine-tunes plain DiTs")
    d: dict[str, Any] = {}
    if cfg.train_config is not None:
        d = yaml.safe_load(Path(cfg.train_config).read_text()) or {}
    if d.get("kind", "dit") != "dit" or d.get("avid") is not None:
        raise ValueError(f"world_model.train_config={cfg.train_config} is not a plain DiT run")
    model = dict(meta["config"])
    n_ctx = int(model.get("num_context_frames", 1))
    data = {"clip_frames": int(model["num_frames"]), "min_clip_frames": n_ctx + 1}
    d = merge({"data": data}, d)
    loop = merge(d.get("loop", {}), {"eval_every": 0})  # rollout metrics: only if asked
    d = merge(merge(d, {"loop": loop}), cfg.overrides)
    loop = d["loop"]
    d = merge(
        d,
        {
            "kind": "dit",
            "codec": "pixel" if meta.get("codec", "pixel") == "pixel" else str(init_dir / "vae"),
            "diffusion": meta.get("diffusion", {}),  # incl. the measured delta_scale
            "data": {
                "root": str(data_root),
                "format": "metaworld",
                "oversample_pattern": COLLECTED_PATTERN if cfg.collected_share > 0 else None,
                "oversample_share": cfg.collected_share,
            },
            "optim": {"steps": cfg.steps, "seed": seed, "ema_decay": cfg.ema_decay},
            "loop": {
                "output": str(out),
                "init_from": str(init_dir),
                "max_minutes": cfg.max_minutes,
                "checkpoint_every": min(cfg.steps, int(loop.get("checkpoint_every", 200))),
                "log_every": min(cfg.steps, int(loop.get("log_every", 10))),
            },
        },
    )
    d["model"] = model  # exactly the saved network (not the YAML's), so the weights load
    return config_from_dict(d)


def finetune(
    cfg: WorldModelConfig, init: str | Path, data_root: str | Path, out: str | Path, seed: int
) -> dict:
    """Run (or resume) one fine-tune; returns ``model`` (the exported directory),
    ``steps`` done, the last logged ``loss`` and ``init``."""
    from freeaction_gym.training.train_dit import train_dit

    train_cfg = finetune_config(cfg, init, data_root, out, seed)
    model_dir = train_dit(train_cfg, resume=True)
    rows = list(csv.DictReader(open(Path(out) / "log.csv")))
    last = rows[-1] if rows else {}
    return {
        "model": str(model_dir),
        "init": str(init),
        "steps": int(last.get("step", 0)),
        "loss": float(last["loss"]) if last else float("nan"),
    }


__all__ = ["finetune", "finetune_config"]
