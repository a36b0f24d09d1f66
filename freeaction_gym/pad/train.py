"""Train the PAD-style joint denoiser on demonstrations (``freeaction pad-train``).

One shared timestep per sample for all modalities, epsilon prediction, loss = sum over
modalities of the mean squared error (weights configurable); AdamW, warmup, gradient
clipping, EMA, atomic resumable ``checkpoint.pt`` and an exported policy (``pad.json`` +
``pad.safetensors``) at every checkpoint.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from freeaction_gym.diffusion.loss import q_sample
from freeaction_gym.diffusion.schedule import alphas_cumprod
from freeaction_gym.pad.data import DemoBank, DemoStats
from freeaction_gym.pad.io import save_pad
from freeaction_gym.pad.model import MODALITIES, PADConfig, PADDiT, count_parameters
from freeaction_gym.training.checkpointing import load_state, restore_rng, rng_state, save_state
from freeaction_gym.training.config import OptimConfig
from freeaction_gym.training.loop import LossLog, optimizer_step, plot_loss
from freeaction_gym.utils.args import make_output_dir
from freeaction_gym.utils.threads import configure_threads


@dataclass
class PADTrainArgs:
    """Train a PAD-style image/depth/action denoiser policy on MetaWorld demonstrations."""

    data: str = "data/pad_demos"
    """Demonstrations root (``freeaction data metaworld ROOT --demos``, with depth)."""
    out: str = "runs/pad"
    """Output directory (checkpoint.pt, log.csv, loss.png, policy/)."""
    tasks: list[str] | None = None
    """Subset of the dataset's tasks (default: all)."""
    image_size: int = 32
    """Policy frame size (the 64x64 data is area-downsampled)."""
    patch_size: int = 4
    hidden_size: int = 128
    depth: int = 4
    num_heads: int = 4
    horizon: int = 4
    """Actions per predicted chunk."""
    future_frames: int = 1
    """Future RGB/depth frames predicted (at the end of the chunk)."""
    image_attends_only_image: bool = True
    """PAD's attention structure."""
    prediction_type: str = "sample"
    """Network output: sample (x0) or epsilon."""
    loss_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    """Loss weights of image, depth, action."""
    steps: int = 4000
    batch_size: int = 32
    lr: float = 3e-4
    warmup: int = 200
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    threads: int | None = None
    checkpoint_every: int = 250
    log_every: int = 25
    max_minutes: float | None = None
    """Stop (after a checkpoint) when this wall-clock budget is used up."""


def joint_loss(
    model, batch: dict, weights, generator=None, prediction_type: str | None = None
) -> torch.Tensor:
    """MSE of every modality's prediction (x0 or eps; ``prediction_type`` defaults to
    ``model.config.prediction_type``) at one shared random timestep per sample."""
    abar = alphas_cumprod().float()
    b = batch["obs_rgb"].shape[0]
    t = torch.randint(0, len(abar), (b,), generator=generator)
    noise = {m: torch.randn(batch[m].shape, generator=generator) for m in MODALITIES}
    noisy = {m: q_sample(batch[m], t, noise[m], abar) for m in MODALITIES}
    pred = model(batch["obs_rgb"], batch["obs_depth"], noisy, t, batch["task"])
    kind = prediction_type or model.config.prediction_type
    target = noise if kind == "epsilon" else batch
    return sum(
        w * (pred[m] - target[m]).pow(2).mean() for w, m in zip(weights, MODALITIES, strict=True)
    )


def train_pad(args: PADTrainArgs, resume: bool = True) -> Path:
    """Run (or resume from ``{out}/checkpoint.pt``) a PAD training run under ``accelerate``
    (the world model's optimizer step: warmup, clipping, EMA); returns the policy dir."""
    from accelerate import Accelerator

    configure_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    bank = DemoBank(
        args.data, "train", args.image_size, args.horizon, args.future_frames, args.tasks
    )
    out = make_output_dir(args.out)  # once the demos have loaded: a bad --data leaves none
    cfg = PADConfig(
        image_size=args.image_size, patch_size=args.patch_size, hidden_size=args.hidden_size,
        depth=args.depth, num_heads=args.num_heads, future_frames=args.future_frames,
        horizon=args.horizon, num_tasks=len(bank.stats.tasks),
        image_attends_only_image=args.image_attends_only_image,
        prediction_type=args.prediction_type,
    )  # fmt: skip
    model = PADDiT(cfg)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    state = load_state(out / "checkpoint.pt") if resume else None
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step = int(state["step"])
        restore_rng(state["rng"], rng)
        bank.stats = DemoStats(**state["stats"])
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    model, opt = accelerator.prepare(model, opt)
    optim = OptimConfig(lr=args.lr, warmup=args.warmup, grad_clip=args.grad_clip,
                        ema_decay=args.ema_decay)  # fmt: skip
    print(
        f"[pad] {count_parameters(model) / 1e6:.2f}M params, {len(bank)} samples from "
        f"{len(bank.lengths)} demos of {bank.stats.tasks}, resume step {step}",
        flush=True,
    )

    def checkpoint() -> None:
        net = accelerator.unwrap_model(model)
        save_state(out / "checkpoint.pt", model=net.state_dict(), ema=ema.state_dict(),
                   opt=opt.state_dict(), step=step, rng=rng_state(rng),
                   stats=asdict(bank.stats))  # fmt: skip
        save_pad(ema, bank.stats, out / "policy", {"train": asdict(args), "step": step})

    log = LossLog(out / "log.csv", args.log_every, start_step=step)
    bar = tqdm(total=args.steps, initial=step, desc="train pad", mininterval=5)
    t0 = time.time()
    model.train()
    while step < args.steps:
        batch = bank.sample(args.batch_size, rng)
        loss = joint_loss(model, batch, args.loss_weights, prediction_type=cfg.prediction_type)
        optimizer_step(accelerator, loss, model, opt, ema, optim, step)
        step += 1
        bar.update(1)
        log.add(step, loss.item(), opt.param_groups[0]["lr"], bar)
        over = args.max_minutes is not None and (time.time() - t0) / 60 > args.max_minutes
        if step % args.checkpoint_every == 0 or step == args.steps or over:
            checkpoint()
        if over:
            tqdm.write(f"[pad] time budget of {args.max_minutes} min reached at step {step}")
            break
    bar.close()
    log.close()
    plot_loss(out)
    return out / "policy"
