"""``freeaction demo``: the bundled MetaWorld world model, end to end, in a few minutes.

Replays the recorded actions of held-out MetaWorld episodes (shipped with the bundle) in
the imagined environment - with and without the FreeAction techniques - starting from the
episodes' real first frames, and compares every imagined frame with what the real
simulator rendered. Writes to ``--out``:

* ``rollouts.mp4`` - per episode: real | imagined (FreeAction) | imagined (plain);
* ``psnr_over_time.png`` - PSNR of imagined vs real frames over the rollout, with the
  copy-the-first-frame baseline;
* ``summary.json`` / ``summary.md`` - the numbers (PSNR, success predicted vs real,
  imagined steps per second);
* ``agent/`` - a PPO agent trained purely in imagination for ``--agent-steps`` steps and
  evaluated, next to a random policy, in imagination and in the real simulator
  (:mod:`freeaction_gym.demo_agent`; ``--agent-steps 0`` skips it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from freeaction_gym.assets import resolve_model_path
from freeaction_gym.utils.args import make_output_dir, require_at_least, require_path
from freeaction_gym.utils.errors import UserError
from freeaction_gym.utils.video import write_comparison

VARIANTS = {
    "freeaction": {},  # the preset's defaults: action-scaled truncated noise (CFG off)
    "plain": {"guidance": {"mode": "none"}, "truncation": {"mode": "none"}},
}


def _psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame colour PSNR (dB) of uint8 (N, H, W, 3) arrays; capped at 60 dB."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)
    return np.minimum(10 * np.log10(255.0**2 / np.maximum(mse, 1e-12)), 60.0)


def run_demo(
    out: Path,
    model: str,
    steps: int,
    episodes: int | None,
    num_envs_seed: int,
    reward: str = "learned",
) -> dict:
    import gymnasium as gym
    from tqdm.auto import tqdm

    import freeaction_gym  # noqa: F401  (registers the ids)
    from freeaction_gym.envs import factory
    from freeaction_gym.envs.config import make_env_config

    out.mkdir(parents=True, exist_ok=True)
    demo = np.load(resolve_model_path(model) / "demo_episodes.npz")
    rgb, actions, success, tasks = demo["rgb"], demo["action"], demo["success"], demo["task"]
    n = len(rgb) if episodes is None else min(episodes, len(rgb))
    steps = min(steps, actions.shape[1])
    opts = dict(model=model, max_episode_steps=steps, terminate_on_success=False, reward=reward)
    components = factory.build(make_env_config("FreeActionMetaWorld-v0", **opts))
    frames: dict[str, np.ndarray] = {}
    info_log: dict[str, dict] = {}
    for name, sampling in VARIANTS.items():
        venv = gym.make_vec(
            "FreeActionMetaWorld-v0", num_envs=n, components=components, sampling=sampling, **opts
        )
        obs, _ = venv.reset(seed=num_envs_seed)
        for i in range(n):  # start every env from its episode's real first frame
            venv.unwrapped.core.reset_env(
                i,
                np.random.default_rng(num_envs_seed + i),
                {"initial_frame": rgb[i, 0], "goal_frame": rgb[i, -1], "task": str(tasks[i])},
            )
        seq = [venv.unwrapped.core.observations()]
        pred_success = np.zeros(n, bool)
        t0 = time.perf_counter()
        for t in tqdm(range(steps), desc=f"imagine ({name})"):
            obs, reward, term, trunc, info = venv.step(actions[:n, t])
            seq.append(obs)
            pred_success |= info["success"]
        dt = time.perf_counter() - t0
        frames[name] = np.stack(seq, axis=1)  # (n, steps+1, H, W, 3)
        info_log[name] = {
            "seconds": dt,
            "steps_per_s": n * steps / dt,
            "predicted_success": pred_success.tolist(),
        }
        venv.close()
    real = rgb[:n, : steps + 1]
    curves = {
        name: np.stack([_psnr(f[i, 1:], real[i, 1:]) for i in range(n)])
        for name, f in frames.items()
    }
    curves["copy first frame"] = np.stack(
        [_psnr(np.repeat(real[i, :1], steps, 0), real[i, 1:]) for i in range(n)]
    )
    summary = {
        "episodes": n,
        "steps": steps,
        "tasks": [str(t) for t in tasks[:n]],
        "real_success": success[:n, :steps].any(1).tolist(),
        "mean_psnr_db": {k: float(v.mean()) for k, v in curves.items()},
        "psnr_first_10_steps_db": {k: float(v[:, :10].mean()) for k, v in curves.items()},
        **{f"{k}_run": v for k, v in info_log.items()},
    }
    write_comparison(out / "rollouts.mp4", [real, frames["freeaction"], frames["plain"]])
    _plot(out / "psnr_over_time.png", curves)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(_markdown(summary))
    return summary


def _plot(path: Path, curves: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, c in curves.items():
        ax.plot(np.arange(1, c.shape[1] + 1), c.mean(0), label=name)
    ax.set_xlabel("imagined step")
    ax.set_ylabel("PSNR vs real frame (dB)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _markdown(s: dict) -> str:
    lines = ["| rollout | mean PSNR (dB) | PSNR first 10 steps (dB) |", "|---|---|---|"]
    for k, v in s["mean_psnr_db"].items():
        lines.append(f"| {k} | {v:.2f} | {s['psnr_first_10_steps_db'][k]:.2f} |")
    lines.append("")
    for k in VARIANTS:
        r = s[f"{k}_run"]
        lines.append(
            f"- {k}: {r['steps_per_s']:.1f} imagined env steps/s; predicted success "
            f"{r['predicted_success']} (real {s['real_success']})"
        )
    return "\n".join(lines) + "\n"


def check_args(a: argparse.Namespace) -> None:
    """Reject bad numbers and a model without demo episodes (a :class:`UserError` naming
    the option), then make ``--out``: nothing is written for a rejected command."""
    require_at_least(1, steps=a.steps, episodes=a.episodes, agent_scenes=a.agent_scenes)
    require_at_least(0, agent_steps=a.agent_steps)
    model = require_path(resolve_model_path(a.model), "--model", "dir")
    if not (model / "demo_episodes.npz").is_file():
        raise UserError(
            f"--model {a.model}: no demo_episodes.npz in {model} (a bundle written by "
            "`freeaction bundle` carries it)"
        )
    make_output_dir(a.out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="freeaction demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="outputs/demo", help="output folder")
    p.add_argument("--model", default="bundled:metaworld_default", help="world model dir")
    p.add_argument("--steps", type=int, default=40, help="imagined steps per episode")
    p.add_argument("--episodes", type=int, default=None, help="number of held-out episodes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reward", default="learned", choices=["learned", "goal_latent", "none"])
    p.add_argument(
        "--agent-steps", type=int, default=4096, help="PPO steps in imagination (0: no agent)"
    )
    p.add_argument("--agent-scenes", type=int, default=10, help="held-out scenes per world")
    a = p.parse_args(argv)
    check_args(a)
    from freeaction_gym.utils.threads import configure_threads

    configure_threads()
    s = run_demo(Path(a.out), a.model, a.steps, a.episodes, a.seed, a.reward)
    print(_markdown(s))
    if a.agent_steps > 0:
        from freeaction_gym.demo_agent import markdown, run_agent_demo

        report = run_agent_demo(
            Path(a.out) / "agent", a.model, a.agent_steps, a.agent_scenes, a.steps, a.seed
        )
        text = markdown(report)
        with open(Path(a.out) / "summary.md", "a") as f:
            f.write("\n" + text)
        print(text)
    print(f"videos, plot and summary written to {a.out}/")
    return 0
