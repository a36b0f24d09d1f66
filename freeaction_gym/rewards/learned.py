"""A small CNN that reads reward and success off one frame: :class:`RewardHead`.

The world model only predicts pixels, so an environment built on it needs a separate
reward. :class:`RewardHead` maps the frame reached after an action (uint8 ``(B, H, W, 3)``)
and a task id to ``(reward, success_logit)``; :class:`LearnedReward` wraps it in the
:class:`freeaction_gym.rewards.RewardFunction` interface. Trained by
:mod:`freeaction_gym.training.train_reward_head`.

Saved as ``{dir}/model.safetensors`` + ``{dir}/config.json``; the config carries the task
names and the reward normalisation, so :meth:`RewardHead.from_pretrained` needs no flags.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from freeaction_gym.utils.small_models import conv_encoder, load_small_model, save_small_model


@dataclass
class RewardHeadConfig:
    """Architecture, task vocabulary and reward normalisation of a :class:`RewardHead`."""

    tasks: list[str] = field(default_factory=lambda: ["reach-v3", "push-v3", "pick-place-v3"])
    """Task names; ``task_ids`` index this list."""
    channels: tuple[int, ...] = (32, 64, 64, 64)
    """Output channels of the stride-2 conv layers (64x64 input -> 4x4 after four)."""
    pool_size: int = 4
    """Feature maps are average-pooled to ``pool_size x pool_size`` (any input size works)."""
    task_dim: int = 16
    """Width of the task embedding."""
    hidden: int = 128
    """Width of the MLP hidden layer."""
    reward_mean: float = 0.0
    """Train-set reward mean (original units); the network predicts ``(r - mean) / std``."""
    reward_std: float = 1.0
    """Train-set reward std (original units)."""

    def __post_init__(self) -> None:
        self.tasks, self.channels = list(self.tasks), tuple(self.channels)
        if not self.tasks:
            raise ValueError("RewardHeadConfig.tasks must name at least one task")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"RewardHeadConfig.tasks has duplicates: {self.tasks}")
        if not self.channels:
            raise ValueError("RewardHeadConfig.channels must have at least one layer")
        if not self.reward_std > 0:
            raise ValueError(f"reward_std must be > 0, got {self.reward_std}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


class RewardHead(nn.Module):
    """Frame + task -> (reward in original units, success logit).

    Conv(3x3, stride 2) + GroupNorm + SiLU blocks, adaptive average pooling to a fixed grid
    (so spatial layout - where the gripper, object and goal marker are - survives), then an
    MLP on ``[features, task embedding]`` with two outputs: normalised reward and success
    logit.
    """

    def __init__(self, config: RewardHeadConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or RewardHeadConfig()
        self.encoder, width = conv_encoder(3, cfg.channels, cfg.pool_size)
        self.task_embed = nn.Embedding(len(cfg.tasks), cfg.task_dim)
        self.mlp = nn.Sequential(
            nn.Linear(width + cfg.task_dim, cfg.hidden),
            nn.SiLU(),
            nn.Linear(cfg.hidden, 2),
        )
        self.register_buffer("reward_mean", torch.tensor(float(cfg.reward_mean)), persistent=False)
        self.register_buffer("reward_std", torch.tensor(float(cfg.reward_std)), persistent=False)

    @property
    def tasks(self) -> list[str]:
        return self.config.tasks

    def task_id(self, task: str) -> int:
        """Index of ``task`` in :attr:`tasks` (clear error for unknown tasks)."""
        try:
            return self.config.tasks.index(task)
        except ValueError:
            raise KeyError(
                f"task {task!r} unknown to this reward head; it knows {self.config.tasks}"
            ) from None

    def forward_normalized(
        self, frames: torch.Tensor, task_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``frames`` uint8 (B, H, W, 3), ``task_ids`` long (B,) -> (normalised reward (B,),
        success logit (B,)). The training loss is taken on these outputs."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (B, H, W, 3), got {tuple(frames.shape)}")
        if task_ids.shape != frames.shape[:1]:
            raise ValueError(
                f"task_ids must have shape ({frames.shape[0]},), got {tuple(task_ids.shape)}"
            )
        x = frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (B, 3, H, W) in [-1, 1]
        h = self.encoder(x)  # (B, C * pool^2)
        h = torch.cat([h, self.task_embed(task_ids.long())], dim=1)  # (B, C * pool^2 + D)
        out = self.mlp(h)  # (B, 2)
        return out[:, 0], out[:, 1]

    def forward(
        self, frames: torch.Tensor, task_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(reward (B,) in the dataset's units, success logit (B,))."""
        reward_norm, logit = self.forward_normalized(frames, task_ids)
        return reward_norm * self.reward_std + self.reward_mean, logit

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``model.safetensors`` + ``config.json`` into ``directory`` (created)."""
        return save_small_model(self, directory, "RewardHead", self.config.to_dict())

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu"):
        """Rebuild a head saved by :meth:`save_pretrained` (in eval mode)."""
        head = load_small_model(
            directory, cls, RewardHeadConfig, "reward head",
            f"freeaction train-reward --data DIR --out {directory}",
        )  # fmt: skip
        return head.to(device)


class LearnedReward:
    """:class:`~freeaction_gym.rewards.RewardFunction` from a :class:`RewardHead`.

    Reads the new observation ``frames`` only (``latents`` and ``goal_latents`` are
    ignored). Success is ``sigmoid(logit) > success_threshold``.
    """

    def __init__(self, head: RewardHead, success_threshold: float = 0.5) -> None:
        if not 0.0 < success_threshold < 1.0:
            raise ValueError(f"success_threshold must be in (0, 1), got {success_threshold}")
        self.head = head.eval()
        self.success_threshold = success_threshold

    @classmethod
    def from_pretrained(cls, directory: str | Path, success_threshold: float = 0.5, device="cpu"):
        return cls(RewardHead.from_pretrained(directory, device), success_threshold)

    @torch.inference_mode()
    def __call__(
        self, frames: Tensor, latents: Tensor, goal_latents: Tensor | None, task_ids: Tensor
    ) -> tuple[Tensor, Tensor]:
        device = self.head.reward_std.device
        reward, logit = self.head(frames.to(device), task_ids.to(device))
        success = torch.sigmoid(logit) > self.success_threshold
        return reward.float().to(frames.device), success.to(frames.device)
