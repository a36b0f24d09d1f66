"""Train a :class:`~freeaction_gym.rewards.learned.RewardHead` on an episode dataset.

    freeaction train-reward --data data/metaworld_default --out runs/reward_head

Examples are (frame k+1, reward[k], success[k]) of every train-split transition: the frame
the environment shows after action k, and that action's reward and success. Loss: MSE on
the reward normalised by the train-set mean/std + binary cross-entropy on success with
``pos_weight = #negatives / #positives`` (success is rare). Every ``--eval-every`` steps
the val split is scored; the weights with the lowest val loss are kept and scored on the
test split at the end.

Writes to ``--out``: ``model.safetensors`` + ``config.json`` (load with
``RewardHead.from_pretrained(out)``) and ``metrics.json`` (arguments, val history, test
metrics overall and per task). Deterministic for a given ``--seed`` on one thread, unless
``--max-minutes`` cuts the run short.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from tqdm.auto import tqdm

from freeaction_gym.data.episodes import (
    list_episodes,
    load_episode,
    stems_matching,
    task_of_path,
)
from freeaction_gym.rewards.learned import RewardHead, RewardHeadConfig
from freeaction_gym.training.supervised import FitBudget, fit_best_on_val
from freeaction_gym.utils.args import make_output_dir


@dataclass
class TrainRewardArgs:
    data: list[str] = field(default_factory=lambda: ["data/metaworld_default"])
    """Dataset roots (``meta.json`` + ``train/ val/ test/`` episode files); several roots
    are pooled, e.g. a real dataset and its imagined copy (``freeaction imagine``), so the
    head also reads the world model's frames."""
    out: str = "runs/reward_head"
    """Output directory (weights, config.json, metrics.json)."""
    steps: int = 3000
    """Optimiser steps (the learning rate decays to 10% over them, cosine; or over
    ``max_minutes`` if that comes first)."""
    batch_size: int = 64
    lr: float = 1e-3
    """Peak AdamW learning rate (after a 100-step linear warm-up)."""
    weight_decay: float = 1e-4
    seed: int = 0
    max_minutes: float | None = None
    """Stop early (keeping the best val weights) after this much wall time; the learning
    rate schedule then follows the elapsed time so that it still ends decayed."""
    eval_every: int = 250
    """Score the val split every this many steps."""
    shift: int = 2
    """Random-translation augmentation: up to +-shift pixels (edge-padded); 0 disables it."""
    tasks: list[str] | None = None
    """Tasks to train on (default: every task of the train split)."""
    channels: list[int] = field(default_factory=lambda: [32, 64, 64, 64])
    """Conv widths of the head (see RewardHeadConfig)."""
    hidden: int = 128
    oversample_pattern: str | None = None
    """A regular expression: train frames of episodes whose file stem fully matches it (e.g.
    the Dyna loop's collected ones) make up ``oversample_share`` of every batch."""
    oversample_share: float = 0.0
    """Probability that a training frame comes from a matching episode (0: uniform)."""


@dataclass
class FrameSet:
    """Every transition of a split: the frame after action k and that action's labels."""

    frames: torch.Tensor
    """uint8 (N, H, W, 3)."""
    task_ids: torch.Tensor
    """long (N,)."""
    reward: torch.Tensor
    """float32 (N,)."""
    success: torch.Tensor
    """bool (N,)."""
    stems: np.ndarray
    """str (N,): the file stem of each frame's episode."""

    def __len__(self) -> int:
        return int(self.reward.shape[0])


def load_frame_set(root: str | os.PathLike | list[str], split: str, tasks: list[str]) -> FrameSet:
    """Frames 1..T of each episode of ``split`` (only ``tasks``) with reward/success 0..T-1;
    a list of roots is pooled."""
    roots = [root] if isinstance(root, str | os.PathLike) else list(root)
    frames, task_ids, reward, success, stems = [], [], [], [], []
    for path in (p for r in roots for p in list_episodes(r, split, tasks)):
        ep = load_episode(path, load_depth=False, action_dim=None)
        frames.append(ep.rgb[1:])  # frame k+1 is the result of action k
        task_ids.append(np.full(ep.num_actions, tasks.index(task_of_path(path))))
        reward.append(ep.reward)
        success.append(ep.success)
        stems.append(np.full(ep.num_actions, Path(path).stem, dtype=object))
    return FrameSet(
        frames=torch.from_numpy(np.concatenate(frames)),
        task_ids=torch.from_numpy(np.concatenate(task_ids)).long(),
        reward=torch.from_numpy(np.concatenate(reward)).float(),
        success=torch.from_numpy(np.concatenate(success)).bool(),
        stems=np.concatenate(stems),
    )


class FrameSampler:
    """Draws training frame indices: uniform, or (``pattern`` and ``share`` > 0) from the
    frames of episodes whose file stem fully matches ``pattern`` with probability ``share``
    and from the others otherwise. With no match or nothing else it stays uniform."""

    def __init__(self, stems: np.ndarray, pattern: str | None, share: float) -> None:
        if not 0.0 <= share < 1.0:
            raise ValueError(f"oversample_share must be in [0, 1), got {share}")
        self.n = len(stems)
        match = stems_matching(stems, pattern)
        self.matches = int(match.sum())
        self.pools = None
        if share > 0 and 0 < self.matches < self.n:
            hit, rest = np.flatnonzero(match), np.flatnonzero(~match)
            self.pools = (torch.from_numpy(hit), torch.from_numpy(rest), share)

    def __call__(self, batch: int, gen: torch.Generator) -> torch.Tensor:
        """Long (batch,) indices into the frame set."""
        if self.pools is None:
            return torch.randint(0, self.n, (batch,), generator=gen)
        hit, rest, share = self.pools
        pick = torch.rand(batch, generator=gen) < share
        from_hit = hit[torch.randint(0, len(hit), (batch,), generator=gen)]
        from_rest = rest[torch.randint(0, len(rest), (batch,), generator=gen)]
        return torch.where(pick, from_hit, from_rest)


# ----------------------------------------------------------------------------- metrics


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the rank (Mann-Whitney U) formula, ties counted half:
    ``(sum of positive ranks - P (P + 1) / 2) / (P N)``. NaN if a class is absent."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks for ties
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("nan")


def reward_success_metrics(
    pred_reward: np.ndarray,
    reward: np.ndarray,
    success_prob: np.ndarray,
    success: np.ndarray,
    threshold: float = 0.5,
) -> dict[str, float]:
    """Reward MAE / Pearson r and success accuracy, balanced accuracy, precision, recall,
    AUROC (success predicted when ``success_prob > threshold``)."""
    pred_reward, reward = np.asarray(pred_reward, np.float64), np.asarray(reward, np.float64)
    success = np.asarray(success, bool)
    pred = np.asarray(success_prob) > threshold
    tp, tn = int((pred & success).sum()), int((~pred & ~success).sum())
    fp, fn = int((pred & ~success).sum()), int((~pred & success).sum())
    const = pred_reward.std() == 0 or reward.std() == 0
    tpr, tnr = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    return {
        "n": int(reward.size),
        "success_rate": float(success.mean()),
        "reward_mae": float(np.abs(pred_reward - reward).mean()),
        "reward_pearson": float("nan") if const else float(np.corrcoef(pred_reward, reward)[0, 1]),
        "success_accuracy": _ratio(tp + tn, success.size),
        "success_balanced_accuracy": float(np.nanmean([tpr, tnr])),
        "success_precision": _ratio(tp, tp + fp),
        "success_recall": tpr,
        "success_auroc": auroc(success_prob, success),
    }


@torch.inference_mode()
def predict(head: RewardHead, data: FrameSet, batch_size: int = 256):
    """(reward (N,), success probability (N,), normalised reward (N,), logit (N,)) as numpy."""
    head.eval()
    outs = [
        head.forward_normalized(data.frames[i : i + batch_size], data.task_ids[i : i + batch_size])
        for i in range(0, len(data), batch_size)
    ]
    r_norm = torch.cat([o[0] for o in outs])
    logit = torch.cat([o[1] for o in outs])
    reward = r_norm * head.reward_std + head.reward_mean
    return reward.numpy(), torch.sigmoid(logit).numpy(), r_norm, logit


def evaluate(head: RewardHead, data: FrameSet, pos_weight: float, per_task: bool = False) -> dict:
    """Loss terms (as in training) + :func:`reward_success_metrics`, optionally per task."""
    reward, prob, r_norm, logit = predict(head, data)
    target = (data.reward - head.reward_mean) / head.reward_std
    mse = float(F.mse_loss(r_norm, target))
    bce = float(
        F.binary_cross_entropy_with_logits(
            logit, data.success.float(), pos_weight=torch.tensor(pos_weight)
        )
    )
    m = {"loss": mse + bce, "reward_mse_normalized": mse, "success_bce": bce}
    m |= reward_success_metrics(reward, data.reward.numpy(), prob, data.success.numpy())
    if per_task:
        ids = data.task_ids.numpy()
        m["per_task"] = {
            name: reward_success_metrics(
                reward[ids == i],
                data.reward.numpy()[ids == i],
                prob[ids == i],
                data.success.numpy()[ids == i],
            )
            for i, name in enumerate(head.tasks)
            if (ids == i).any()
        }
    return m


# ----------------------------------------------------------------------------- training


def random_shift(frames: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each uint8 frame (B, H, W, 3) by up to +-shift pixels (edges replicated)."""
    if shift <= 0:
        return frames
    b, h, w, _ = frames.shape
    x = F.pad(frames.permute(0, 3, 1, 2).float(), (shift,) * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * shift + 1, (2, b), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(b, 3, h, w + 2 * shift)
    x = x.gather(2, rows)  # (B, 3, H, W + 2s)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(b, 3, h, w)
    x = x.gather(3, cols)  # (B, 3, H, W)
    return x.permute(0, 2, 3, 1).to(torch.uint8)


def train_reward_head(args: TrainRewardArgs) -> dict:
    """Train, select on val, score on test; write weights + metrics.json; return metrics."""
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    if isinstance(args.data, str | os.PathLike):
        args.data = [str(args.data)]
    tasks = args.tasks or sorted({task_of_path(p) for p in list_episodes(args.data[0], "train")})
    train, val = load_frame_set(args.data, "train", tasks), load_frame_set(args.data, "val", tasks)
    out = make_output_dir(args.out)  # once the data has loaded: a bad --data leaves none
    r_mean, r_std = float(train.reward.mean()), float(train.reward.std())
    n_pos = int(train.success.sum())
    pos_weight = (len(train) - n_pos) / max(n_pos, 1)
    head = RewardHead(
        RewardHeadConfig(
            tasks=tasks,
            channels=tuple(args.channels),
            hidden=args.hidden,
            reward_mean=r_mean,
            reward_std=max(r_std, 1e-6),
        )
    )
    n_params = sum(p.numel() for p in head.parameters())
    tqdm.write(
        f"[reward head] {n_params} parameters; {len(train)} train / {len(val)} val "
        f"frames; tasks {tasks}; success rate {n_pos / len(train):.3f}, "
        f"pos_weight {pos_weight:.2f}; reward mean {r_mean:.3f} std {r_std:.3f}"
    )
    sampler = FrameSampler(train.stems, args.oversample_pattern, args.oversample_share)
    if args.oversample_pattern is not None:
        tqdm.write(
            f"[reward head] {sampler.matches} of {len(train)} train frames match "
            f"{args.oversample_pattern!r}: drawn with probability {args.oversample_share:g}"
            + ("" if sampler.pools is not None else " (no effect)")
        )
    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    pw = torch.tensor(pos_weight)

    def batch_loss() -> torch.Tensor:
        idx = sampler(args.batch_size, gen)
        frames = random_shift(train.frames[idx], args.shift, gen)  # (B, H, W, 3)
        r_norm, logit = head.forward_normalized(frames, train.task_ids[idx])
        loss_r = F.mse_loss(r_norm, (train.reward[idx] - r_mean) / head.reward_std)
        labels = train.success[idx].float()
        return loss_r + F.binary_cross_entropy_with_logits(logit, labels, pos_weight=pw)

    def report(m: dict) -> str:
        return (
            f"[val] step {m['step']} loss {m['loss']:.4f} reward MAE {m['reward_mae']:.3f} "
            f"r {m['reward_pearson']:.3f} success bal.acc "
            f"{m['success_balanced_accuracy']:.3f} AUROC {m['success_auroc']:.3f}"
        )

    warmup = min(100, args.steps // 10)
    budget = FitBudget(args.steps, args.lr, warmup, args.eval_every, args.max_minutes)
    validate = lambda: evaluate(head, val, pos_weight)  # noqa: E731
    fit = fit_best_on_val(head, opt, budget, batch_loss, validate, "reward head", report)
    head.save_pretrained(out)
    test = load_frame_set(args.data, "test", tasks)
    metrics = {
        "args": asdict(args),
        "num_parameters": n_params,
        "train": {
            "frames": len(train),
            "success_rate": n_pos / len(train),
            "pos_weight": pos_weight,
            "reward_mean": r_mean,
            "reward_std": r_std,
        },
        "steps_done": fit.steps_done,
        "train_minutes": fit.minutes,
        "best_step": fit.best_step,
        "val_history": fit.history,
        "val": evaluate(head, val, pos_weight, per_task=True),
        "test": evaluate(head, test, pos_weight, per_task=True),
    }
    if len(args.data) > 1:
        metrics["test_by_data"] = {
            root: evaluate(head, load_frame_set(root, "test", tasks), pos_weight, per_task=True)
            for root in args.data
        }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    t = metrics["test"]
    tqdm.write(
        f"[test] reward MAE {t['reward_mae']:.3f} r {t['reward_pearson']:.3f}; success "
        f"acc {t['success_accuracy']:.3f} bal.acc {t['success_balanced_accuracy']:.3f} "
        f"P {t['success_precision']:.3f} R {t['success_recall']:.3f} "
        f"AUROC {t['success_auroc']:.3f} (weights of step {fit.best_step}) -> {out}"
    )
    return metrics


def parse_args(argv: list[str] | None = None) -> TrainRewardArgs:
    d = TrainRewardArgs()
    p = argparse.ArgumentParser(
        prog="freeaction train-reward",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", nargs="+", default=d.data, help="dataset root(s), pooled")
    p.add_argument("--out", default=d.out, help="output directory")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--max-minutes",
        type=float,
        default=d.max_minutes,
        help="wall-time budget; the best val weights so far are kept",
    )
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--shift", type=int, default=d.shift, help="augmentation: max shift (px)")
    p.add_argument("--tasks", nargs="+", default=None, help="default: all train-split tasks")
    p.add_argument("--channels", type=int, nargs="+", default=d.channels, help="conv widths")
    p.add_argument("--hidden", type=int, default=d.hidden, help="MLP width")
    p.add_argument(
        "--oversample-pattern",
        default=None,
        help="regular expression of episode file stems to oversample (e.g. collected ones)",
    )
    p.add_argument(
        "--oversample-share",
        type=float,
        default=d.oversample_share,
        help="probability a training frame comes from a matching episode",
    )
    a = p.parse_args(argv)
    for name in ("steps", "batch_size", "eval_every"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if not 0.0 <= a.oversample_share < 1.0:
        p.error(f"--oversample-share must be in [0, 1), got {a.oversample_share}")
    return TrainRewardArgs(**vars(a))


def main(argv: list[str] | None = None) -> int:
    from freeaction_gym.utils.threads import configure_threads

    configure_threads()
    train_reward_head(parse_args(argv))
    return 0


if __name__ == "__main__":
    from freeaction_gym.utils.errors import cli_main

    raise SystemExit(cli_main(main)())  # user errors: one line, exit 2 (as `freeaction`)
