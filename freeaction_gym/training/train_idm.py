"""Train an :class:`~freeaction_gym.evaluation.action_error.InverseDynamicsModel` on real
frame pairs (the Action Error Ratio's IDM, AVID seed 002).

    freeaction train-idm --data data/metaworld_v2 --out runs/idm_v2
    python -m freeaction_gym.training.train_idm --data data/metaworld_v2 --out runs/idm_v2

Examples are (frame t, frame t + 1, action t) of every step of the train split. Loss: MSE
on the action normalised by the train-set mean/std. Augmentation: a random Gaussian blur
on a fraction of the frames (each frame of a pair drawn alone), as for the state probe, so
that a slightly soft generated frame is not read as another action. Every ``--eval-every``
steps the val split is scored; the weights with the lowest val loss are kept and scored on
the test split at the end: the IDM's error on real frames, the ratio's denominator scale.

Writes to ``--out``: ``model.safetensors`` + ``config.json`` (load with
``InverseDynamicsModel.from_pretrained(out)``) and ``metrics.json`` (arguments, val history,
val and test errors). Deterministic for a given ``--seed`` on one thread, unless
``--max-minutes`` cuts the run short.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from freeaction_gym.data.episodes import list_episodes, load_episode
from freeaction_gym.evaluation.action_error import (
    InverseDynamicsConfig,
    InverseDynamicsModel,
    predict_actions,
)
from freeaction_gym.evaluation.paired_stats import mean_ci
from freeaction_gym.training.supervised import FitBudget, FrameModelArgs, fit_best_on_val
from freeaction_gym.training.train_probe import random_blur
from freeaction_gym.utils.args import make_output_dir


@dataclass
class TrainIDMArgs(FrameModelArgs):
    """Train a CNN inverse-dynamics model (frames t, t+1 -> action t) on real frames."""

    out: str = "runs/idm"
    """Output directory (weights, config.json, metrics.json)."""


@dataclass
class FramePairs:
    """Every step (frame t, frame t + 1, action t) of a split."""

    frames: torch.Tensor
    """uint8 (M, H, W, 3): the episodes' frames one after another."""
    first: np.ndarray
    """int (N,) index into ``frames`` of each pair's frame t (frame t + 1 follows it)."""
    actions: torch.Tensor
    """float32 (N, A) action t of each pair, dataset units."""
    episode: np.ndarray
    """int (N,) index of the source episode (for per-episode statistics)."""

    def __len__(self) -> int:
        return len(self.first)

    def batch(self, idx: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames t and t + 1 of pairs ``idx``, uint8 (B, H, W, 3) each."""
        i = torch.as_tensor(self.first[np.asarray(idx)])
        return self.frames[i], self.frames[i + 1]


def load_frame_pairs(
    root: str | os.PathLike, split: str, max_episodes: int | None = None, seed: int = 0
) -> FramePairs:
    """Every step of every episode of ``split``; ``max_episodes`` keeps a fixed random
    subset (``seed``) of the episodes."""
    paths = list_episodes(root, split)
    if max_episodes is not None and max_episodes < len(paths):
        keep = np.sort(np.random.default_rng(seed).choice(len(paths), max_episodes, False))
        paths = [paths[i] for i in keep]
    frames, first, actions, episode, offset = [], [], [], [], 0
    for e, path in enumerate(tqdm(paths, desc=f"load {split}", mininterval=5, leave=False)):
        ep = load_episode(path, load_depth=False, action_dim=None)
        t = ep.num_actions
        frames.append(ep.rgb)
        first.append(offset + np.arange(t))
        actions.append(ep.action)
        episode.append(np.full(t, e))
        offset += t + 1
    return FramePairs(
        frames=torch.from_numpy(np.concatenate(frames)),
        first=np.concatenate(first),
        actions=torch.from_numpy(np.concatenate(actions).astype(np.float32)),
        episode=np.concatenate(episode),
    )


def evaluate_idm(idm: InverseDynamicsModel, data: FramePairs) -> dict:
    """Normalised MSE (the training loss) and the action error (mean absolute error over
    the action dimensions, dataset units) of every pair: mean, median, per-dimension mean
    and a 95% t-interval over episodes of the per-episode means."""
    t0, t1 = data.batch(np.arange(len(data)))
    pred = predict_actions(idm, t0.numpy(), t1.numpy())  # (N, A)
    true = data.actions.double().numpy()
    norm = idm.normalize(torch.from_numpy(pred)) - idm.normalize(data.actions.double())
    err = np.abs(pred - true)  # (N, A)
    per_pair = err.mean(1)
    per_episode = np.bincount(data.episode, per_pair) / np.bincount(data.episode)
    mean, lo, hi = mean_ci(per_episode)
    return {
        "loss": float(np.mean(norm.numpy() ** 2)),
        "pairs": len(data),
        "episodes": int(data.episode.max() + 1),
        "action_error": {
            "mean": float(per_pair.mean()),
            "median": float(np.median(per_pair)),
            "per_dim": err.mean(0).tolist(),
            "episode_mean": mean,
            "episode_ci95": [lo, hi],
        },
    }


def train_idm(args: TrainIDMArgs) -> dict:
    """Train, select on val, score on test; write weights + metrics.json."""
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    train = load_frame_pairs(args.data, "train", args.max_train_episodes, args.seed)
    val = load_frame_pairs(args.data, "val")
    out = make_output_dir(args.out)  # once the data has loaded: a bad --data leaves none
    mean, std = train.actions.double().mean(0), train.actions.double().std(0)
    idm = InverseDynamicsModel(
        InverseDynamicsConfig(
            action_dim=train.actions.shape[1],
            channels=tuple(args.channels),
            hidden=args.hidden,
            action_mean=mean.tolist(),
            action_std=std.clamp_min(1e-3).tolist(),
        )
    )
    n_params = sum(p.numel() for p in idm.parameters())
    tqdm.write(
        f"[idm] {n_params} parameters; {len(train)} train / {len(val)} val pairs of "
        f"{args.data}; action mean {np.round(mean.numpy(), 3)} std {np.round(std.numpy(), 3)}"
    )
    opt = torch.optim.AdamW(idm.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(0, len(train), (args.batch_size,), generator=gen).numpy()
        t0, t1 = train.batch(idx)
        pair = random_blur(torch.cat([t0, t1]), args.blur_prob, args.blur_sigma_max, gen)
        t0, t1 = pair.chunk(2)
        target = idm.normalize(train.actions[torch.from_numpy(idx)])
        return F.mse_loss(idm.forward_normalized(t0, t1), target)

    def report(m: dict) -> str:
        return f"[val] step {m['step']} loss {m['loss']:.4f} error {m['action_error']['mean']:.4f}"

    warmup = min(200, args.steps // 10)
    budget = FitBudget(args.steps, args.lr, warmup, args.eval_every, args.max_minutes)
    validate = lambda: evaluate_idm(idm, val)  # noqa: E731
    fit = fit_best_on_val(idm, opt, budget, batch_loss, validate, "idm", report)
    test = load_frame_pairs(args.data, "test")
    metrics = {
        "args": asdict(args),
        "num_parameters": n_params,
        "train_pairs": len(train),
        "steps_done": fit.steps_done,
        "train_minutes": fit.minutes,
        "best_step": fit.best_step,
        "val_history": fit.history,
        "val": evaluate_idm(idm, val),
        "test": evaluate_idm(idm, test),
    }
    idm.save_pretrained(out, {"data": str(Path(args.data).resolve()), "floor": metrics["test"]})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    tqdm.write(
        f"[test] action error {metrics['test']['action_error']['mean']:.4f} (mean over "
        f"{metrics['test']['pairs']} real pairs; weights of step {fit.best_step}) -> {out}"
    )
    return metrics


def main(argv: list[str] | None = None) -> int:
    from freeaction_gym.utils.args import parse_args
    from freeaction_gym.utils.threads import configure_threads

    args = parse_args(TrainIDMArgs, argv)
    configure_threads(args.threads)
    train_idm(args)
    return 0


if __name__ == "__main__":
    from freeaction_gym.utils.errors import cli_main

    raise SystemExit(cli_main(main)())  # user errors: one line, exit 2 (as `freeaction`)
