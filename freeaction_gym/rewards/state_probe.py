"""The state probe: a small CNN that reads the robot's state off one frame.

Trained on real frames (:mod:`freeaction_gym.training.train_probe`), it reads imagined
frames in two places: the fidelity metrics (:mod:`freeaction_gym.evaluation.probe`: is the
hand where the real hand is) and the imagined env's ``success: state`` signal
(:mod:`freeaction_gym.rewards.state_success`). State layout
(``freeaction_gym.data.metaworld_env.STATE_NAMES``): hand xyz (m), gripper opening
(MetaWorld's normalised finger distance, ~0 closed .. 1 open), object xyz (m).

Saved as ``{dir}/model.safetensors`` + ``{dir}/config.json``; the config carries the state
names and the train-set normalisation, so :meth:`StateProbe.from_pretrained` needs no flags.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from freeaction_gym.data.metaworld_env import STATE_NAMES
from freeaction_gym.utils.small_models import conv_encoder, load_small_model, save_small_model


@dataclass
class StateProbeConfig:
    """Architecture and target normalisation of a :class:`StateProbe`."""

    names: list[str] = field(default_factory=lambda: list(STATE_NAMES))
    """State columns the probe predicts (in this order)."""
    channels: tuple[int, ...] = (32, 64, 96, 128)
    """Output channels of the stride-2 conv blocks (64x64 input -> 4x4 after four)."""
    pool_size: int = 4
    """Feature maps are average-pooled to ``pool_size x pool_size`` before the MLP, so the
    flattened features keep *where* things are (and any input size works)."""
    hidden: int = 256
    """Width of the MLP hidden layer."""
    state_mean: list[float] = field(default_factory=lambda: [0.0] * len(STATE_NAMES))
    """Train-set mean of each column (state units); the network predicts ``(s - mean) / std``."""
    state_std: list[float] = field(default_factory=lambda: [1.0] * len(STATE_NAMES))
    """Train-set std of each column (state units), floored so constant columns stay finite."""

    def __post_init__(self) -> None:
        self.names, self.channels = list(self.names), tuple(self.channels)
        self.state_mean = [float(v) for v in self.state_mean]
        self.state_std = [float(v) for v in self.state_std]
        if not self.channels:
            raise ValueError("StateProbeConfig.channels must have at least one layer")
        if not len(self.names) == len(self.state_mean) == len(self.state_std):
            raise ValueError(
                f"StateProbeConfig: {len(self.names)} names, {len(self.state_mean)} means and "
                f"{len(self.state_std)} stds must have one entry per state column"
            )
        if not all(s > 0 for s in self.state_std):
            raise ValueError(f"StateProbeConfig.state_std must be > 0, got {self.state_std}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


class StateProbe(nn.Module):
    """uint8 frames (B, H, W, 3) -> state (B, S) in state units.

    Conv(3x3, stride 2) + GroupNorm + SiLU blocks, adaptive average pooling to a fixed grid,
    then a two-layer MLP. The same design as the reward head
    (:class:`freeaction_gym.rewards.learned.RewardHead`), without the task input: the
    state is read from pixels alone.
    """

    def __init__(self, config: StateProbeConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or StateProbeConfig()
        self.encoder, width = conv_encoder(3, cfg.channels, cfg.pool_size)
        self.mlp = nn.Sequential(
            nn.Linear(width, cfg.hidden),
            nn.SiLU(),
            nn.Linear(cfg.hidden, len(cfg.names)),
        )
        self.register_buffer("state_mean", torch.tensor(cfg.state_mean), persistent=False)
        self.register_buffer("state_std", torch.tensor(cfg.state_std), persistent=False)

    def forward_normalized(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> normalised state (B, S); the training loss is taken here."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (B, H, W, 3), got {tuple(frames.shape)}")
        x = frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (B, 3, H, W) in [-1, 1]
        return self.mlp(self.encoder(x))  # (B, S)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """State (B, S) in state units (m for positions)."""
        return self.forward_normalized(frames) * self.state_std + self.state_mean

    def normalize(self, states: torch.Tensor) -> torch.Tensor:
        """States (B, S) in state units -> the network's target space."""
        return (states - self.state_mean) / self.state_std

    def save_pretrained(self, directory: str | Path, extra: dict | None = None) -> Path:
        """Write ``model.safetensors`` + ``config.json`` (with ``extra`` metadata, e.g. the
        training data) into ``directory`` (created)."""
        return save_small_model(self, directory, "StateProbe", self.config.to_dict(), extra)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> StateProbe:
        """Rebuild a probe saved by :meth:`save_pretrained` (CPU, eval mode)."""
        return load_small_model(
            directory,
            cls,
            StateProbeConfig,
            "state probe",
            f"freeaction train-probe --data DATA --out {directory}",
        )


@torch.inference_mode()
def predict_states(probe: StateProbe, frames: np.ndarray, batch: int = 512) -> np.ndarray:
    """uint8 (N, H, W, 3) -> float64 (N, S) predicted states in state units."""
    x = torch.from_numpy(np.ascontiguousarray(frames))
    if len(x) == 0:
        return np.zeros((0, len(probe.config.names)))
    was_training = probe.training
    probe.eval()
    out = torch.cat([probe(x[i : i + batch]) for i in range(0, len(x), batch)])
    probe.train(was_training)
    return out.double().numpy()
