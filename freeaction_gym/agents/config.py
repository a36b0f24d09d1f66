"""rl-zoo-style hyperparameters: ``freeaction_gym/agents/hyperparams/<env id>.yaml`` holds one
mapping per
algorithm (``ppo:``, ``sac:``, ``drq:`` - SAC with random-shift augmentation,
:mod:`freeaction_gym.agents.drq`). A per-task id without its own file uses its family's file
(``FreeActionMetaWorldReach-v0`` -> ``FreeActionMetaWorld-v0.yaml``).

Keys read here: ``n_timesteps``, ``n_envs``, ``policy``, ``policy_kwargs`` (see
:func:`freeaction_gym.agents.policies.policy_kwargs_from_config`), ``env_kwargs`` (env options, e.g.
fewer
sampler steps), ``frame_stack`` (``VecFrameStack``), ``normalize_reward`` (``VecNormalize``
scaling of the training rewards by a running return std; observations untouched); every
other key goes to the SB3 algorithm's constructor. ``lin_<x>`` is a learning rate/clip
range decaying linearly to 0, and strings like ``1e6`` (YAML 1.1 reads them as strings) are numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from freeaction_gym.utils.args import parse_assignments  # noqa: F401  (re-exported)
from freeaction_gym.utils.errors import UserError

HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"
ALGOS = ("ppo", "sac", "drq")
MERGED_KEYS = ("policy_kwargs", "env_kwargs", "replay_buffer_kwargs")
SCRIPT_KEYS = (
    "n_timesteps",
    "n_envs",
    "policy",
    "policy_kwargs",
    "env_kwargs",
    "frame_stack",
    "normalize_reward",
)


@dataclass
class AgentHyperparams:
    """One algorithm's settings for one env id."""

    algo: str
    n_timesteps: int = 100_000
    """Environment steps (transitions summed over the parallel envs)."""
    n_envs: int = 1
    policy: str = "CnnPolicy"
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    frame_stack: int = 1
    normalize_reward: bool = False
    """Divide training rewards by the running std of the discounted return (SB3
    ``VecNormalize(norm_obs=False)``); evaluation always reports raw rewards."""
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    """Everything else: keyword arguments of ``PPO(...)`` / ``SAC(...)`` (``drq``: SAC's,
    completed by :func:`freeaction_gym.agents.drq.drq_sac_kwargs`)."""
    source: str = ""


def hyperparams_file(env_id: str) -> Path:
    """``<env id>.yaml``, else the longest family file whose stem prefixes the id."""
    exact = HYPERPARAMS_DIR / f"{env_id}.yaml"
    if exact.is_file():
        return exact
    name, _, version = env_id.rpartition("-")
    files = sorted(HYPERPARAMS_DIR.glob(f"*-{version}.yaml"), key=lambda p: -len(p.stem))
    for p in files:
        if name.startswith(p.stem.rpartition("-")[0]):
            return p
    raise FileNotFoundError(
        f"no hyperparameters for {env_id} in {HYPERPARAMS_DIR} (have "
        f"{sorted(p.name for p in HYPERPARAMS_DIR.glob('*.yaml'))}); pass --hyperparams FILE"
    )


def _number(value: Any) -> Any:
    if isinstance(value, str):
        if value.startswith("lin_"):
            start = float(value[4:])
            return lambda progress_remaining: progress_remaining * start  # 1 -> 0
        try:
            return float(value)
        except ValueError:
            return value  # e.g. SAC's ent_coef "auto"
    return value


def load_hyperparams(
    env_id: str, algo: str, path: str | Path | None = None, overrides: dict | None = None
) -> AgentHyperparams:
    """The ``algo`` section of ``path`` (default :func:`hyperparams_file`) with ``overrides``
    (top-level keys replace; ``policy_kwargs``, ``env_kwargs`` and ``replay_buffer_kwargs``
    merge key by key)."""
    if algo not in ALGOS:
        raise UserError(f"algo must be one of {ALGOS}, got {algo!r}")
    path = Path(path) if path is not None else hyperparams_file(env_id)
    if not path.is_file():
        raise FileNotFoundError(f"hyperparameter file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if algo not in data:
        raise UserError(f"{path} has no {algo!r} section (has {sorted(data)})")
    values = dict(data[algo] or {})
    for key, value in (overrides or {}).items():
        if key in MERGED_KEYS and isinstance(value, dict):
            values[key] = {**values.get(key, {}), **value}
        else:
            values[key] = value
    script = {k: values.pop(k) for k in SCRIPT_KEYS if k in values}
    return AgentHyperparams(
        algo=algo,
        n_timesteps=int(float(script.get("n_timesteps", 100_000))),
        n_envs=int(script.get("n_envs", 1)),
        policy=str(script.get("policy", "CnnPolicy")),
        policy_kwargs=dict(script.get("policy_kwargs") or {}),
        env_kwargs=dict(script.get("env_kwargs") or {}),
        frame_stack=int(script.get("frame_stack", 1)),
        normalize_reward=bool(script.get("normalize_reward", False)),
        algo_kwargs={k: _number(v) for k, v in values.items()},
        source=str(path),
    )
