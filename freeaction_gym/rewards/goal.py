"""Goal-image reward in the world model's latent space: :class:`GoalLatentReward`.

Needs no trained head: given the latent of a goal frame (encoded by the same codec as the
observations), the reward is the negative mean squared latent distance

    d = mean_{c, y, x} (z[c, y, x] - z_goal[c, y, x])^2,     reward = -scale * d,

and success is ``d < success_distance``.

Units: ``d`` is a mean squared difference per latent element, in the latents the DiT sees
(already multiplied by the codec's scaling factor). With the pixel codec (latents in
[-1, 1]) a ``d`` of 0.01 is an RMS difference of 0.1, i.e. ~13 grey levels per pixel value;
with an autoencoder scaled to unit latent variance, independent latents are at ``d`` ~ 2,
while frames of one static-camera scene are much closer (measure ``d`` on your data before
choosing ``success_distance``).
"""

from __future__ import annotations

import torch
from torch import Tensor


def mean_squared_latent_distance(latents: torch.Tensor, goal_latents: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) x (B, C, h, w) -> (B,) mean over (C, h, w) of the squared difference."""
    diff = latents.float() - goal_latents.float()  # (B, C, h, w)
    return diff.pow(2).flatten(1).mean(dim=1)


class GoalLatentReward:
    """:class:`~freeaction_gym.rewards.RewardFunction`: ``-scale * d(z, z_goal)``.

    ``success_distance``: threshold on the mean squared latent distance ``d`` (units in the
    module docstring); success is ``d < success_distance``.
    """

    def __init__(self, scale: float = 1.0, success_distance: float = 0.01) -> None:
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if success_distance < 0:
            raise ValueError(f"success_distance must be >= 0, got {success_distance}")
        self.scale, self.success_distance = float(scale), float(success_distance)

    def __call__(
        self, frames: Tensor, latents: Tensor, goal_latents: Tensor | None, task_ids: Tensor
    ) -> tuple[Tensor, Tensor]:
        if goal_latents is None:
            raise ValueError(
                "GoalLatentReward needs goal latents, got None: give the environment a goal "
                "frame (or use a LearnedReward, which needs no goal)"
            )
        if goal_latents.shape != latents.shape:
            raise ValueError(
                f"goal_latents shape {tuple(goal_latents.shape)} differs from latents shape "
                f"{tuple(latents.shape)}; both must be (B, C, h, w) from the same codec"
            )
        d = mean_squared_latent_distance(latents, goal_latents)  # (B,)
        return (-self.scale * d).float(), d < self.success_distance
