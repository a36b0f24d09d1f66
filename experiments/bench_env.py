"""Imagined environment throughput: env steps/s and frames/s of ``FreeActionMetaWorld-v0``.

One process, one model, every configuration timed back to back so the ratios are fair:
N = 1, 4, 8 batched envs (native vector env, one model call per step), chunk sizes 1 and
4 (frames per env step), sampler steps, and FreeAction guidance on/off (truncated noise
stays on; it costs nothing). Run on an otherwise idle machine:

    python experiments/bench_env.py --out outputs/bench_env.md
    python experiments/bench_env.py --quick
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from freeaction_gym.utils.args import parse_args


@dataclass
class Args:
    """Benchmark imagined env steps."""

    model: str = "bundled:metaworld_default"
    """World model directory or bundled:<name>."""
    num_envs: list[int] = field(default_factory=lambda: [1, 4, 8])
    """Batch sizes (vector env widths)."""
    chunks: list[int] = field(default_factory=lambda: [1, 4])
    """Actions (frames) per env step."""
    sampler_steps: list[int] = field(default_factory=lambda: [10, 4])
    """DDIM steps."""
    steps: int = 12
    """Timed env steps per configuration (after 2 warmup steps)."""
    out: str | None = None
    """Write the markdown table here."""
    quick: bool = False
    """Tiny settings that finish in seconds."""


def bench(args: Args) -> list[dict]:
    import gymnasium as gym

    import freeaction_gym  # noqa: F401
    from freeaction_gym.envs import factory
    from freeaction_gym.envs.config import make_env_config

    base = dict(
        model=args.model, reward="learned", terminate_on_success=False, max_episode_steps=10**6
    )
    components = factory.build(make_env_config("FreeActionMetaWorld-v0", **base))
    rows = []
    grid = itertools.product(args.chunks, args.sampler_steps, (True, False), args.num_envs)
    for chunk, n_steps, cfg_on, n in grid:
        sampling = {"num_steps": n_steps}
        if not cfg_on:
            sampling["guidance"] = {"mode": "none"}
        venv = gym.make_vec(
            "FreeActionMetaWorld-v0",
            num_envs=n,
            components=components,
            action_chunk=chunk,
            sampling=sampling,
            **base,
        )
        venv.reset(seed=0)
        rng = np.random.default_rng(0)
        acts = rng.uniform(-1, 1, (args.steps + 2, *venv.action_space.shape)).astype(np.float32)
        for a in acts[:2]:
            venv.step(a)
        t0 = time.perf_counter()
        for a in acts[2:]:
            venv.step(a)
        dt = (time.perf_counter() - t0) / args.steps
        rows.append(
            {
                "chunk": chunk,
                "sampler_steps": n_steps,
                "cfg": cfg_on,
                "num_envs": n,
                "env_steps_per_s": n / dt,
                "frames_per_s": n * chunk / dt,
                "ms_per_frame": 1000 * dt / (n * chunk),
            }
        )
        venv.close()
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| chunk | DDIM steps | CFG | envs | env steps/s | frames/s | ms/frame |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['chunk']} | {r['sampler_steps']} | {'on' if r['cfg'] else 'off'} | "
            f"{r['num_envs']} | {r['env_steps_per_s']:.2f} | {r['frames_per_s']:.2f} | "
            f"{r['ms_per_frame']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args(Args)
    if args.quick:
        args.num_envs, args.chunks, args.sampler_steps, args.steps = [1, 2], [1], [2], 2
    from freeaction_gym.utils.threads import configure_threads

    threads = configure_threads()
    md = table(bench(args))
    md = f"torch threads: {threads}, OMP_WAIT_POLICY=PASSIVE\n\n" + md
    print(md)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(md)


if __name__ == "__main__":
    main()
