"""The grounded default (issue 37): ``FreeActionMetaWorld-v0`` and its per-task ids draw the
integrated state with the prompt model and score it with MetaWorld's own reward and success;
the v2 action world stays one keyword away (``FreeActionMetaWorldV2-v0``)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import freeaction_gym  # noqa: F401  (registers the ids)
from freeaction_gym.assets import resolve_asset_path
from freeaction_gym.demo import DEMO_EPISODES

FAST = {"num_steps": 1}


def test_presets_are_grounded_and_v2_keeps_the_action_path():
    from freeaction_gym.envs.config import make_env_config

    for env_id in ("FreeActionMetaWorld-v0", "FreeActionMetaWorldReach-v0",
                   "FreeActionMetaWorldPush-v0", "FreeActionMetaWorldPickPlace-v0"):  # fmt: skip
        cfg = make_env_config(env_id)
        assert (cfg.model, cfg.conditioning) == ("bundled:metaworld_vap", "vap")
        assert (cfg.reward, cfg.success, cfg.state_source) == ("state", "state", "proprio")
    v2 = make_env_config("FreeActionMetaWorldV2-v0")
    assert (v2.model, v2.conditioning) == ("bundled:metaworld_default", "action")
    assert v2.reward == "learned"


def test_step_reports_the_state_and_scores_it_by_metaworlds_rule():
    env = gym.make("FreeActionMetaWorldReach-v0", sampling=FAST)
    obs, _ = env.reset(seed=0)
    obs, reward, _, _, info = env.step(np.zeros(4, np.float32))
    state = info["robot_state"]
    assert obs.shape == (64, 64, 3) and state.shape == (7,)
    np.testing.assert_array_equal(info["object_pos"], state[4:7])
    np.testing.assert_array_equal(info["predicted_state"], state)
    core = env.unwrapped.core
    import torch

    from freeaction_gym.rewards.state_reward import reach_reward

    expected = 4 * float(reach_reward(torch.tensor(state[None]), core.goal_pos[:1])[0])
    assert reward == pytest.approx(expected, rel=1e-5)  # 4 simulator steps per action
    env.close()


def test_initial_frame_needs_the_robot_state_and_goal():
    env = gym.make("FreeActionMetaWorldReach-v0", sampling=FAST)
    bank = env.unwrapped.core.bank
    j = int(bank.indices("reach-v3")[0])
    with pytest.raises(ValueError, match="needs reset option initial_state of shape"):
        env.reset(options={"initial_frame": bank.initial[j]})
    obs, _ = env.reset(
        options={
            "initial_frame": bank.initial[j],
            "initial_state": bank.state[j],
            "initial_keypoints": bank.keypoints[j],
            "goal_pos": bank.goal_pos[j],
        }
    )
    np.testing.assert_array_equal(obs, bank.initial[j])
    env.close()


def test_imagined_success_is_the_real_success_on_the_demo_episodes():
    """The recorded actions of the bundle's reach and push demo episodes, replayed from their
    bank scenes: the grounded world predicts success exactly where the real simulator had it
    (reach: both succeed; push: neither)."""
    from freeaction_gym.demo import bank_indices

    with np.load(resolve_asset_path(DEMO_EPISODES)) as demo:
        rgb, actions, success, tasks = demo["rgb"], demo["action"], demo["success"], demo["task"]
    keep = [i for i, t in enumerate(tasks) if t in ("reach-v3", "push-v3")]
    venv = gym.make_vec(
        "FreeActionMetaWorld-v0", num_envs=len(keep), sampling=FAST, terminate_on_success=False
    )
    scenes = bank_indices(rgb[keep, 0], venv.unwrapped.core.bank)
    venv.reset(seed=0, options=[{"bank_index": j} for j in scenes])
    predicted = np.zeros(len(keep), bool)
    for t in range(actions.shape[1]):
        _, _, _, _, info = venv.step(actions[keep, t])
        predicted |= info["success"]
    venv.close()
    real = success[keep].any(axis=1)
    assert real.tolist() == [False, False, True, True]  # push fails, reach succeeds
    np.testing.assert_array_equal(predicted, real)
