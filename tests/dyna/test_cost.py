"""The CPU-time model of freeaction_gym/dyna/cost.py against hand-computed counts."""

from __future__ import annotations

import pytest

from freeaction_gym.dyna.config import config_from_dict
from freeaction_gym.dyna.cost import (
    AgentUpdates,
    UnitCosts,
    dyna_iteration_seconds,
    model_free_seconds,
)

UNITS = UnitCosts(
    real_step=0.01, gradient_step=0.1, imagined_step=0.02, world_model_step=2.0,
    world_model_overhead=30.0, reward_step=0.05, reward_overhead=4.0, agent_overhead=6.0,
)  # fmt: skip


def test_dyna_iteration_by_stage():
    cfg = config_from_dict({
        "collect": {"episodes": 25, "steps": 40},
        "world_model": {"steps": 200, "max_minutes": 5},
        "reward": {"steps": 500},
        "agent": {"timesteps": 5000},
        "eval": {"episodes": 20, "steps": 40, "imagined": True},
    })  # fmt: skip
    updates = AgentUpdates(learning_starts=1000, per_transition=0.5)
    got = dyna_iteration_seconds(cfg, UNITS, updates)
    assert got["collect"] == pytest.approx(1000 * 0.01)
    assert got["world_model"] == pytest.approx(30 + 300)  # 400 s capped at 5 min
    assert got["reward"] == pytest.approx(4 + 500 * 0.05)
    assert got["agent"] == pytest.approx(6 + 5000 * 0.02 + 4000 * 0.5 * 0.1)
    assert got["evaluate"] == pytest.approx(800 * (0.01 + 0.02))
    keep = config_from_dict({"reward": {"mode": "keep"}, "eval": {"imagined": False}})
    got = dyna_iteration_seconds(keep, UNITS, updates)
    assert got["reward"] == 0.0 and got["evaluate"] == pytest.approx(20 * 40 * 0.01)


def test_continued_iterations_warm_up_for_continued_learning_starts():
    cfg = config_from_dict({
        "agent": {"algo": "drq", "timesteps": 2000, "continued_learning_starts": 128},
    })  # fmt: skip
    updates = AgentUpdates(learning_starts=1000, per_transition=0.5)
    first = dyna_iteration_seconds(cfg, UNITS, updates)["agent"]
    later = dyna_iteration_seconds(cfg, UNITS, updates, continued=True)["agent"]
    assert first == pytest.approx(6 + 2000 * 0.02 + 1000 * 0.5 * 0.1)
    assert later == pytest.approx(6 + 2000 * 0.02 + 1872 * 0.5 * 0.1)
    ppo = config_from_dict({"agent": {"algo": "ppo", "continued_learning_starts": 128}})
    no_warmup = AgentUpdates(learning_starts=0, per_transition=0.5)
    assert dyna_iteration_seconds(ppo, UNITS, no_warmup, continued=True) == (
        dyna_iteration_seconds(ppo, UNITS, no_warmup)
    )


def test_model_free_run():
    updates = AgentUpdates(learning_starts=1000, per_transition=1.0)
    assert model_free_seconds(30_000, UNITS, updates) == pytest.approx(300 + 29_000 * 0.1)
    assert model_free_seconds(500, UNITS, updates) == pytest.approx(5.0)  # warm-up only
