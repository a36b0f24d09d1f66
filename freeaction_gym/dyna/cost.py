"""CPU time of Dyna and model-free runs from measured unit costs (``experiments/
metaworld_k.py --estimate``).

A short measured run gives :class:`UnitCosts` (CPU seconds of one real action, one agent
update, one imagined transition, one world-model fine-tuning step, ...); the functions here
multiply them by the counts a full run performs. Every stage is linear in its counts plus a
fixed overhead (loading the model and the dataset, building envs), and the fine-tune and
reward refit stop at their ``max_minutes`` (treated as CPU minutes: with one thread per
process CPU and wall time agree when the machine is not shared).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from freeaction_gym.dyna.config import DynaConfig


@dataclass
class UnitCosts:
    """Measured CPU seconds per unit."""

    real_step: float
    """One real action (``action_repeat`` simulator steps + render) with the agent acting."""
    gradient_step: float
    """One update of the agent (critic, actor, temperature, target)."""
    imagined_step: float
    """One imagined transition (the batched world-model env, divided by its envs)."""
    world_model_step: float
    """One fine-tuning step of the world model."""
    world_model_overhead: float
    """A fine-tune's fixed cost (loading weights and the dataset, exporting)."""
    reward_step: float
    """One training step of the reward head (with its share of the validations)."""
    reward_overhead: float
    """A refit's fixed cost (loading the frames of the loop dataset, testing)."""
    agent_overhead: float
    """The agent stage's fixed cost (the imagined env, the reset bank, the support box)."""

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class AgentUpdates:
    """When an off-policy agent updates: after ``learning_starts`` transitions,
    ``per_transition`` gradient steps per transition (SB3: ``gradient_steps`` per
    ``train_freq`` steps of ``n_envs`` envs). PPO: ``learning_starts`` 0 and its epochs x
    minibatches per transition."""

    learning_starts: int
    per_transition: float


def agent_seconds(
    transitions: int, step_cost: float, updates: AgentUpdates, units: UnitCosts
) -> float:
    """``transitions`` env steps of ``step_cost`` each plus the updates after warm-up."""
    learning = max(0, transitions - updates.learning_starts)
    return transitions * step_cost + learning * updates.per_transition * units.gradient_step


def dyna_iteration_seconds(
    cfg: DynaConfig, units: UnitCosts, updates: AgentUpdates, continued: bool = False
) -> dict[str, float]:
    """CPU seconds of one iteration of ``cfg``, per stage; ``continued``: an iteration after
    the first, whose off-policy agent warms up for ``agent.continued_learning_starts``
    transitions (if set) instead of ``updates.learning_starts``."""
    if continued and cfg.agent.continued_learning_starts is not None and cfg.agent.algo != "ppo":
        updates = replace(updates, learning_starts=cfg.agent.continued_learning_starts)
    real_steps = cfg.collect.episodes * cfg.collect.steps
    wm = units.world_model_step * cfg.world_model.steps
    if cfg.world_model.max_minutes is not None:
        wm = min(wm, 60 * cfg.world_model.max_minutes)
    reward = 0.0
    if cfg.reward.mode == "refit":
        reward = units.reward_step * cfg.reward.steps
        if cfg.reward.max_minutes is not None:
            reward = min(reward, 60 * cfg.reward.max_minutes)
    eval_steps = cfg.eval.episodes * cfg.eval.steps
    evaluate = eval_steps * (units.real_step + (units.imagined_step if cfg.eval.imagined else 0))
    return {
        "collect": real_steps * units.real_step,
        "world_model": units.world_model_overhead + wm,
        "reward": reward + (units.reward_overhead if cfg.reward.mode == "refit" else 0.0),
        "agent": units.agent_overhead
        + agent_seconds(cfg.agent.timesteps, units.imagined_step, updates, units),
        "evaluate": evaluate,
    }


def model_free_seconds(real_steps: int, units: UnitCosts, updates: AgentUpdates) -> float:
    """CPU seconds of a model-free run of ``real_steps`` real transitions."""
    return agent_seconds(real_steps, units.real_step, updates, units)
