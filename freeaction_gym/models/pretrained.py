"""The network a model directory holds, whichever class wrote it: a plain
:class:`~freeaction_gym.models.dit.VideoDiT` (:func:`~freeaction_gym.models.checkpoint.
save_pretrained_dit`) or an :class:`~freeaction_gym.models.avid.AVIDModel` (its
``config.json`` says ``"class": "AVIDModel"``)."""

from __future__ import annotations

from pathlib import Path

from freeaction_gym.models.avid import AVIDModel
from freeaction_gym.models.checkpoint import load_video_dit, model_files, read_config_json
from freeaction_gym.models.dit import VideoDiT


def load_pretrained_dit(directory: str | Path) -> VideoDiT | AVIDModel:
    """Rebuild the model saved in ``directory`` (``model.safetensors`` + ``config.json``),
    in eval mode; :class:`~freeaction_gym.models.checkpoint.CheckpointError` naming the file
    and the cause otherwise."""
    _, cfg_file = model_files(directory)
    if read_config_json(cfg_file).get("class") == "AVIDModel":
        return AVIDModel.from_pretrained(directory)
    return load_video_dit(directory)
