"""Policies in imagination and in the real simulator on the same scenes
(:mod:`freeaction_gym.evaluation.worlds` / ``policies``)."""

from __future__ import annotations

import numpy as np
import pytest

from freeaction_gym.evaluation.policies import (
    ExpertPolicy,
    PlanPolicy,
    RandomPolicy,
    expert_plans,
)
from freeaction_gym.evaluation.worlds import ImaginedWorld, RealWorld, Scenes, scenes_from_bank

FAST = {"scheduler": "ddim", "num_steps": 2}


@pytest.fixture(scope="module")
def world(tiny):
    return ImaginedWorld(V2, model=str(tiny.world_dir), sampling=FAST, batch_size=6)

V2 = "FreeActionMetaWorldV2-v0"  # the action-path preset (tiny models)


def plans_for(scenes: Scenes, steps: int, seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        int(j): rng.uniform(-1.3, 1.3, (steps, 4)).astype(np.float32) for j in scenes.bank_index
    }


def test_scenes_from_bank(world):
    sc = scenes_from_bank(world.bank, ["push-v3", "reach-v3"], per_task=1)
    assert sc.task.tolist() == ["push-v3", "reach-v3"]
    np.testing.assert_array_equal(world.bank.task[sc.bank_index], sc.task)
    assert len(scenes_from_bank(world.bank)) == len(world.bank)
    with pytest.raises(ValueError):
        scenes_from_bank(world.bank, ["no-such-task"])


def test_imagined_plan_rollouts(world):
    sc = scenes_from_bank(world.bank)
    plans = plans_for(sc, 5)
    roll = world.run(PlanPolicy("plan", plans), sc, steps=5, seed=3, keep_frames=True)
    n = len(sc)
    assert roll.reward.shape == (n, 5) and roll.success.shape == (n, 5)
    assert roll.frames.shape == (n, 6, 32, 32, 3) and roll.frames.dtype == np.uint8
    np.testing.assert_array_equal(roll.frames[:, 0], world.bank.initial[sc.bank_index])
    assert (roll.frames[:, 1:] != roll.frames[:, :1]).any()  # the model moved something
    expected = np.stack([np.clip(plans[int(j)], -1, 1) for j in sc.bank_index])
    np.testing.assert_allclose(roll.actions, expected)
    np.testing.assert_allclose(roll.returns, roll.reward.sum(1), rtol=1e-6)
    assert roll.first_success.shape == (n,)
    assert ((roll.first_success >= 0) == roll.succeeded).all()


def test_imagined_rollouts_paired_and_batch_independent(tiny, world):
    sc = scenes_from_bank(world.bank)
    policy = PlanPolicy("plan", plans_for(sc, 4))
    full = world.run(policy, sc, 4, seed=1, keep_frames=True)
    single = ImaginedWorld(
        V2, model=str(tiny.world_dir), sampling=FAST, batch_size=1, components=world.components
    )
    one = single.run(policy, sc, 4, seed=1, keep_frames=True)
    # The same noise and actions; batched matrix products may round differently with the
    # batch size (one value 1 level apart on some CPUs), so: <= 2 levels on < 1% of values.
    np.testing.assert_array_equal(full.frames[:, 0], one.frames[:, 0])
    diff = np.abs(full.frames.astype(int) - one.frames.astype(int))
    assert diff.max() <= 2 and (diff > 0).mean() < 0.01
    np.testing.assert_allclose(full.reward, one.reward, rtol=1e-3, atol=1e-4)
    # the scene's noise depends on (seed, scene) only: a subset gives the same episodes
    part = world.run(policy, sc.subset([2, 4]), 4, seed=1, keep_frames=True)
    diff = np.abs(part.frames.astype(int) - full.frames[[2, 4]].astype(int))
    assert diff.max() <= 2 and (diff > 0).mean() < 0.01
    other = world.run(policy, sc, 4, seed=2, keep_frames=True)
    assert (other.frames[:, 1:] != full.frames[:, 1:]).any()


def test_policy_errors(world):
    sc = scenes_from_bank(world.bank, per_task=1)

    class Bad:
        name = "bad"

        def reset(self, scenes, seed):
            pass

        def act(self, obs, t, state):
            return np.zeros((len(obs), 3))

    with pytest.raises(ValueError, match="'bad' returned actions of shape"):
        world.run(Bad(), sc, 2)
    with pytest.raises(ValueError, match="simulator state"):
        world.run(ExpertPolicy(0.0), sc, 2)
    with pytest.raises(KeyError, match="no plan for bank entries"):
        world.run(PlanPolicy("p", {}), sc, 2)
    with pytest.raises(ValueError, match="sigma"):
        ExpertPolicy(-1.0)


def test_random_policy_replays_the_same_sequence():
    sc = Scenes(np.array([3, 7]), np.array(["reach-v3", "push-v3"]))
    p = RandomPolicy()
    p.reset(sc, seed=5)
    a = np.stack([p.act(None, t, None) for t in range(4)])
    p.reset(sc, seed=5)
    b = np.stack([p.act(None, t, None) for t in range(4)])
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 2, 4) and (np.abs(a) <= 1).all()
    assert not np.allclose(a[:, 0], a[:, 1])


def test_real_expert_plans_replay_exactly():
    """MetaWorld is deterministic: replaying a noisy expert's actions open loop reproduces
    its rewards, successes and frames, and the first frame is the bank's."""
    real = RealWorld(batch_size=2)
    try:
        bank = real._env(0).bank
        sc = scenes_from_bank(bank, ["reach-v3", "push-v3"], per_task=1)
        closed = real.run(ExpertPolicy(0.3), sc, 10, seed=0, keep_frames=True)
        plan = expert_plans(real, sc, 0.3, 10, seed=0, keep_frames=True)
        replay = real.run(plan, sc, 10, seed=0, keep_frames=True)
    finally:
        real.close()
    assert plan.name == "expert sigma=0.3"
    np.testing.assert_array_equal(replay.actions, closed.actions)
    np.testing.assert_array_equal(replay.reward, closed.reward)
    np.testing.assert_array_equal(replay.success, closed.success)
    np.testing.assert_array_equal(replay.frames, closed.frames)
    for name in ("reward", "success", "actions", "frames"):  # what the study reuses
        np.testing.assert_array_equal(getattr(plan.recorded, name), getattr(closed, name))
    diff = np.abs(closed.frames[:, 0].astype(int) - bank.initial[sc.bank_index].astype(int))
    assert diff.mean() < 2.0  # same scene, same camera as the dataset's first frame
    assert closed.reward[0].sum() > 10  # the reach expert earns reward
