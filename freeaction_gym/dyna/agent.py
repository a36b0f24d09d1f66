"""Step (d): what the loop needs of an agent, and the imagined env it trains in.

The loop is agnostic of the RL library: a :class:`DynaAgent` trains in the imagined env
``IMAGINED_PRESET`` with the options the loop gives it (this iteration's world model,
reward head, reset bank of visited start states, task and support box) and turns a saved
policy into a batched evaluation policy (:mod:`freeaction_gym.evaluation.worlds`). The
stable-baselines3 implementation lives with the other SB3 code: ``freeaction_gym/agents/dyna.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from freeaction_gym.dyna.config import (  # noqa: F401  (the imagined env options: there)
    IMAGINED_PRESET,
    DynaConfig,
    imagined_env_kwargs,
    proprio_option,
)
from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.evaluation.worlds import Policy

SUPPORT_DIMS = [0, 1, 2]  # the xyz displacement; the gripper effort is free


class DynaAgent(Protocol):
    """An agent the loop can train and run."""

    def train(
        self,
        env_kwargs: dict[str, Any],
        out: Path,
        init_from: str | None,
        seed: int,
        real_episodes: list[Path] | None = None,
    ) -> dict[str, Any]:
        """Train in ``IMAGINED_PRESET`` with ``env_kwargs`` (continuing the policy saved at
        ``init_from``, if any) and save into ``out``; ``real_episodes`` (recorded real
        episodes, ``agent.real_replay``) are learned from as well. Returns at least
        ``policy`` (the saved file), ``timesteps`` and ``env_kwargs`` (the env options in
        effect, e.g. with the hyperparameters' own)."""
        ...

    def policy(self, path: str | Path) -> Policy:
        """The saved policy, acting deterministically on batches of frames."""
        ...


def start_bank(data_root: str | Path, task: str, stride: int | None = None) -> ResetBank:
    """Reset states the agent visited: the first frame (``stride`` k: every k-th frame) of
    every train episode of ``task`` in the loop dataset (the base's and the collected ones;
    with their robot state)."""
    return ResetBank.from_dataset(data_root, "train", [task], stride=stride)


def support_option(cfg: DynaConfig, data_root: str | Path) -> dict[str, Any]:
    """The ``support`` env option for ``cfg.agent.support`` (``{}``: keep the
    hyperparameters'): ``data`` measures the xyz displacement box over the first
    ``eval.steps`` actions of the loop dataset's train episodes."""
    mode = cfg.agent.support
    if mode == "hyperparams":
        return {}
    if mode == "none":
        return {"support": None}
    from freeaction_gym.envs.support import displacement_support

    box = displacement_support(
        str(data_root), cfg.eval.steps, cfg.agent.support_quantile, SUPPORT_DIMS
    )
    return {"support": box}
