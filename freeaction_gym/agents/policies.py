"""Image feature extractors sized for small frames, and ``policy_kwargs`` from YAML.

SB3's ``NatureCNN`` (8x8/4, 4x4/2, 3x3/1 convolutions) needs frames of at least 36x36;
:class:`SmallCNN` halves the resolution per layer and works from 16x16 up (the tiny test
world models render 32x32, the bundled one 64x64). :class:`DrQEncoder` is the SAC-AE/DrQ
encoder of ``--algo drq`` (:mod:`freeaction_gym.agents.drq`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN
from torch import nn


class ChannelsLastConv2d(nn.Conv2d):
    """``nn.Conv2d`` computed in channels-last memory layout: the same convolution
    (outputs agree to float rounding, same parameters and state dict), about 1.5-2x faster
    forward and backward on CPU for the batch-128 updates SAC makes (oneDNN picks its
    direct NHWC kernels; docs/BENCHMARKS.md). The weight is stored as usual (so
    initialisers and checkpoints see a plain tensor) and laid out per call, a copy of a few
    thousand floats. Input (B, C, H, W) of any layout; output (B, C', H', W') channels-last.
    Used by :class:`DrQEncoder` only: :class:`SmallCNN`'s padded 4x4 stride-2 layers ran
    its batch-8 env-step forward 0.63-0.71x as fast this way (docs/BENCHMARKS.md)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels_last = torch.channels_last
        return self._conv_forward(
            x.contiguous(memory_format=channels_last),
            self.weight.contiguous(memory_format=channels_last),
            self.bias,
        )


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


class DrQEncoder(BaseFeaturesExtractor):
    """The SAC-AE / DrQ image encoder (Yarats et al. 2019, Kostrikov et al. 2020): unpadded
    3x3 convolutions with ReLU (``strides``; DrQ's are (2, 1, 1, 1)), flatten, then a
    projection Linear -> LayerNorm -> tanh to ``features_dim`` (50). Input: channel-first
    images (B, C, H, W) scaled to [0, 1] by SB3 (C = 3 x stacked frames); output
    (B, features_dim) in [-1, 1]. Orthogonal init as DrQ (delta-orthogonal convolutions).

    A Dict observation (``proprio_obs``: ``image`` and ``proprio`` (B, P), P = 4 x stacked
    frames) adds a proprioceptive branch Linear -> LayerNorm -> tanh to ``proprio_dim``
    features, concatenated after the image's: output (B, features_dim + proprio_dim). The
    LayerNorm makes the branch indifferent to the units (hand xyz in m, gripper 0-1).

    The conv trunk (``convs``) and the projections are separate so
    :class:`freeaction_gym.agents.drq.
    DrQPolicy` can give the actor its own projections on the critic's trunk
    (:meth:`tie_convs`)."""

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        features_dim: int = 50,
        channels: tuple[int, ...] = (32, 32, 32, 32),
        strides: tuple[int, ...] = (2, 1, 1, 1),
        proprio_dim: int = 32,
    ) -> None:
        image_space, proprio_space = split_proprio_space(observation_space)
        n_proprio = 0 if proprio_space is None else proprio_dim
        super().__init__(observation_space, features_dim + n_proprio)
        if len(channels) != len(strides):
            raise ValueError(f"channels {channels} and strides {strides} differ in length")
        c_in = image_space.shape[0]
        layers: list[nn.Module] = []
        for c_out, stride in zip(channels, strides, strict=True):
            layers += [ChannelsLastConv2d(c_in, c_out, kernel_size=3, stride=stride), nn.ReLU()]
            c_in = c_out
        self.convs = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            n_flat = self.convs(torch.zeros(1, *image_space.shape)).shape[1]
        self.projection = nn.Sequential(
            nn.Linear(n_flat, features_dim), nn.LayerNorm(features_dim), nn.Tanh()
        )
        self.proprio: nn.Module | None = None
        if proprio_space is not None:
            self.proprio = nn.Sequential(
                nn.Linear(proprio_space.shape[0], proprio_dim), nn.LayerNorm(proprio_dim), nn.Tanh()
            )
        self.detach_convs = False
        self.apply(_drq_init)

    def tie_convs(self, source: DrQEncoder) -> None:
        """Use ``source``'s conv trunk (the same modules, hence weights) without passing
        gradients into it; this encoder keeps its own projections."""
        self.convs = source.convs
        self.detach_convs = True

    def forward(self, observations: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        image = observations["image"] if isinstance(observations, dict) else observations
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_convs):
            h = self.convs(image)  # (B, n_flat)
        features = self.projection(h)  # (B, features_dim)
        if self.proprio is None:
            return features
        return torch.cat([features, self.proprio(observations["proprio"])], dim=1)


def split_proprio_space(space: gym.spaces.Space) -> tuple[gym.spaces.Box, gym.spaces.Box | None]:
    """(image space, proprio space or None) of a Box image or a Dict(image, proprio)
    observation space; ``ValueError`` for any other Dict."""
    if not isinstance(space, gym.spaces.Dict):
        return space, None
    if set(space.spaces) != {"image", "proprio"}:
        raise ValueError(
            f"DrQEncoder takes an image or a Dict with keys image and proprio, got keys "
            f"{sorted(space.spaces)}"
        )
    return space["image"], space["proprio"]


def _drq_init(m: nn.Module) -> None:
    """DrQ's ``weight_init``: orthogonal linear weights; a conv kernel is zero except its
    centre tap, which is orthogonal with the ReLU gain (delta-orthogonal); zero biases."""
    if isinstance(m, nn.Linear):
        nn.init.orthogonal_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        nn.init.zeros_(m.weight)
        centre = m.weight.shape[2] // 2, m.weight.shape[3] // 2
        nn.init.orthogonal_(
            m.weight.data[:, :, centre[0], centre[1]], nn.init.calculate_gain("relu")
        )
        nn.init.zeros_(m.bias)


FEATURE_EXTRACTORS: dict[str, type[BaseFeaturesExtractor]] = {
    "small_cnn": SmallCNN,
    "drq_encoder": DrQEncoder,
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
    kw = dict(out.get("features_extractor_kwargs") or {})
    for key in ("channels", "strides"):
        if key in kw:
            kw[key] = tuple(kw[key])
    if kw:
        out["features_extractor_kwargs"] = kw
    return out
