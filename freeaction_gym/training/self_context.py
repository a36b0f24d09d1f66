"""Training on the model's own predicted context (DIAMOND's autoregressive training steps).

In imagination the context frames after the first step are the model's own outputs, which
are blurrier than real frames; a model trained only on real context has never seen such
input, and each step's error compounds. Here a training clip is drawn ``r`` frames longer
than needed, the model (no gradients) imagines those ``r`` frames one at a time from the
real start, and the loss is taken on the last ``F`` frames, whose context now holds
imagined frames: the situation of rollout step ``r + 1``. Targets stay real frames, so the
model learns to pull a drifted context back towards the data. No backpropagation through
the fed-back frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from freeaction_gym.training.data import Clips


@dataclass
class SelfContext:
    """How often and how far the context is replaced by the model's own frames."""

    prob: float = 0.0
    """Fraction of training batches whose context is imagined (0 = off)."""
    max_steps: int = 2
    """Imagined steps before the trained clip, drawn uniformly from 1..max_steps."""
    sample_steps: int = 2
    """DDIM steps per imagined frame (no guidance, no truncation)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.prob <= 1.0 or self.max_steps < 1 or self.sample_steps < 1:
            raise ValueError(
                f"self_context needs prob in [0, 1], max_steps >= 1 and sample_steps >= 1, "
                f"got {self.prob}, {self.max_steps}, {self.sample_steps}"
            )

    def draw(self, rng: np.random.Generator) -> int:
        """Imagined steps for the next batch (0 = train on real context)."""
        if self.prob <= 0 or rng.random() >= self.prob:
            return 0
        return int(rng.integers(1, self.max_steps + 1))


@torch.no_grad()
def imagine_context(
    world, clips: Clips, steps: int, sample_steps: int, generator: torch.Generator | None = None
) -> Clips:
    """Replace frames ``n .. n + steps - 1`` of ``clips`` by the model's one-step
    predictions (each from the frames before it, already replaced) and drop the first
    ``steps`` frames.

    clips: latents (B, steps + F, C, h, w), actions (B, steps + F - 1, A), prompts or None.
    ``generator`` draws the sampler's initial noise (None: torch's global generator, which
    the trainer seeds and checkpoints). Returns Clips of F frames whose context frames are
    (partly) imagined.
    """
    if steps < 1:
        return clips
    n = world.num_context
    z = clips.latents.clone()
    sampling = world.default_sampling(
        1, num_steps=sample_steps, guidance={"mode": "none"}, truncation={"mode": "none"}
    )
    was_training = world.dit.training
    world.dit.eval()
    try:
        for r in range(steps):
            prompts = None if clips.prompts is None else clips.prompts[:, r : r + n + 1]
            pred, _ = world.predict(
                z[:, r : r + n], clips.actions[:, r : r + n], sampling, generator, prompts=prompts
            )
            z[:, r + n] = pred[:, 0]
    finally:
        world.dit.train(was_training)
    prompts = None if clips.prompts is None else clips.prompts[:, steps:]
    return Clips(z[:, steps:], clips.actions[:, steps:], prompts)
