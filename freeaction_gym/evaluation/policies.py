"""Policies for :mod:`freeaction_gym.evaluation.worlds` (batched ``reset``/``act``).

* :class:`PlanPolicy` - open loop: a fixed action sequence per scene (reset-bank entry).
  Replaying in the real simulator the actions a closed-loop policy took there reproduces
  that episode exactly (MetaWorld is deterministic), so a noisy scripted expert becomes a
  policy both worlds can execute: :func:`expert_plans`.
* :class:`RandomPolicy` - uniform actions from a generator seeded by (seed, scene), so the
  same random sequence is played in both worlds.
* :class:`ExpertPolicy` - MetaWorld's scripted expert plus Gaussian noise; it reads the
  true 39-D state, so it runs only in the real world.
* :class:`SB3Policy` - a stable-baselines3 model acting on the 64x64 frames (closed loop
  in either world), stacking the last frames itself if it was trained on stacked frames
  (and reading the hand xyz + gripper of a ``proprio_obs`` world if it was trained on them).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from freeaction_gym.data.metaworld_policies import scripted_action
from freeaction_gym.evaluation.worlds import RealWorld, Rollouts, Scenes
from freeaction_gym.utils.errors import UserError


class PlanPolicy:
    """``plans[j]`` float32 (T, 4) is played in scene ``j`` (bank index); steps past ``T``
    repeat zeros. ``recorded``: the real-world episodes the plans were taken from, if any
    (replaying the plans there reproduces them exactly, so they need not be rerun)."""

    def __init__(
        self, name: str, plans: dict[int, np.ndarray], recorded: Rollouts | None = None
    ) -> None:
        self.name, self.plans = name, {int(k): np.asarray(v, np.float32) for k, v in plans.items()}
        self.recorded = recorded
        self._rows: list[np.ndarray] = []

    def reset(self, scenes: Scenes, seed: int) -> None:
        missing = [int(j) for j in scenes.bank_index if int(j) not in self.plans]
        if missing:
            raise KeyError(f"policy {self.name!r} has no plan for bank entries {missing}")
        self._rows = [self.plans[int(j)] for j in scenes.bank_index]

    def act(self, obs: np.ndarray, t: int, state: np.ndarray | None) -> np.ndarray:
        return np.stack([p[t] if t < len(p) else np.zeros(4, np.float32) for p in self._rows])


class RandomPolicy:
    """Uniform actions in [-1, 1]^4; scene ``j`` draws from ``default_rng([seed, j])``."""

    def __init__(self, name: str = "random") -> None:
        self.name = name
        self._rngs: list[np.random.Generator] = []

    def reset(self, scenes: Scenes, seed: int) -> None:
        self._rngs = [np.random.default_rng([seed, 7919, int(j)]) for j in scenes.bank_index]

    def act(self, obs: np.ndarray, t: int, state: np.ndarray | None) -> np.ndarray:
        return np.stack([r.uniform(-1.0, 1.0, 4) for r in self._rngs]).astype(np.float32)


class ExpertPolicy:
    """MetaWorld's scripted expert for each scene's task + N(0, sigma^2) action noise
    (noise from ``default_rng([seed, 104729, j])`` per scene). Real world only."""

    def __init__(self, sigma: float, name: str | None = None) -> None:
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)
        self.name = name or f"expert sigma={sigma:g}"
        self._experts: dict[str, Any] = {}
        self._tasks: list[str] = []
        self._rngs: list[np.random.Generator] = []

    def reset(self, scenes: Scenes, seed: int) -> None:
        self._tasks = [str(t) for t in scenes.task]
        self._rngs = [np.random.default_rng([seed, 104729, int(j)]) for j in scenes.bank_index]

    def act(self, obs: np.ndarray, t: int, state: np.ndarray | None) -> np.ndarray:
        if state is None:
            raise ValueError(
                f"{self.name} reads the simulator state, which imagination does not have; "
                "evaluate it in imagination through its real-world plans (expert_plans)"
            )
        out = [
            scripted_action(task, s, self._experts) + rng.normal(0.0, self.sigma, 4)
            for task, s, rng in zip(self._tasks, state, self._rngs, strict=True)
        ]
        return np.clip(np.asarray(out, np.float32), -1.0, 1.0)


def expert_plans(
    real: RealWorld,
    scenes: Scenes,
    sigma: float,
    steps: int,
    seed: int = 0,
    keep_frames: bool = False,
) -> PlanPolicy:
    """Run the noisy expert closed loop in the real world and return its actions as an
    open-loop :class:`PlanPolicy` named ``expert sigma=<sigma>``, with those real episodes
    as its ``recorded`` rollouts."""
    expert = ExpertPolicy(sigma)
    roll = real.run(expert, scenes, steps, seed, keep_frames=keep_frames)
    plans = {int(j): roll.actions[i] for i, j in enumerate(scenes.bank_index)}
    return PlanPolicy(expert.name, plans, recorded=roll)


LEGACY_AGENT_MODULES = (
    "augment", "callbacks", "config", "drq", "dyna", "envs", "policies", "prefill", "resume",
)  # fmt: skip
"""Modules of :mod:`freeaction_gym.agents` that lived in the top-level ``agents`` package
before 2026-12-07: zips saved then pickle classes as ``agents.<name>.<Class>``."""


def alias_legacy_agent_modules() -> None:
    """Make ``agents.<name>`` resolve to ``freeaction_gym.agents.<name>`` for unpickling
    models saved before the move (their policy and replay-buffer classes)."""
    import importlib
    import sys
    import types

    parent = sys.modules.get("agents")
    if parent is None:
        try:
            parent = importlib.import_module("agents")
        except ImportError:  # no top-level agents package installed: a bare namespace
            parent = sys.modules.setdefault("agents", types.ModuleType("agents"))
    for name in LEGACY_AGENT_MODULES:
        module = importlib.import_module(f"freeaction_gym.agents.{name}")
        sys.modules.setdefault(f"agents.{name}", module)
        if not hasattr(parent, name):
            setattr(parent, name, module)


def load_model(path: str | Path, algo: str = "auto", device: str = "cpu"):
    """An SB3 PPO/SAC model (``drq`` is SAC with its own policy and replay buffer classes);
    ``auto``: SAC if the zip's policy class is SAC's or it has a replay buffer class."""
    from stable_baselines3 import PPO, SAC

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise UserError(f"policy file {path} is not a stable-baselines3 .zip (not a zip archive)")
    if algo == "auto":
        try:
            with zipfile.ZipFile(path) as z:
                data = json.loads(z.read("data"))
        except (KeyError, ValueError, zipfile.BadZipFile) as err:  # no/garbled "data" entry
            raise UserError(f"policy file {path} is not a stable-baselines3 .zip ({err})") from err
        module = str(data.get("policy_class", {}).get("__module__", ""))
        algo = "sac" if ".sac." in module or "replay_buffer_class" in data else "ppo"
    alias_legacy_agent_modules()
    return {"ppo": PPO, "sac": SAC, "drq": SAC}[algo].load(path, device=device)


class SB3Policy:
    """A stable-baselines3 model (``.zip`` path or loaded) on 64x64 frames. A model trained
    on ``k`` channel-stacked frames (SB3's ``VecFrameStack``, newest last) gets the last
    ``k`` frames of each episode the same way: zeros before the first frame.

    A model trained with ``proprio_obs`` (a Dict of ``image`` and ``proprio`` (4k,)) needs a
    world that shows proprioception (``proprio_obs=True``: ``obs`` a dict of ``image``
    (B, H, W, 3) and ``proprio`` (B, 4)), stacked the same way; an image-only model in such
    a world reads the ``image``."""

    def __init__(self, name: str, model: Any, deterministic: bool = True) -> None:
        if isinstance(model, str):
            model = load_model(model)
        from gymnasium import spaces
        from stable_baselines3.common.preprocessing import is_image_space_channels_first

        self.name, self.model, self.deterministic = name, model, deterministic
        space = model.observation_space  # (C, H, W) or (H, W, C), or a Dict
        self.proprio_dim = 0
        if isinstance(space, spaces.Dict):
            self.proprio_dim = int(space["proprio"].shape[0])
            space = space["image"]
        self.channels = space.shape[0 if is_image_space_channels_first(space) else -1]
        self._stacked: dict[str, np.ndarray] = {}  # key -> (B, ..., stacked) of the episode

    def reset(self, scenes: Scenes, seed: int) -> None:
        self.model.set_random_seed(seed)
        self._stacked = {}

    def act(self, obs, t: int, state: np.ndarray | None) -> np.ndarray:
        image = obs["image"] if isinstance(obs, dict) else obs
        model_obs: Any = self._stack("image", image, self.channels, t)
        if self.proprio_dim:
            if not isinstance(obs, dict):
                raise ValueError(
                    f"policy {self.name!r} reads proprioception (trained with proprio_obs): "
                    "evaluate it in a world made with proprio_obs=True"
                )
            proprio = np.asarray(obs["proprio"], np.float32)
            model_obs = {
                "image": model_obs,
                "proprio": self._stack("proprio", proprio, self.proprio_dim, t),
            }
        actions, _ = self.model.predict(model_obs, deterministic=self.deterministic)
        return np.asarray(actions, np.float32)

    def _stack(self, key: str, x: np.ndarray, width: int, t: int) -> np.ndarray:
        """(B, ..., c) -> (B, ..., width): the last width / c observations of the episode
        along the last axis, the newest last (zeros before the first)."""
        if width == x.shape[-1]:
            return x
        if t == 0 or key not in self._stacked:
            self._stacked[key] = np.zeros((*x.shape[:-1], width), x.dtype)
        self._stacked[key] = np.concatenate([self._stacked[key][..., x.shape[-1] :], x], axis=-1)
        return self._stacked[key]
