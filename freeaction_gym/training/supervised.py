"""The training loop of the small supervised models (state probe, reward/success head).

Warm-up then cosine decay to 10% of the peak learning rate over the step budget or the
wall-time budget, whichever runs out first; the val split is scored every ``eval_every``
steps and the weights with the lowest val ``loss`` are restored at the end.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm


def learning_rate(step: int, peak: float, steps: int, warmup: int, time_frac: float = 0.0) -> float:
    """Linear warm-up to ``peak``, then cosine decay to ``0.1 * peak`` at ``steps``, or
    earlier when ``time_frac`` (elapsed / allowed wall time) runs ahead of the steps."""
    frac = min(1.0, max(0.0, (step - warmup) / max(1, steps - warmup), time_frac))
    return peak * min(1.0, (step + 1) / max(1, warmup)) * (0.55 + 0.45 * math.cos(math.pi * frac))


@dataclass
class FrameModelArgs:
    """Options shared by the CLIs that train a small CNN on real frames (state probe,
    inverse-dynamics model); each trainer subclasses it with its own ``data`` / ``out``
    defaults and extra fields."""

    data: str = "data/metaworld_v2"
    """Dataset root (``freeaction data metaworld``)."""
    out: str = "runs/model"
    """Output directory (weights, config.json, metrics.json)."""
    steps: int = 6000
    """Optimiser steps (cosine decay to 10% over them, or over ``max_minutes``)."""
    batch_size: int = 64
    lr: float = 2e-3
    """Peak AdamW learning rate (after a linear warm-up of 10% of the steps, at most 200)."""
    weight_decay: float = 1e-4
    seed: int = 0
    max_minutes: float | None = 8.0
    """Wall-time budget; the best val weights so far are kept. None: no limit."""
    eval_every: int = 500
    """Score the val split every this many steps."""
    blur_prob: float = 0.5
    """Fraction of training frames blurred (Gaussian, sigma ~ U(0, blur_sigma_max) px)."""
    blur_sigma_max: float = 1.5
    max_train_episodes: int | None = None
    """Use at most this many train episodes (a fixed seeded subset); None: all."""
    channels: list[int] = field(default_factory=lambda: [32, 64, 96, 128])
    """Conv widths of the encoder (``utils.small_models.conv_encoder``)."""
    hidden: int = 256
    """MLP width."""
    threads: int | None = 1
    """Torch intra-op threads (FREEACTION_THREADS overrides)."""


@dataclass
class FitBudget:
    steps: int
    lr: float
    warmup: int
    eval_every: int
    max_minutes: float | None = None


@dataclass
class FitResult:
    steps_done: int = 0
    best_step: int = 0
    best_loss: float = math.inf
    minutes: float = 0.0
    history: list[dict] = field(default_factory=list)
    """One val dict per evaluation, plus ``step``, ``train_loss`` and ``minutes``."""


def fit_best_on_val(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    budget: FitBudget,
    train_loss: Callable[[], torch.Tensor],
    validate: Callable[[], dict],
    desc: str,
    report: Callable[[dict], str] | None = None,
) -> FitResult:
    """Optimise ``train_loss()`` (one batch's scalar loss, drawn by the caller) within
    ``budget``; ``validate()`` returns a dict with at least ``loss``; ``report(m)`` formats
    a line for the log after each evaluation. Leaves ``model`` with its best val weights."""
    result = FitResult()
    best_state = copy.deepcopy(model.state_dict())
    t0 = time.time()

    def time_frac() -> float:
        return 0.0 if budget.max_minutes is None else (time.time() - t0) / 60 / budget.max_minutes

    bar = tqdm(total=budget.steps, desc=desc, mininterval=5)
    step, losses = 0, []
    while step < budget.steps:
        for g in opt.param_groups:
            g["lr"] = learning_rate(step, budget.lr, budget.steps, budget.warmup, time_frac())
        model.train()
        loss = train_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        losses.append(loss.item())
        bar.update(1)
        over = time_frac() > 1.0
        if step % budget.eval_every == 0 or step == budget.steps or over:
            m = validate()
            m |= {"step": step, "train_loss": float(np.mean(losses))}
            m["minutes"] = (time.time() - t0) / 60
            losses.clear()
            result.history.append(m)
            if m["loss"] < result.best_loss:
                result.best_loss, result.best_step = m["loss"], step
                best_state = copy.deepcopy(model.state_dict())
            if report is not None:
                tqdm.write(report(m))
        if over:
            tqdm.write(f"[{desc}] time budget of {budget.max_minutes} min reached at step {step}")
            break
    bar.close()
    model.load_state_dict(best_state)
    result.steps_done, result.minutes = step, (time.time() - t0) / 60
    return result
