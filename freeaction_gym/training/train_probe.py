"""Train a :class:`~freeaction_gym.rewards.state_probe.StateProbe` on real frames.

    freeaction train-probe --data data/metaworld_v2 --out runs/probe_v2
    python -m freeaction_gym.training.train_probe --data data/metaworld_v2 --out runs/probe_v2

Examples are (frame k, state k) of every frame of the train split (episodes need the
per-frame ``state`` array the MetaWorld generator records). Loss: MSE on the state
normalised by the train-set mean/std. Augmentation: a random Gaussian blur on a fraction of
the frames, so that an imagined frame that puts a slightly soft arm in the right place is
read as in the right place (its softness is the sharpness metric's business, not the
probe's). No translation augmentation: with a fixed camera a shifted frame *is* a
different state. Every ``--eval-every`` steps the val split is scored; the weights with the
lowest val loss are kept and scored on the test split at the end: that score is the
probe's *floor*.

Writes to ``--out``: ``model.safetensors`` + ``config.json`` (load with
``StateProbe.from_pretrained(out)``) and ``metrics.json`` (arguments, val history, val and
test errors). Deterministic for a given ``--seed`` on one thread, unless ``--max-minutes``
cuts the run short.
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
from freeaction_gym.evaluation.paired_stats import mean_ci
from freeaction_gym.evaluation.probe import ERROR_NAMES, state_errors
from freeaction_gym.rewards.state_probe import StateProbe, StateProbeConfig, predict_states
from freeaction_gym.training.supervised import FitBudget, FrameModelArgs, fit_best_on_val
from freeaction_gym.utils.args import make_output_dir


@dataclass
class TrainProbeArgs(FrameModelArgs):
    """Train a CNN state probe (frame -> hand xyz, gripper, object xyz) on real frames."""

    data: str = "data/metaworld_v2"
    """Dataset root with per-frame ``state`` (``freeaction data metaworld``)."""
    out: str = "runs/probe"
    """Output directory (weights, config.json, metrics.json)."""
    frame_stride: int = 1
    """Use every ``frame_stride``-th frame of each train episode (1: all)."""


@dataclass
class StateFrames:
    """Every frame of a split with its state."""

    frames: torch.Tensor
    """uint8 (N, H, W, 3)."""
    states: torch.Tensor
    """float32 (N, S) per ``metaworld_gen.STATE_NAMES``."""
    episode: np.ndarray
    """int (N,) index of the source episode (for per-episode statistics)."""

    def __len__(self) -> int:
        return int(self.states.shape[0])


def load_state_frames(
    root: str | os.PathLike,
    split: str,
    stride: int = 1,
    max_episodes: int | None = None,
    seed: int = 0,
) -> StateFrames:
    """Frames ``0, stride, 2 stride, ...`` of each episode of ``split`` with their states;
    ``max_episodes`` keeps a fixed random subset (``seed``) of the episodes."""
    paths = list_episodes(root, split)
    if max_episodes is not None and max_episodes < len(paths):
        keep = np.sort(np.random.default_rng(seed).choice(len(paths), max_episodes, False))
        paths = [paths[i] for i in keep]
    frames, states, episode = [], [], []
    for e, path in enumerate(tqdm(paths, desc=f"load {split}", mininterval=5, leave=False)):
        ep = load_episode(path, load_depth=False, action_dim=None)
        if ep.state is None:
            raise ValueError(
                f"episode {path} has no per-frame state; regenerate the dataset with the "
                "current generator (`freeaction data metaworld ROOT ...`)"
            )
        frames.append(ep.rgb[::stride])
        states.append(ep.state[::stride])
        episode.append(np.full(len(states[-1]), e))
    return StateFrames(
        frames=torch.from_numpy(np.concatenate(frames)),
        states=torch.from_numpy(np.concatenate(states).astype(np.float32)),
        episode=np.concatenate(episode),
    )


def random_blur(
    frames: torch.Tensor, prob: float, sigma_max: float, generator: torch.Generator
) -> torch.Tensor:
    """Blur a random ``prob`` fraction of uint8 frames (B, H, W, 3) with a separable
    Gaussian of sigma ~ U(0, sigma_max) px (7-tap kernel, edges replicated)."""
    if prob <= 0 or sigma_max <= 0:
        return frames
    b, h, w, _ = frames.shape
    sigma = torch.rand(b, generator=generator) * sigma_max
    sigma = torch.where(torch.rand(b, generator=generator) < prob, sigma, torch.zeros(b))
    taps = torch.arange(-3, 4, dtype=torch.float32)  # (7,)
    kernel = torch.exp(-0.5 * (taps / sigma.clamp_min(1e-3)[:, None]) ** 2)  # (B, 7)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(3, 0)  # (3B, 7)
    x = frames.permute(0, 3, 1, 2).reshape(1, 3 * b, h, w).float()  # (1, 3B, H, W)
    x = F.conv2d(F.pad(x, (0, 0, 3, 3), mode="replicate"), kernel[:, None, :, None], groups=3 * b)
    x = F.conv2d(F.pad(x, (3, 3, 0, 0), mode="replicate"), kernel[:, None, None, :], groups=3 * b)
    return x.reshape(b, 3, h, w).permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8)


def evaluate_probe(probe: StateProbe, data: StateFrames) -> dict:
    """Normalised MSE (the training loss) and the :func:`state_errors` of every frame:
    mean over frames, median, 90th percentile and a 95% t-interval over episodes of the
    per-episode means (frames of one episode are not independent)."""
    pred = predict_states(probe, data.frames.numpy())  # (N, S)
    target = probe.normalize(data.states.double()).numpy()
    loss = float(np.mean((probe.normalize(torch.from_numpy(pred)).numpy() - target) ** 2))
    errors = state_errors(pred, data.states.numpy())
    out: dict = {"loss": loss, "frames": len(data), "episodes": int(data.episode.max() + 1)}
    for name in ERROR_NAMES:
        e = errors[name]
        per_episode = np.bincount(data.episode, e) / np.bincount(data.episode)
        mean, lo, hi = mean_ci(per_episode)
        out[name] = {
            "mean": float(e.mean()),
            "median": float(np.median(e)),
            "p90": float(np.quantile(e, 0.9)),
            "episode_mean": mean,
            "episode_ci95": [lo, hi],
        }
    return out


def train_probe(args: TrainProbeArgs) -> dict:
    """Train, select on val, score on test (the floor); write weights + metrics.json."""
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    train = load_state_frames(
        args.data, "train", args.frame_stride, args.max_train_episodes, args.seed
    )
    val = load_state_frames(args.data, "val")
    out = make_output_dir(args.out)  # once the data has loaded: a bad --data leaves none
    mean, std = train.states.double().mean(0), train.states.double().std(0)
    probe = StateProbe(
        StateProbeConfig(
            channels=tuple(args.channels),
            hidden=args.hidden,
            state_mean=mean.tolist(),
            state_std=std.clamp_min(1e-3).tolist(),  # constant columns (reach's object z)
        )
    )
    n_params = sum(p.numel() for p in probe.parameters())
    tqdm.write(
        f"[probe] {n_params} parameters; {len(train)} train / {len(val)} val frames of "
        f"{args.data}; state mean {np.round(mean.numpy(), 3)} std {np.round(std.numpy(), 3)}"
    )
    opt = torch.optim.AdamW(probe.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(0, len(train), (args.batch_size,), generator=gen)
        frames = random_blur(train.frames[idx], args.blur_prob, args.blur_sigma_max, gen)
        return F.mse_loss(probe.forward_normalized(frames), probe.normalize(train.states[idx]))

    def report(m: dict) -> str:
        return (
            f"[val] step {m['step']} loss {m['loss']:.4f} hand {m['hand_cm']['mean']:.2f} cm "
            f"gripper {m['gripper']['mean']:.3f} object {m['object_cm']['mean']:.2f} cm"
        )

    warmup = min(200, args.steps // 10)
    budget = FitBudget(args.steps, args.lr, warmup, args.eval_every, args.max_minutes)
    validate = lambda: evaluate_probe(probe, val)  # noqa: E731
    fit = fit_best_on_val(probe, opt, budget, batch_loss, validate, "probe", report)
    test = load_state_frames(args.data, "test")
    metrics = {
        "args": asdict(args),
        "num_parameters": n_params,
        "train_frames": len(train),
        "steps_done": fit.steps_done,
        "train_minutes": fit.minutes,
        "best_step": fit.best_step,
        "val_history": fit.history,
        "val": evaluate_probe(probe, val),
        "test": evaluate_probe(probe, test),
    }
    probe.save_pretrained(out, {"data": str(Path(args.data).resolve()), "floor": metrics["test"]})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    t = metrics["test"]
    tqdm.write(
        f"[test floor] hand {t['hand_cm']['mean']:.2f} cm, gripper {t['gripper']['mean']:.3f}, "
        f"object {t['object_cm']['mean']:.2f} cm (mean over {t['frames']} frames; weights "
        f"of step {fit.best_step}) -> {out}"
    )
    return metrics


def main(argv: list[str] | None = None) -> int:
    from freeaction_gym.utils.args import parse_args
    from freeaction_gym.utils.threads import configure_threads

    args = parse_args(TrainProbeArgs, argv)
    configure_threads(args.threads)
    train_probe(args)
    return 0


if __name__ == "__main__":
    from freeaction_gym.utils.errors import cli_main

    raise SystemExit(cli_main(main)())  # user errors: one line, exit 2 (as `freeaction`)
