"""``freeaction demo``: the bundled MetaWorld worlds, end to end, in a few minutes.

Replays the recorded actions of held-out MetaWorld episodes (shipped with the bundle) in
the grounded default world (``FreeActionMetaWorld-v0``: the integrated state drawn by the
prompt-conditioned model; with its FreeAction sampler and with a plain one) and in the v2
action-adaLN world, each starting from the episode's reset-bank scene (its real first frame,
robot state and goal), and compares every imagined frame with what the real simulator
rendered. Writes to ``--out``:

* ``rollouts.mp4`` - per episode: real | grounded | grounded (plain sampler) | v2;
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

from freeaction_gym.assets import resolve_asset_path, resolve_model_path
from freeaction_gym.utils.args import make_output_dir, require_at_least, require_path
from freeaction_gym.utils.video import write_comparison

DEMO_EPISODES = "bundled:metaworld_default/demo_episodes.npz"
V2_ENV = "FreeActionMetaWorldV2-v0"
PLAIN = {"guidance": {"mode": "none"}, "truncation": {"mode": "none"}}


def variants(env_id: str) -> dict[str, tuple[str, dict]]:
    """Rollout name -> (env id, sampling overrides): the grounded default with its
    FreeAction sampler and with a plain one, and the v2 action-adaLN world."""
    return {
        "grounded": (env_id, {}),
        "grounded, plain sampler": (env_id, PLAIN),
        "v2 (action adaLN)": (V2_ENV, {}),
    }


def _psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame colour PSNR (dB) of uint8 (N, H, W, 3) arrays; capped at 60 dB."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)
    return np.minimum(10 * np.log10(255.0**2 / np.maximum(mse, 1e-12)), 60.0)


def bank_indices(first_frames: np.ndarray, bank) -> list[int]:
    """The reset-bank entry (its robot/object state and goal) whose initial frame is each of
    ``first_frames`` uint8 (E, H, W, 3); the demo episodes are bank scenes."""
    out = []
    for i, frame in enumerate(first_frames):
        hits = np.flatnonzero((bank.initial == frame).reshape(len(bank), -1).all(1))
        if len(hits) == 0:
            raise ValueError(f"demo episode {i}'s first frame is in no reset-bank entry")
        out.append(int(hits[0]))
    return out


def run_demo(
    out: Path,
    steps: int,
    episodes: int | None,
    seed: int,
    env_id: str = "FreeActionMetaWorld-v0",
    model: str | None = None,
) -> dict:
    """Replay the demo episodes' recorded actions from their bank scenes in every
    :func:`variants` world; writes the video, the PSNR plot and the summary into ``out``."""
    import gymnasium as gym
    from tqdm.auto import tqdm

    import freeaction_gym  # noqa: F401  (registers the ids)
    from freeaction_gym.envs import factory
    from freeaction_gym.envs.config import make_env_config

    with np.load(resolve_asset_path(DEMO_EPISODES)) as demo:
        rgb, actions, success, tasks = demo["rgb"], demo["action"], demo["success"], demo["task"]
    n = len(rgb) if episodes is None else min(episodes, len(rgb))
    steps = min(steps, actions.shape[1])
    out.mkdir(parents=True, exist_ok=True)
    frames: dict[str, np.ndarray] = {}
    info_log: dict[str, dict] = {}
    for name, (vid, sampling) in variants(env_id).items():
        opts = dict(max_episode_steps=steps, terminate_on_success=False)
        if model is not None and vid == env_id:
            opts["model"] = model
        components = factory.build(make_env_config(vid, **opts))
        scenes = bank_indices(rgb[:n, 0], components[1])
        venv = gym.make_vec(vid, num_envs=n, components=components, sampling=sampling, **opts)
        venv.reset(seed=seed)
        core = venv.unwrapped.core
        for i in range(n):  # start every env from its episode's scene (frame, state, goal)
            core.reset_env(i, np.random.default_rng(seed + i), {"bank_index": scenes[i]})
        seq = [core.observations()]
        pred_success = np.zeros(n, bool)
        t0 = time.perf_counter()
        for t in tqdm(range(steps), desc=f"imagine ({name})"):
            obs, _, _, _, info = venv.step(actions[:n, t])
            seq.append(obs)
            pred_success |= info["success"]
        dt = time.perf_counter() - t0
        frames[name] = np.stack(seq, axis=1)  # (n, steps+1, H, W, 3)
        info_log[name] = {
            "env": vid,
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
        "runs": info_log,
    }
    write_comparison(out / "rollouts.mp4", [real, *frames.values()])
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
    for k, r in s["runs"].items():
        lines.append(
            f"- {k} ({r['env']}): {r['steps_per_s']:.1f} imagined env steps/s; predicted "
            f"success {r['predicted_success']} (real {s['real_success']})"
        )
    return "\n".join(lines) + "\n"


def check_args(a: argparse.Namespace) -> None:
    """Reject bad numbers and a missing ``--model`` (a :class:`UserError` naming the
    option), then make ``--out``: nothing is written for a rejected command."""
    counts = dict(episodes=a.episodes, agent_scenes=a.agent_scenes, agent_seeds=a.agent_seeds)
    require_at_least(1, steps=a.steps, **counts)
    require_at_least(0, agent_steps=a.agent_steps)
    if a.model is not None:
        require_path(resolve_model_path(a.model), "--model", "dir")
    make_output_dir(a.out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="freeaction demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="outputs/demo", help="output folder")
    p.add_argument("--env", default="FreeActionMetaWorld-v0", help="the imagined env id")
    p.add_argument(
        "--model", default=None, help="world model dir for --env (default: the preset's)"
    )
    p.add_argument("--steps", type=int, default=40, help="imagined steps per episode")
    p.add_argument("--episodes", type=int, default=None, help="number of held-out episodes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--agent-steps", type=int, default=4096, help="PPO steps in imagination (0: no agent)"
    )
    p.add_argument("--agent-scenes", type=int, default=10, help="held-out scenes per world")
    p.add_argument(
        "--agent-seeds", type=int, default=3, help="PPO training seeds (numbers over seeds)"
    )
    a = p.parse_args(argv)
    check_args(a)
    from freeaction_gym.utils.threads import configure_threads

    configure_threads()
    s = run_demo(Path(a.out), a.steps, a.episodes, a.seed, a.env, a.model)
    print(_markdown(s))
    if a.agent_steps > 0:
        from freeaction_gym.demo_agent import markdown, run_agent_demo

        report = run_agent_demo(
            Path(a.out) / "agent",
            a.model,
            a.agent_steps,
            a.agent_scenes,
            a.steps,
            a.seed,
            a.agent_seeds,
        )
        text = markdown(report)
        with open(Path(a.out) / "summary.md", "a") as f:
            f.write("\n" + text)
        print(text)
    print(f"videos, plot and summary written to {a.out}/")
    return 0
