"""One loader for every world model a user can point at: our own directories (including
``bundled:<name>``) and released IRASim checkpoints (``.pt``) with their SDXL VAE."""

from __future__ import annotations

from pathlib import Path

from freeaction_gym.assets import resolve_model_path
from freeaction_gym.models.checkpoint import CheckpointError, read_config_json
from freeaction_gym.world_model.model import DiffusionConfig, WorldModel


def load_world_model(
    model: str | Path, vae: str | Path | None = None, irasim: bool | None = None
) -> WorldModel:
    """``model``: a directory written by ``WorldModel.save_pretrained`` / ``freeaction train``,
    ``bundled:<name>``, or an IRASim checkpoint file (needs ``vae``: a diffusers
    AutoencoderKL directory, e.g. SDXL's ``vae/``). ``irasim`` None decides by the ``.pt``
    suffix. Returns the model in eval mode. A missing path raises ``FileNotFoundError``, an
    unreadable or inconsistent file ``CheckpointError`` naming it."""
    if not isinstance(model, str | Path):
        raise TypeError(
            f"model must be a path or 'bundled:<name>', got {type(model).__name__} {model!r}"
        )
    if irasim if irasim is not None else str(model).endswith(".pt"):
        from freeaction_gym.models.autoencoder import VideoAutoencoder
        from freeaction_gym.models.checkpoint import load_irasim_checkpoint

        if vae is None:
            raise ValueError(
                f"IRASim checkpoint {model} needs its autoencoder: pass the diffusers "
                "AutoencoderKL directory (SDXL's vae/) as vae"
            )
        dit = load_irasim_checkpoint(model)
        codec = VideoAutoencoder.from_pretrained(vae)
        return WorldModel(dit, codec, DiffusionConfig(), {}).eval()
    path = resolve_model_path(model)
    expected = (
        "a world model is a directory of config.json + model.safetensors written by "
        "`freeaction train` (or 'bundled:metaworld_default', the bundled one)"
    )
    if path.is_file():
        irasim_hint = (
            "; an IRASim .pt checkpoint runs on the IRASim ids (FreeActionRT1-v0, ...) or with "
            "model_format='irasim' and its VAE directory as vae"
        )
        raise CheckpointError(
            f"{path} is not a valid world-model checkpoint: it is a file, and {expected}"
            + (irasim_hint if path.suffix == ".pt" else "")
        )
    if not path.exists():
        raise FileNotFoundError(
            f"no world model at {path} (nothing there; {expected}), or pass an IRASim .pt "
            "checkpoint together with its VAE directory"
        )
    if not (path / "config.json").is_file():
        inside = sorted(q.name + ("/" if q.is_dir() else "") for q in path.iterdir())[:10]
        raise FileNotFoundError(
            f"{path} is not a world-model directory: it lacks config.json (it holds {inside}; "
            f"{expected})"
        )
    config = path / "config.json"
    meta = read_config_json(config)
    if not isinstance(meta.get("diffusion", {}), dict) or not isinstance(
        meta.get("stats", {}), dict
    ):
        raise CheckpointError(f"{config}: 'diffusion' and 'stats' must be JSON objects")
    try:
        return WorldModel.from_pretrained(path)
    except (TypeError, ValueError, KeyError) as err:  # e.g. an unknown diffusion setting
        raise CheckpointError(f"{config}: cannot rebuild the world model ({err})") from err
