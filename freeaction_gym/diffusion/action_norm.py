"""The action magnitude ||a|| that drives both FreeAction techniques.

The papers leave open which norm ``||a||_2`` is (REFERENCE §3). We make it explicit:

* ``kind="chunk_l2"``: L2 norm of the whole chunk flattened, ``sqrt(sum_k sum_i a_ki^2)``;
* ``kind="mean_step_l2"``: mean over steps of the per-step L2 norm, ``mean_k ||a_k||_2``;

computed on ``space="raw"`` actions (the dataset's units, e.g. IRASim's x20 deltas) or on
``space="normalized"`` actions ``(a - mean) / std`` with the dataset statistics. The same
:class:`ActionNormSpec` must be used for ``mu_act`` (:func:`mean_action_norm`) and at
sampling time, otherwise the sigmoid in eq. 3 is centred on the wrong value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch


@dataclass(frozen=True)
class ActionNormSpec:
    """Which ``||a||`` to use.

    kind: ``"chunk_l2"`` (L2 of the flattened chunk) or ``"mean_step_l2"`` (mean of
        per-step L2 norms).
    space: ``"raw"`` (dataset units) or ``"normalized"`` (``(a - mean) / std``).
    """

    kind: Literal["chunk_l2", "mean_step_l2"] = "mean_step_l2"
    space: Literal["raw", "normalized"] = "raw"

    def __post_init__(self) -> None:
        if self.kind not in ("chunk_l2", "mean_step_l2"):
            raise ValueError(
                f"ActionNormSpec.kind must be 'chunk_l2' or 'mean_step_l2', got {self.kind!r}"
            )
        if self.space not in ("raw", "normalized"):
            raise ValueError(
                f"ActionNormSpec.space must be 'raw' or 'normalized', got {self.space!r}"
            )

    def __call__(
        self,
        actions: torch.Tensor,
        mean: torch.Tensor | np.ndarray | None = None,
        std: torch.Tensor | np.ndarray | None = None,
    ) -> torch.Tensor:
        """Norm per sample. ``actions`` (B, K, A) -> (B,). ``mean``/``std`` (A,) are
        required for ``space="normalized"``."""
        return action_norm(actions, self, mean, std)


def action_norm(
    actions: torch.Tensor,
    spec: ActionNormSpec = ActionNormSpec(),
    mean: torch.Tensor | np.ndarray | None = None,
    std: torch.Tensor | np.ndarray | None = None,
) -> torch.Tensor:
    """``||a||`` per sample for a batch of action chunks (B, K, A) -> (B,)."""
    a = torch.as_tensor(actions)
    if a.ndim != 3:
        raise ValueError(
            f"actions must have shape (batch, steps, action_dim), got {tuple(a.shape)}"
        )
    a = a.to(torch.float64)
    if spec.space == "normalized":
        if mean is None or std is None:
            raise ValueError("space='normalized' needs the dataset action mean and std")
        m = torch.as_tensor(mean, dtype=torch.float64)
        s = torch.as_tensor(std, dtype=torch.float64).clamp_min(1e-8)
        a = (a - m) / s
    if spec.kind == "chunk_l2":
        out = a.flatten(1).norm(dim=1)
    else:
        out = a.norm(dim=2).mean(dim=1)
    return out.to(torch.float32)


def mean_action_norm(
    actions: np.ndarray | torch.Tensor,
    chunk: int,
    spec: ActionNormSpec = ActionNormSpec(),
    mean: np.ndarray | torch.Tensor | None = None,
    std: np.ndarray | torch.Tensor | None = None,
) -> float:
    """``mu_act``: mean of ``||a||`` over all non-overlapping ``chunk``-step windows of one
    or more action sequences. ``actions`` is (T, A) or a list-like batch (N, T, A)."""
    a = torch.as_tensor(np.asarray(actions), dtype=torch.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"actions must be (T, A) or (N, T, A), got {tuple(a.shape)}")
    n_win = a.shape[1] // chunk
    if n_win == 0:
        raise ValueError(f"sequences of length {a.shape[1]} are shorter than chunk={chunk}")
    windows = a[:, : n_win * chunk].reshape(a.shape[0] * n_win, chunk, a.shape[2])
    return float(action_norm(windows, spec, mean, std).mean())
