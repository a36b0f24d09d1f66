"""Batched environments: N imagined episodes advanced by one model call per step.

* :class:`VideoWorldModelVectorEnv` - a native ``gymnasium.vector.VectorEnv``
  (``gym.make_vec(id, num_envs=N)``), next-step autoreset like Gymnasium's own vector envs.
* :func:`make_sb3_vec_env` - a stable-baselines3 ``VecEnv`` (same-step reset,
  ``terminal_observation`` and ``TimeLimit.truncated`` in infos).

Env ``i`` seeded with ``seed + i`` produces exactly the frames a single
:class:`VideoWorldModelEnv` seeded with ``seed + i`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from freeaction_gym.envs.config import make_env_config
from freeaction_gym.envs.core import ImaginationCore
from freeaction_gym.envs.spaces import validate_actions


def _build_core(num_envs: int, preset: str | None, env_id: str, components, options: dict):
    from freeaction_gym.envs import factory
    from freeaction_gym.envs.env import VideoWorldModelEnv

    cfg = make_env_config(preset, **options)
    world, bank, reward_fn, tasks = components or factory.build(cfg, env_id)
    probe = VideoWorldModelEnv(
        preset, env_id=env_id, components=(world, bank, reward_fn, tasks), **options
    )
    core = ImaginationCore(world, cfg, bank, reward_fn, tasks, num_envs)
    return cfg, core, probe.observation_space, probe.action_space


def _seeds(seed: int | list[int] | None, n: int) -> list[int | None]:
    if seed is None:
        return [None] * n
    if isinstance(seed, int):
        return [seed + i for i in range(n)]
    if len(seed) != n:
        raise ValueError(f"got {len(seed)} seeds for {n} envs")
    return list(seed)


class VideoWorldModelVectorEnv(VectorEnv):
    """``num_envs`` imagined episodes sharing one world model and one batched step."""

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        preset: str | None = None,
        render_mode: str | None = None,
        env_id: str = "VideoWorldModelEnv",
        components: tuple | None = None,
        **options: Any,
    ) -> None:
        self.num_envs = num_envs
        self.config, self.core, obs_space, act_space = _build_core(
            num_envs, preset, env_id, components, options
        )
        self.render_mode = render_mode
        self.single_observation_space = obs_space
        self.single_action_space = act_space
        self.observation_space = batch_space(obs_space, num_envs)
        self.action_space = batch_space(act_space, num_envs)
        self._rngs = [seeding.np_random(None)[0] for _ in range(num_envs)]
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self._started = False

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        for i, s in enumerate(_seeds(seed, self.num_envs)):
            if s is not None or not self._started:
                self._rngs[i] = seeding.np_random(s)[0]
            self.core.reset_env(i, self._rngs[i], options)
        self._autoreset[:] = False
        self._started = True
        return self.core.observations(), {}

    def step(self, actions):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        a = validate_actions(actions, self.config, self.core.world.action_dim, self.num_envs)
        resetting = self._autoreset.copy()
        for i in np.flatnonzero(resetting):
            self.core.reset_env(i, self._rngs[i])
        active = ~resetting
        res = self.core.step(a, active=active)
        success = res.success & active
        terminated = (success & self.config.terminate_on_success) | (res.halt & active)
        truncated = active & (self.core.steps >= self.config.max_episode_steps) & ~terminated
        reward = np.where(active, res.reward, 0.0).astype(np.float32)
        self._autoreset = terminated | truncated
        info = dict(res.info)
        info["success"] = success
        return self.core.observations(), reward, terminated, truncated, info

    def render(self):
        return None if self.core.frames is None else self.core.frames[:, -1].copy()


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
            self.config, self.core, obs_space, act_space = _build_core(
                num_envs, preset, env_id, components, options
            )
            self.render_mode = "rgb_array"  # read by VecEnv.__init__ via get_attr
            super().__init__(num_envs, obs_space, act_space)
            self._rngs = [seeding.np_random(None)[0] for _ in range(num_envs)]
            self._actions = None
            if seed is not None:
                self.seed(seed)

        def reset(self):
            for i in range(self.num_envs):
                s = self._seeds[i] if self._seeds else None
                if s is not None:
                    self._rngs[i] = seeding.np_random(s)[0]
                self.core.reset_env(i, self._rngs[i], self._options[i] or None)
            self._reset_seeds()
            self._reset_options()
            return self.core.observations()

        def step_async(self, actions) -> None:
            self._actions = validate_actions(
                actions, self.config, self.core.world.action_dim, self.num_envs
            )

        def step_wait(self):
            res = self.core.step(self._actions)
            terminated = (res.success & self.config.terminate_on_success) | res.halt
            truncated = (self.core.steps >= self.config.max_episode_steps) & ~terminated
            dones = terminated | truncated
            obs = self.core.observations()
            infos: list[dict] = []
            for i in range(self.num_envs):
                info = {k: float(v[i]) for k, v in res.info.items()}
                info["success"] = bool(res.success[i])
                info["is_success"] = bool(res.success[i])
                info["out_of_support"] = bool(res.halt[i])
                if dones[i]:
                    info["terminal_observation"] = obs[i].copy()
                    info["TimeLimit.truncated"] = bool(truncated[i])
                    self.core.reset_env(i, self._rngs[i])
                    obs[i] = self.core.observation(i)
                infos.append(info)
            return obs, res.reward.astype(np.float32), dones, infos

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
