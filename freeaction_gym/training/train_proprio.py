"""Train a :class:`~freeaction_gym.prompts.proprio.ProprioModel` (actions -> state + keypoints).

    freeaction train-proprio --data data/metaworld_v2 --out runs/proprio
    python -m freeaction_gym.training.train_proprio --data data/metaworld_v2 --out runs/proprio

Examples are windows of ``horizon`` consecutive actions of the train split (episodes need
the per-frame ``state`` and ``keypoints`` arrays the MetaWorld generator records). The loss
is multi-step: the model is unrolled open loop over the window from its true first pose,
velocity and mocap target, and the squared error of every pose, in units of the per-action
pose change, is divided by its step index (an open-loop error's variance grows ~linearly).
Unrolling trains the model on its own drifted inputs, which one-step (teacher-forced)
training never sees. Writes ``model.safetensors`` + ``config.json`` and ``metrics.json``
(arguments, loss history, val errors). Deterministic for a ``--seed`` on one thread unless
``--max-minutes`` cuts the run short.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from freeaction_gym.data.episodes import list_episodes
from freeaction_gym.data.metaworld_env import HAND
from freeaction_gym.prompts.proprio import (
    ProprioConfig,
    ProprioModel,
    ProprioState,
    mocap_track,
    pose_of,
    rollout,
    split_pose,
)

STD_FLOOR = 1e-4  # m: pose columns that never move (e.g. the object of reach) stay finite


@dataclass
class TrainProprioArgs:
    """Train the proprioceptive dynamics model (state + keypoints, action -> next)."""

    data: str = "data/metaworld_v2"
    """Dataset root with per-frame ``state`` and ``keypoints`` (``freeaction data metaworld``)."""
    out: str = "runs/proprio"
    """Output directory (weights, config.json, metrics.json)."""
    steps: int = 4000
    """Optimiser steps (cosine decay to 10% over them, or over ``max_minutes``)."""
    max_minutes: float = 5.0
    """Wall-clock cap; the learning rate decays over whichever limit comes first."""
    batch_size: int = 128
    """Windows per step."""
    horizon: int = 16
    """Actions per window (open-loop unroll length of the loss)."""
    lr: float = 1e-3
    hidden: int = 256
    """MLP width."""
    depth: int = 3
    """MLP hidden layers."""
    use_velocity: bool = True
    """Feed the last pose change to the model."""
    use_mocap: bool = True
    """Track MetaWorld's mocap target and feed its pull on the hand to the model."""
    seed: int = 0
    threads: int = 1
    """torch threads (the machine is shared: keep 1)."""


@dataclass
class PoseEpisodes:
    """Per-episode pose arrays of a split (episodes may differ in length)."""

    poses: list[torch.Tensor]
    """(T_i + 1, P) each: state then flattened keypoints."""
    actions: list[torch.Tensor]
    """(T_i, 4) each."""
    paths: list[Path]


def load_pose_episodes(root: str | os.PathLike, split: str) -> PoseEpisodes:
    """Read only ``state``, ``keypoints`` and ``action`` of every episode of ``split``."""
    poses, actions, paths = [], [], list_episodes(root, split)
    for path in paths:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("state", "keypoints", "action") if k not in z.files]
            if missing:
                raise ValueError(
                    f"episode {path} lacks {missing}: regenerate the dataset with "
                    f"`freeaction data metaworld {root}` (it records state and keypoints)"
                )
            poses.append(pose_of(z["state"], z["keypoints"]))
            actions.append(torch.as_tensor(z["action"]).float())
    return PoseEpisodes(poses, actions, paths)


def fit_normalisation(cfg: ProprioConfig, data: PoseEpisodes) -> ProprioConfig:
    """``cfg`` with the train-set pose mean/std, pose-change std and mocap-pull std."""
    poses = torch.cat(data.poses)  # (N, P)
    deltas = torch.cat([p[1:] - p[:-1] for p in data.poses])  # (N - E, P)
    bare = ProprioModel(cfg)
    pulls = []
    for pose, action in zip(data.poses, data.actions, strict=True):
        mocap = mocap_track(bare, pose, action)  # (T + 1, 3)
        pulls.append(mocap[1:] - pose[:-1, HAND])
    pull_std = float(torch.cat(pulls).std())
    return ProprioConfig(
        **{
            **asdict(cfg),
            "pose_mean": poses.mean(0).tolist(),
            "pose_std": poses.std(0).clamp_min(STD_FLOOR).tolist(),
            "delta_std": deltas.std(0).clamp_min(STD_FLOOR).tolist(),
            "pull_std": max(pull_std, STD_FLOOR),
        }
    )


class WindowSampler:
    """Random training windows: the start :class:`ProprioState` and the next ``horizon``
    actions and true poses."""

    def __init__(self, model: ProprioModel, data: PoseEpisodes, horizon: int) -> None:
        self.horizon = horizon
        keep = [i for i, a in enumerate(data.actions) if len(a) >= horizon]
        if not keep:
            raise ValueError(f"no episode has {horizon} actions: lower --horizon")
        self.pose = [data.poses[i] for i in keep]
        self.action = [data.actions[i] for i in keep]
        self.mocap = [mocap_track(model, p, a) for p, a in zip(self.pose, self.action, strict=True)]
        self.velocity = [torch.cat([torch.zeros_like(p[:1]), p[1:] - p[:-1]]) for p in self.pose]
        self.starts = [
            (i, s) for i, a in enumerate(self.action) for s in range(len(a) - horizon + 1)
        ]

    def sample(self, n: int, g: torch.Generator) -> tuple[ProprioState, torch.Tensor, torch.Tensor]:
        """``(start state (n, ...), actions (n, H, 4), true poses (n, H + 1, P))``."""
        picks = torch.randint(len(self.starts), (n,), generator=g).tolist()
        h = self.horizon
        idx = [self.starts[p] for p in picks]
        pose = torch.stack([self.pose[i][s : s + h + 1] for i, s in idx])  # (n, H + 1, P)
        action = torch.stack([self.action[i][s : s + h] for i, s in idx])  # (n, H, 4)
        start = ProprioState(
            pose[:, 0],
            torch.stack([self.velocity[i][s] for i, s in idx]),
            torch.stack([self.mocap[i][s] for i, s in idx]),
        )
        return start, action, pose


def multistep_loss(
    model: ProprioModel, start: ProprioState, action: torch.Tensor, true: torch.Tensor
) -> torch.Tensor:
    """Mean over steps k = 1..H of the squared pose error (in pose-change units) / k."""
    pred = rollout(model, start, action)[:, 1:]  # (n, H, P)
    err = ((pred - true[:, 1:]) / model.delta_std) ** 2  # (n, H, P)
    k = torch.arange(1, action.shape[1] + 1, dtype=err.dtype)[None, :, None]
    return (err / k).mean()


@torch.inference_mode()
def open_loop_hand_cm(
    model: ProprioModel, data: PoseEpisodes, steps: tuple[int, ...]
) -> dict[str, float]:
    """Mean hand error (cm) at ``steps`` of open-loop rollouts from each episode's first frame."""
    t = min(len(a) for a in data.actions)
    steps = tuple(k for k in steps if k <= t)
    pose0 = torch.stack([p[0] for p in data.poses])  # (E, P)
    action = torch.stack([a[:t] for a in data.actions])  # (E, T, 4)
    s0 = model.initial_state(*split_pose(pose0))
    pred = rollout(model, s0, action)  # (E, T + 1, P)
    true = torch.stack([p[: t + 1] for p in data.poses])
    err = (pred[..., HAND] - true[..., HAND]).norm(dim=-1) * 100  # (E, T + 1)
    return {str(k): float(err[:, k].mean()) for k in steps}


def train_proprio(args: TrainProprioArgs, log=print) -> Path:
    """Train, save to ``args.out`` and return it."""
    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    train = load_pose_episodes(args.data, "train")
    val = load_pose_episodes(args.data, "val")
    num_keypoints = split_pose(train.poses[0])[1].shape[1]
    cfg = ProprioConfig(
        num_keypoints=num_keypoints,
        hidden=args.hidden,
        depth=args.depth,
        use_velocity=args.use_velocity,
        use_mocap=args.use_mocap,
    )
    cfg = fit_normalisation(cfg, train)
    model = ProprioModel(cfg)
    sampler = WindowSampler(model, train, args.horizon)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(args.seed)
    t0, history = time.perf_counter(), []
    budget = args.max_minutes * 60
    log(f"[proprio] {len(train.poses)} episodes, {len(sampler.starts)} windows of {args.horizon}")
    done = 0  # optimiser steps taken
    for step in range(args.steps):
        elapsed = time.perf_counter() - t0
        progress = max(step / args.steps, elapsed / budget if budget > 0 else 0.0)
        if progress >= 1.0:
            break
        for group in opt.param_groups:  # cosine to 10% over whichever limit comes first
            group["lr"] = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        loss = multistep_loss(model, *sampler.sample(args.batch_size, g))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        done = step + 1
        if step % 250 == 0:
            history.append({"step": step, "seconds": round(elapsed, 1), "loss": loss.item()})
            log(f"[proprio] step {step} loss {loss.item():.4f} ({elapsed:.0f} s)")
    model.eval()
    val_cm = open_loop_hand_cm(model, val, (1, 5, 10, 20, 40))
    log(f"[proprio] val open-loop hand error (cm) by step: {val_cm}")
    out = model.save_pretrained(args.out, extra={"data": str(args.data), "steps": done})
    metrics = {
        "args": asdict(args),
        "history": history,
        "val_hand_cm": val_cm,
        "steps": done,
        "seconds": time.perf_counter() - t0,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    from freeaction_gym.utils.args import parse_args
    from freeaction_gym.utils.threads import configure_threads

    args = parse_args(TrainProprioArgs, argv)
    configure_threads(args.threads)
    print(f"model written to {train_proprio(args)}")
    return 0


if __name__ == "__main__":
    from freeaction_gym.utils.errors import cli_main

    raise SystemExit(cli_main(main)())  # user errors: one line, exit 2 (as `freeaction`)
