"""Batched imagination engine shared by the single, vector and SB3 environments.

Holds, for N environments, the rolling context latents, the last frames (for stacking),
goal latents, task ids and step counters, and advances all of them with ONE batched
world-model call per step. Each env draws its initial noise from its own torch generator,
so an env's frames do not depend on which other envs share the batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.envs.config import EnvConfig
from freeaction_gym.rewards import GoalLatentReward
from freeaction_gym.world_model.model import SamplingConfig, WorldModel


@dataclass
class StepResult:
    frames: torch.Tensor  # (N, K, H, W, 3) uint8, every predicted frame
    latents: torch.Tensor  # (N, K, C, h, w)
    reward: np.ndarray  # (N,) float32
    success: np.ndarray  # (N,) bool
    info: dict[str, np.ndarray]
    halt: np.ndarray  # (N,) bool: left the data's support (config.support); ends the episode


class ImaginationCore:
    """State of N imagined episodes and their batched step."""

    def __init__(
        self,
        world: WorldModel,
        config: EnvConfig,
        bank: ResetBank | None,
        reward_fn,
        task_names: list[str],
        num_envs: int,
    ) -> None:
        self.world, self.config, self.bank, self.reward_fn = world, config, bank, reward_fn
        self.task_names = task_names
        self.n = num_envs
        self.n_ctx = world.num_context
        self.k = config.action_chunk
        self.sampling: SamplingConfig = world.default_sampling(self.k, **config.sampling)
        a = world.action_dim
        self.scale = torch.tensor(config.action_scale or [1.0] * a, dtype=torch.float32)
        self.offset = torch.tensor(config.action_offset or [0.0] * a, dtype=torch.float32)
        if self.scale.shape != (a,) or self.offset.shape != (a,):
            raise ValueError(f"action_scale/action_offset must have {a} entries")
        self.context: torch.Tensor | None = None  # (N, n, C, h, w)
        self.history = torch.zeros(num_envs, self.n_ctx - 1, a)  # actions between contexts
        self.frames: np.ndarray | None = None  # (N, S, H, W, 3) stacked recent frames
        self.goal: torch.Tensor | None = None  # (N, C, h, w)
        self.task_id = np.zeros(num_envs, dtype=np.int64)
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self.displacement = np.zeros((num_envs, a), np.float64)  # sum of env actions
        if config.support is not None and len(config.support["low"]) != a:
            raise ValueError(
                f"env option support bounds have {len(config.support['low'])} entries; the "
                f"model's actions have {a}"
            )
        self.generators = [torch.Generator() for _ in range(num_envs)]
        self.timing: dict[str, float] = {}
        # Every start frame must have this shape (checked before any state changes, also
        # on the first reset, which allocates the buffers).
        if bank is not None:
            self.frame_shape = tuple(bank.initial.shape[1:])
        else:
            h, w = world.dit.config.input_size
            r = getattr(world.codec, "downsample", 1)
            self.frame_shape = (h * r, w * r, 3)

    # -- reset ---------------------------------------------------------------------------
    def reset_env(self, i: int, rng: np.random.Generator, options: dict | None = None) -> None:
        """Start env ``i`` from a reset-bank entry chosen by ``rng`` or from ``options``
        (``initial_frame``, ``goal_frame`` uint8 (H, W, 3), ``task``, ``bank_index``)."""
        options = dict(options or {})
        known = {"initial_frame", "goal_frame", "task", "bank_index"}
        if set(options) - known:
            raise ValueError(
                f"unknown reset option(s) {sorted(set(options) - known)}; known: {sorted(known)}"
            )
        task = options.get("task", self.config.task)
        if "initial_frame" in options:
            init = self._check_frame(options["initial_frame"], "initial_frame")
            goal = options.get("goal_frame")
            goal = self._check_frame(goal, "goal_frame") if goal is not None else None
            if goal is None and isinstance(self.reward_fn, GoalLatentReward):
                raise ValueError(
                    "reward='goal_latent' needs a goal: pass options={'initial_frame': ..., "
                    "'goal_frame': ...} (or use reward='none' / 'learned')"
                )
        else:
            if self.bank is None:
                raise ValueError("no reset bank configured: pass options={'initial_frame': ...}")
            idx = self.bank.indices(task)
            j = int(options.get("bank_index", idx[rng.integers(len(idx))]))
            init, goal = self.bank.initial[j], self.bank.goal[j]
            task = task or str(self.bank.task[j])
        seed = int(rng.integers(2**63 - 1))
        self.generators[i].manual_seed(seed)
        with torch.inference_mode():
            frames = torch.from_numpy(np.stack([init] + ([goal] if goal is not None else [])))
            z = self.world.encode(frames[None])[0]  # (1|2, C, h, w)
        if self.context is None:
            self._allocate(z[0], init)
        self.context[i] = z[0].expand(self.n_ctx, *z.shape[1:])
        self.history[i] = 0
        self.frames[i] = init
        self.goal[i] = z[1] if goal is not None else float("nan")
        self.task_id[i] = self.task_names.index(task) if task in self.task_names else 0
        self.steps[i] = 0
        self.displacement[i] = 0.0

    def _allocate(self, z: torch.Tensor, frame: np.ndarray) -> None:
        self.context = torch.zeros(self.n, self.n_ctx, *z.shape)
        self.goal = torch.full((self.n, *z.shape), float("nan"))
        self.frames = np.zeros((self.n, self.config.frame_stack, *frame.shape), np.uint8)

    def _check_frame(self, frame, name: str) -> np.ndarray:
        f = np.asarray(frame)
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[-1] != 3:
            raise ValueError(f"{name} must be a uint8 (H, W, 3) image, got {f.dtype} {f.shape}")
        if f.shape != self.frame_shape:
            raise ValueError(f"{name} has shape {f.shape}, the model expects {self.frame_shape}")
        return f

    # -- step ----------------------------------------------------------------------------
    def to_model_actions(self, actions: np.ndarray) -> torch.Tensor:
        """Validated env actions (N, K, A) in [-1, 1] -> model units."""
        return self.offset + self.scale * torch.from_numpy(np.asarray(actions, np.float32))

    @torch.inference_mode()
    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> StepResult:
        """Advance every env by one chunk. actions (N, K, A) in [-1, 1] (validated)."""
        t0 = time.perf_counter()
        a = self.to_model_actions(actions)  # (N, K, A)
        full = torch.cat([self.history, a], dim=1)  # (N, n-1+K, A)
        norm = self.world.action_norm(a, self.sampling.norm)
        noise_shape = (1, self.k, *self.context.shape[2:])
        noise, tau = [], []
        for i in range(self.n):  # per-env generators: frames independent of batch mates
            if active is not None and not active[i]:  # keep inactive envs' streams untouched
                z, t = torch.zeros(noise_shape), torch.full((1,), float("nan"))
            else:
                z, t = self.sampling.truncation.sample(
                    noise_shape, norm[i : i + 1], self.generators[i]
                )
            noise.append(z)
            tau.append(t)
        latents, info = self.world.predict(
            self.context, full, self.sampling, noise=torch.cat(noise)
        )
        t1 = time.perf_counter()
        frames = self.world.decode(latents)  # (N, K, H, W, 3)
        t2 = time.perf_counter()
        reward, success = np.zeros(self.n, np.float32), np.zeros(self.n, bool)
        for k in range(self.k):
            r, s = self.reward_fn(
                frames[:, k], latents[:, k], self.goal, torch.from_numpy(self.task_id)
            )
            reward += np.asarray(r, np.float32)
            success |= np.asarray(s, bool)
        keep = slice(None) if active is None else torch.from_numpy(np.asarray(active, bool))
        seq = torch.cat([self.context, latents], dim=1)
        new_ctx = seq[:, -self.n_ctx :]
        self.context[keep] = new_ctx[keep]
        if self.n_ctx > 1:
            self.history[keep] = full[:, -(self.n_ctx - 1) :][keep]
        stacked = np.concatenate([self.frames, frames.numpy()], axis=1)[:, -self.frames.shape[1] :]
        idx = np.arange(self.n) if active is None else np.flatnonzero(active)
        self.frames[idx] = stacked[idx]
        self.steps[idx] += 1
        self.displacement[idx] += np.asarray(actions, np.float64)[idx].sum(axis=1)
        halt = np.zeros(self.n, bool)
        if self.config.support is not None:
            sup = self.config.support
            d = self.displacement
            halt = ((d < sup["low"]) | (d > sup["high"])).any(axis=1)
            if active is not None:
                halt &= np.asarray(active, bool)
            reward[halt] -= sup["penalty"]
        t3 = time.perf_counter()
        self.timing = {  # per env step of the whole batch, milliseconds
            "step_time_ms": (t3 - t0) * 1000,
            "model_time_ms": (t1 - t0) * 1000,
            "decode_time_ms": (t2 - t1) * 1000,
        }
        out_info = {
            "out_of_support": halt,
            "action_norm": norm.numpy(),
            "tau": torch.cat(tau).numpy(),
            "guidance_weight": info["guidance_weight"].numpy(),
        }
        if self.config.timing_in_info:
            out_info.update({k: np.full(self.n, v, np.float32) for k, v in self.timing.items()})
        return StepResult(frames, latents, reward, success, out_info, halt)

    # -- observations --------------------------------------------------------------------
    def observation(self, i: int) -> np.ndarray:
        if self.config.observation == "latent":
            return self.context[i, -1].numpy().astype(np.float32)
        f = self.frames[i]  # (S, H, W, 3)
        return np.concatenate(list(f), axis=-1) if f.shape[0] > 1 else f[0].copy()

    def observations(self) -> np.ndarray:
        return np.stack([self.observation(i) for i in range(self.n)])
