"""Channels-last vs plain convolutions per agent encoder and batch size: ms per forward (no
grad) or forward + backward, 1 thread, each pair timed back to back twice (30 calls after 3
warm-up calls). Decides where :class:`freeaction_gym.agents.policies.ChannelsLastConv2d` is used.

    python experiments/bench_conv_layout.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import time  # noqa: E402
import types  # noqa: E402
from collections.abc import Callable  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from freeaction_gym.agents.policies import ChannelsLastConv2d, DrQEncoder, SmallCNN  # noqa: E402


def ms_per_call(f: Callable[[], object], n: int = 30) -> float:
    for _ in range(3):
        f()
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t0) / n * 1000


def set_layout(model: torch.nn.Module, channels_last: bool) -> None:
    """Run every convolution of ``model`` channels-last or plain."""
    forward = ChannelsLastConv2d.forward if channels_last else torch.nn.Conv2d.forward
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.forward = types.MethodType(forward, m)


def call(model: torch.nn.Module, x: torch.Tensor, backward: bool) -> Callable[[], object]:
    def f() -> None:
        if backward:
            model(x).sum().backward()
        else:
            with torch.no_grad():
                model(x)

    return f


def main() -> None:
    torch.set_num_threads(1)
    drq = DrQEncoder(gym.spaces.Box(0, 255, (9, 64, 64), np.uint8), 50, (32,) * 4, (2, 2, 1, 1))
    small = SmallCNN(gym.spaces.Box(0, 255, (3, 64, 64), np.uint8))
    cases = [
        ("DrQEncoder forward, batch 1 (env step)", drq, (1, 9, 64, 64), False),
        ("DrQEncoder forward, batch 20 (evaluation)", drq, (20, 9, 64, 64), False),
        ("SmallCNN forward, batch 8 (env step, 8 envs)", small, (8, 3, 64, 64), False),
        ("SmallCNN forward + backward, batch 64 (PPO minibatch)", small, (64, 3, 64, 64), True),
    ]
    print("| case | plain ms | channels-last ms | speed-up |\n|---|---|---|---|")
    for name, model, shape, backward in cases:
        f = call(model, torch.rand(*shape), backward)
        for _ in range(2):
            set_layout(model, False)
            plain = ms_per_call(f)
            set_layout(model, True)
            last = ms_per_call(f)
            print(f"| {name} | {plain:.2f} | {last:.2f} | {plain / last:.2f}x |")


if __name__ == "__main__":
    main()
