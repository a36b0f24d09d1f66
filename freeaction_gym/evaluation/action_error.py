"""The Action Error Ratio (AVID, seed 002): do generated videos carry their actions?

An inverse-dynamics model (IDM) reads the action that led from frame t to frame t+1. Trained
on real frame pairs (:mod:`freeaction_gym.training.train_idm`), it has some error on real
held-out pairs; on the pairs of a generated video it has at least that much, more when the
video does not show what the action did. The Action Error Ratio is the IDM's mean action
error on generated frame pairs divided by its error on the real ones under the same actions:
1 for videos as action-faithful as real ones, above 1 otherwise (lower is better).

Action error of one pair: the mean absolute difference between the IDM's action and the
true one over the A action dimensions, in dataset units (MetaWorld: [-1, 1] per dimension).

Saved as ``{dir}/model.safetensors`` + ``{dir}/config.json`` (the config carries the action
normalisation), loaded with :meth:`InverseDynamicsModel.from_pretrained`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from freeaction_gym.utils.small_models import conv_encoder, load_small_model, save_small_model

IDM = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``idm(frames_t, frames_t1)``: uint8 (B, H, W, 3) each -> actions (B, A) in dataset units,
e.g. an :class:`InverseDynamicsModel`."""


@dataclass
class InverseDynamicsConfig:
    """Architecture and target normalisation of an :class:`InverseDynamicsModel`."""

    action_dim: int = 4
    channels: tuple[int, ...] = (32, 64, 96, 128)
    """Output channels of the stride-2 conv blocks (64x64 input -> 4x4 after four)."""
    pool_size: int = 4
    """Feature maps are average-pooled to ``pool_size x pool_size`` before the MLP, so the
    features keep *where* things moved (and any input size works)."""
    hidden: int = 256
    """Width of the MLP hidden layer."""
    action_mean: list[float] = field(default_factory=list)
    """Train-set mean per action dimension (dataset units); empty: zeros."""
    action_std: list[float] = field(default_factory=list)
    """Train-set std per action dimension (dataset units, > 0); empty: ones."""

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.action_mean = [float(v) for v in self.action_mean] or [0.0] * self.action_dim
        self.action_std = [float(v) for v in self.action_std] or [1.0] * self.action_dim
        if self.action_dim < 1 or not self.channels:
            raise ValueError("InverseDynamicsConfig needs action_dim >= 1 and >= 1 conv layer")
        if not len(self.action_mean) == len(self.action_std) == self.action_dim:
            raise ValueError(
                f"InverseDynamicsConfig: action_mean ({len(self.action_mean)}) and action_std "
                f"({len(self.action_std)}) need one entry per action dimension ({self.action_dim})"
            )
        if not all(s > 0 for s in self.action_std):
            raise ValueError(f"InverseDynamicsConfig.action_std must be > 0, got {self.action_std}")

    def to_dict(self) -> dict:
        return asdict(self) | {"channels": list(self.channels)}


class InverseDynamicsModel(nn.Module):
    """Frames t and t+1, uint8 (B, H, W, 3) each -> the action between them (B, A).

    The CNN sees both frames and their difference (9 channels in [-1, 1]; the difference
    puts what moved in front of it), then Conv(3x3, stride 2) + GroupNorm + SiLU blocks,
    adaptive average pooling to a fixed grid and a two-layer MLP, as the state probe
    (:class:`~freeaction_gym.rewards.state_probe.StateProbe`)."""

    def __init__(self, config: InverseDynamicsConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or InverseDynamicsConfig()
        self.encoder, width = conv_encoder(9, cfg.channels, cfg.pool_size)
        self.mlp = nn.Sequential(
            nn.Linear(width, cfg.hidden),
            nn.SiLU(),
            nn.Linear(cfg.hidden, cfg.action_dim),
        )
        self.register_buffer("action_mean", torch.tensor(cfg.action_mean), persistent=False)
        self.register_buffer("action_std", torch.tensor(cfg.action_std), persistent=False)

    def forward_normalized(self, frames_t: torch.Tensor, frames_t1: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) twice -> normalised action (B, A); the training loss is here."""
        if frames_t.shape != frames_t1.shape or frames_t.ndim != 4 or frames_t.shape[-1] != 3:
            raise ValueError(
                "frames must be two (B, H, W, 3) batches of one shape, got "
                f"{tuple(frames_t.shape)} and {tuple(frames_t1.shape)}"
            )
        a = frames_t.permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (B, 3, H, W) in [-1, 1]
        b = frames_t1.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return self.mlp(self.encoder(torch.cat([a, b, b - a], dim=1)))  # (B, A)

    def forward(self, frames_t: torch.Tensor, frames_t1: torch.Tensor) -> torch.Tensor:
        """The action (B, A) in dataset units."""
        return self.forward_normalized(frames_t, frames_t1) * self.action_std + self.action_mean

    def normalize(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions (B, A) in dataset units -> the network's target space."""
        return (actions - self.action_mean) / self.action_std

    def save_pretrained(self, directory: str | Path, extra: dict | None = None) -> Path:
        """Write ``model.safetensors`` + ``config.json`` (with ``extra`` metadata)."""
        return save_small_model(
            self, directory, "InverseDynamicsModel", self.config.to_dict(), extra
        )

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> InverseDynamicsModel:
        """Rebuild a model saved by :meth:`save_pretrained` (CPU, eval mode)."""
        return load_small_model(
            directory,
            cls,
            InverseDynamicsConfig,
            "inverse dynamics model",
            f"freeaction train-idm --data DATA --out {directory}",
        )


@torch.inference_mode()
def predict_actions(
    idm: IDM, frames_t: np.ndarray, frames_t1: np.ndarray, batch: int = 512
) -> np.ndarray:
    """uint8 (N, H, W, 3) twice -> float64 (N, A) actions in dataset units."""
    a, b = (torch.from_numpy(np.ascontiguousarray(x)) for x in (frames_t, frames_t1))
    was_training = getattr(idm, "training", False)
    if isinstance(idm, nn.Module):
        idm.eval()
    out = torch.cat([idm(a[i : i + batch], b[i : i + batch]) for i in range(0, len(a), batch)])
    if isinstance(idm, nn.Module):
        idm.train(was_training)
    return out.double().numpy()


def _check_video(video: np.ndarray, name: str) -> np.ndarray:
    v = np.asarray(video)
    if v.dtype != np.uint8 or v.ndim != 5 or v.shape[-1] != 3:
        raise ValueError(f"{name} must be uint8 videos (N, F, H, W, 3), got {v.dtype} {v.shape}")
    return v


def clip_action_errors(
    idm: IDM,
    video: np.ndarray,
    actions: np.ndarray | torch.Tensor,
    num_context: int = 1,
    batch: int = 512,
) -> np.ndarray:
    """Mean action error per clip, float64 (N,): the IDM's action on every pair (frame t,
    frame t + 1) of ``video`` uint8 (N, F, H, W, 3) whose later frame is a predicted one
    (t + 1 >= ``num_context``) against ``actions[:, t]`` (N, F - 1, A), mean absolute
    difference over the A dimensions, averaged over the clip's pairs."""
    v = _check_video(video, "video")
    a = np.asarray(actions.cpu() if torch.is_tensor(actions) else actions, np.float64)
    n, f = v.shape[:2]
    if a.ndim != 3 or a.shape[:2] != (n, f - 1):
        raise ValueError(f"actions must be (N, F - 1, A) = ({n}, {f - 1}, A), got {a.shape}")
    if not 1 <= num_context < f:
        raise ValueError(f"num_context={num_context} leaves no predicted frame of {f}")
    first = num_context - 1  # the pair (last context frame, first predicted frame)
    t0 = v[:, first:-1].reshape(-1, *v.shape[2:])  # (N P, H, W, 3), P = F - num_context
    t1 = v[:, first + 1 :].reshape(-1, *v.shape[2:])
    pred = predict_actions(idm, t0, t1, batch)  # (N P, A)
    true = a[:, first:].reshape(-1, a.shape[-1])
    if pred.shape != true.shape:
        raise ValueError(f"the IDM predicts {pred.shape[1:]} actions, the clips have {a.shape[2:]}")
    return np.abs(pred - true).mean(axis=1).reshape(n, -1).mean(axis=1)


def action_error_ratio(
    idm: IDM,
    generated: np.ndarray,
    real: np.ndarray,
    actions: np.ndarray | torch.Tensor,
    num_context: int = 1,
    batch: int = 512,
) -> np.ndarray:
    """The Action Error Ratio per clip, float64 (N,): :func:`clip_action_errors` on the
    ``generated`` videos divided by that on the ``real`` ones (both uint8 (N, F, H, W, 3),
    same context frames, same ``actions`` (N, F - 1, A)). Per clip, so a CI can be taken
    over clips; a clip whose real error is 0 gives inf (nan if both are 0), which
    :func:`~freeaction_gym.evaluation.paired_stats.mean_ci` drops."""
    g, r = _check_video(generated, "generated"), _check_video(real, "real")
    if g.shape != r.shape:
        raise ValueError(f"generated {g.shape} and real {r.shape} videos differ in shape")
    gen = clip_action_errors(idm, g, actions, num_context, batch)
    ref = clip_action_errors(idm, r, actions, num_context, batch)
    with np.errstate(divide="ignore", invalid="ignore"):
        return gen / ref
