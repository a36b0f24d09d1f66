"""Save / load a PAD policy: ``pad.safetensors`` (weights) + ``pad.json`` (config, stats)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from safetensors.torch import load_file, save_file

from freeaction_gym.models.checkpoint import load_state_dict_strict
from freeaction_gym.pad.data import DemoStats
from freeaction_gym.pad.model import PADConfig, PADDiT

WEIGHTS, META = "pad.safetensors", "pad.json"


def save_pad(
    model: PADDiT, stats: DemoStats, directory: str | Path, extra: dict | None = None
) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(directory / WEIGHTS))
    meta = {"config": model.config.to_dict(), "stats": asdict(stats)} | (extra or {})
    (directory / META).write_text(json.dumps(meta, indent=1))
    return directory


def load_pad(directory: str | Path) -> tuple[PADDiT, DemoStats, dict]:
    """(model in eval mode, normalisation stats, the whole metadata dict)."""
    directory = Path(directory)
    for name in (WEIGHTS, META):
        if not (directory / name).is_file():
            raise FileNotFoundError(
                f"no PAD policy at {directory} (missing {name}); train one with "
                "`freeaction pad-train --data <demos root> --out <run>` (it writes <run>/policy)"
            )
    meta = json.loads((directory / META).read_text())
    model = PADDiT(PADConfig(**meta["config"]))
    load_state_dict_strict(model, load_file(str(directory / WEIGHTS)), str(directory))
    return model.eval(), DemoStats(**meta["stats"]), meta
