"""Save/load of the small helper networks (reward head, state probe, proprio dynamics):
``model.safetensors`` + ``config.json`` holding ``{"class", "config", **extra}``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import torch
from safetensors.torch import save_file

from freeaction_gym.models.checkpoint import (
    CheckpointError,
    load_safetensors,
    load_state_dict_strict,
    read_config_json,
)

WEIGHTS_NAME, CONFIG_NAME = "model.safetensors", "config.json"
M = TypeVar("M", bound=torch.nn.Module)


def conv_encoder(in_channels: int, channels, pool_size: int) -> tuple[torch.nn.Sequential, int]:
    """The small networks' image encoder and its output width: Conv(3x3, stride 2) +
    GroupNorm (8 groups, 1 when a width is not a multiple of 8) + SiLU per entry of
    ``channels``, adaptive average pooling to ``pool_size`` x ``pool_size`` (so where things
    are survives) and a flatten. (B, in_channels, H, W) -> (B, channels[-1] * pool_size**2)."""
    from torch import nn

    layers: list[nn.Module] = []
    c_in = in_channels
    for c in channels:
        groups = 8 if c % 8 == 0 else 1
        layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(groups, c), nn.SiLU()]
        c_in = c
    encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(pool_size), nn.Flatten())
    return encoder, c_in * pool_size**2


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
    directory: str | Path, model_cls: type[M], config_cls: type, what: str, train_hint: str
) -> M:
    """Rebuild a ``model_cls(config_cls(**config))`` saved by :func:`save_small_model`, on
    the CPU in eval mode. Errors name the file: a missing file (with ``train_hint``, the
    command that makes one), a config of another class or with unknown fields, weights that
    are unreadable, non-finite or do not fit the config."""
    directory = Path(directory)
    missing = [n for n in (WEIGHTS_NAME, CONFIG_NAME) if not (directory / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{what} directory {directory} lacks {', '.join(missing)}; train one with "
            f"`{train_hint}`"
        )
    path = directory / CONFIG_NAME
    meta = read_config_json(path, required=("class", "config"))
    name = model_cls.__name__
    if meta["class"] != name or not isinstance(meta["config"], dict):
        raise CheckpointError(f"{path} is not a {name} config (class {meta['class']!r})")
    try:
        model = model_cls(config_cls(**meta["config"]))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: bad {name} config ({err})") from err
    load_state_dict_strict(model, load_safetensors(directory / WEIGHTS_NAME), str(directory))
    return model.eval()
