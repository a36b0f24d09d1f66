"""Imagined environment throughput: env steps/s and frames/s of the MetaWorld presets.

One process: every env id (default: the grounded default ``FreeActionMetaWorld-v0`` and the
v2 action-adaLN world ``FreeActionMetaWorldV2-v0``) at N = 1, 4, 8 batched envs (native
vector env, one model call per step) and chunk sizes 1 and 4 (frames per env step), with
each preset's own sampler (``--sampler-steps`` overrides its DDIM steps). The ids alternate
within every repetition so load drifts hit all alike; the table gives the median over
repetitions and each id's frames/s relative to the first id's at the same N and chunk.

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

    env: list[str] = field(
        default_factory=lambda: ["FreeActionMetaWorld-v0", "FreeActionMetaWorldV2-v0"]
    )
    """Env ids; ratios are relative to the first."""
    num_envs: list[int] = field(default_factory=lambda: [1, 4, 8])
    """Batch sizes (vector env widths)."""
    chunks: list[int] = field(default_factory=lambda: [1, 4])
    """Actions (frames) per env step."""
    sampler_steps: int | None = None
    """DDIM steps (default: each preset's)."""
    steps: int = 12
    """Timed env steps per configuration and repetition (after 2 warmup steps)."""
    repeats: int = 3
    """Repetitions (the ids alternate within each)."""
    out: str | None = None
    """Write the markdown table here."""
    quick: bool = False
    """Tiny settings that finish in seconds."""


def _time_env(env_id: str, components, n: int, chunk: int, args: Args) -> float:
    """Seconds per batched env step."""
    import gymnasium as gym

    kw = dict(terminate_on_success=False, max_episode_steps=10**6, action_chunk=chunk)
    if args.sampler_steps is not None:
        kw["sampling"] = {"num_steps": args.sampler_steps}
    venv = gym.make_vec(env_id, num_envs=n, components=components, **kw)
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    acts = rng.uniform(-1, 1, (args.steps + 2, *venv.action_space.shape)).astype(np.float32)
    for a in acts[:2]:
        venv.step(a)
    t0 = time.perf_counter()
    for a in acts[2:]:
        venv.step(a)
    dt = (time.perf_counter() - t0) / args.steps
    venv.close()
    return dt


def bench(args: Args) -> list[dict]:
    import freeaction_gym  # noqa: F401
    from freeaction_gym.envs import factory
    from freeaction_gym.envs.config import make_env_config

    components = {e: factory.build(make_env_config(e)) for e in args.env}
    times: dict[tuple, list[float]] = {}
    for _ in range(args.repeats):
        for chunk, n, env_id in itertools.product(args.chunks, args.num_envs, args.env):
            dt = _time_env(env_id, components[env_id], n, chunk, args)
            times.setdefault((env_id, chunk, n), []).append(dt)
    rows = []
    for (env_id, chunk, n), ts in times.items():
        dt = float(np.median(ts))
        rows.append(
            {
                "env": env_id,
                "chunk": chunk,
                "num_envs": n,
                "env_steps_per_s": n / dt,
                "frames_per_s": n * chunk / dt,
                "ms_per_frame": 1000 * dt / (n * chunk),
            }
        )
    first = {
        (r["chunk"], r["num_envs"]): r["frames_per_s"] for r in rows if r["env"] == args.env[0]
    }
    for r in rows:
        r["relative"] = r["frames_per_s"] / first[(r["chunk"], r["num_envs"])]
    return rows


def table(rows: list[dict], first: str) -> str:
    lines = [
        f"| env | chunk | envs | env steps/s | frames/s | ms/frame | frames/s vs {first} |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["chunk"], r["num_envs"])):
        lines.append(
            f"| {r['env']} | {r['chunk']} | {r['num_envs']} | {r['env_steps_per_s']:.2f} | "
            f"{r['frames_per_s']:.2f} | {r['ms_per_frame']:.1f} | {r['relative']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args(Args)
    if args.quick:
        args.num_envs, args.chunks, args.steps, args.repeats = [1, 2], [1], 2, 1
    from freeaction_gym.utils.threads import configure_threads

    threads = configure_threads()
    md = table(bench(args), args.env[0])
    md = f"torch threads: {threads}, OMP_WAIT_POLICY=PASSIVE, median of {args.repeats}\n\n" + md
    print(md)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(md)


if __name__ == "__main__":
    main()
