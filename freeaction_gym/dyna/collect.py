"""Step (a): collect real MetaWorld episodes with the current policy, in the dataset format.

Episodes run in :class:`RecordingRealWorld` - the evaluation's real world
(:class:`~freeaction_gym.evaluation.worlds.RealWorld`: the dataset camera, action repeat and
reset-bank scenes) that also records the robot state and arm keypoints of every frame - on
scenes drawn from the base's *train* layouts (evaluation keeps the held-out test layouts).
Each episode is written as one ``.npz`` of the on-disk format (``rgb``, ``action``,
``reward``, ``success``, ``layout``, ``layout_seed``, ``seed``, ``task``, ``state``,
``keypoints``; no depth) plus ``noise_sigma``, ``dyna_iteration``, ``policy`` and
``batch_position`` (the episode's noise generator is ``default_rng([seed,
batch_position])``).

Acting policies (the batched ``reset``/``act`` protocol of :mod:`~freeaction_gym.evaluation.
worlds`): :class:`NoisyPolicy` (an agent + Gaussian exploration noise) and
:class:`GeneratorMix` (the dataset generator's noisy scripted experts, random actions,
perturbations and random walks: iteration 0's data when there is no agent yet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from freeaction_gym.data.episodes import load_episode, write_episode
from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.evaluation.worlds import Policy, RealWorld, Scenes


class NoisyPolicy:
    """``inner``'s actions + N(0, sigma^2), clipped to [-1, 1]; the episode in batch position
    ``i`` draws its noise from ``default_rng([seed, 7877, i])`` (one stream per episode,
    even when a batch holds the same scene twice)."""

    def __init__(self, inner: Policy, sigma: float) -> None:
        self.inner, self.sigma = inner, float(sigma)
        self.name = f"{inner.name} + noise {sigma:g}"
        self.episode_sigmas: list[float] = []
        self._rngs: list[np.random.Generator] = []

    def reset(self, scenes: Scenes, seed: int) -> None:
        self.inner.reset(scenes, seed)
        self._rngs = [np.random.default_rng([seed, 7877, i]) for i in range(len(scenes))]
        self.episode_sigmas = [self.sigma] * len(scenes)

    def act(self, obs: np.ndarray, t: int, state: np.ndarray | None) -> np.ndarray:
        a = np.asarray(self.inner.act(obs, t, state), np.float32)  # (B, 4)
        noise = np.stack([r.normal(0.0, self.sigma, a.shape[1]) for r in self._rngs])
        return np.clip(a + noise, -1.0, 1.0).astype(np.float32)


class GeneratorMix:
    """The dataset generator's per-episode exploration policies (``metaworld_gen.
    ExplorationPolicy`` / ``RandomWalkPolicy`` drawn as the generator draws them, from
    ``data_config``); they read the simulator state, so real world only."""

    name = "generator mix"

    def __init__(self, data_config) -> None:
        self.cfg = data_config
        self.episode_sigmas: list[float] = []
        self._policies: list = []

    def reset(self, scenes: Scenes, seed: int) -> None:
        from freeaction_gym.data.metaworld_gen import ExplorationPolicy, RandomWalkPolicy

        self._policies = []
        for i, task in enumerate(scenes.task):
            rng = np.random.default_rng([seed, 7877, i])
            walk = self.cfg.random_walk_prob > 0 and rng.random() < self.cfg.random_walk_prob
            self._policies.append(
                (RandomWalkPolicy if walk else ExplorationPolicy)(str(task), self.cfg, rng)
            )
        self.episode_sigmas = [float(p.sigma) for p in self._policies]

    def act(self, obs: np.ndarray, t: int, state: np.ndarray | None) -> np.ndarray:
        if state is None:
            raise ValueError("GeneratorMix reads the simulator state: real world only")
        return np.stack([p(s) for p, s in zip(self._policies, state, strict=True)])


class RecordingRealWorld(RealWorld):
    """:class:`RealWorld` that also keeps ``robot[i]``: the ``(state (7,), keypoints (K, 3))``
    of every frame of the current batch's episode ``i``."""

    def start(self, scenes: Scenes, seed: int):
        obs, state = super().start(scenes, seed)
        self.robot = [[env.robot_state()] for env in self._active]
        return obs, state

    def advance(self, actions: np.ndarray):
        out = super().advance(actions)
        for frames, env in zip(self.robot, self._active, strict=True):
            frames.append(env.robot_state())
        return out


@dataclass(frozen=True)
class CollectPlan:
    """What one iteration collects: ``scenes`` (train-layout bank entries, one per episode)
    and the episode files, in batches of ``batch_size``."""

    scenes: Scenes
    paths: list[Path]
    batch_size: int


def batch_seed(run_seed: int, iteration: int, batch: int) -> int:
    """Seed of one collection batch (stable across resumes and Python runs)."""
    return int(np.random.SeedSequence([run_seed, iteration, batch]).generate_state(1)[0])


def episode_arrays(
    world: RecordingRealWorld, roll, bank: ResetBank, i: int, seed: int, extra: dict
) -> dict[str, np.ndarray]:
    """The on-disk arrays of episode ``i`` of a :meth:`RecordingRealWorld.run` batch."""
    j = int(roll.scenes.bank_index[i])
    state = np.stack([s for s, _ in world.robot[i]])  # (T+1, 7)
    keypoints = np.stack([k for _, k in world.robot[i]])  # (T+1, K, 3) m
    return {
        "rgb": roll.frames[i],  # (T+1, H, W, 3) uint8
        "action": roll.actions[i],  # (T, 4), as executed (clipped)
        "reward": roll.reward[i],  # (T,)
        "success": roll.success[i],  # (T,)
        "layout": np.int64(bank.layout[j]),
        "layout_seed": np.int64(bank.layout_seed[j]),
        "seed": np.int64(seed),
        "batch_position": np.int64(i),
        "task": np.str_(bank.task[j]),
        "state": state.astype(np.float32),
        "keypoints": keypoints.astype(np.float32),
        **extra,
    }


def collect(
    plan: CollectPlan,
    policy: Policy,
    world: RecordingRealWorld,
    bank: ResetBank,
    steps: int,
    seed_of_batch: Callable[[int], int],
    extra: dict | None = None,
    progress: bool = True,
) -> dict:
    """Run and write the episodes of ``plan`` that do not exist yet (a batch is rerun as a
    whole, with its own seed ``seed_of_batch(b)``, so a resumed collection writes the same
    files). Returns ``episodes``, ``steps``, ``success_rate``, ``return_mean`` of all of the
    plan's episodes and ``written`` (this call)."""
    n, b_size = len(plan.paths), plan.batch_size
    written = 0
    bar = tqdm(total=n, desc="collect real", unit="ep", disable=not progress, leave=False)
    for b, start in enumerate(range(0, n, b_size)):
        idx = list(range(start, min(n, start + b_size)))
        if all(plan.paths[k].is_file() for k in idx):
            bar.update(len(idx))
            continue
        seed = seed_of_batch(b)
        world.batch_size = len(idx)
        roll = world.run(policy, plan.scenes.subset(idx), steps, seed, keep_frames=True)
        sigmas = list(getattr(policy, "episode_sigmas", [])) or [float("nan")] * len(idx)
        for i, k in enumerate(idx):
            info = {**(extra or {}), "noise_sigma": np.float32(sigmas[i])}
            info["policy"] = np.str_(policy.name)
            write_episode(plan.paths[k], episode_arrays(world, roll, bank, i, seed, info))
            written += 1
        bar.update(len(idx))
    bar.close()
    success, returns = [], []
    for p in plan.paths:
        ep = load_episode(p, load_depth=False)
        success.append(bool(ep.success.any()))
        returns.append(float(ep.reward.sum()))
    return {
        "episodes": n,
        "steps": n * steps,
        "written": written,
        "success_rate": float(np.mean(success)),
        "return_mean": float(np.mean(returns)),
    }
