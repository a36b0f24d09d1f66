"""The Dyna loop's agent with stable-baselines3 (:class:`freeaction_gym.dyna.agent.DynaAgent`).

Training is :func:`freeaction_gym.agents.train.train` on the imagined env family
(``FreeActionMetaWorld-v0`` and its hyperparameters, ``freeaction_gym/agents/hyperparams/``) with
the
loop's env options, continuing from the previous iteration's ``final_model.zip``
(``init_from``); no periodic evaluation, checkpoints or videos (the loop evaluates).
Agents trained on stacked frames (``frame_stack``, e.g. ``drq``) act in the evaluation
worlds through :class:`SB3Policy`, which stacks the worlds' single frames the same way.

Off-policy agents (``sac``, ``drq``): the replay buffer is refilled fresh every iteration
(with ``agent.real_replay`` it starts with the real episodes collected so far,
``real_episodes``, :mod:`freeaction_gym.agents.prefill`).
The world model and the reward head are refit between iterations, so transitions imagined
by last iteration's model describe a different world (and carry rewards of a different
head); mixing them in would train the critic on a model the agent no longer acts in. SB3
never saves the buffer with the model, and :func:`freeaction_gym.agents.train.train` restarts the
step
count, so an iteration loads the networks and the entropy coefficient, repeats the
``learning_starts`` warm-up in the new model (``agent.continued_learning_starts`` shortens
it for a continued policy: SB3's warm-up acts at random) and learns from its own
transitions only (``replay_transitions`` in the stage result; the buffer need not hold more
than ``agent.timesteps``). The training env starts from the loop's bank of visited *train*
scenes (``layouts="train"``: a ``reset_bank`` env option, checked against the model's own
held-out bank).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freeaction_gym.dyna.agent import IMAGINED_PRESET
from freeaction_gym.dyna.config import AgentConfig
from freeaction_gym.evaluation.policies import SB3Policy, load_model


@dataclass
class SB3DynaAgent:
    """PPO, SAC or DrQ per ``cfg`` (``agent:`` section of the Dyna config)."""

    cfg: AgentConfig
    progress: bool = True

    def train(
        self,
        env_kwargs: dict[str, Any],
        out: Path,
        init_from: str | None,
        seed: int,
        real_episodes: list[Path] | None = None,
    ) -> dict[str, Any]:
        from freeaction_gym.agents.config import load_hyperparams
        from freeaction_gym.agents.train import TrainArgs, train

        cfg = self.cfg
        overrides = cfg.hp_for_algo()
        continued = init_from is not None and cfg.continued_learning_starts is not None
        if continued and cfg.algo in ("sac", "drq"):
            overrides = {**overrides, "learning_starts": cfg.continued_learning_starts}
        hp = load_hyperparams(IMAGINED_PRESET, cfg.algo, cfg.hyperparams, overrides)
        summary = train(
            TrainArgs(
                env=IMAGINED_PRESET,
                algo=cfg.algo,
                timesteps=cfg.timesteps,
                num_envs=cfg.num_envs,
                out=str(out),
                env_kwargs=env_kwargs,
                hyperparams=cfg.hyperparams,
                hp=overrides,
                seed=seed,
                eval_freq=0,
                checkpoint_freq=0,
                video_freq=0,
                resume_every=0,  # the loop reruns an interrupted stage
                progress=self.progress,
                verbose=0,
                init_from=init_from,
                layouts="train",
                prefill=[str(p) for p in real_episodes or []],
            )
        )
        out = {
            "policy": summary["final_model"],
            "timesteps": summary["timesteps"],
            "env_kwargs": {**hp.env_kwargs, **env_kwargs},
            "layouts": summary["layouts"]["train_env"],
        }
        if "replay_transitions" in summary:
            out["replay_buffer"] = "fresh"
            out["replay_transitions"] = summary["replay_transitions"]
        if real_episodes:
            out["real_transitions"] = summary["prefill_transitions"]
        return out

    def policy(self, path: str | Path) -> SB3Policy:
        name = f"{self.cfg.algo} {Path(path).parent.parent.name}"
        return SB3Policy(name, load_model(path, self.cfg.algo))
