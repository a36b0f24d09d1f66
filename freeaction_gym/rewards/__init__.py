"""Rewards for the world-model environment.

The environment calls one :class:`RewardFunction` after each step with the new observation
(pixels and latent), the goal latent (if the env has one) and the task ids:

    reward, success = reward_fn(frames, latents, goal_latents, task_ids)

    frames        uint8   (B, H, W, 3)   the new observation
    latents       float   (B, C, h, w)   its latent frame (codec-scaled)
    goal_latents  float   (B, C, h, w)   or None
    task_ids      long    (B,)
    reward        float32 (B,)
    success       bool    (B,)

Implementations: :class:`LearnedReward` (a trained :class:`RewardHead`),
:class:`GoalLatentReward` (negative latent distance to a goal), :class:`CallableReward`
(any user function, outputs checked) and :class:`ZeroReward`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from freeaction_gym.rewards.goal import GoalLatentReward, mean_squared_latent_distance
from freeaction_gym.rewards.learned import LearnedReward, RewardHead, RewardHeadConfig


@runtime_checkable
class RewardFunction(Protocol):
    """``(frames, latents, goal_latents, task_ids) -> (reward float32 (B,), success bool (B,))``
    (shapes and units in the module docstring)."""

    def __call__(
        self, frames: Tensor, latents: Tensor, goal_latents: Tensor | None, task_ids: Tensor
    ) -> tuple[Tensor, Tensor]: ...


def check_reward_output(
    out: object, batch_size: int, name: str = "reward function"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``(reward, success)``; return them as float32 / bool tensors.

    Raises ``TypeError`` / ``ValueError`` naming ``name`` and what was expected: a tuple of
    two tensors, reward floating point of shape (B,) and finite, success bool of shape (B,).
    """
    expect = f"{name} must return (reward float (B,), success bool (B,)) with B={batch_size}"
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise TypeError(f"{expect}; got {type(out).__name__}")
    reward, success = out
    for label, t in (("reward", reward), ("success", success)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(
                f"{expect}; {label} is a {type(t).__name__}, not a torch.Tensor "
                "(wrap it with torch.as_tensor)"
            )
        if tuple(t.shape) != (batch_size,):
            raise ValueError(f"{expect}; {label} has shape {tuple(t.shape)}")
    if not reward.is_floating_point():
        raise TypeError(f"{expect}; reward has dtype {reward.dtype}, not a float dtype")
    if success.dtype != torch.bool:
        raise TypeError(
            f"{expect}; success has dtype {success.dtype}, not torch.bool (use e.g. `x > 0.5`)"
        )
    if not torch.isfinite(reward).all():
        raise ValueError(f"{expect}; reward has non-finite values {reward.tolist()}")
    return reward.to(torch.float32), success


class CallableReward:
    """Wrap any callable with the :class:`RewardFunction` signature; its outputs are
    validated by :func:`check_reward_output` on every call."""

    def __init__(self, fn: Callable[..., object], name: str | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"CallableReward needs a callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__qualname__", type(fn).__name__)

    def __call__(
        self, frames: Tensor, latents: Tensor, goal_latents: Tensor | None, task_ids: Tensor
    ) -> tuple[Tensor, Tensor]:
        out = self.fn(frames, latents, goal_latents, task_ids)
        return check_reward_output(out, frames.shape[0], f"reward function {self.name!r}")


class ZeroReward:
    """Reward 0 and never success (pure world-model exploration / video generation)."""

    def __call__(
        self, frames: Tensor, latents: Tensor, goal_latents: Tensor | None, task_ids: Tensor
    ) -> tuple[Tensor, Tensor]:
        b = frames.shape[0]
        return (
            torch.zeros(b, dtype=torch.float32, device=frames.device),
            torch.zeros(b, dtype=torch.bool, device=frames.device),
        )


__all__ = [
    "CallableReward",
    "GoalLatentReward",
    "LearnedReward",
    "RewardFunction",
    "RewardHead",
    "RewardHeadConfig",
    "ZeroReward",
    "check_reward_output",
    "mean_squared_latent_distance",
]
