"""Train the world model's video DiT (``freeaction train --config configs/*.yaml``).

Reads top to bottom: config -> codec + data bank (pre-encoded) -> model -> resume ->
loop (random clip length, classifier-free action dropout, AdamW, clipping, EMA) with
periodic logs, atomic checkpoints, EMA export and rollout validation. Runs under
``accelerate`` (``accelerate launch -m freeaction_gym.cli train ...`` on several GPUs).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from freeaction_gym.assets import resolve_model_path
from freeaction_gym.models.checkpoint import warm_start_dit
from freeaction_gym.models.dit import VideoDiT, count_parameters
from freeaction_gym.models.presets import dit_config
from freeaction_gym.training.avid import TRAINING_ONLY, build_avid
from freeaction_gym.training.checkpointing import load_state, restore_rng, rng_state, save_state
from freeaction_gym.training.config import TrainConfig
from freeaction_gym.training.data import (
    EpisodeBank,
    StreamBank,
    irasim_action_stats,
    irasim_batches,
    irasim_val_bank,
)
from freeaction_gym.training.loop import LossLog, optimizer_step, plot_loss
from freeaction_gym.training.self_context import SelfContext, imagine_context
from freeaction_gym.training.validate import rollout_metrics
from freeaction_gym.utils.threads import configure_threads
from freeaction_gym.world_model.codec import load_codec
from freeaction_gym.world_model.model import DiffusionConfig, WorldModel


def auto_delta_scale(bank: EpisodeBank, clip_frames: int, threshold: float = 0.08) -> float:
    """1 / RMS of (z_k - z_ctx) over elements that change by more than ``threshold``."""
    z, _ = bank.fixed_windows(min(256, 8 * len(bank)), clip_frames, seed=123)
    d = (z[:, 1:] - z[:, :1]).flatten()
    moving = d[d.abs() > threshold]
    if moving.numel() == 0:
        return 1.0
    return float(1.0 / moving.pow(2).mean().sqrt())


def build_model(cfg: TrainConfig, bank, codec, stats: dict, val: EpisodeBank) -> WorldModel:
    transform = getattr(bank, "transform", None)
    z0 = bank.latents[0] if transform is None else transform(bank.latents[0])
    overrides = dict(cfg.model)
    size = overrides.pop("size", "S")
    overrides.setdefault("input_size", tuple(z0.shape[-2:]))
    overrides.setdefault("in_channels", z0.shape[1])
    overrides.setdefault("action_dim", bank.actions[0].shape[1])
    overrides.setdefault("num_frames", cfg.data.clip_frames)
    config, diffusion = dit_config(size, **overrides), cfg.diffusion
    if cfg.avid is not None:  # the model section describes the adapter of a frozen model
        dit, diffusion = build_avid(cfg.avid, config, diffusion, cfg.codec)
    else:
        dit = VideoDiT(config)
    if diffusion.target == "delta" and diffusion.delta_scale <= 0:
        diffusion = replace(
            diffusion,
            delta_scale=auto_delta_scale(
                bank if isinstance(bank, EpisodeBank) else val, cfg.data.clip_frames
            ),
        )
    return WorldModel(dit, codec, diffusion, stats)


def _load_stats(root: str) -> dict:
    try:
        from freeaction_gym.data.stats import load_stats

        return load_stats(root)
    except (FileNotFoundError, ImportError):
        return {}


def train_dit(cfg: TrainConfig, resume: bool = True) -> Path:
    """Run (or resume) a DiT training run; returns the exported model directory."""
    from accelerate import Accelerator

    configure_threads(cfg.optim.threads)
    out = Path(cfg.loop.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    torch.manual_seed(cfg.optim.seed)
    rng = np.random.default_rng(cfg.optim.seed)
    codec = load_codec("pixel" if cfg.codec == "pixel" else "autoencoder", cfg.codec)
    codec.requires_grad_(False)
    encode = codec.encode
    prompts = cfg.model.get("prompt", "none") != "none"  # visual action prompts (seed 004)
    if prompts and cfg.data.format != "metaworld":
        raise ValueError("model.prompt needs MetaWorld-format data (prompts come from keypoints)")
    if cfg.data.format == "metaworld":
        if cfg.codec == "pixel":  # uint8 frames; one cache beside the data serves every run
            encode, cache_dir, cache_tag = None, Path(cfg.data.root) / ".cache", "pixel"
            if cfg.data.tasks:
                cache_tag += "_" + "_".join(sorted(cfg.data.tasks))
        else:
            cache_dir, cache_tag = out, Path(cfg.codec).name
        prompt_tag = "_".join(["prompts", *sorted(cfg.data.tasks or [])])
        frac = cfg.data.fraction  # a train-split subset gets caches of its own
        frac_tag = f"_frac{frac:g}_seed{cfg.data.fraction_seed}" if frac < 1 else ""
        bank, val = (
            EpisodeBank.from_metaworld(
                cfg.data.root,
                split,
                encode,
                cfg.data.tasks,
                cache_dir / f"cache_{split}_{cache_tag}{tag}.pt",
                prompts=prompts,  # one cache beside the data, whatever the codec
                prompt_cache=Path(cfg.data.root) / ".cache" / f"cache_{split}_{prompt_tag}{tag}.pt",
                fraction=frac if split == "train" else 1.0,
                fraction_seed=cfg.data.fraction_seed,
            )
            for split, tag in (("train", frac_tag), ("val", ""))
        )
        stats = _load_stats(cfg.data.root)
        if cfg.data.oversample_pattern is not None and cfg.data.oversample_share > 0:
            hits = bank.oversample(cfg.data.oversample_pattern, cfg.data.oversample_share)
            print(
                f"[data] {hits} of {len(bank)} train episodes match "
                f"{cfg.data.oversample_pattern!r}: drawn with probability "
                f"{cfg.data.oversample_share:g}" + ("" if 0 < hits < len(bank) else " (no effect)"),
                flush=True,
            )
    else:  # IRASim layout: stream + encode training clips, encode the val windows once
        r = cfg.data.resolution
        res = None if r is None else (tuple(r) if isinstance(r, list | tuple) else (r, r))
        ds_name = cfg.data.irasim_dataset
        bank = StreamBank(
            irasim_batches(
                cfg.data.root,
                "train",
                ds_name,
                cfg.data.clip_frames,
                cfg.optim.batch_size,
                encode,
                cfg.optim.seed,
                res,
            )
        )
        val = irasim_val_bank(
            cfg.data.root, "val", ds_name, cfg.data.clip_frames, cfg.loop.eval_clips, encode, res
        )
        stats = irasim_action_stats(cfg.data.root, "train", ds_name)
    world = build_model(cfg, bank, codec, stats, val)
    n_ctx = world.num_context
    if cfg.data.min_clip_frames < n_ctx + 1:
        raise ValueError(
            f"data.min_clip_frames={cfg.data.min_clip_frames} leaves no frame to predict after "
            f"{n_ctx} context frames; use >= {n_ctx + 1}"
        )
    state = load_state(out / "checkpoint.pt") if resume else None
    if state is not None:  # the saved diffusion config wins (delta_scale was measured once)
        world.diffusion = DiffusionConfig(**state["diffusion"])
        world.dit.load_state_dict(state["model"])
    elif cfg.loop.init_from:
        init = WorldModel.from_pretrained(resolve_model_path(cfg.loop.init_from))
        warm_start_dit(world.dit, init.dit.state_dict(), cfg.loop.init_from)
        # its parameterisation, this run's training settings (e.g. fine-tuning an
        # action-free model, trained with null_action_prob 1, on actions)
        training = {k: getattr(world.diffusion, k) for k in TRAINING_ONLY}
        world.diffusion = replace(init.diffusion, **training)
    dit = world.dit
    ema = copy.deepcopy(dit).requires_grad_(False)
    opt = torch.optim.AdamW(
        [p for p in dit.parameters() if p.requires_grad],
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
    )
    step = 0
    if state is not None:
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step = int(state["step"])
        restore_rng(state["rng"], rng)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    dit, opt = accelerator.prepare(dit, opt)
    world.dit = dit
    print(
        f"[train] {count_parameters(ema) / 1e6:.2f}M params, {len(bank)} train "
        f"(data.fraction={cfg.data.fraction:g}) / {len(val)} val episodes, "
        f"delta_scale={world.diffusion.delta_scale:.3f}, resume step {step}",
        flush=True,
    )
    val_clips = val.fixed_clips(cfg.loop.eval_clips, cfg.data.clip_frames, seed=7)
    log = LossLog(out / "log.csv", cfg.loop.log_every, ("clip_frames",), start_step=step)
    t_start = time.time()

    def checkpoint() -> None:
        save_state(
            out / "checkpoint.pt",
            model=accelerator.unwrap_model(dit).state_dict(),
            ema=ema.state_dict(),
            opt=opt.state_dict(),
            step=step,
            rng=rng_state(rng),
            diffusion=world.diffusion.__dict__,
        )
        export = WorldModel(ema, codec, world.diffusion, stats)
        export.save_pretrained(out / "model")

    def evaluate() -> None:
        export = WorldModel(ema, codec, world.diffusion, stats).eval()
        sampling = export.default_sampling(
            cfg.data.clip_frames - n_ctx,
            num_steps=cfg.loop.eval_sample_steps,
            guidance={"mode": "none"},
            truncation={"mode": "none"},
        )
        m = rollout_metrics(
            export,
            val_clips.latents,
            val_clips.actions,
            sampling,
            seed=0,
            prompts=val_clips.prompts,
        )
        m["step"] = step
        with open(out / "eval.jsonl", "a") as f:
            f.write(json.dumps(m) + "\n")
        tqdm.write("[eval] " + " ".join(f"{k}={v:.3f}" for k, v in m.items() if k != "step"))

    self_context = SelfContext(
        cfg.optim.self_context_prob, cfg.optim.self_context_steps, cfg.loop.eval_sample_steps
    )
    bar = tqdm(total=cfg.optim.steps, initial=step, desc="train dit", mininterval=5)
    dit.train()
    while step < cfg.optim.steps:
        f = int(rng.integers(cfg.data.min_clip_frames, cfg.data.clip_frames + 1))
        r = self_context.draw(rng)
        clips = bank.sample_clips(cfg.optim.batch_size, f + r, rng)
        clips = imagine_context(world, clips, r, self_context.sample_steps)
        z, a = clips.latents, clips.actions
        weights = None
        if cfg.optim.moving_weight > 0:
            change = z[:, n_ctx:] - z[:, n_ctx - 1 : n_ctx]  # vs the last context frame
            moving = (change.abs().amax(dim=2, keepdim=True) > 0.08).float()
            weights = 1.0 + cfg.optim.moving_weight * moving
        loss = world.training_loss(
            z, a, weights=weights, timestep_power=cfg.optim.timestep_power, prompts=clips.prompts
        )
        optimizer_step(accelerator, loss, dit, opt, ema, cfg.optim, step)
        step += 1
        bar.update(1)
        log.add(step, loss.item(), opt.param_groups[0]["lr"], bar, f)
        over_budget = (
            cfg.loop.max_minutes is not None and (time.time() - t_start) / 60 > cfg.loop.max_minutes
        )
        if step % cfg.loop.checkpoint_every == 0 or step == cfg.optim.steps or over_budget:
            checkpoint()
        if cfg.loop.eval_every and (step % cfg.loop.eval_every == 0 or step == cfg.optim.steps):
            evaluate()
        if over_budget:
            tqdm.write(f"[train] time budget of {cfg.loop.max_minutes} min reached at step {step}")
            break
    bar.close()
    log.close()
    plot_loss(out)
    return out / "model"
