"""DrQ's random-shift image augmentation, applied where SAC samples its replay buffer.

:func:`random_shift` is the augmentation of DrQ (Kostrikov, Yarats & Fergus 2020, "Image
Augmentation Is All You Need", Sec. 3.1): pad each side by ``pad`` pixels replicating the
border, then crop back to the original size at a uniformly random offset.
:class:`RandomShiftReplayBuffer` applies it to every sampled batch, to the observations
and the next observations with independent shifts (as DrQ's ``aug(obs)``,
``aug(next_obs)``); a channel-stacked observation (frames along C) gets one shift for all
its frames, since the shift is drawn per sample and applies to all channels.
:class:`RandomShiftDictReplayBuffer` does the same for Dict observations (``proprio_obs``:
``image`` is shifted, ``proprio`` is not), with its own n-step returns (:func:`n_step_targets`,
SB3's ``NStepReplayBuffer`` takes Box observations only).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, NStepReplayBuffer
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples


def random_shift(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Shift each image by whole pixels, repeating the border (DrQ's pad + random crop).

    ``images`` (B, C, H, W) of any dtype; ``shifts`` int (B, 2) = (dy, dx) with
    ``|dy|, |dx| <= pad``. Returns (B, C, H, W), same dtype:
    ``out[b, c, i, j] = images[b, c, clip(i + dy_b, 0, H-1), clip(j + dx_b, 0, W-1)]``,
    which is ``ReplicationPad2d(pad)`` followed by a crop at offset ``(dy_b + pad, dx_b + pad)``.
    """
    b, _, h, w = images.shape
    dev = images.device
    shifts = shifts.to(dev, torch.long)
    rows = (torch.arange(h, device=dev)[None] + shifts[:, :1]).clamp(0, h - 1)  # (B, H)
    cols = (torch.arange(w, device=dev)[None] + shifts[:, 1:]).clamp(0, w - 1)  # (B, W)
    batch = torch.arange(b, device=dev)[:, None, None]  # (B, 1, 1)
    hwc = images.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return hwc.permute(0, 3, 1, 2).contiguous()


def draw_shifts(rng: np.random.Generator, n: int, pad: int) -> torch.Tensor:
    """int64 (n, 2) uniform in [-pad, pad]: DrQ's crop offsets in [0, 2 pad], minus pad."""
    return torch.as_tensor(rng.integers(-pad, pad + 1, size=(n, 2)), dtype=torch.long)


class _RandomShift:
    """What both buffers share: the shift settings, :meth:`augment` and the reward scale,
    set up by :meth:`_init_shift` once the SB3 buffer is built."""

    pad: int
    reward_scale: float
    channels_first: bool
    rng: np.random.Generator

    def _init_shift(self, image: spaces.Box, pad: int, reward_scale: float) -> None:
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        self.pad, self.reward_scale = int(pad), float(reward_scale)
        self.channels_first = is_image_space_channels_first(image)
        # seeded from NumPy's global generator, which SB3 seeds just before it builds the buffer
        self.rng = np.random.default_rng(np.random.randint(2**31 - 1))

    def augment(self, obs: torch.Tensor) -> torch.Tensor:
        """A fresh random shift per sample of a (B, *image_shape) batch."""
        if self.pad == 0:
            return obs
        shifts = draw_shifts(self.rng, obs.shape[0], self.pad)
        if self.channels_first:
            return random_shift(obs, shifts)
        return random_shift(obs.permute(0, 3, 1, 2), shifts).permute(0, 2, 3, 1).contiguous()

    def _normalize_reward(self, reward: np.ndarray, env=None) -> np.ndarray:
        return super()._normalize_reward(reward, env) * np.float32(self.reward_scale)  # type: ignore[misc]


class RandomShiftReplayBuffer(_RandomShift, NStepReplayBuffer):
    """SB3's replay buffer whose samples are randomly shifted (:func:`random_shift`).

    ``pad``: the largest shift in pixels (DrQ: 4 for 84x84 frames; 0 switches the
    augmentation off). ``n_steps``/``gamma``: n-step returns as SB3's ``NStepReplayBuffer``
    (1 = plain one-step targets; DrQ-v2 uses 3); ``gamma`` must be the algorithm's (the
    ``drq`` wiring in :mod:`freeaction_gym.agents.drq` passes it). ``reward_scale``: sampled rewards
    are
    multiplied by it (SAC's reward scale; the stored and logged rewards stay raw).
    Observations must be images (uint8 (C, H, W) or (H, W, C)); they stay uint8 (SB3 scales
    them in the policy).

    Shifts come from a generator seeded from NumPy's global generator when the buffer is
    made, which SB3 seeds (``seed=``) just before, so a seeded run is reproducible.
    """

    def __init__(
        self,
        *args: Any,
        pad: int = 4,
        n_steps: int = 1,
        gamma: float = 0.99,
        reward_scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, n_steps=n_steps, gamma=gamma, **kwargs)
        space = self.observation_space
        if not (isinstance(space, spaces.Box) and is_image_space(space)):
            raise ValueError(f"RandomShiftReplayBuffer needs image observations, got {space}")
        self._init_shift(space, pad, reward_scale)

    def _get_samples(self, batch_inds: np.ndarray, env=None) -> ReplayBufferSamples:
        s = super()._get_samples(batch_inds, env)
        return s._replace(
            observations=self.augment(s.observations),
            next_observations=self.augment(s.next_observations),
        )


def n_step_targets(
    rewards: np.ndarray,
    dones: np.ndarray,
    timeouts: np.ndarray,
    pos: int,
    batch_inds: np.ndarray,
    env_inds: np.ndarray,
    n_steps: int,
    gamma: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n-step targets of the transitions ``(batch_inds, env_inds)`` of a circular buffer.

    ``rewards``/``dones``/``timeouts`` (S, E) as SB3 stores them; ``pos`` the next write
    slot (the transition before it, if its episode goes on, is the newest: the sum stops
    there instead of running into the oldest slot). A transition's return sums
    ``gamma**k r_{t+k}`` for k < n up to and including the first done or timeout. Returns
    float32 ``(returns (B, 1), discounts (B, 1) = gamma**steps summed, final index (B,) whose
    next observation bootstraps, done (B, 1) = terminal and not a timeout)``."""
    size = rewards.shape[0]
    k = np.arange(n_steps)
    idx = (batch_inds[:, None] + k[None]) % size  # (B, n)
    env = env_inds[:, None]
    stop = dones[idx, env].astype(bool) | timeouts[idx, env].astype(bool)
    stop |= idx == (pos - 1) % size  # the newest transition ends every sum
    stop[:, -1] = True
    last = stop.argmax(axis=1)  # (B,) first stop
    used = k[None] <= last[:, None]  # (B, n)
    returns = (rewards[idx, env] * gamma**k * used).sum(axis=1, keepdims=True)
    final = (batch_inds + last) % size
    terminal = dones[final, env_inds] * (1.0 - timeouts[final, env_inds])
    discounts = gamma ** (last + 1.0)
    return (
        returns.astype(np.float32),
        discounts[:, None].astype(np.float32),
        final,
        terminal[:, None].astype(np.float32),
    )


class RandomShiftDictReplayBuffer(_RandomShift, DictReplayBuffer):
    """:class:`RandomShiftReplayBuffer` for Dict observations with an ``image`` key (the
    ``proprio_obs`` envs): SB3's ``DictReplayBuffer``, its sampled ``image`` and next
    ``image`` randomly shifted (other keys as stored), n-step returns by
    :func:`n_step_targets`; ``pad``, ``n_steps``, ``gamma``, ``reward_scale`` as there."""

    def __init__(
        self,
        *args: Any,
        pad: int = 4,
        n_steps: int = 1,
        gamma: float = 0.99,
        reward_scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        space = self.observation_space
        image = space.spaces.get("image") if isinstance(space, spaces.Dict) else None
        if image is None or not is_image_space(image):
            raise ValueError(
                f"RandomShiftDictReplayBuffer needs a Dict with an image key, got {space}"
            )
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        self.n_steps, self.gamma = int(n_steps), float(gamma)
        self._init_shift(image, pad, reward_scale)

    def _get_samples(self, batch_inds: np.ndarray, env=None) -> DictReplayBufferSamples:  # type: ignore[override]
        env_inds = np.random.randint(0, self.n_envs, size=batch_inds.shape)
        returns, discounts, final, done = n_step_targets(
            self._normalize_reward(self.rewards, env),
            self.dones,
            self.timeouts,
            self.pos,
            batch_inds,
            env_inds,
            self.n_steps,
            self.gamma,
        )

        def gather(store: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, torch.Tensor]:
            obs = self._normalize_obs({k: v[rows, env_inds] for k, v in store.items()}, env)
            out = {k: self.to_torch(v) for k, v in obs.items()}
            out["image"] = self.augment(out["image"])
            return out

        return DictReplayBufferSamples(
            observations=gather(self.observations, batch_inds),
            actions=self.to_torch(self.actions[batch_inds, env_inds]),
            next_observations=gather(self.next_observations, final),
            dones=self.to_torch(done),
            rewards=self.to_torch(returns),
            discounts=self.to_torch(discounts),
        )
