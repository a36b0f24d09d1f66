"""Pieces both trainers share: one optimiser step (warmup LR, clipping, EMA) and the
CSV loss log with its progress-bar summary."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import torch

from freeaction_gym.training.checkpointing import ema_update, lr_at
from freeaction_gym.training.config import OptimConfig


def optimizer_step(
    accelerator, loss: torch.Tensor, model, opt, ema: torch.nn.Module, optim: OptimConfig, step: int
) -> None:
    """Warmup LR for ``step``, backward, gradient clipping, update, EMA of the weights."""
    for g in opt.param_groups:
        g["lr"] = lr_at(step, optim.lr, optim.warmup)
    opt.zero_grad(set_to_none=True)
    accelerator.backward(loss)
    if optim.grad_clip > 0:
        accelerator.clip_grad_norm_(model.parameters(), optim.grad_clip)
    opt.step()
    ema_update(ema, accelerator.unwrap_model(model), optim.ema_decay)


class LossLog:
    """Writes ``step, loss, lr, sec_per_step[, extra...]`` rows to ``log.csv`` every
    ``every`` steps. A run resumed at ``start_step`` keeps the rows up to that step and
    drops the later ones (they belong to steps the run repeats); ``start_step=0`` starts a
    new file. One header per file."""

    def __init__(self, path: Path, every: int, extra: tuple[str, ...] = (), start_step: int = 0):
        self.every = every
        kept = [r for r in read_log(path) if int(r["step"]) <= start_step] if start_step else []
        header = ["step", "loss", "lr", "sec_per_step", *extra]
        self.f = open(path, "w", newline="")
        self.writer = csv.writer(self.f)
        self.writer.writerow(header)
        for r in kept:
            self.writer.writerow([r.get(k, "") for k in header])
        self.f.flush()
        self.losses: list[float] = []
        self.t_last = time.time()

    def add(self, step: int, loss: float, lr: float, bar, *extra) -> None:
        self.losses.append(loss)
        if step % self.every:
            return
        dt = (time.time() - self.t_last) / self.every
        self.t_last = time.time()
        mean = float(np.mean(self.losses))
        self.writer.writerow([step, mean, lr, round(dt, 4), *extra])
        self.f.flush()
        bar.set_postfix(loss=f"{mean:.4f}", s_per_step=f"{dt:.2f}")
        self.losses.clear()

    def close(self) -> None:
        self.f.close()


def read_log(path: Path) -> list[dict[str, str]]:
    """The rows of a ``log.csv`` (empty if there is none); repeated header lines, which
    logs written before resumes were handled could contain, are skipped."""
    if not Path(path).is_file():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("step", "").isdigit()]


def plot_loss(out: Path) -> None:
    """``log.csv`` -> ``loss.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(out / "log.csv")
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    loss = [float(r["loss"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, loss)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=100)
    plt.close(fig)
