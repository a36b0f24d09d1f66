"""Resuming an interrupted ``agents.train`` run (``--resume``): runs longer than a session.

:class:`ResumeCallback` keeps one rolling snapshot in ``<out>/resume/``: the model
(``model.zip``), for off-policy agents the filled part of the replay buffer
(``buffer.npz``), any ``VecNormalize`` statistics, and ``state.json`` - the step count,
the training seconds so far and the (steps, seconds) history at every snapshot (what a
benchmark reads a budget's wall time from). Files are written under temporary names and
renamed, ``state.json`` last, so an interrupted write leaves the previous snapshot usable.

:class:`StepCheckpointCallback` saves ``<prefix>_<N>_steps.zip`` whenever the step count
crosses a multiple of ``every`` - by steps, not by callback calls (SB3's
``CheckpointCallback``), so a resumed run still names its checkpoints by the true step.

A resumed run continues the saved networks, optimisers, entropy coefficient, replay
buffer and step count; the environments start new episodes, the random streams start
afresh and the update right after the snapshot is skipped (snapshots are taken at the end
of a rollout, before its gradient steps), so it is not bit-identical to an uninterrupted
run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

BUFFER_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def resume_state(out: str | Path) -> dict[str, Any] | None:
    """``<out>/resume/state.json`` (steps, seconds, history, files), or None."""
    path = Path(out) / "resume" / "state.json"
    return json.loads(path.read_text()) if path.is_file() else None


def save_buffer(buffer, path: Path) -> None:
    """The filled rows of an SB3 replay buffer (Box or Dict observations) and its position,
    as one ``.npz``."""
    n = buffer.buffer_size if buffer.full else buffer.pos
    arrays: dict[str, np.ndarray] = {"pos": np.int64(buffer.pos), "full": np.bool_(buffer.full)}
    for name in BUFFER_FIELDS:
        value = getattr(buffer, name)
        if isinstance(value, dict):
            arrays.update({f"{name}/{k}": v[:n] for k, v in value.items()})
        else:
            arrays[name] = value[:n]
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_buffer(buffer, path: Path) -> None:
    """Fill a freshly made buffer of the same size and spaces from :func:`save_buffer`'s file;
    ``ValueError`` when the shapes differ."""
    with np.load(path) as z:
        n = int(z["pos"]) if not bool(z["full"]) else buffer.buffer_size
        for name in BUFFER_FIELDS:
            target = getattr(buffer, name)
            parts = (
                {k: (target[k], f"{name}/{k}") for k in target}
                if isinstance(target, dict)
                else {None: (target, name)}
            )
            for array, key in parts.values():
                saved = z[key]
                if saved.shape[0] != n or saved.shape[1:] != array.shape[1:]:
                    raise ValueError(
                        f"saved replay buffer {path}: {key} has shape {saved.shape}, the "
                        f"agent's buffer holds {array.shape} (different settings?)"
                    )
                array[:n] = saved
        buffer.pos, buffer.full = int(z["pos"]), bool(z["full"])


class ResumeCallback(BaseCallback):
    """Snapshot the run into ``<out>/resume/`` every ``every`` environment steps (see the
    module docstring). ``seconds_before``/``history``: what a resumed run carries over."""

    def __init__(
        self, out: str | Path, every: int, seconds_before: float = 0.0, history=None
    ) -> None:
        super().__init__()
        self.dir, self.every = Path(out) / "resume", int(every)
        self.seconds_before = float(seconds_before)
        self.history: list[list[float]] = [list(h) for h in (history or [])]
        self._t0 = time.perf_counter()
        self._last = 0

    def _on_training_start(self) -> None:
        self._t0 = time.perf_counter()
        self._last = self.num_timesteps // self.every

    def seconds(self) -> float:
        """Training seconds so far, across resumes."""
        return self.seconds_before + time.perf_counter() - self._t0

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        """After a rollout's transitions are stored (SB3 calls ``on_step`` before storing),
        before the gradient steps that follow it: a resumed run skips that one update."""
        if self.num_timesteps // self.every > self._last:
            self._last = self.num_timesteps // self.every
            if self.num_timesteps < self.model._total_timesteps:  # the last one: finish()
                self.save()

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        seconds = self.seconds()
        self.model.save(self.dir / "model.tmp.zip")
        os.replace(self.dir / "model.tmp.zip", self.dir / "model.zip")
        files = ["model.zip"]
        if getattr(self.model, "replay_buffer", None) is not None:
            save_buffer(self.model.replay_buffer, self.dir / "buffer.npz")
            files.append("buffer.npz")
        vec_norm = self.model.get_vec_normalize_env()
        if vec_norm is not None:
            vec_norm.save(str(self.dir / "vecnormalize.tmp.pkl"))
            os.replace(self.dir / "vecnormalize.tmp.pkl", self.dir / "vecnormalize.pkl")
            files.append("vecnormalize.pkl")
        self._write_state(self.num_timesteps, seconds, files)

    def finish(self, steps: int, seconds: float) -> list[list[float]]:
        """At the end of training: record the final (steps, seconds), remove the snapshot's
        model and buffer (GBs for a full buffer; a finished run has ``final_model.zip``) and
        return the history."""
        for name in ("model.zip", "buffer.npz", "vecnormalize.pkl"):
            (self.dir / name).unlink(missing_ok=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_state(steps, seconds, [])
        return self.history

    def _write_state(self, steps: int, seconds: float, files: list[str]) -> None:
        if not self.history or self.history[-1][0] != float(steps):
            self.history.append([float(steps), float(seconds)])
        state = {"steps": int(steps), "seconds": float(seconds), "history": self.history,
                 "files": files}  # fmt: skip
        tmp = self.dir / "state.tmp.json"
        tmp.write_text(json.dumps(state, indent=1) + "\n")
        os.replace(tmp, self.dir / "state.json")


class StepCheckpointCallback(BaseCallback):
    """``<save_path>/<prefix>_<N>_steps.zip`` each time the step count N crosses a multiple
    of ``every`` (true step counts after a resume, unlike SB3's per-call counter)."""

    def __init__(self, every: int, save_path: str | Path, prefix: str) -> None:
        super().__init__()
        self.every, self.save_path, self.prefix = int(every), Path(save_path), prefix
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps // self.every

    def _on_step(self) -> bool:
        if self.num_timesteps // self.every > self._last:
            self._last = self.num_timesteps // self.every
            self.save_path.mkdir(parents=True, exist_ok=True)
            self.model.save(self.save_path / f"{self.prefix}_{self.num_timesteps}_steps.zip")
        return True
