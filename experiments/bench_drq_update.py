"""Cost of one DrQ (SAC) update with the MetaWorld-K settings - 3 stacked 64x64 RGB frames
plus proprioception, batch 128,
``freeaction_gym/agents/hyperparams/FreeActionRealMetaWorld-v0.yaml`` -
as SB3 computes it (``plain``: ``nn.Conv2d``, SB3's ``ContinuousCritic``), with the
convolutions in channels-last layout (``channels_last``,
:class:`freeaction_gym.agents.policies.ChannelsLastConv2d`), and with that plus the critic's
graph-free
pass for the actor's loss (``default``, :class:`freeaction_gym.agents.drq.DrQCritic`). The three
models
are built from the same seed on the same random frames and updated interleaved in one
process; prints the median ms per update and the ratios to ``plain``.

    python experiments/bench_drq_update.py [--updates 20] [--threads 1]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from stable_baselines3 import SAC  # noqa: E402
from stable_baselines3.common.policies import ContinuousCritic  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecTransposeImage  # noqa: E402

from freeaction_gym.agents.config import load_hyperparams  # noqa: E402
from freeaction_gym.agents.drq import DrQCritic, drq_sac_kwargs  # noqa: E402
from freeaction_gym.agents.policies import ChannelsLastConv2d, policy_kwargs_from_config  # noqa: E402

SIZE = 64


class RandomFrames(gym.Env):
    """Random 64x64 RGB frames and a 4-d proprio vector (the ``proprio_obs`` layout),
    40-step episodes: the update's cost does not depend on what the pixels show."""

    observation_space = gym.spaces.Dict(
        image=gym.spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8),
        proprio=gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
    )
    action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self._t += 1
        return self.observation_space.sample(), 0.0, False, self._t >= 40, {}


def build(seed: int, warmup: int) -> SAC:
    """A DrQ model with the MetaWorld-K hyperparameters whose buffer holds ``warmup`` steps."""
    hp = load_hyperparams(
        "FreeActionRealMetaWorld-v0",
        "drq",
        overrides={"buffer_size": warmup + 10, "learning_starts": warmup},
    )
    vec = DummyVecEnv([RandomFrames])
    vec.seed(seed)
    env = VecTransposeImage(VecFrameStack(vec, hp.frame_stack, channels_order="last"))
    policy, kwargs = drq_sac_kwargs(hp, env.observation_space)
    model = SAC(
        policy,
        env,
        policy_kwargs=policy_kwargs_from_config(hp.policy_kwargs),
        seed=seed,
        device="cpu",
        **kwargs,
    )
    model.learn(warmup)  # fills the buffer; no update before learning_starts
    return model


def use_sb3_forward(model: SAC, cls: type, sb3_forward) -> int:
    """Run every ``cls`` module of ``model`` with ``sb3_forward``; returns how many."""
    modules = [m for m in model.policy.modules() if isinstance(m, cls)]
    for m in modules:
        m.forward = types.MethodType(sb3_forward, m)
    return len(modules)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=20, help="timed updates per setting")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = {name: build(0, 300) for name in ("plain", "channels_last", "default")}
    for name in ("plain", "channels_last"):
        use_sb3_forward(models[name], DrQCritic, ContinuousCritic.forward)
    n = use_sb3_forward(models["plain"], ChannelsLastConv2d, torch.nn.Conv2d.forward)
    batch = models["plain"].batch_size
    times: dict[str, list[float]] = {k: [] for k in models}
    for i in range(args.updates + 2):  # 2 warm-up updates dropped
        for name, model in models.items():
            t0 = time.perf_counter()
            model.train(gradient_steps=1, batch_size=batch)
            if i >= 2:
                times[name].append(time.perf_counter() - t0)
    ms = {k: 1000 * float(np.median(v)) for k, v in times.items()}
    print(f"ms per DrQ update (batch {batch}, {n} convolutions, {args.threads} thread(s)):")
    for name, value in ms.items():
        print(f"  {name:14s} {value:7.1f}   speed-up vs plain {ms['plain'] / value:.2f}x")


if __name__ == "__main__":
    main()
