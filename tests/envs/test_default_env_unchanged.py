"""The default environment (``gym.make("FreeActionMetaWorldV2-v0")``: the bundled model, its
reset bank and reward head) gives the observations recorded before the stepping path was
refactored (issue 13), for a fixed 20-step script from a fixed seed.

Tolerance. On the machine that recorded the file the match is exact. Another CPU may run
other BLAS kernels whose float32 rounding differs in the last bits; an autoregressive rollout
carries such differences forward, so the test allows a mean absolute difference of 0.1 uint8
levels per pixel and at most 0.5% of pixels more than 2 levels apart (and 1e-2 on the
learned rewards). A changed noise stream, seeding or context update moves the frames by
several levels per pixel on average and fails it.

Regenerate (only for a deliberate behaviour change):
``python tests/envs/test_default_env_unchanged.py``.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

import freeaction_gym  # noqa: F401  (registers the ids)

RECORDING = Path(__file__).parent / "data" / "default_env_20_steps.npz"
SEED, STEPS = 0, 20
MEAN_LEVELS, FAR_LEVELS, FAR_FRACTION, REWARD_ATOL = 0.1, 2, 0.005, 1e-2


def script() -> np.ndarray:
    """The fixed 20 actions, float32 (20, 4) in [-1, 1]."""
    return np.random.default_rng(2024).uniform(-1, 1, (STEPS, 4)).astype(np.float32)


def run_script() -> dict[str, np.ndarray]:
    """obs uint8 (21, 64, 64, 3) (reset, then after each step; an episode that ends is reset
    without a seed and the next step's observation follows), reward/terminated/truncated (20,)."""
    env = gym.make("FreeActionMetaWorldV2-v0")
    obs, _ = env.reset(seed=SEED)
    frames, rewards, terminated, truncated = [obs], [], [], []
    for a in script():
        obs, r, term, trunc, _ = env.step(a)
        frames.append(obs)
        rewards.append(r)
        terminated.append(term)
        truncated.append(trunc)
        if term or trunc:
            env.reset()
    return {
        "obs": np.stack(frames),
        "reward": np.asarray(rewards, np.float32),
        "terminated": np.asarray(terminated),
        "truncated": np.asarray(truncated),
    }


def test_default_env_observations_unchanged():
    ref = np.load(RECORDING)
    got = run_script()
    diff = np.abs(got["obs"].astype(np.int16) - ref["obs"].astype(np.int16))
    print(f"max {diff.max()} levels, mean {diff.mean():.4f}, > {FAR_LEVELS}: {(diff > 2).mean()}")
    assert got["obs"].shape == ref["obs"].shape
    np.testing.assert_array_equal(got["obs"][0], ref["obs"][0])  # the bank frame, exactly
    assert diff.mean() <= MEAN_LEVELS
    assert (diff > FAR_LEVELS).mean() <= FAR_FRACTION
    np.testing.assert_allclose(got["reward"], ref["reward"], atol=REWARD_ATOL)
    np.testing.assert_array_equal(got["terminated"], ref["terminated"])
    np.testing.assert_array_equal(got["truncated"], ref["truncated"])


if __name__ == "__main__":
    RECORDING.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(RECORDING, **run_script())
    print(f"wrote {RECORDING}")
