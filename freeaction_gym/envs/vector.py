"""Batched environments: N imagined episodes advanced by one model call per step.

* :class:`VideoWorldModelVectorEnv` - a native ``gymnasium.vector.VectorEnv``
  (``gym.make_vec(id, num_envs=N)``), next-step autoreset like Gymnasium's own vector envs.
* :func:`make_sb3_vec_env` - a stable-baselines3 ``VecEnv`` (same-step reset,
  ``terminal_observation`` and ``TimeLimit.truncated`` in infos).

Both adapt :class:`~freeaction_gym.envs.core.ImaginationCore` (terminations and infos are
its). Env ``i`` seeded with ``seed + i`` starts from the same frame, draws the same noise
and, given the same actions, makes the same frames as a single
:class:`~freeaction_gym.envs.env.VideoWorldModelEnv` seeded ``seed + i``, up to float
rounding of batched matrix products (which can differ with ``num_envs`` on some CPUs; see
the core's docstring).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from freeaction_gym.envs.config import RENDER_MODES, check_render_mode
from freeaction_gym.envs.factory import build_core
from freeaction_gym.envs.spaces import obs_at, set_obs_at, validate_actions


def _per_env(value: Any, n: int, name: str, scalar: type) -> list:
    """``value`` for every env: None -> Nones, one ``scalar`` -> shared (a seed: seed + i),
    a list -> one per env."""
    if value is None:
        return [None] * n
    if isinstance(value, scalar):
        return [value + i for i in range(n)] if scalar is int else [value] * n
    if len(value) != n:
        raise ValueError(f"got {len(value)} {name} for {n} envs")
    return list(value)


class VideoWorldModelVectorEnv(VectorEnv):
    """``num_envs`` imagined episodes sharing one world model and one batched step.
    ``reset(options=...)`` takes one dict for every env or a list of one per env."""

    metadata = {"render_modes": list(RENDER_MODES), "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        preset: str | None = None,
        render_mode: str | None = None,
        env_id: str = "VideoWorldModelEnv",
        components: tuple | None = None,
        **options: Any,
    ) -> None:
        check_render_mode(render_mode)
        self.core = build_core(preset, env_id, num_envs, components, options)
        self.config, self.num_envs, self.render_mode = self.core.config, num_envs, render_mode
        self.single_observation_space = self.core.observation_space
        self.single_action_space = self.core.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._autoreset = np.zeros(num_envs, dtype=bool)

    def reset(self, *, seed: int | list[int] | None = None, options: dict | list | None = None):
        seeds = _per_env(seed, self.num_envs, "seeds", int)
        obs = self.core.reset_envs(seeds, _per_env(options, self.num_envs, "options", dict))
        self._autoreset[:] = False
        return obs, {}

    def step(self, actions):
        a = validate_actions(actions, self.config, self.core.world.action_dim, self.num_envs)
        resetting = self._autoreset.copy()
        for i in np.flatnonzero(resetting):
            self.core.reset_env(i)
        tr = self.core.step(a, active=~resetting)
        self._autoreset = tr.terminated | tr.truncated
        return tr.obs, tr.reward, tr.terminated, tr.truncated, tr.info

    def render(self):
        return self.core.frames[:, -1].copy() if self.core.started.all() else None


def make_sb3_vec_env(
    num_envs: int = 1,
    preset: str | None = None,
    seed: int | None = None,
    env_id: str = "VideoWorldModelEnv",
    components: tuple | None = None,
    **options: Any,
):
    """A stable-baselines3 ``VecEnv`` of ``num_envs`` imagined episodes over the same
    batched core (the class is defined here so importing this module needs no SB3)."""
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv

    class _SB3Env(VecEnv):
        def __init__(self) -> None:
            self.core = build_core(preset, env_id, num_envs, components, options)
            self.config = self.core.config
            self.render_mode = "rgb_array"  # read by VecEnv.__init__ via get_attr
            super().__init__(num_envs, self.core.observation_space, self.core.action_space)
            self._actions = None
            if seed is not None:
                self.seed(seed)

        def reset(self):
            seeds = self._seeds or [None] * self.num_envs
            obs = self.core.reset_envs(seeds, [o or None for o in self._options])
            self._reset_seeds()
            self._reset_options()
            return obs

        def step_async(self, actions) -> None:
            self._actions = validate_actions(
                actions, self.config, self.core.world.action_dim, self.num_envs
            )

        def step_wait(self):
            tr = self.core.step(self._actions)
            dones = tr.terminated | tr.truncated
            obs, infos = tr.obs, [tr.info_of(i) for i in range(self.num_envs)]
            for i in np.flatnonzero(dones):  # same-step reset, as SB3 expects
                infos[i]["terminal_observation"] = obs_at(obs, i)
                infos[i]["TimeLimit.truncated"] = bool(tr.truncated[i])
                self.core.reset_env(i)
                set_obs_at(obs, i, self.core.observation(i))
            return obs, tr.reward, dones, infos

        def close(self) -> None:
            pass

        def get_images(self):
            return list(self.core.frames[:, -1])

        def get_attr(self, attr_name, indices=None):
            return [getattr(self, attr_name) for _ in self._indices(indices)]

        def set_attr(self, attr_name, value, indices=None) -> None:
            setattr(self, attr_name, value)

        def env_method(self, method_name, *args, indices=None, **kwargs):
            return [getattr(self, method_name)(*args, **kwargs) for _ in self._indices(indices)]

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False for _ in self._indices(indices)]

        def _indices(self, indices):
            if indices is None:
                return range(self.num_envs)
            return [indices] if isinstance(indices, int) else indices

    return _SB3Env()
