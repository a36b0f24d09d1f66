"""Run one policy on the same held-out scenes in imagination and in the real simulator.

A *scene* is a reset-bank entry ``j``: layout ``bank.layout[j]`` of
``metaworld.MT1(bank.task[j], seed=bank.layout_seed[j])``, whose first frame is
``bank.initial[j]``. :class:`ImaginedWorld` starts the world model from that frame,
:class:`RealWorld` starts MetaWorld from that layout, and both show the policy the same
64x64 camera. Episodes have a fixed length (no termination on success) so the two worlds
are scored alike: success = ``success`` at any step, return = sum of the step rewards
(the learned head's reward in imagination, MetaWorld's reward summed over the action's
simulator repeats in reality).

Policies see a batch: ``act(obs, t, state)`` with ``obs`` uint8 (B, H, W, 3) (worlds made
with ``proprio_obs=True``: a dict of that ``image`` and ``proprio`` (B, 4), hand xyz m and
gripper, integrated in imagination, the simulator's in reality), the step
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


def _image(obs) -> np.ndarray:
    """The frames of a batch of observations (a ``proprio_obs`` world's are dicts)."""
    return obs["image"] if isinstance(obs, dict) else obs


class _BatchedWorld:
    """A world's :meth:`run`: subclasses define ``batch_size``, ``start(scenes, seed) -> (obs
    uint8 (B, H, W, 3), state (B, 39) or None)`` and ``advance(actions (B, 4)) -> (obs,
    reward (B,), success (B,), state)``."""

    batch_size: int

    def run(
        self, policy: Policy, scenes: Scenes, steps: int, seed: int = 0, keep_frames: bool = False
    ) -> Rollouts:
        """``steps`` actions of ``policy`` in every scene, ``batch_size`` scenes at a time."""
        parts = []
        for start in range(0, len(scenes), self.batch_size):
            sub = scenes.subset(slice(start, start + self.batch_size))
            b = len(sub)
            obs, state = self.start(sub, seed)
            policy.reset(sub, seed)
            reward = np.zeros((b, steps), np.float32)
            success = np.zeros((b, steps), bool)
            actions = np.zeros((b, steps, 4), np.float32)
            frames = [_image(obs)] if keep_frames else None
            for t in range(steps):
                actions[:, t] = _checked(policy.act(obs, t, state), b, policy.name)
                obs, reward[:, t], success[:, t], state = self.advance(actions[:, t])
                if frames is not None:
                    frames.append(_image(obs))
            kept = None if frames is None else np.stack(frames, axis=1)
            parts.append(Rollouts(sub, reward, success, actions, kept))
        frames = None if not keep_frames else np.concatenate([p.frames for p in parts])
        return Rollouts(
            scenes,
            np.concatenate([p.reward for p in parts]),
            np.concatenate([p.success for p in parts]),
            np.concatenate([p.actions for p in parts]),
            frames,
        )


class ImaginedWorld(_BatchedWorld):
    """The world model env (``preset`` + ``env_kwargs``, e.g. ``sampling`` overrides) as an
    evaluator; the model, bank and reward head are loaded once and shared by every run.
    Episodes run the env core's step with ``terminate_on_success=False``; one that leaves
    the ``support`` box (if configured) ends there (later steps: reward 0, no success)."""

    def __init__(
        self,
        preset: str = "FreeActionMetaWorld-v0",
        batch_size: int = 64,
        components: tuple | None = None,
        **env_kwargs: Any,
    ) -> None:
        from freeaction_gym.envs import factory
        from freeaction_gym.envs.config import make_env_config

        self.preset, self.env_kwargs = preset, {**env_kwargs, "terminate_on_success": False}
        self.config = make_env_config(preset, **self.env_kwargs)
        if self.config.action_chunk != 1 or self.config.observation != "rgb":  # proprio_obs ok
            raise ValueError("ImaginedWorld needs action_chunk=1 and observation='rgb'")
        if self.config.frame_stack != 1:
            raise ValueError("ImaginedWorld shows single frames: frame_stack must be 1")
        self.components = components or factory.build(self.config, preset)
        self.bank: ResetBank = self.components[1]
        if self.bank is None:
            raise ValueError(
                "ImaginedWorld needs a reset bank (scenes are bank entries): the model "
                f"{self.config.model} has no reset_bank.npz beside it; pass reset_bank=<.npz>"
            )
        self.batch_size = batch_size
        self._core: Any = None
        self._ended = np.zeros(0, bool)

    def start(self, scenes: Scenes, seed: int) -> tuple[np.ndarray, None]:
        """Scene ``j`` draws its noise generator's seed from ``default_rng([seed, j])``."""
        from freeaction_gym.envs.factory import build_core

        options = {**self.env_kwargs, "max_episode_steps": 2**31 - 1}
        self._core = build_core(self.preset, self.preset, len(scenes), self.components, options)
        for i, j in enumerate(scenes.bank_index):
            self._core.reset_env(i, np.random.default_rng([seed, int(j)]), {"bank_index": int(j)})
        self._ended = np.zeros(len(scenes), bool)
        return self._core.observations(), None

    def advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, None]:
        tr = self._core.step(actions[:, None], active=~self._ended)
        self._ended |= tr.terminated
        return tr.obs, tr.reward, tr.info["success"], None


def _batch(obs: list) -> Any:
    """Stack per-env observations (arrays, or the dicts of ``proprio_obs``)."""
    if isinstance(obs[0], dict):
        return {k: np.stack([o[k] for o in obs]) for k in obs[0]}
    return np.stack(obs)


class RealWorld(_BatchedWorld):
    """The real MetaWorld counterpart (:class:`~freeaction_gym.envs.real_metaworld.
    RealMetaWorldEnv`) on the same reset bank; ``batch_size`` envs step in lockstep."""

    def __init__(self, batch_size: int = 20, **real_options: Any) -> None:
        self.batch_size = batch_size
        self.options = {**real_options, "terminate_on_success": False}
        self._envs: list = []
        self._active: list = []

    def _env(self, i: int):
        from freeaction_gym.envs.real_metaworld import RealMetaWorldEnv

        while len(self._envs) <= i:
            self._envs.append(RealMetaWorldEnv(**self.options, max_episode_steps=10**6))
        return self._envs[i]

    def start(self, scenes: Scenes, seed: int) -> tuple[np.ndarray, np.ndarray]:
        self._active = [self._env(i) for i in range(len(scenes))]
        obs = [
            env.reset(seed=seed, options={"bank_index": int(j)})[0]
            for env, j in zip(self._active, scenes.bank_index, strict=True)
        ]
        return _batch(obs), np.stack([env.state for env in self._active])

    def advance(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        out = [env.step(a) for env, a in zip(self._active, actions, strict=True)]
        obs = _batch([o[0] for o in out])
        reward = np.array([o[1] for o in out], np.float32)
        success = np.array([o[4]["success"] for o in out])
        return obs, reward, success, np.stack([env.state for env in self._active])

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs.clear()
