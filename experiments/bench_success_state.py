"""Cost of ``success: state`` (the state probe on every imagined frame) on the env step:
median ms per vector-env step at 8 envs with ``success: reward`` vs ``state``, stepped
interleaved in one process (2 warm-up steps dropped), and their ratio.

    python experiments/bench_success_state.py [--steps 10] [--num-envs 8]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import freeaction_gym  # noqa: E402, F401  (registers the ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per setting")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--preset", default="FreeActionMetaWorld-v0")
    args = parser.parse_args()
    n, warm = args.num_envs, 2
    envs = {s: gym.make_vec(args.preset, num_envs=n, success=s) for s in ("reward", "state")}
    for env in envs.values():
        env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (warm + args.steps, n, 4)).astype(np.float32)
    times: dict[str, list[float]] = {s: [] for s in envs}
    for t, a in enumerate(actions):
        for s, env in envs.items():
            t0 = time.perf_counter()
            env.step(a)
            if t >= warm:
                times[s].append(time.perf_counter() - t0)
    ms = {s: 1000 * float(np.median(v)) for s, v in times.items()}
    print(
        f"ms per vector step ({n} envs): reward {ms['reward']:.1f}, state {ms['state']:.1f}, "
        f"ratio state/reward {ms['state'] / ms['reward']:.3f}"
    )


if __name__ == "__main__":
    main()
