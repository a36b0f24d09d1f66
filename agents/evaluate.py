"""Evaluate a policy on a FreeAction env: success rate and return with bootstrap 95% CIs.

    python -m agents.evaluate --env FreeActionRealMetaWorldReach-v0 --policy run/final_model.zip
    python -m agents.evaluate --env FreeActionMetaWorldReach-v0 --policy random --episodes 50
    python -m agents.evaluate --env FreeActionRealMetaWorldPush-v0 --policy expert:0.1

``--policy``: an SB3 ``.zip`` (PPO, SAC or DrQ; frame stacking is inferred from its observation
space), ``random`` (uniform actions) or ``expert:<sigma>`` (MetaWorld's scripted expert plus
Gaussian noise; it reads the true simulator state, so only real ids). An episode succeeds
if ``info['success']`` is true at any step. Prints (and with ``--out`` writes) JSON.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from freeaction_gym.agents.config import parse_assignments
from freeaction_gym.data.metaworld_policies import scripted_action
from freeaction_gym.evaluation.paired_stats import bootstrap_ci
from freeaction_gym.evaluation.policies import load_model
from freeaction_gym.utils.args import require_at_least
from freeaction_gym.utils.errors import UserError, cli_main


@dataclass
class EvalArgs:
    """Command-line arguments of ``python -m agents.evaluate``."""

    env: str = "FreeActionRealMetaWorldReach-v0"
    policy: str = "random"
    """``<file>.zip``, ``random`` or ``expert:<sigma>`` (real ids only)."""
    episodes: int = 20
    num_envs: int = 1
    """Parallel envs; each runs ``episodes / num_envs`` episodes (no bias to short ones)."""
    seed: int = 0
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    deterministic: bool = True
    """Zip policies: the mean action (no sampling)."""
    algo: str = "auto"
    """``ppo``, ``sac`` (also ``drq``) or ``auto`` (from the zip)."""
    confidence: float = 0.95
    n_resamples: int = 10_000
    out: str | None = None
    """Also write the JSON report here."""


# ------------------------------------------------------------------------------ policies


def policy_spec(spec: str) -> tuple[str, float]:
    """``--policy`` as (``random`` | ``expert`` | ``zip``, expert noise sigma): ``expert``
    and ``expert:<sigma>`` (a number >= 0) are the scripted expert, anything else but
    ``random`` a model file. A malformed expert spec is a :class:`UserError`."""
    if spec == "random":
        return "random", 0.0
    if spec != "expert" and not spec.startswith("expert:"):
        return "zip", 0.0
    text = spec.partition(":")[2] or "0"
    try:
        sigma = float(text)
    except ValueError:
        sigma = -1.0
    if not sigma >= 0.0:  # also NaN
        raise UserError(f"--policy {spec}: expected expert:<sigma>, sigma a number >= 0")
    return "expert", sigma


def frame_stack_of(model, env_space) -> int:
    """How many frames the policy expects stacked, from its (C, H, W) or (H, W, C) space."""
    from stable_baselines3.common.preprocessing import is_image_space_channels_first

    space = model.observation_space
    c_policy = space.shape[0] if is_image_space_channels_first(space) else space.shape[-1]
    c_env = env_space.shape[-1]
    if c_policy % c_env:
        raise ValueError(
            f"policy observations {space.shape} do not fit env frames {env_space.shape}"
        )
    return c_policy // c_env


def expert_policy(vec, sigma: float, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """Noisy MetaWorld scripted experts reading each real env's 39-D state."""
    rng = np.random.default_rng(seed)
    envs = [e.unwrapped for e in vec.envs]
    experts: dict[str, Any] = {}

    def act(obs: np.ndarray) -> np.ndarray:
        out = [
            scripted_action(env.scene["task"], env.state, experts) + rng.normal(0.0, sigma, 4)
            for env in envs
        ]
        return np.clip(np.asarray(out, np.float32), -1.0, 1.0)

    return act


# ------------------------------------------------------------------------------ rollouts


def run_episodes(vec, act: Callable[[np.ndarray], np.ndarray], episodes: int) -> list[dict]:
    """Episodes (``return``, ``length``, ``success`` at any step, ``task``) with env ``i``
    running ``(episodes + i) // num_envs`` of them, as SB3's ``evaluate_policy`` does."""
    n = vec.num_envs
    targets = np.array([(episodes + i) // n for i in range(n)])
    counts = np.zeros(n, int)
    ret, length, success = np.zeros(n), np.zeros(n, int), np.zeros(n, bool)
    results: list[dict] = []
    obs = vec.reset()
    while (counts < targets).any():
        obs, reward, dones, infos = vec.step(act(obs))
        ret += reward
        length += 1
        for i, info in enumerate(infos):
            success[i] |= bool(info.get("success", False) or info.get("is_success", False))
            if not dones[i]:
                continue
            if counts[i] < targets[i]:
                results.append(
                    {
                        "return": float(ret[i]),
                        "length": int(length[i]),
                        "success": bool(success[i]),
                        "task": str(info.get("task", "")),
                    }
                )
                counts[i] += 1
            ret[i], length[i], success[i] = 0.0, 0, False
    return results


def evaluate(args: EvalArgs) -> dict[str, Any]:
    from freeaction_gym.utils.threads import configure_threads

    configure_threads()
    from stable_baselines3.common.vec_env import VecFrameStack

    from freeaction_gym.agents.envs import env_kind, make_vec_env

    require_at_least(1, episodes=args.episodes, num_envs=args.num_envs,
                     n_resamples=args.n_resamples)  # fmt: skip
    if not 0.0 < args.confidence < 1.0:
        raise UserError(f"--confidence must be in (0, 1), got {args.confidence}")
    kind, sigma = policy_spec(args.policy)
    if kind == "expert" and env_kind(args.env) != "real":
        raise UserError(
            f"--policy expert needs the true simulator state: use a real id "
            f"(FreeActionRealMetaWorld*), not {args.env}; evaluate imagination with a "
            ".zip or random policy"
        )
    model = load_model(args.policy, args.algo) if kind == "zip" else None  # before the env
    vec = make_vec_env(args.env, args.num_envs, args.seed, args.env_kwargs, monitor=False)
    if kind == "random":
        space = vec.action_space
        space.seed(args.seed)
        act = lambda obs: np.stack([space.sample() for _ in range(vec.num_envs)])  # noqa: E731
    elif kind == "expert":
        act = expert_policy(vec, sigma, args.seed)
    else:
        stack = frame_stack_of(model, vec.observation_space)
        if stack > 1:
            vec = VecFrameStack(vec, stack, channels_order="last")
        act = lambda obs: model.predict(obs, deterministic=args.deterministic)[0]  # noqa: E731
    try:
        eps = run_episodes(vec, act, args.episodes)
    finally:
        vec.close()

    succ = np.array([e["success"] for e in eps], float)
    rets = np.array([e["return"] for e in eps])
    ci = dict(confidence=args.confidence, n_resamples=args.n_resamples, seed=args.seed)
    per_task: dict[str, dict[str, float]] = {}
    for task in sorted({e["task"] for e in eps}):
        s = [e["success"] for e in eps if e["task"] == task]
        per_task[task] = {"episodes": len(s), "success_rate": float(np.mean(s))}
    return {
        "env": args.env,
        "policy": args.policy,
        "episodes": len(eps),
        "seed": args.seed,
        "env_kwargs": args.env_kwargs,
        "confidence": args.confidence,
        "success_rate": float(succ.mean()),
        "success_rate_ci": bootstrap_ci(succ, **ci),
        "return_mean": float(rets.mean()),
        "return_std": float(rets.std()),
        "return_ci": bootstrap_ci(rets, **ci),
        "length_mean": float(np.mean([e["length"] for e in eps])),
        "per_task": per_task,
        "per_episode": eps,
    }


def parse_args(argv: list[str] | None = None) -> EvalArgs:
    d = EvalArgs()
    p = argparse.ArgumentParser(
        prog="python -m agents.evaluate", description=__doc__.split("\n")[0]
    )
    p.add_argument("--env", default=d.env, help="registered env id")
    p.add_argument("--policy", default=d.policy, help="<file>.zip | random | expert:<sigma>")
    p.add_argument("--episodes", type=int, default=d.episodes)
    p.add_argument("--num-envs", type=int, default=d.num_envs)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--env-kwargs", nargs="*", default=[], metavar="K=V", help="env options")
    p.add_argument("--stochastic", action="store_true", help="sample zip policies' actions")
    p.add_argument("--algo", default=d.algo, choices=["auto", "ppo", "sac", "drq"])
    p.add_argument("--confidence", type=float, default=d.confidence)
    p.add_argument("--n-resamples", type=int, default=d.n_resamples)
    p.add_argument("--out", default=None, help="write the JSON report here too")
    a = p.parse_args(argv)
    return EvalArgs(
        env=a.env,
        policy=a.policy,
        episodes=a.episodes,
        num_envs=a.num_envs,
        seed=a.seed,
        env_kwargs=parse_assignments(a.env_kwargs),
        deterministic=not a.stochastic,
        algo=a.algo,
        confidence=a.confidence,
        n_resamples=a.n_resamples,
        out=a.out,
    )


@cli_main
def main(argv: list[str]) -> int:
    args = parse_args(argv)
    report = evaluate(args)
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
