"""Training runs of the equal-CPU-time studies (experiments/avid_study.py,
experiments/prompt_study.py): the CPU cost of one training step of a config, step counts
for a CPU budget (costs cached in ``costs.json``) and resumable runs that leave a
``done.json`` when they reached their steps.

CPU time is process time over all threads (``time.process_time``; OpenMP waits passively
under ``OMP_WAIT_POLICY=PASSIVE``, so waiting is not counted): a budget that does not
depend on whatever else shares the machine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from freeaction_gym.data.episodes import list_episodes, load_episode
from freeaction_gym.models.autoencoder import VideoAutoencoder
from freeaction_gym.prompts.camera import dataset_camera
from freeaction_gym.training.config import TrainConfig
from freeaction_gym.training.data import Clips, EpisodeBank
from freeaction_gym.training.self_context import SelfContext, imagine_context
from freeaction_gym.training.train_dit import build_model, train_dit
from freeaction_gym.utils.threads import configure_threads
from freeaction_gym.world_model import PixelCodec, WorldModel

QUICK_RUN = (
    "optim.batch_size=2", "optim.threads=1", "optim.warmup=1", "loop.checkpoint_every=1000",
    "loop.log_every=1", "loop.eval_every=0",
)  # fmt: skip
"""Overrides of every run of a study's ``--quick`` smoke mode (tiny batches, no eval)."""


def step_cost(cfg: TrainConfig, hw: tuple[int, int], action_dim: int, steps: int = 3) -> float:
    """CPU seconds (process time) of one training step of ``cfg``'s model on random batches
    of its batch size and longest clip (one warm-up step not counted), prompts included for
    a prompt model. With ``optim.self_context_prob`` p > 0 the expectation over the
    self-context draws: ``(1 - p) c(0) + p mean_r c(r)``, r = 1..``self_context_steps``
    imagined frames first (:mod:`~freeaction_gym.training.self_context`), each c measured
    over ``steps`` steps."""
    if cfg.codec != "pixel":
        raise ValueError("the studies measure pixel-codec runs only")
    torch.manual_seed(0)
    configure_threads(cfg.optim.threads)  # as train_dit will run it
    f, b = cfg.data.clip_frames, cfg.optim.batch_size
    frames = torch.randint(0, 256, (f + 2, *hw, 3), dtype=torch.uint8)
    bank = EpisodeBank([frames], [torch.randn(f + 1, action_dim)], ["x"], VideoAutoencoder.to_float)
    world = build_model(cfg, bank, PixelCodec(), {}, bank)
    opt = torch.optim.AdamW([p for p in world.dit.parameters() if p.requires_grad], lr=1e-5)
    sc = SelfContext(cfg.optim.self_context_prob, cfg.optim.self_context_steps,
                     cfg.loop.eval_sample_steps)  # fmt: skip

    def cost(r: int) -> float:  # mean CPU seconds of a step that first imagines r frames
        total = 0.0
        for i in range(1 + steps):
            z = torch.rand(b, f + r, 3, *hw) * 2 - 1  # (B, F + r, 3, H, W)
            a = torch.randn(b, f + r - 1, action_dim)
            p = torch.rand(b, f + r, 3, *hw) * 2 - 1 if world.takes_prompts else None
            t0 = time.process_time()
            clips = imagine_context(world, Clips(z, a, p), r, sc.sample_steps)
            loss = world.training_loss(
                clips.latents, clips.actions, timestep_power=cfg.optim.timestep_power,
                prompts=clips.prompts,
            )  # fmt: skip
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += (time.process_time() - t0) * (i > 0)
        return total / steps

    base = cost(0)
    if sc.prob <= 0:
        return base
    imagined = np.mean([cost(r) for r in range(1, sc.max_steps + 1)])
    return float((1 - sc.prob) * base + sc.prob * imagined)


def plan_steps(
    costs_path: str | Path,
    names: Iterable[str],
    config_of: Callable[[str], TrainConfig],
    data_root: str | Path,
    budget_minutes: float,
    measure_steps: int = 3,
) -> dict[str, int]:
    """Steps per run name for ``budget_minutes`` of CPU time: ``budget / step_cost`` of
    ``config_of(name)`` on frames of ``data_root``'s size (at least 1). Costs are cached in
    ``costs_path`` by name: delete it after changing a config."""
    path = Path(costs_path)
    costs = json.loads(path.read_text()) if path.is_file() else {}
    ep = load_episode(list_episodes(data_root, "train")[0], load_depth=False)
    hw, action_dim = ep.rgb.shape[1:3], ep.action.shape[1]
    names = list(names)
    for name in names:
        if name not in costs:
            costs[name] = step_cost(config_of(name), hw, action_dim, steps=measure_steps)
            print(f"[cost] {name}: {costs[name] * 1000:.0f} CPU ms/step", flush=True)
    path.write_text(json.dumps(costs, indent=2) + "\n")
    return {n: max(1, round(budget_minutes * 60 / costs[n])) for n in names}


def train_run(cfg: TrainConfig) -> dict:
    """Train (or resume) a run unless its ``done.json`` says it reached its steps; returns
    that record (steps, trainable parameters, CPU minutes of the last session, data share)."""
    out = Path(cfg.loop.output)
    done = out / "done.json"
    if done.is_file() and json.loads(done.read_text())["steps"] >= cfg.optim.steps:
        return json.loads(done.read_text())
    t0 = time.process_time()
    model_dir = train_dit(cfg, resume=True)
    world = WorldModel.from_pretrained(model_dir)
    info = {
        "steps": cfg.optim.steps,
        # an AVID model's frozen part loads with requires_grad=False
        "trainable_parameters": sum(p.numel() for p in world.dit.parameters() if p.requires_grad),
        "cpu_minutes_last_session": (time.process_time() - t0) / 60,
        "data_fraction": cfg.data.fraction,
    }
    done.write_text(json.dumps(info, indent=2) + "\n")
    return info


def prompts_missing(root: str | Path, split: str = "train") -> str | None:
    """Why prompt models cannot train on (or replay) ``root``'s ``split``: no camera or no
    arm keypoints in its first episode; None when they can."""
    try:
        dataset_camera(root)
    except ValueError as err:
        return str(err)
    if load_episode(list_episodes(root, split)[0], load_depth=False).keypoints is None:
        return f"{root} stores no arm keypoints"
    return None
