"""Save/load of the small helper networks (state probe, proprio dynamics):
``model.safetensors`` + ``config.json`` holding ``{"class", "config", **extra}``."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHTS_NAME, CONFIG_NAME = "model.safetensors", "config.json"


def save_small_model(
    model: torch.nn.Module, directory: str | Path, class_name: str, config: dict, extra=None
) -> Path:
    """Write the weights and ``{"class": class_name, "config": config, **extra}``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(directory / WEIGHTS_NAME))
    meta = {"class": class_name, "config": config, **(extra or {})}
    (directory / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")
    return directory


def load_small_model(
    directory: str | Path, class_name: str, what: str, train_hint: str
) -> tuple[dict, dict[str, torch.Tensor]]:
    """(saved config dict, state dict) of a ``class_name`` saved by :func:`save_small_model`;
    a missing file names itself and ``train_hint`` (the command that makes one)."""
    directory = Path(directory)
    missing = [n for n in (WEIGHTS_NAME, CONFIG_NAME) if not (directory / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{what} directory {directory} lacks {', '.join(missing)}; train one with "
            f"`{train_hint}`"
        )
    meta = json.loads((directory / CONFIG_NAME).read_text())
    if meta.get("class") != class_name or "config" not in meta:
        raise ValueError(f"{directory / CONFIG_NAME} is not a {class_name} config")
    return meta["config"], load_file(str(directory / WEIGHTS_NAME))
