"""Networks: the IRASim video DiT, its presets and checkpoint I/O, the AVID adapter and the
autoencoder."""

from freeaction_gym.models.avid import AVIDConfig, AVIDModel
from freeaction_gym.models.checkpoint import (
    CheckpointError,
    load_irasim_checkpoint,
    save_pretrained_dit,
)
from freeaction_gym.models.dit import DiTConfig, VideoDiT, count_parameters
from freeaction_gym.models.presets import SIZES, dit_config, irasim_config, irasim_dit
from freeaction_gym.models.pretrained import load_pretrained_dit

__all__ = [
    "AVIDConfig",
    "AVIDModel",
    "SIZES",
    "CheckpointError",
    "DiTConfig",
    "VideoDiT",
    "count_parameters",
    "dit_config",
    "irasim_config",
    "irasim_dit",
    "load_irasim_checkpoint",
    "load_pretrained_dit",
    "save_pretrained_dit",
]
