"""World model = frame codec + video DiT + diffusion parameterisation + FreeAction sampler."""

from freeaction_gym.world_model.codec import PixelCodec, load_codec
from freeaction_gym.world_model.loading import load_world_model
from freeaction_gym.world_model.model import (
    DiffusionConfig,
    SamplingConfig,
    WorldModel,
    lookup_mu_act,
)

__all__ = [
    "DiffusionConfig",
    "PixelCodec",
    "SamplingConfig",
    "WorldModel",
    "load_codec",
    "load_world_model",
    "lookup_mu_act",
]
