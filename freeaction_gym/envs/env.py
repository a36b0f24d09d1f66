"""``VideoWorldModelEnv``: a Gymnasium environment whose dynamics are the world model.

Each ``step`` appends the policy's action (or chunk of actions) to the trajectory, samples
the next frame(s) with the FreeAction sampler (action-scaled truncated initial noise and
action-scaled CFG, each switchable in ``sampling``), and makes the last predicted latent
the new context: an autoregressive imagined rollout.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from freeaction_gym.envs.config import EnvConfig, make_env_config
from freeaction_gym.envs.core import ImaginationCore
from freeaction_gym.envs.spaces import action_space, observation_space, validate_actions


class VideoWorldModelEnv(gym.Env):
    """One imagined robot episode.

    Observation: the current frame, uint8 (H, W, 3*frame_stack) (or the latent with
    ``observation='latent'``). Action: Box(-1, 1) of shape (A,) (or (K, A) with
    ``action_chunk=K``), mapped to model units by ``action_offset + action_scale * a``.
    ``info``: ``action_norm``, ``tau``, ``guidance_weight``, ``success``, ``task`` (and
    step timing in ms with ``timing_in_info=True``; always in :attr:`timing`).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        preset: str | None = None,
        render_mode: str | None = None,
        env_id: str = "VideoWorldModelEnv",
        components: tuple | None = None,
        **options: Any,
    ) -> None:
        from freeaction_gym.envs import factory

        self.config: EnvConfig = make_env_config(preset, **options)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} not supported; use 'rgb_array'")
        self.render_mode = render_mode
        world, bank, reward_fn, tasks = components or factory.build(self.config, env_id)
        self.core = ImaginationCore(world, self.config, bank, reward_fn, tasks, num_envs=1)
        self.world = world
        self.metadata = {**self.metadata, "render_fps": self.config.render_fps}
        frame_shape, latent_shape = self._probe_shapes()
        self.action_space = action_space(self.config, world.action_dim)
        self.observation_space = observation_space(self.config, frame_shape, latent_shape)
        self._needs_reset = True

    def _probe_shapes(self):
        """Frame and latent shapes from the reset bank (or the model's latent grid)."""
        bank = self.core.bank
        if bank is not None:
            frame = bank.initial[0]
            with torch.inference_mode():
                z = self.world.encode(torch.from_numpy(np.ascontiguousarray(frame))[None, None])
            return frame.shape, tuple(z.shape[2:])
        cfg = self.world.dit.config
        r = getattr(self.world.codec, "downsample", 1)
        h, w = cfg.input_size
        return (h * r, w * r, 3), (cfg.in_channels, h, w)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.core.reset_env(0, self.np_random, options)
        self._needs_reset = False
        return self.core.observation(0), {"task": self._task_name()}

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError(
                "step() called before reset() or after the episode ended; call reset()"
            )
        a = validate_actions(action, self.config, self.world.action_dim, None)
        res = self.core.step(a)
        success = bool(res.success[0])
        terminated = (success and self.config.terminate_on_success) or bool(res.halt[0])
        truncated = bool(self.core.steps[0] >= self.config.max_episode_steps) and not terminated
        self._needs_reset = terminated or truncated
        info = {k: float(v[0]) for k, v in res.info.items()}
        info["success"] = success
        info["out_of_support"] = bool(res.halt[0])
        info["task"] = self._task_name()
        return self.core.observation(0), float(res.reward[0]), terminated, truncated, info

    @property
    def timing(self) -> dict[str, float]:
        """Wall-clock milliseconds of the last step (total, model, decode)."""
        return dict(self.core.timing)

    def render(self):
        if self.render_mode != "rgb_array" or self.core.frames is None:
            return None
        return self.core.frames[0, -1].copy()

    def _task_name(self) -> str:
        names = self.core.task_names
        return names[self.core.task_id[0]] if names else ""
