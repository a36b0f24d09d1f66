"""The PAD policy at inference: observation -> action chunk (+ its predicted future)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from freeaction_gym.pad.data import DemoStats
from freeaction_gym.pad.model import PADDiT
from freeaction_gym.pad.sampling import check_modalities, initial_noise, sample_joint


class PADPolicy:
    """Batched policy with modality-selective truncated initial noise.

    truncate: modalities ({"image", "depth", "action"}) whose initial noise is truncated
    to |z| <= tau; num_steps DDIM (eta 0) steps.
    """

    def __init__(
        self,
        model: PADDiT,
        stats: DemoStats,
        truncate: Iterable[str] = (),
        tau: float = 1.0,
        num_steps: int = 10,
    ) -> None:
        self.model, self.stats = model.eval(), stats
        self.truncate, self.tau, self.num_steps = tuple(truncate), float(tau), num_steps
        check_modalities(self.truncate)  # fail at construction, without drawing noise

    def task_ids(self, tasks: Iterable[str]) -> torch.Tensor:
        names = self.stats.tasks
        unknown = [t for t in tasks if t not in names]
        if unknown:
            raise ValueError(f"policy was trained on {names}, not {sorted(set(unknown))}")
        return torch.tensor([names.index(t) for t in tasks])

    @torch.inference_mode()
    def act(
        self,
        rgb: np.ndarray,
        depth_m: np.ndarray,
        tasks: list[str],
        generator: torch.Generator | list[torch.Generator] | None = None,
    ) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
        """rgb uint8 (B, H, W, 3), depth_m meters (B, H, W), tasks (B,) names ->
        (actions float32 (B, horizon, 4) clipped to [-1, 1], all denoised outputs).
        A list of B generators draws each sample's noise from its own generator (paired
        evaluation independent of batching)."""
        s = self.model.config.image_size
        obs_rgb = self.stats.rgb(rgb, s)
        obs_depth = self.stats.depth(depth_m, s)[:, None]
        cfg = self.model.config
        if isinstance(generator, list):
            draws = [initial_noise(cfg.shapes(1), self.truncate, self.tau, g) for g in generator]
            noise = {k: torch.cat([d[k] for d in draws]) for k in draws[0]}
        else:
            noise = initial_noise(cfg.shapes(rgb.shape[0]), self.truncate, self.tau, generator)
        out = sample_joint(
            self.model, obs_rgb, obs_depth, self.task_ids(tasks), noise, self.num_steps
        )
        return out["action"].clamp(-1, 1).numpy(), out
