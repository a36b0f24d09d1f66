"""Image feature extractors sized for small frames, and ``policy_kwargs`` from YAML.

SB3's ``NatureCNN`` (8x8/4, 4x4/2, 3x3/1 convolutions) needs frames of at least 36x36;
:class:`SmallCNN` halves the resolution per layer and works from 16x16 up (the tiny test
world models render 32x32, the bundled one 64x64).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN
from torch import nn


class SmallCNN(BaseFeaturesExtractor):
    """``len(channels)`` 4x4 stride-2 convolutions (ReLU), flatten, linear to
    ``features_dim``. Input: channel-first images (B, C, H, W) scaled to [0, 1] by SB3;
    64x64 frames reach a 4x4 grid with the default four layers."""

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        features_dim: int = 256,
        channels: tuple[int, ...] = (32, 64, 64, 64),
    ) -> None:
        super().__init__(observation_space, features_dim)
        c_in, h, w = observation_space.shape
        if min(h, w) < 2 ** len(channels):
            raise ValueError(
                f"SmallCNN with {len(channels)} stride-2 layers needs frames of at least "
                f"{2 ** len(channels)} px, got {h}x{w}: use fewer channels"
            )
        layers: list[nn.Module] = []
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            c_in = c_out
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            n_flat = self.cnn(torch.zeros(1, *observation_space.shape)).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(observations))  # (B, features_dim)


FEATURE_EXTRACTORS: dict[str, type[BaseFeaturesExtractor]] = {
    "small_cnn": SmallCNN,
    "nature_cnn": NatureCNN,
}
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}


def policy_kwargs_from_config(cfg: dict[str, Any] | None) -> dict[str, Any]:
    """YAML ``policy_kwargs`` -> SB3 ``policy_kwargs``: ``features_extractor: small_cnn``
    becomes ``features_extractor_class``, ``activation_fn: relu`` becomes ``nn.ReLU``; other
    keys (``net_arch``, ``features_extractor_kwargs``, ...) pass through."""
    out = dict(cfg or {})
    name = out.pop("features_extractor", None)
    if name is not None:
        if name not in FEATURE_EXTRACTORS:
            raise ValueError(
                f"unknown features_extractor {name!r}; choose one of {sorted(FEATURE_EXTRACTORS)}"
            )
        out["features_extractor_class"] = FEATURE_EXTRACTORS[name]
    if isinstance(out.get("activation_fn"), str):
        act = out["activation_fn"]
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown activation_fn {act!r}; choose one of {sorted(ACTIVATIONS)}")
        out["activation_fn"] = ACTIVATIONS[act]
    if "features_extractor_kwargs" in out and "channels" in out["features_extractor_kwargs"]:
        kw = dict(out["features_extractor_kwargs"])
        kw["channels"] = tuple(kw["channels"])
        out["features_extractor_kwargs"] = kw
    return out
