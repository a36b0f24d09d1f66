"""Run one policy on the same held-out scenes in imagination and in the real simulator.

A *scene* is a reset-bank entry ``j``: layout ``bank.layout[j]`` of
``metaworld.MT1(bank.task[j], seed=bank.layout_seed[j])``, whose first frame is
``bank.initial[j]``. :class:`ImaginedWorld` starts the world model from that frame,
:class:`RealWorld` starts MetaWorld from that layout, and both show the policy the same
64x64 camera. Episodes have a fixed length (no termination on success) so the two worlds
are scored alike: success = ``success`` at any step, return = sum of the step rewards
(the learned head's reward in imagination, MetaWorld's reward summed over the action's
simulator repeats in reality).

Policies see a batch: ``act(obs, t, state)`` with ``obs`` uint8 (B, H, W, 3), the step
index ``t`` and, in the real world only, MetaWorld's 39-D states (B, 39) (``None`` in
imagination) - see :mod:`freeaction_gym.evaluation.policies`. Imagined rollouts of scene
``j`` draw their initial noise from a generator seeded by ``(seed, j)`` only, so two
policies are compared on the same noise, and a scene's rollout does not depend on its
batch mates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from freeaction_gym.envs.bank import ResetBank


@dataclass(frozen=True)
class Scenes:
    """Held-out scenes (reset-bank entries) an evaluation runs on."""

    bank_index: np.ndarray
    """int (N,): entries of the reset bank."""
    task: np.ndarray
    """str (N,)."""

    def __len__(self) -> int:
        return len(self.bank_index)

    def subset(self, idx) -> Scenes:
        return Scenes(self.bank_index[idx], self.task[idx])


def scenes_from_bank(
    bank: ResetBank, tasks: list[str] | None = None, per_task: int | None = None
) -> Scenes:
    """The first ``per_task`` entries (all by default) of each of ``tasks`` (default: all)."""
    chosen = []
    for task in tasks or bank.tasks:
        idx = bank.indices(task)
        chosen.extend(idx[:per_task].tolist())
    chosen_arr = np.asarray(chosen, np.int64)
    return Scenes(chosen_arr, bank.task[chosen_arr].astype(str))


class Policy(Protocol):
    """A batched policy; :meth:`reset` is called before every batch of episodes."""

    name: str

    def reset(self, scenes: Scenes, seed: int) -> None: ...

    def act(self, obs: np.ndarray, t: int, state: np.ndarray | None) -> np.ndarray:
        """uint8 (B, H, W, 3), step index, (B, 39) or None -> float32 (B, 4) in [-1, 1]."""
        ...


@dataclass
class Rollouts:
    """Fixed-length episodes of one policy on ``scenes`` in one world."""

    scenes: Scenes
    reward: np.ndarray
    """float32 (N, T): reward of action t."""
    success: np.ndarray
    """bool (N, T): success reached during action t."""
    actions: np.ndarray
    """float32 (N, T, 4): the actions executed (after clipping to [-1, 1])."""
    frames: np.ndarray | None = None
    """uint8 (N, T+1, H, W, 3) when kept."""

    @property
    def succeeded(self) -> np.ndarray:
        """bool (N,): success at any step."""
        return self.success.any(axis=1)

    @property
    def returns(self) -> np.ndarray:
        """float (N,): summed reward."""
        return self.reward.sum(axis=1)

    @property
    def first_success(self) -> np.ndarray:
        """int (N,): step of the first success, -1 if none."""
        return np.where(self.succeeded, self.success.argmax(axis=1), -1)


def _checked(actions: Any, b: int, name: str) -> np.ndarray:
    a = np.asarray(actions, np.float32)
    if a.shape != (b, 4):
        raise ValueError(f"policy {name!r} returned actions of shape {a.shape}, expected ({b}, 4)")
    if not np.isfinite(a).all():
        raise ValueError(f"policy {name!r} returned non-finite actions")
    return np.clip(a, -1.0, 1.0)


def _collect(parts: list[Rollouts], scenes: Scenes) -> Rollouts:
    frames = None if parts[0].frames is None else np.concatenate([p.frames for p in parts])
    return Rollouts(
        scenes,
        np.concatenate([p.reward for p in parts]),
        np.concatenate([p.success for p in parts]),
        np.concatenate([p.actions for p in parts]),
        frames,
    )


class ImaginedWorld:
    """The world model env (``preset`` + ``env_kwargs``, e.g. ``sampling`` overrides) as an
    evaluator; the model, bank and reward head are loaded once and shared by every run."""

    def __init__(
        self,
        preset: str = "FreeActionMetaWorld-v0",
        batch_size: int = 64,
        components: tuple | None = None,
        **env_kwargs: Any,
    ) -> None:
        from freeaction_gym.envs import factory
        from freeaction_gym.envs.config import make_env_config

        self.config = make_env_config(preset, **env_kwargs)
        if self.config.action_chunk != 1 or self.config.observation != "rgb":
            raise ValueError("ImaginedWorld needs action_chunk=1 and observation='rgb'")
        if self.config.frame_stack != 1:
            raise ValueError("ImaginedWorld shows single frames: frame_stack must be 1")
        self.components = components or factory.build(self.config, preset)
        self.bank: ResetBank = self.components[1]
        if self.bank is None:
            raise ValueError("ImaginedWorld needs a reset bank (scenes are bank entries)")
        self.batch_size = batch_size

    def run(
        self, policy: Policy, scenes: Scenes, steps: int, seed: int = 0, keep_frames: bool = False
    ) -> Rollouts:
        from freeaction_gym.envs.core import ImaginationCore

        world, bank, reward_fn, tasks = self.components
        parts = []
        for start in range(0, len(scenes), self.batch_size):
            sub = scenes.subset(slice(start, start + self.batch_size))
            b = len(sub)
            core = ImaginationCore(world, self.config, bank, reward_fn, tasks, b)
            for i, j in enumerate(sub.bank_index):
                core.reset_env(i, np.random.default_rng([seed, int(j)]), {"bank_index": int(j)})
            policy.reset(sub, seed)
            obs = core.observations()
            reward = np.zeros((b, steps), np.float32)
            success = np.zeros((b, steps), bool)
            actions = np.zeros((b, steps, 4), np.float32)
            frames = [obs] if keep_frames else None
            for t in range(steps):
                a = _checked(policy.act(obs, t, None), b, policy.name)
                res = core.step(a[:, None])
                obs = core.observations()
                reward[:, t], success[:, t], actions[:, t] = res.reward, res.success, a
                if frames is not None:
                    frames.append(obs)
            kept = None if frames is None else np.stack(frames, axis=1)
            parts.append(Rollouts(sub, reward, success, actions, kept))
        return _collect(parts, scenes)


class RealWorld:
    """The real MetaWorld counterpart (:class:`~freeaction_gym.envs.real_metaworld.
    RealMetaWorldEnv`) on the same reset bank; ``batch_size`` envs step in lockstep."""

    def __init__(self, batch_size: int = 20, **real_options: Any) -> None:
        self.batch_size = batch_size
        self.options = {**real_options, "terminate_on_success": False}
        self._envs: list = []

    def _env(self, i: int):
        from freeaction_gym.envs.real_metaworld import RealMetaWorldEnv

        while len(self._envs) <= i:
            self._envs.append(RealMetaWorldEnv(**self.options, max_episode_steps=10**6))
        return self._envs[i]

    def run(
        self, policy: Policy, scenes: Scenes, steps: int, seed: int = 0, keep_frames: bool = False
    ) -> Rollouts:
        parts = []
        for start in range(0, len(scenes), self.batch_size):
            sub = scenes.subset(slice(start, start + self.batch_size))
            b = len(sub)
            envs = [self._env(i) for i in range(b)]
            obs = np.stack(
                [
                    env.reset(seed=seed, options={"bank_index": int(j)})[0]
                    for env, j in zip(envs, sub.bank_index, strict=True)
                ]
            )
            policy.reset(sub, seed)
            reward = np.zeros((b, steps), np.float32)
            success = np.zeros((b, steps), bool)
            actions = np.zeros((b, steps, 4), np.float32)
            frames = [obs] if keep_frames else None
            for t in range(steps):
                state = np.stack([env.state for env in envs])
                a = _checked(policy.act(obs, t, state), b, policy.name)
                out = [env.step(a[i]) for i, env in enumerate(envs)]
                obs = np.stack([o[0] for o in out])
                reward[:, t] = [o[1] for o in out]
                success[:, t] = [o[4]["success"] for o in out]
                actions[:, t] = a
                if frames is not None:
                    frames.append(obs)
            kept = None if frames is None else np.stack(frames, axis=1)
            parts.append(Rollouts(sub, reward, success, actions, kept))
        return _collect(parts, scenes)

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs.clear()
