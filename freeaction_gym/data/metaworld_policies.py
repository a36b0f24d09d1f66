"""The generator's per-episode action policies: :class:`ExplorationPolicy` (a noisy scripted
expert) and :class:`RandomWalkPolicy` (smooth random motion), so the world model sees many
actions per state. Each draws everything from the episode's ``rng``. :func:`scripted_action`
is MetaWorld's expert alone (reset banks' goal frames, evaluation's expert policies).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from freeaction_gym.data.metaworld_config import MetaWorldDataConfig


def scripted_action(task: str, state: np.ndarray, cache: dict[str, Any]) -> np.ndarray:
    """MetaWorld's scripted expert action for ``task`` at the 39-D ``state``, clipped to
    [-1, 1] (float64 (4,)); experts are created once per task in ``cache``."""
    from metaworld.policies import ENV_POLICY_MAP

    if task not in cache:
        cache[task] = ENV_POLICY_MAP[task]()
    with warnings.catch_warnings():  # "Constant(s) may be too high": clipped here
        warnings.simplefilter("ignore", UserWarning)
        return np.clip(cache[task].get_action(state), -1.0, 1.0)


class ExplorationPolicy:
    """Per-episode noisy scripted expert; ``policy(obs) -> (4,) float32`` in [-1, 1].

    An exploration level ``eps = u^2``, ``u ~ U(0, 1)`` (mean 1/3), is drawn per episode and
    scales all noise, so the data holds near-clean (mostly successful) and very noisy
    episodes; the same noise at every episode's mean level made push/pick-place succeed in
    only ~10% of episodes (the experts lose their phase). ``sigma = lo + (hi - lo) * eps``
    from ``noise_sigma_range``; random-action probability ``3 * random_action_prob * eps`` and
    perturbation-start probability ``3 * perturb_start_prob * eps`` (the config values are
    the dataset means; sigma averages lo + (hi - lo) / 3).

    Per frame, in order: continue a perturbation segment (a uniform random action held for
    ``perturb_len_range`` frames), start one, take a uniform random action, else
    ``clip(expert(obs)) + N(0, sigma^2)``. With ``gripper_override_prob`` the episode's gripper
    is always open, always closed or a random +-1 that flips with ``gripper_toggle_prob``.
    """

    GRIPPER_MODES = ("open", "closed", "toggle")

    def __init__(self, task: str, cfg: MetaWorldDataConfig, rng: np.random.Generator) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        self.expert = ENV_POLICY_MAP[task]()
        self.cfg, self.rng = cfg, rng
        self.level = float(rng.random()) ** 2  # eps, mean 1/3: skewed towards clean episodes
        lo, hi = cfg.noise_sigma_range
        self.sigma = lo + (hi - lo) * self.level
        self.random_action_prob = 3.0 * cfg.random_action_prob * self.level
        self.perturb_start_prob = 3.0 * cfg.perturb_start_prob * self.level
        self.gripper_mode = "expert"
        if rng.random() < cfg.gripper_override_prob:
            self.gripper_mode = self.GRIPPER_MODES[int(rng.integers(len(self.GRIPPER_MODES)))]
        self._grip = float(rng.choice([-1.0, 1.0]))
        self._held = np.zeros(4)
        self._held_left = 0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        cfg, rng = self.cfg, self.rng
        if self._held_left > 0:
            self._held_left -= 1
            action = self._held.copy()
        elif rng.random() < self.perturb_start_prob:
            lo, hi = cfg.perturb_len_range
            self._held = rng.uniform(-1.0, 1.0, 4)
            self._held_left = int(rng.integers(lo, hi + 1)) - 1
            action = self._held.copy()
        elif rng.random() < self.random_action_prob:
            action = rng.uniform(-1.0, 1.0, 4)
        else:
            with warnings.catch_warnings():  # "Constant(s) may be too high": we clip anyway
                warnings.simplefilter("ignore", UserWarning)
                expert = np.clip(self.expert.get_action(obs), -1.0, 1.0)
            action = expert + rng.normal(0.0, self.sigma, 4)
        if self.gripper_mode == "open":
            action[3] = -1.0
        elif self.gripper_mode == "closed":
            action[3] = 1.0
        elif self.gripper_mode == "toggle":
            if rng.random() < cfg.gripper_toggle_prob:
                self._grip = -self._grip
            action[3] = self._grip
        return np.clip(action, -1.0, 1.0).astype(np.float32)


class RandomWalkPolicy:
    """Per-episode smooth random motion; ``policy(obs) -> (4,) float32`` in [-1, 1].

    xyz follow an AR(1) process ``a_k = rho a_{k-1} + sqrt(1 - rho^2) s e_k``, ``e_k ~ N(0, I)``
    with a per-episode persistence ``rho ~ U(0.5, 0.95)`` and scale ``s ~ U(0.3, 1.0)`` (the
    hand drifts over the whole workspace, as an exploring agent does); the gripper is +-1 and
    flips with probability ``gripper_toggle_prob`` per frame. ``obs`` is ignored.
    """

    def __init__(self, task: str, cfg: MetaWorldDataConfig, rng: np.random.Generator) -> None:
        self.cfg, self.rng = cfg, rng
        self.rho = float(rng.uniform(0.5, 0.95))
        self.scale = float(rng.uniform(0.3, 1.0))
        self.sigma, self.level = self.scale, 1.0  # recorded like ExplorationPolicy's
        self._xyz = rng.normal(0.0, self.scale, 3)
        self._grip = float(rng.choice([-1.0, 1.0]))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        rng = self.rng
        self._xyz = self.rho * self._xyz + np.sqrt(1 - self.rho**2) * rng.normal(0, self.scale, 3)
        if rng.random() < self.cfg.gripper_toggle_prob:
            self._grip = -self._grip
        return np.clip(np.append(self._xyz, self._grip), -1.0, 1.0).astype(np.float32)
