"""``VideoWorldModelEnv``: a Gymnasium environment whose dynamics are the world model.

Each ``step`` appends the policy's action (or chunk of actions) to the trajectory, samples
the next frame(s) with the FreeAction sampler (action-scaled truncated initial noise and
action-scaled CFG, each switchable in ``sampling``), and makes the last predicted latent
the new context: an autoregressive imagined rollout. The stepping itself is
:class:`~freeaction_gym.envs.core.ImaginationCore`'s; this class adapts it to one env.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from freeaction_gym.envs.config import (
    RENDER_MODES,
    EnvConfig,
    check_render_mode,
    gym_make_time_limit,
)
from freeaction_gym.envs.factory import build_core
from freeaction_gym.envs.spaces import obs_at, validate_actions


class VideoWorldModelEnv(gym.Env):
    """One imagined robot episode.

    Observation: the current frame, uint8 (H, W, 3*frame_stack) (or the latent with
    ``observation='latent'``; with ``proprio_obs=True`` a dict of that ``image`` and the
    integrated hand xyz + gripper ``proprio`` (4,)). Action: Box(-1, 1) of shape (A,) (or
    (K, A) with ``action_chunk=K``), mapped to model units by ``action_offset + action_scale * a``.
    ``info``: ``action_norm``, ``tau``, ``guidance_weight``, ``success`` (this step),
    ``is_success`` (any step so far), ``out_of_support``, ``task`` (and step timing in ms
    with ``timing_in_info=True``; always in :attr:`timing`; the integrated ``robot_state``
    (7,) with ``conditioning='vap'``). Stepping after the episode ended raises
    ``RuntimeError``.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 10}

    def __init__(
        self,
        preset: str | None = None,
        render_mode: str | None = None,
        env_id: str = "VideoWorldModelEnv",
        components: tuple | None = None,
        **options: Any,
    ) -> None:
        limit = gym_make_time_limit()
        if limit is not None:
            options["max_episode_steps"] = limit
        check_render_mode(render_mode)
        self.render_mode = render_mode
        self.core = build_core(preset, env_id, 1, components, options)
        self.config: EnvConfig = self.core.config
        self.metadata = {**self.metadata, "render_fps": self.config.render_fps}
        self.action_space = self.core.action_space
        self.observation_space = self.core.observation_space
        self._needs_reset = True

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        options = self.core.check_reset(options)  # before reseeding: a bad call changes nothing
        super().reset(seed=seed)
        self.core.reset_env(0, self.np_random, options)
        self._needs_reset = False
        return self.core.observation(0), {"task": self.core.task_name(0)}

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError(
                "step() called before reset() or after the episode ended; call reset()"
            )
        tr = self.core.step(validate_actions(action, self.config, self.core.world.action_dim, None))
        terminated, truncated = bool(tr.terminated[0]), bool(tr.truncated[0])
        self._needs_reset = terminated or truncated
        info = tr.info_of(0) | {"task": self.core.task_name(0)}
        return obs_at(tr.obs, 0), float(tr.reward[0]), terminated, truncated, info

    def set_sampling(self, overrides: dict) -> None:
        """Change the sampler from the next step on (see
        :meth:`~freeaction_gym.envs.core.ImaginationCore.set_sampling`); the episode goes on."""
        self.core.set_sampling(overrides)

    @property
    def timing(self) -> dict[str, float]:
        """Wall-clock milliseconds of the last step (total, model, decode)."""
        return dict(self.core.timing)

    def render(self):
        if self.render_mode != "rgb_array" or not self.core.started[0]:
            return None
        return self.core.frames[0, -1].copy()
