"""DrQ with proprioception (``proprio_obs`` Dict observations): the encoder's proprio branch,
the Dict replay buffer's n-step targets against SB3's ``NStepReplayBuffer`` and its image-only
shifts, learning end to end, and ``SB3Policy`` stacking the proprio of a world."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.buffers import NStepReplayBuffer
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecTransposeImage

from freeaction_gym.agents.augment import (
    RandomShiftDictReplayBuffer,
    RandomShiftReplayBuffer,
    n_step_targets,
)
from freeaction_gym.agents.config import load_hyperparams
from freeaction_gym.agents.drq import DrQPolicy, drq_sac_kwargs
from freeaction_gym.agents.policies import DrQEncoder, policy_kwargs_from_config

HW = 24
IMAGE = gym.spaces.Box(0, 255, (3, HW, HW), np.uint8)
PROPRIO = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
DICT = gym.spaces.Dict({"image": IMAGE, "proprio": PROPRIO})
ACTION = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)


class TinyProprioEnv(gym.Env):
    """Random 24x24 frames and a 'hand' that integrates the actions; reward = -|hand|^2:
    only the proprio tells the agent where the hand is. 10-step episodes."""

    observation_space = gym.spaces.Dict(
        {"image": gym.spaces.Box(0, 255, (HW, HW, 3), np.uint8), "proprio": PROPRIO}
    )
    action_space = ACTION

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t, self.hand = 0, self.np_random.uniform(-1, 1, 4).astype(np.float32)
        return self._obs(), {}

    def step(self, action):
        self._t += 1
        self.hand = (self.hand + 0.2 * np.asarray(action, np.float32)).astype(np.float32)
        return self._obs(), -float(np.sum(self.hand**2)), False, self._t >= 10, {}

    def _obs(self):
        image = self.np_random.integers(0, 256, (HW, HW, 3), dtype=np.uint8)
        return {"image": image, "proprio": self.hand.copy()}


def tiny_model(seed: int):
    from stable_baselines3 import SAC

    hp = load_hyperparams(
        "FreeActionRealMetaWorld-v0",
        "drq",
        overrides={
            "buffer_size": 400, "learning_starts": 32, "batch_size": 16,
            "replay_buffer_kwargs": {"pad": 4, "n_steps": 3, "reward_scale": 1.0},
            "policy_kwargs": {
                "features_extractor": "drq_encoder",
                "features_extractor_kwargs": {"features_dim": 8, "channels": [8], "strides": [2],
                                              "proprio_dim": 8},
                "net_arch": [32],
            },
        },
    )  # fmt: skip
    vec = DummyVecEnv([TinyProprioEnv])
    vec.seed(seed)
    env = VecTransposeImage(VecFrameStack(vec, 2, channels_order="last"))
    policy, kwargs = drq_sac_kwargs(hp, env.observation_space)
    return SAC(policy, env, policy_kwargs=policy_kwargs_from_config(hp.policy_kwargs),
               seed=seed, device="cpu", **kwargs)  # fmt: skip


def test_encoder_adds_a_proprio_branch():
    enc = DrQEncoder(DICT, features_dim=10, channels=(4,), strides=(2,), proprio_dim=6)
    assert enc.features_dim == 16
    obs = {"image": torch.rand(5, 3, HW, HW), "proprio": torch.randn(5, 4)}
    out = enc(obs)
    assert out.shape == (5, 16) and out.abs().max() <= 1.0
    image_only = DrQEncoder(IMAGE, features_dim=10, channels=(4,), strides=(2,))
    image_only.load_state_dict({k: v for k, v in enc.state_dict().items() if "proprio" not in k})
    torch.testing.assert_close(out[:, :10], image_only(obs["image"]))  # image part unchanged
    moved = enc({**obs, "proprio": obs["proprio"] + 0.5})
    torch.testing.assert_close(moved[:, :10], out[:, :10])
    assert (moved[:, 10:] - out[:, 10:]).abs().max() > 1e-3  # the proprio reaches the features
    with pytest.raises(ValueError, match="keys image and proprio"):
        DrQEncoder(gym.spaces.Dict({"image": IMAGE, "state": PROPRIO}))


def fill(buffers, n: int, rng: np.random.Generator) -> None:
    """The same n transitions (episodes end at random, some by timeout) into every buffer."""
    for _ in range(n):
        img, nxt = (rng.integers(0, 256, (1, 3, HW, HW), dtype=np.uint8) for _ in range(2))
        prop, nprop = rng.normal(size=(2, 1, 4)).astype(np.float32)
        a = rng.uniform(-1, 1, (1, 4)).astype(np.float32)
        r = rng.normal(size=1).astype(np.float32)
        done = rng.random(1) < 0.15
        info = [{"TimeLimit.truncated": bool(done[0] and rng.random() < 0.4)}]
        for b in buffers:
            if isinstance(b, RandomShiftDictReplayBuffer):
                b.add({"image": img, "proprio": prop}, {"image": nxt, "proprio": nprop}, a, r,
                      done, info)  # fmt: skip
            else:
                b.add(img, nxt, a, r, done, info)


@pytest.mark.parametrize("n_added", [37, 60])  # part full / wrapped around (size 50)
def test_dict_buffer_n_step_targets_match_sb3(n_added):
    kw = {"device": "cpu", "handle_timeout_termination": True}
    ours = RandomShiftDictReplayBuffer(50, DICT, ACTION, pad=0, n_steps=3, gamma=0.9, **kw)
    ref = NStepReplayBuffer(50, IMAGE, ACTION, n_steps=3, gamma=0.9, **kw)
    fill([ours, ref], n_added, np.random.default_rng(n_added))
    inds = np.arange(ours.size()) if n_added < 50 else np.arange(50)
    np.random.seed(0)
    a = ours._get_samples(inds)
    np.random.seed(0)
    b = ref._get_samples(inds)
    torch.testing.assert_close(a.rewards, b.rewards)
    torch.testing.assert_close(a.discounts, b.discounts)
    torch.testing.assert_close(a.dones, b.dones)
    torch.testing.assert_close(a.observations["image"], b.observations)
    torch.testing.assert_close(a.next_observations["image"], b.next_observations)
    assert (a.discounts > 0.9**3 + 1e-6).any() and (a.dones > 0).any()  # episodes did end


def test_dict_buffer_scales_rewards_as_the_box_buffer():
    """reward_scale multiplies the n-step returns of both buffers alike (the MetaWorld DrQ
    hyperparameters use 0.1); bad pad / n_steps are refused by name."""
    kw = {"device": "cpu", "handle_timeout_termination": True}
    ours = RandomShiftDictReplayBuffer(50, DICT, ACTION, pad=0, n_steps=3, gamma=0.9,
                                       reward_scale=0.1, **kw)  # fmt: skip
    unscaled = RandomShiftDictReplayBuffer(50, DICT, ACTION, pad=0, n_steps=3, gamma=0.9, **kw)
    box = RandomShiftReplayBuffer(50, IMAGE, ACTION, pad=0, n_steps=3, gamma=0.9,
                                  reward_scale=0.1, **kw)  # fmt: skip
    fill([ours, unscaled, box], 40, np.random.default_rng(3))
    inds = np.arange(40)
    samples = []
    for b in (ours, unscaled, box):
        np.random.seed(0)
        samples.append(b._get_samples(inds))
    a, u, x = samples
    assert u.rewards.abs().max() > 0.5
    torch.testing.assert_close(a.rewards, 0.1 * u.rewards)
    torch.testing.assert_close(a.rewards, x.rewards)
    with pytest.raises(ValueError, match="pad must be >= 0, got -1"):
        RandomShiftDictReplayBuffer(10, DICT, ACTION, pad=-1, **kw)
    with pytest.raises(ValueError, match="n_steps must be >= 1, got 0"):
        RandomShiftDictReplayBuffer(10, DICT, ACTION, n_steps=0, **kw)


def test_dict_buffer_shifts_only_the_image():
    kw = {"device": "cpu"}
    shifted = RandomShiftDictReplayBuffer(40, DICT, ACTION, pad=4, n_steps=1, **kw)
    plain = RandomShiftDictReplayBuffer(40, DICT, ACTION, pad=0, n_steps=1, **kw)
    fill([shifted, plain], 30, np.random.default_rng(1))
    inds = np.arange(30)
    s, p = shifted._get_samples(inds), plain._get_samples(inds)
    torch.testing.assert_close(s.observations["proprio"], p.observations["proprio"])
    torch.testing.assert_close(s.next_observations["proprio"], p.next_observations["proprio"])
    assert not torch.equal(s.observations["image"], p.observations["image"])
    p_np = p.observations["image"].numpy()
    s_np = s.observations["image"].numpy()
    n_same = sum(np.array_equal(x, y) for x, y in zip(s_np, p_np, strict=True))
    assert n_same < 10  # shifted per sample (a zero shift has chance 1/81)
    with pytest.raises(ValueError, match="Dict with an image key"):
        RandomShiftDictReplayBuffer(10, gym.spaces.Dict({"proprio": PROPRIO}), ACTION, **kw)


def test_drq_learns_from_dict_observations_and_is_seeded():
    a = tiny_model(0)
    assert isinstance(a.policy, DrQPolicy)
    assert isinstance(a.replay_buffer, RandomShiftDictReplayBuffer)
    before = {k: v.clone() for k, v in a.policy.state_dict().items()}
    a.learn(80)
    b = tiny_model(0)  # made after a learned: seeding resets the global generators
    b.learn(80)
    after, other = a.policy.state_dict(), b.policy.state_dict()
    assert all(torch.equal(after[k], other[k]) for k in after)
    enc = a.policy.critic.features_extractor
    assert not torch.equal(before["critic.features_extractor.proprio.0.weight"],
                           enc.proprio[0].weight)  # fmt: skip
    actor_proprio = a.policy.actor.features_extractor.proprio
    assert actor_proprio is not enc.proprio  # each its own proprio branch


def test_n_step_targets_by_hand():
    # one env, slots 0..5: done at slot 2, newest transition at slot 4 (pos 5)
    rewards = np.arange(1, 7, dtype=np.float32)[:, None]
    dones = np.zeros((6, 1))
    dones[2] = 1
    timeouts = np.zeros((6, 1))
    ret, disc, final, done = n_step_targets(
        rewards, dones, timeouts, 5, np.array([0, 1, 3, 4]), np.zeros(4, int), 3, 0.5
    )
    np.testing.assert_allclose(ret[:, 0], [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 4 + 0.5 * 5, 5])
    np.testing.assert_allclose(disc[:, 0], [0.125, 0.25, 0.25, 0.5])
    np.testing.assert_array_equal(final, [2, 2, 4, 4])
    np.testing.assert_array_equal(done[:, 0], [1, 1, 0, 0])


def test_sb3_policy_stacks_the_worlds_proprio(tmp_path):
    from freeaction_gym.evaluation.policies import SB3Policy
    from freeaction_gym.evaluation.worlds import Scenes

    model = tiny_model(0)
    policy = SB3Policy("p", model)
    assert policy.proprio_dim == 8 and policy.channels == 6
    scenes = Scenes(np.arange(2), np.array(["reach-v3"] * 2))
    policy.reset(scenes, 0)
    rng = np.random.default_rng(0)
    seen = []
    for t in range(3):
        obs = {"image": rng.integers(0, 256, (2, HW, HW, 3), dtype=np.uint8),
               "proprio": rng.normal(size=(2, 4)).astype(np.float32)}  # fmt: skip
        seen.append(obs)
        got = policy.act(obs, t, None)
        stacked = {
            "image": np.concatenate([seen[-2]["image"] if t else 0 * obs["image"], obs["image"]],
                                    -1),
            "proprio": np.concatenate([seen[-2]["proprio"] if t else 0 * obs["proprio"],
                                       obs["proprio"]], -1),
        }  # fmt: skip
        want = model.predict(stacked, deterministic=True)[0]
        np.testing.assert_allclose(got, want, atol=1e-6)
    with pytest.raises(ValueError, match="proprio_obs=True"):
        policy.act(obs["image"], 3, None)
