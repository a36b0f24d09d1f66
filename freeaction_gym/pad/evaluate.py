"""Closed-loop evaluation of a policy in the real MetaWorld simulator on held-out layouts.

Episodes of one task run in lockstep (one env + renderer each) so the policy is called once
per control step for all of them. Success = ``info["success"]`` at any simulator step within
``max_actions`` actions (each held ``action_repeat`` simulator steps, as in the data).
Policy noise is seeded per (seed, episode, control step): two policies evaluated with the
same seed see the same layouts and paired initial noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from freeaction_gym.data.metaworld_gen import make_metaworld_env

# act(rgb (B,H,W,3) uint8, depth (B,H,W) m, states (B, 39) simulator observations,
#     generators) -> actions (B, n, 4), n >= 1. Image policies ignore the states; the
#     scripted expert baseline uses only them.
ChunkPolicy = Callable[[np.ndarray, np.ndarray, np.ndarray, list[torch.Generator]], np.ndarray]


@dataclass
class EpisodeResult:
    success: bool
    first_success: int  # control step (action index) of the first success, -1 if none
    frames: np.ndarray  # uint8 (T+1, H, W, 3) observed frames


def run_task(
    task: str,
    policy: ChunkPolicy,
    layouts: list[int],
    layout_seed: int = 2000,
    max_actions: int = 40,
    action_repeat: int = 4,
    execute: int | None = None,
    camera: str = "workspace",
    resolution: int = 64,
    seed: int = 0,
    keep_frames: bool = False,
) -> list[EpisodeResult]:
    """Run one episode per layout of ``MT1(task, layout_seed)``; ``execute`` actions of each
    predicted chunk are executed before re-planning (default: the whole chunk)."""
    envs = [make_metaworld_env(task, layout_seed, k, camera, resolution, True) for k in layouts]
    n = len(envs)
    try:
        states = []
        for env, _ in envs:
            env.max_path_length = max(env.max_path_length, max_actions * action_repeat + 1)
            states.append(env.reset()[0])
        obs = [r() for _, r in envs]
        frames = [[o[0]] for o in obs]
        first = [-1] * n
        done_actions = 0
        call = 0
        while done_actions < max_actions:
            rgb = np.stack([o[0] for o in obs])
            depth = np.stack([o[1].astype(np.float16).astype(np.float32) for o in obs])
            gens = [
                torch.Generator().manual_seed(seed * 1_000_003 + e * 1009 + call) for e in range(n)
            ]
            chunk = policy(rgb, depth, np.stack(states), gens)
            call += 1
            steps = chunk.shape[1] if execute is None else min(execute, chunk.shape[1])
            for j in range(min(steps, max_actions - done_actions)):
                for e, (env, _) in enumerate(envs):
                    for _ in range(action_repeat):
                        states[e], _, _, _, info = env.step(chunk[e, j])
                        if info["success"] and first[e] < 0:
                            first[e] = done_actions
                done_actions += 1
                obs = [r() for _, r in envs]
                if keep_frames:
                    for e in range(n):
                        frames[e].append(obs[e][0])
            if all(f >= 0 for f in first):
                break
    finally:
        for env, render in envs:
            render.close()
            env.close()
    return [
        EpisodeResult(first[e] >= 0, first[e], np.stack(frames[e]) if keep_frames else np.empty(0))
        for e in range(n)
    ]


def pad_chunk_policy(policy, task: str) -> ChunkPolicy:
    """Adapt a :class:`~freeaction_gym.pad.policy.PADPolicy` (one generator per episode)."""

    def act(rgb, depth, states, gens):
        return policy.act(rgb, depth, [task] * len(gens), list(gens))[0]

    return act


def expert_chunk_policy(task: str, sigma: float = 0.0) -> ChunkPolicy:
    """MetaWorld's scripted expert on the simulator state (+ N(0, sigma^2) noise), 1 action."""
    from metaworld.policies import ENV_POLICY_MAP

    expert = ENV_POLICY_MAP[task]()

    def act(rgb, depth, states, gens):
        out = np.empty((len(states), 1, 4), np.float32)
        for i, (s, g) in enumerate(zip(states, gens, strict=True)):
            a = np.clip(expert.get_action(s), -1, 1)
            noise = torch.randn(4, generator=g).numpy() * sigma
            out[i, 0] = np.clip(a + noise, -1, 1)
        return out

    return act


def random_chunk_policy() -> ChunkPolicy:
    """Uniform random actions in [-1, 1], 1 action per call."""

    def act(rgb, depth, states, gens):
        return np.stack([torch.rand(1, 4, generator=g).numpy() * 2 - 1 for g in gens]).astype(
            np.float32
        )

    return act
