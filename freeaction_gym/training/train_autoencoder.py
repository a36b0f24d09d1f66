"""Train a small ``AutoencoderKL`` on dataset frames (``kind: autoencoder`` configs).

L1 + MSE reconstruction plus a small KL term; resumable like the DiT trainer; at the end
the latent scaling factor is set to 1 / std of the training latents and the VAE is saved
in diffusers format to ``{output}/model`` (use that path as ``codec:`` of a DiT config).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from freeaction_gym.models.autoencoder import AutoencoderConfig, VideoAutoencoder
from freeaction_gym.training.checkpointing import load_state, restore_rng, rng_state, save_state
from freeaction_gym.training.config import TrainConfig
from freeaction_gym.training.data import EpisodeBank
from freeaction_gym.training.loop import LossLog, optimizer_step, plot_loss
from freeaction_gym.utils.threads import configure_threads
from freeaction_gym.world_model.codec import PixelCodec


def _frames(bank: EpisodeBank, n: int, rng: np.random.Generator) -> torch.Tensor:
    """n random frames (n, 3, H, W) in [-1, 1] from a pixel-space bank."""
    eps = rng.integers(0, len(bank), size=n)
    return torch.stack([bank.latents[e][rng.integers(0, bank.latents[e].shape[0])] for e in eps])


@torch.inference_mode()
def reconstruction_psnr(ae: VideoAutoencoder, frames: torch.Tensor) -> float:
    """Mean PSNR (dB, uint8 scale) of decode(encode(x)) over frames (N, 3, H, W)."""
    x = PixelCodec.to_uint8(frames).float()
    y = PixelCodec.to_uint8(ae.decode_frames(ae.encode_frames(frames))).float()
    mse = ((x - y) ** 2).flatten(1).mean(1)
    return float((10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))).mean())


def train_autoencoder(cfg: TrainConfig, resume: bool = True) -> Path:
    from accelerate import Accelerator

    configure_threads(cfg.optim.threads)
    out = Path(cfg.loop.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    torch.manual_seed(cfg.optim.seed)
    rng = np.random.default_rng(cfg.optim.seed)
    pix = PixelCodec()
    bank = EpisodeBank.from_metaworld(
        cfg.data.root, "train", pix.encode, cfg.data.tasks, out / "cache_train.pt"
    )
    val = EpisodeBank.from_metaworld(
        cfg.data.root, "val", pix.encode, cfg.data.tasks, out / "cache_val.pt"
    )
    val_frames = _frames(val, 128, np.random.default_rng(3))
    ae_cfg = AutoencoderConfig(**cfg.model)
    ae = VideoAutoencoder.from_config(ae_cfg)
    ema = copy.deepcopy(ae).requires_grad_(False)
    opt = torch.optim.AdamW(ae.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    step = 0
    state = load_state(out / "checkpoint.pt") if resume else None
    if state is not None:
        ae.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step = int(state["step"])
        restore_rng(state["rng"], rng)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    ae, opt = accelerator.prepare(ae, opt)
    vae = accelerator.unwrap_model(ae).vae
    log = LossLog(out / "log.csv", cfg.loop.log_every, start_step=step)
    t0 = time.time()

    def export() -> None:
        model = copy.deepcopy(ema)
        with torch.inference_mode():
            z = model.vae.encode(val_frames).latent_dist.mode()
        model.vae.register_to_config(scaling_factor=float(1.0 / z.std()))
        model.save_pretrained(out / "model")
        m = {"step": step, "val_psnr": reconstruction_psnr(model, val_frames)}
        with open(out / "eval.jsonl", "a") as f:
            f.write(json.dumps(m) + "\n")
        tqdm.write(f"[eval] step {step} reconstruction PSNR {m['val_psnr']:.2f} dB")

    bar = tqdm(total=cfg.optim.steps, initial=step, desc="train autoencoder", mininterval=5)
    while step < cfg.optim.steps:
        x = _frames(bank, cfg.optim.batch_size, rng)
        dist = vae.encode(x).latent_dist
        y = vae.decode(dist.sample()).sample
        loss = (y - x).abs().mean() + ((y - x) ** 2).mean() + cfg.optim.kl_weight * dist.kl().mean()
        optimizer_step(accelerator, loss, ae, opt, ema, cfg.optim, step)
        step += 1
        bar.update(1)
        log.add(step, loss.item(), opt.param_groups[0]["lr"], bar)
        over = cfg.loop.max_minutes is not None and (time.time() - t0) / 60 > cfg.loop.max_minutes
        if step % cfg.loop.checkpoint_every == 0 or step == cfg.optim.steps or over:
            save_state(
                out / "checkpoint.pt",
                model=accelerator.unwrap_model(ae).state_dict(),
                ema=ema.state_dict(),
                opt=opt.state_dict(),
                step=step,
                rng=rng_state(rng),
            )
        if step % cfg.loop.eval_every == 0 or step == cfg.optim.steps or over:
            export()
        if over:
            break
    bar.close()
    log.close()
    plot_loss(out)
    return out / "model"
