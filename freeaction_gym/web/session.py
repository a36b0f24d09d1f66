"""One browser play episode: the imagined env, its real MetaWorld twin and the recording.

:class:`PlaySession` is what the server's worker thread drives; it knows nothing of
websockets (its methods take and return plain values and JSON-ready dicts), so it is
tested without a server. The imagined env is ``gym.make(env_id, **env_kwargs)``; for the
MetaWorld ids a :class:`~freeaction_gym.envs.real_metaworld.RealMetaWorldEnv` on the same
reset bank starts from the same scene (bank entry) and takes the same actions, and each
step scores the imagined frame against the real one (PSNR in dB and SSIM, RGB, data range
255, scikit-image). The episode is recorded from its reset: frames of both worlds, the
keys and the actions, as an mp4 (imagined | real) and as JSON that ``freeaction play
--keys FILE.json`` replays.
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from freeaction_gym.keymap import KEY_HELP, MOVES, key_to_action
from freeaction_gym.web.protocol import active_sampling, sampling_overrides

PSNR_CAP = 99.0  # dB: identical frames give +inf, which JSON cannot carry


def png_data_url(frame: np.ndarray) -> str:
    """uint8 (H, W, 3) -> ``data:image/png;base64,...`` (the page upscales it)."""
    import imageio.v2 as imageio

    buf = io.BytesIO()
    imageio.imwrite(buf, frame, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def frame_scores(imagined: np.ndarray, real: np.ndarray) -> tuple[float, float]:
    """(PSNR dB capped at :data:`PSNR_CAP`, SSIM) of two uint8 (H, W, 3) frames."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    if np.array_equal(imagined, real):
        return PSNR_CAP, 1.0
    psnr = peak_signal_noise_ratio(real, imagined, data_range=255)
    ssim = structural_similarity(real, imagined, channel_axis=-1, data_range=255)
    return min(float(psnr), PSNR_CAP), float(ssim)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return np.round(value.astype(np.float64), 4).tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class PlaySession:
    """The episode behind the page. ``real``: ``"auto"`` (the MetaWorld ids get a real
    pane when MetaWorld and a bank naming its layouts are there), ``True`` (required) or
    ``False``. Not thread-safe: one worker thread calls it."""

    def __init__(
        self, env_id: str, seed: int = 0, real: bool | str = "auto", **env_kwargs: Any
    ) -> None:
        import gymnasium as gym

        import freeaction_gym  # noqa: F401  (registers the ids)

        self.env_id, self.seed, self.episodes = env_id, seed, 0
        self.env = gym.make(env_id, render_mode="rgb_array", **env_kwargs)
        self.core = self.env.unwrapped.core
        self.bank = self.core.bank
        self.action_shape = self.env.action_space.shape
        self.real, self.real_reason = None, "not a MetaWorld env id"
        if real is True or (real == "auto" and "MetaWorld" in env_id):
            self.real, self.real_reason = self._make_real(real is True)
        self.rng = np.random.default_rng(seed)
        self.gripper, self.done, self.paused = -1.0, False, False
        self.scene: dict[str, Any] = {}
        self.frames: list[np.ndarray] = []
        self.real_frames: list[np.ndarray] = []
        self.keys: list[str] = []
        self.actions: list[list[float]] = []
        self.scores: list[tuple[float, float]] = []
        self.sampling_changes: list[dict[str, Any]] = []
        self.last_frame: dict[str, Any] | None = None
        """The newest ``frame`` message (a page that connects later starts from it)."""

    def _make_real(self, required: bool):
        from freeaction_gym.envs.real_metaworld import RealMetaWorldEnv

        cfg = self.core.config
        try:
            real = RealMetaWorldEnv(
                render_mode="rgb_array",
                model=cfg.model,
                reset_bank=cfg.reset_bank,
                task=cfg.task,
                terminate_on_success=False,  # the imagined episode decides when it ends
                max_episode_steps=10**6,
            )
            if real.bank is None or len(real.bank) != len(self.bank or ()):
                raise ValueError("its reset bank names no MetaWorld layouts")
        except Exception as err:  # no MetaWorld installed, no layouts, ...
            if required:
                raise
            return None, f"no real MetaWorld pane: {err}"
        return real, ""

    # -- messages ------------------------------------------------------------------------
    def hello(self) -> dict[str, Any]:
        """What the page needs before the first frame."""
        bank: dict[str, list[int]] = {}
        if self.bank is not None:
            for task in self.bank.tasks:
                bank[task] = self.bank.indices(task).tolist()
        return {
            "type": "hello",
            "env_id": self.env_id,
            "real": self.real is not None,
            "real_reason": self.real_reason,
            "bank": bank,
            "moves": {k: list(v) for k, v in MOVES.items()},
            "key_help": KEY_HELP,
            "sampling": active_sampling(self.core.sampling),
            "max_episode_steps": self.core.config.max_episode_steps,
        }

    def reset(
        self, task: str | None = None, bank_index: int | None = None, seed: int | None = None
    ) -> dict[str, Any]:
        """A new episode from bank entry ``bank_index`` (default: drawn, of ``task`` if
        given) with noise seed ``seed`` (default: the session seed + episode number).
        ``ValueError`` (nothing changed) for an entry or task the bank lacks."""
        if self.bank is None:
            raise ValueError(f"{self.env_id} has no reset bank to start from (pass reset_bank=)")
        if bank_index is None:
            idx = self.bank.indices(task)  # ValueError naming the bank's tasks
            bank_index = int(idx[self.rng.integers(len(idx))])
        if not 0 <= bank_index < len(self.bank):
            raise ValueError(f"bank_index {bank_index} out of range (bank has {len(self.bank)})")
        if task is not None and str(self.bank.task[bank_index]) != task:
            raise ValueError(f"bank entry {bank_index} is a {self.bank.task[bank_index]} scene")
        seed = self.seed + self.episodes if seed is None else seed
        obs, info = self.env.reset(seed=seed, options={"bank_index": bank_index})
        self.episodes += 1
        self.scene = {"task": info.get("task"), "bank_index": bank_index, "seed": seed}
        self.gripper, self.done = -1.0, False
        self.frames, self.keys, self.actions = [self.env.render()], [], []
        self.real_frames, self.scores = [], []
        self.sampling_changes = [{"step": 0, **active_sampling(self.core.sampling)}]
        if self.real is not None:
            self.real.reset(seed=seed, options={"bank_index": bank_index})
            self.real_frames.append(self.real.render())
            self.scores.append(frame_scores(self.frames[0], self.real_frames[0]))
        self.last_frame = self._frame_message(None, 0.0, {}, None)
        return self.last_frame

    def press(self, key: str, msg_id: int | None = None) -> dict[str, Any]:
        """Key ``key`` (a :data:`~freeaction_gym.web.protocol.STEP_KEYS` entry): a step
        (``frame`` message) or, for ``g``, the gripper toggled (``state`` message).
        ``RuntimeError`` when the episode has ended (reset first)."""
        if self.done:
            raise RuntimeError("the episode has ended: reset (n) to start a new one")
        action, self.gripper = key_to_action(key, self.gripper, self.action_shape[-1])
        self.keys.append(key)
        if action is None:
            return self.state_message()
        action = np.broadcast_to(action, self.action_shape).astype(np.float32)  # (K, A) chunks
        t0 = time.perf_counter()
        _, reward, term, trunc, info = self.env.step(action)
        step_ms = (time.perf_counter() - t0) * 1000
        self.frames.append(self.env.render())
        self.actions.append(action.tolist())
        real = None
        if self.real is not None:
            real_reward = 0.0
            for a in action.reshape(-1, action.shape[-1]):  # a chunk's actions one by one
                _, r, _, _, real_info = self.real.step(a)
                real_reward += r
            self.real_frames.append(self.real.render())
            self.scores.append(frame_scores(self.frames[-1], self.real_frames[-1]))
            real = {"reward": float(real_reward), "success": bool(real_info["success"]),
                    "is_success": bool(real_info["is_success"])}  # fmt: skip
        self.done = term or trunc
        out = self._frame_message(msg_id, step_ms, info, real)
        out.update(reward=float(reward), terminated=term, truncated=trunc)
        self.last_frame = out
        return out

    def set_sampling(self, values: dict[str, Any]) -> dict[str, Any]:
        """The page's sampler controls, from the next step on; ``ValueError`` (sampler
        unchanged) when the env rejects them. Returns the ``state`` message."""
        self.env.unwrapped.set_sampling(sampling_overrides(values))
        self.sampling_changes.append({"step": len(self.frames) - 1, **values})
        return self.state_message()

    def set_paused(self, paused: bool) -> dict[str, Any]:
        self.paused = paused
        return self.state_message()

    def state_message(self) -> dict[str, Any]:
        return {
            "type": "state",
            "paused": self.paused,
            "gripper": self.gripper,
            "done": self.done,
            "sampling": active_sampling(self.core.sampling),
        }

    def _frame_message(self, msg_id, step_ms, info, real) -> dict[str, Any]:
        t = len(self.frames) - 1
        out: dict[str, Any] = {
            "type": "frame",
            "id": msg_id,
            "step": t,
            "scene": self.scene,
            "imagined": png_data_url(self.frames[-1]),
            "real": png_data_url(self.real_frames[-1]) if self.real_frames else None,
            "real_info": real,
            "psnr": self.scores[-1][0] if self.scores else None,
            "ssim": self.scores[-1][1] if self.scores else None,
            "reward": 0.0,
            "terminated": False,
            "truncated": False,
            "step_ms": step_ms,
            "env_step_ms": self.core.timing.get("step_time_ms") if t else None,
            "gripper": self.gripper,
            "info": {k: _jsonable(v) for k, v in info.items()},
            "sampling": active_sampling(self.core.sampling),
        }
        return out

    # -- recording -----------------------------------------------------------------------
    def video_bytes(self, scale: int = 4) -> bytes:
        """The episode so far as an mp4: imagined | real (imagined only without a real
        pane), ``scale`` x, at the env's render fps; one video frame per env frame."""
        from freeaction_gym.utils.video import write_comparison

        columns = [np.stack(self.frames)[None]]  # (1, T+1, H, W, 3)
        if self.real_frames:
            columns.append(np.stack(self.real_frames)[None])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "episode.mp4"
            write_comparison(path, columns, scale=scale, fps=self.core.config.render_fps)
            return path.read_bytes()

    def episode_json(self) -> dict[str, Any]:
        """The episode's keys and actions: ``freeaction play --keys FILE.json`` replays the
        keys from the same scene and seed (the same frames when the sampler was not changed;
        ``sampling`` lists the sampler at reset and each change with the step it came at)."""
        return {
            "env": self.env_id,
            "seed": self.scene.get("seed"),
            "bank_index": self.scene.get("bank_index"),
            "task": self.scene.get("task"),
            "keys": "".join(self.keys),
            "actions": self.actions,
            "sampling": self.sampling_changes,
            "psnr": [s[0] for s in self.scores],
            "ssim": [s[1] for s in self.scores],
        }

    def episode_json_bytes(self) -> bytes:
        return json.dumps(self.episode_json(), indent=1).encode()

    def close(self) -> None:
        self.env.close()
        if self.real is not None:
            self.real.close()
