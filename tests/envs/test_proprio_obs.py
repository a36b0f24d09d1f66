"""Env option ``proprio_obs``: observations are a dict of the frame (``image``) and the hand
xyz + gripper (``proprio`` (4,)) - the integrated proprio model's in imagination (checked
against ``prompts.proprio.integrate``), the simulator's in the real env - in the single,
Gymnasium vector and SB3 envs; the frames are those of the env without it; errors name the
option."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.prompts.proprio import ProprioConfig, ProprioModel, integrate

ENV_ID = "FreeActionMetaWorldV2-v0"  # the action-path preset (tiny models)
HW = 32  # tiny model frames (conftest MW_HW)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, arm_pose):
    """(env kwargs on the tiny world with a 2-entry robot bank and a proprio model whose hand
    moves with the actions, the bank, the proprio model)."""
    root = tmp_path_factory.mktemp("proprio_obs")
    proprio = ProprioModel(ProprioConfig(hidden=32, depth=2))
    with torch.no_grad():
        proprio.mlp[-1].weight.normal_(0.0, 2e-3, generator=torch.Generator().manual_seed(3))
    proprio.save_pretrained(root / "proprio")
    keypoints, state = arm_pose
    states = np.stack([state, state + np.array([0.05, -0.02, 0.01, -0.5, 0, 0, 0], np.float32)])
    frames = np.random.default_rng(0).integers(0, 256, (2, HW, HW, 3), dtype=np.uint8)
    bank = ResetBank(
        frames, frames.copy(), np.array(["reach-v3"] * 2), np.array(["e0", "e1"]),
        state=states, keypoints=np.repeat(keypoints[None], 2, 0),
    )  # fmt: skip
    bank.save(root / "bank.npz")
    kw = {"reset_bank": str(root / "bank.npz"), "proprio_model": str(root / "proprio"),
          "sampling": {"scheduler": "ddim", "num_steps": 1}, "task": "reach-v3"}  # fmt: skip
    return kw, bank, ProprioModel.from_pretrained(root / "proprio")


def acts(n: int) -> np.ndarray:
    return np.random.default_rng(1).uniform(-1, 1, (n, 4)).astype(np.float32)


def test_single_env_proprio_is_the_integrated_state_and_frames_are_unchanged(tiny, setup):
    kw, bank, proprio = setup
    env = gym.make(ENV_ID, model=str(tiny.world_dir), proprio_obs=True, **kw)
    plain = gym.make(ENV_ID, model=str(tiny.world_dir), **kw)
    space = env.observation_space
    assert isinstance(space, gym.spaces.Dict) and space["proprio"].shape == (4,)
    assert space["image"] == plain.observation_space
    a = acts(3)
    path, _ = integrate(proprio, bank.state[1:2], bank.keypoints[1:2], a[None])  # (1, 4, 7)
    obs, _ = env.reset(seed=0, options={"bank_index": 1})
    ref, _ = plain.reset(seed=0, options={"bank_index": 1})
    assert obs in space and obs["proprio"].dtype == np.float32
    np.testing.assert_array_equal(obs["image"], ref)
    np.testing.assert_allclose(obs["proprio"], bank.state[1, :4])  # the bank's robot
    for t in range(3):
        obs = env.step(a[t])[0]
        ref = plain.step(a[t])[0]
        np.testing.assert_array_equal(obs["image"], ref)
        np.testing.assert_allclose(obs["proprio"], path[0, t + 1, :4], atol=1e-6)
    assert np.abs(obs["proprio"][:3] - bank.state[1, :3]).max() > 1e-3  # the hand moved


def test_vector_and_sb3_envs_batch_the_dict(tiny, setup):
    pytest.importorskip("stable_baselines3")
    from freeaction_gym.envs.vector import make_sb3_vec_env

    kw, bank, proprio = setup
    a = acts(2)
    single = gym.make(ENV_ID, model=str(tiny.world_dir), proprio_obs=True, **kw)
    single.reset(seed=0, options={"bank_index": 1})
    one = [single.step(x)[0]["proprio"] for x in a]
    venv = gym.make_vec(ENV_ID, num_envs=2, model=str(tiny.world_dir), proprio_obs=True, **kw)
    obs, _ = venv.reset(seed=[0, 0], options=[{"bank_index": 0}, {"bank_index": 1}])
    assert obs["image"].shape == (2, HW, HW, 3) and obs["proprio"].shape == (2, 4)
    np.testing.assert_allclose(obs["proprio"], bank.state[:, :4])
    for t in range(2):
        obs = venv.step(np.stack([a[t], a[t]]))[0]
        np.testing.assert_allclose(obs["proprio"][1], one[t], atol=1e-5)
    sb3 = make_sb3_vec_env(2, seed=0, model=str(tiny.world_dir), proprio_obs=True,
                           max_episode_steps=2, **kw)  # fmt: skip
    first = sb3.reset()
    for _ in range(2):
        obs, _, dones, infos = sb3.step(np.zeros((2, 4), np.float32))
    assert dones.all()
    terminal = infos[0]["terminal_observation"]
    assert set(terminal) == {"image", "proprio"} and terminal["proprio"].shape == (4,)
    assert not np.allclose(terminal["proprio"], first["proprio"][0])  # zero action still moves
    # after the same-step reset the observation is a fresh episode's: the bank's robot again
    assert any(np.allclose(obs["proprio"][0], s[:4]) for s in bank.state)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"observation": "latent"}, "proprio_obs needs observation='rgb'"),
        ({"proprio_obs": "yes"}, "proprio_obs must be true or false"),
    ],
)
def test_bad_options_are_named(tiny, setup, overrides, match):
    kw, _, _ = setup
    with pytest.raises(ValueError, match=match):
        gym.make(ENV_ID, model=str(tiny.world_dir), **(kw | {"proprio_obs": True} | overrides))


def test_missing_proprio_model_names_the_option(tiny, setup, tmp_path):
    kw, _, _ = setup
    kw = kw | {"proprio_model": None}
    with pytest.raises(FileNotFoundError, match="proprio_obs=True needs a proprioceptive model"):
        gym.make(ENV_ID, model=str(tiny.world_dir), proprio_obs=True, **kw)


def test_bank_without_robot_state_is_refused(tiny, setup, tmp_path):
    kw, bank, _ = setup
    ResetBank(bank.initial, bank.goal, bank.task, bank.episode).save(tmp_path / "b.npz")
    with pytest.raises(ValueError, match="proprio_obs=True starts from each reset-bank"):
        gym.make(ENV_ID, model=str(tiny.world_dir), proprio_obs=True,
                 **(kw | {"reset_bank": str(tmp_path / "b.npz")}))  # fmt: skip


def test_real_env_proprio_is_the_simulators_hand_and_gripper():
    pytest.importorskip("metaworld")
    env = gym.make("FreeActionRealMetaWorldReach-v0", proprio_obs=True)
    plain = gym.make("FreeActionRealMetaWorldReach-v0")
    obs, _ = env.reset(seed=3)
    ref, _ = plain.reset(seed=3)
    assert obs in env.observation_space
    np.testing.assert_array_equal(obs["image"], ref)
    for a in acts(2):
        obs = env.step(a)[0]
        ref = plain.step(a)[0]
        state = env.unwrapped.state
        np.testing.assert_array_equal(obs["image"], ref)
        np.testing.assert_allclose(obs["proprio"], state[:4].astype(np.float32))
        np.testing.assert_allclose(obs["proprio"], env.unwrapped.robot_state()[0][:4])
    assert 0.0 <= obs["proprio"][3] <= 1.0 and 0.5 < obs["proprio"][1] < 0.8  # gripper, y (m)


def test_bundled_model_defaults_to_the_bundled_proprio_model():
    env = gym.make("FreeActionMetaWorldReach-v0", proprio_obs=True)
    core = env.unwrapped.core
    j = int(core.bank.indices("reach-v3")[0])  # a scene of the id's task (issue 38)
    obs, _ = env.reset(seed=0, options={"bank_index": j})
    assert core.robot is not None and core.robot.proprio.config.num_keypoints == 7
    np.testing.assert_allclose(obs["proprio"], core.bank.state[j, :4])
