"""DrQ (freeaction_gym/agents/augment.py, freeaction_gym/agents/drq.py): the random shift against a
NumPy pad-and-crop
reference, the replay buffer's shifts (bounded, not all zero, one per stacked sample,
independent for obs and next obs), the encoder and the critic-trained / actor-detached
sharing, seeded determinism, save/load, and a short ``--algo drq`` run in the real
simulator evaluated with the frame stack inferred."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecTransposeImage

from freeaction_gym.agents.augment import RandomShiftReplayBuffer, random_shift
from freeaction_gym.agents.config import load_hyperparams
from freeaction_gym.agents.drq import DrQCritic, DrQPolicy, drq_sac_kwargs
from freeaction_gym.agents.policies import (
    ChannelsLastConv2d,
    DrQEncoder,
    SmallCNN,
    policy_kwargs_from_config,
)

REPO = Path(__file__).resolve().parents[2]
PAD = 4
HW = 24
TINY_DRQ = {
    "n_envs": 1,
    "frame_stack": 3,
    "policy": "DrQPolicy",
    "buffer_size": 400,
    "learning_starts": 64,
    "batch_size": 16,
    "tau": 0.01,
    "target_update_interval": 2,
    "ent_coef": "auto_0.1",
    "replay_buffer_kwargs": {"pad": PAD, "n_steps": 3, "reward_scale": 0.1},
    "policy_kwargs": {
        "features_extractor": "drq_encoder",
        "features_extractor_kwargs": {"features_dim": 16, "channels": [8, 8], "strides": [2, 2]},
        "net_arch": [16],
    },
}


def shift_reference(img: np.ndarray, dy: int, dx: int, pad: int = PAD) -> np.ndarray:
    """DrQ's augmentation spelled out: edge-pad (C, H, W) by ``pad``, crop at (dy+pad, dx+pad)."""
    _, h, w = img.shape
    padded = np.pad(img, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    return padded[:, dy + pad : dy + pad + h, dx + pad : dx + pad + w]


def shifts_matching(out: np.ndarray, img: np.ndarray) -> list[tuple[int, int]]:
    """Every (dy, dx) in [-PAD, PAD]^2 whose reference shift of ``img`` equals ``out``."""
    r = range(-PAD, PAD + 1)
    return [(dy, dx) for dy in r for dx in r if np.array_equal(shift_reference(img, dy, dx), out)]


class TinyImageEnv(gym.Env):
    """Random 24x24 RGB frames from ``np_random``, Box(-1, 1, (4,)) actions, reward
    ``-|a|^2``, 10-step episodes: cheap, seeded, no simulator."""

    observation_space = gym.spaces.Box(0, 255, (HW, HW, 3), np.uint8)
    action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self._frame(), {}

    def step(self, action):
        self._t += 1
        reward = -float(np.sum(np.square(action)))
        return self._frame(), reward, False, self._t >= 10, {}

    def _frame(self) -> np.ndarray:
        return self.np_random.integers(0, 256, (HW, HW, 3), dtype=np.uint8)


def tiny_vec_env(seed: int):
    vec = DummyVecEnv([TinyImageEnv])
    vec.seed(seed)
    return VecTransposeImage(VecFrameStack(vec, 3, channels_order="last"))  # (9, 24, 24)


def tiny_drq_model(seed: int, **overrides):
    from stable_baselines3 import SAC

    hp = load_hyperparams("FreeActionRealMetaWorld-v0", "drq", overrides={**TINY_DRQ, **overrides})
    policy, kwargs = drq_sac_kwargs(hp)
    return SAC(
        policy,
        tiny_vec_env(seed),
        policy_kwargs=policy_kwargs_from_config(hp.policy_kwargs),
        seed=seed,
        device="cpu",
        **kwargs,
    )


# -- augmentation ----------------------------------------------------------------------------


def test_random_shift_is_replicate_pad_then_crop():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (9 * 9, 6, 10, 12), dtype=np.uint8)
    shifts = np.array([(dy, dx) for dy in range(-PAD, PAD + 1) for dx in range(-PAD, PAD + 1)])
    out = random_shift(torch.from_numpy(images), torch.from_numpy(shifts))
    assert out.dtype == torch.uint8 and out.shape == images.shape and out.is_contiguous()
    for img, (dy, dx), o in zip(images, shifts, out.numpy(), strict=True):
        assert np.array_equal(o, shift_reference(img, dy, dx))
    zero = torch.zeros(len(images), 2, dtype=torch.long)
    assert torch.equal(random_shift(torch.from_numpy(images), zero), torch.from_numpy(images))


def fill_buffer(buffer: RandomShiftReplayBuffer, n: int, rng: np.random.Generator) -> None:
    shape = buffer.observation_space.shape
    for _ in range(n):
        obs = rng.integers(0, 256, (1, *shape), dtype=np.uint8)
        nxt = rng.integers(0, 256, (1, *shape), dtype=np.uint8)
        buffer.add(obs, nxt, rng.uniform(-1, 1, (1, 4)), np.array([2.0]), np.array([False]), [{}])


@pytest.mark.parametrize("channels_first", [True, False])
def test_buffer_shifts_each_sample_once_for_all_its_frames(channels_first):
    np.random.seed(0)  # the buffer's shift generator is seeded from NumPy's, as SB3 seeds it
    shape = (9, 16, 16) if channels_first else (16, 16, 9)  # 3 stacked RGB frames
    space = gym.spaces.Box(0, 255, shape, np.uint8)
    action_space = gym.spaces.Box(-1, 1, (4,), np.float32)
    buffer = RandomShiftReplayBuffer(
        64, space, action_space, "cpu", pad=PAD, reward_scale=0.5, gamma=0.9
    )
    fill_buffer(buffer, 64, np.random.default_rng(1))
    idx = np.arange(64)
    batch = buffer._get_samples(idx)
    assert batch.observations.dtype == torch.uint8
    assert batch.observations.shape == batch.next_observations.shape == (64, *shape)
    assert torch.allclose(batch.rewards, torch.full((64, 1), 1.0))  # 2.0 x reward_scale

    def chw(x: np.ndarray) -> np.ndarray:
        return x if channels_first else np.moveaxis(x, -1, 0)

    found = {"obs": [], "next": []}
    for key, stored, sampled in (
        ("obs", buffer.observations, batch.observations),
        ("next", buffer.next_observations, batch.next_observations),
    ):
        for i in idx:
            img, out = chw(stored[i, 0]), chw(sampled[i].numpy())
            whole = shifts_matching(out, img)
            assert len(whole) == 1, f"sample {i}: no single shift within {PAD} px"
            per_frame = [shifts_matching(out[f : f + 3], img[f : f + 3]) for f in (0, 3, 6)]
            assert all(m == whole for m in per_frame)  # the same shift for all 3 frames
            found[key].append(whole[0])
    obs_shifts, next_shifts = np.array(found["obs"]), np.array(found["next"])
    assert np.abs(obs_shifts).max() == PAD  # the full range is used ...
    assert (obs_shifts != 0).any(axis=1).mean() > 0.8  # ... and it is not the identity
    # DrQ augments obs and next obs independently: the shifts differ for most samples
    assert (obs_shifts != next_shifts).any(axis=1).mean() > 0.8

    buffer.pad = 0  # switched off: the stored observations come back unchanged
    assert np.array_equal(buffer._get_samples(idx).observations, buffer.observations[idx, 0])


def test_buffer_refuses_non_images():
    space = gym.spaces.Box(-1, 1, (5,), np.float32)
    with pytest.raises(ValueError, match="image observations"):
        RandomShiftReplayBuffer(8, space, gym.spaces.Box(-1, 1, (4,), np.float32), "cpu")


# -- encoder and policy ----------------------------------------------------------------------


@pytest.mark.parametrize("strides", [(2, 1, 1, 1), (2, 2, 1, 1)])
def test_drq_encoder_on_stacked_64px_frames(strides):
    space = gym.spaces.Box(0, 255, (9, 64, 64), np.uint8)  # 3 stacked frames, channel-first
    net = DrQEncoder(space, features_dim=50, strides=strides)
    out = net(torch.rand(5, 9, 64, 64))
    assert out.shape == (5, 50) and out.abs().max() <= 1.0  # LayerNorm + tanh
    assert isinstance(net.projection[1], torch.nn.LayerNorm)
    with pytest.raises(ValueError, match="differ in length"):
        DrQEncoder(space, channels=(8, 8), strides=(2,))


@pytest.mark.parametrize("stride, padding", [(2, 0), (1, 0), (2, 1)])
def test_channels_last_conv_is_conv2d(stride, padding):
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(9, 16, kernel_size=3, stride=stride, padding=padding)
    fast = ChannelsLastConv2d(9, 16, kernel_size=3, stride=stride, padding=padding)
    fast.load_state_dict(ref.state_dict())  # same keys, plain layout
    x = torch.rand(6, 9, 20, 20, requires_grad=True)
    x_fast = x.detach().clone().requires_grad_(True)
    out_ref, out = ref(x), fast(x_fast)
    assert out.shape == out_ref.shape and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-6)
    grad = torch.rand_like(out_ref)
    out_ref.backward(grad)
    out.backward(grad)
    torch.testing.assert_close(x_fast.grad, x.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast.bias.grad, ref.bias.grad, rtol=1e-4, atol=1e-4)
    assert fast.weight.is_contiguous()  # stored plainly: initialisers and checkpoints as before


def test_updates_equal_plain_sb3_arithmetic(monkeypatch):
    """30 DrQ updates with the channels-last convolutions and the critic's graph-free
    actor-loss pass give the weights that plain ``nn.Conv2d`` and SB3's ``ContinuousCritic``
    give from the same seed and samples (to float rounding)."""
    assert isinstance(
        DrQEncoder(gym.spaces.Box(0, 255, (9, 24, 24), np.uint8)).convs[0], ChannelsLastConv2d
    )
    small = SmallCNN(gym.spaces.Box(0, 255, (3, 32, 32), np.uint8))  # PPO's: plain layout
    assert type(small.cnn[0]) is torch.nn.Conv2d

    def updated() -> dict[str, torch.Tensor]:
        model = tiny_drq_model(seed=0, learning_starts=10)
        model.learn(40)  # 30 updates
        return model.policy.state_dict()

    fast = updated()
    monkeypatch.setattr(ChannelsLastConv2d, "forward", torch.nn.Conv2d.forward)
    monkeypatch.setattr(DrQCritic, "forward", ContinuousCritic.forward)
    plain = updated()
    assert fast.keys() == plain.keys()
    for key in fast:
        torch.testing.assert_close(fast[key], plain[key], rtol=1e-3, atol=1e-4, msg=key)
    init = tiny_drq_model(seed=0).policy.state_dict()
    assert any(not torch.allclose(init[k], fast[k], atol=1e-3) for k in fast)  # it learned


def test_actor_reads_the_critic_trunk_detached():
    model = tiny_drq_model(seed=0)
    policy = model.policy
    assert isinstance(policy, DrQPolicy)
    actor_enc, critic_enc = policy.actor.features_extractor, policy.critic.features_extractor
    target_enc = policy.critic_target.features_extractor
    assert actor_enc.convs is critic_enc.convs  # one conv trunk ...
    assert actor_enc.projection is not critic_enc.projection  # ... each its own projection
    assert target_enc.convs is not critic_enc.convs
    trunk = {id(p) for p in critic_enc.convs.parameters()}
    actor_opt = {id(p) for g in policy.actor.optimizer.param_groups for p in g["params"]}
    critic_opt = {id(p) for g in policy.critic.optimizer.param_groups for p in g["params"]}
    assert trunk <= critic_opt and not trunk & actor_opt
    assert {id(p) for p in actor_enc.projection.parameters()} <= actor_opt

    obs = torch.rand(4, 9, HW, HW)
    actions, _ = policy.actor.action_log_prob(obs)
    actions.sum().backward()  # the actor's loss reaches its projection, not the trunk
    assert all(p.grad is None for p in critic_enc.convs.parameters())
    assert all(p.grad is not None for p in actor_enc.projection.parameters())
    actions_pi, _ = policy.actor.action_log_prob(obs)
    policy.critic(obs, actions_pi)[0].sum().backward()  # the actor's loss through the critic ...
    assert all(p.grad is None for p in critic_enc.convs.parameters())  # ... skips the trunk
    assert all(p.grad is None for p in critic_enc.projection.parameters())
    q = policy.critic(obs, actions.detach())[0]
    q.sum().backward()  # the critic's loss trains the trunk
    assert all(p.grad is not None for p in critic_enc.convs.parameters())


def test_learn_is_seeded_and_survives_save_load(tmp_path):
    from stable_baselines3 import SAC

    def trained(seed: int):
        model = tiny_drq_model(seed)
        model.learn(160)
        return model

    a, b, c = trained(0), trained(0), trained(1)
    sa, sb, sc = (m.policy.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # same seed: the same weights
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    init = tiny_drq_model(0).policy.critic.features_extractor.convs[0].weight
    assert not torch.equal(init, a.policy.critic.features_extractor.convs[0].weight)

    a.save(tmp_path / "drq.zip")
    loaded = SAC.load(tmp_path / "drq.zip", device="cpu")
    assert isinstance(loaded.policy, DrQPolicy)
    enc = loaded.policy.actor.features_extractor
    assert enc.convs is loaded.policy.critic.features_extractor.convs and enc.detach_convs
    obs = tiny_vec_env(5).reset()
    assert np.array_equal(
        a.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )


def test_drq_hyperparameters():
    for env_id in ("FreeActionRealMetaWorldReach-v0", "FreeActionMetaWorldReach-v0"):
        hp = load_hyperparams(env_id, "drq")
        assert hp.frame_stack == 3 and hp.env_kwargs["terminate_on_success"] is False
        policy, kwargs = drq_sac_kwargs(hp)
        assert policy is DrQPolicy and kwargs["replay_buffer_class"] is RandomShiftReplayBuffer
        assert kwargs["replay_buffer_kwargs"]["pad"] == 4
        assert kwargs["replay_buffer_kwargs"]["gamma"] == kwargs["gamma"]
        assert policy_kwargs_from_config(hp.policy_kwargs)["features_extractor_class"] is (
            DrQEncoder
        )
    over = load_hyperparams(
        "FreeActionRealMetaWorldReach-v0", "drq", overrides={"replay_buffer_kwargs": {"pad": 2}}
    )
    assert over.algo_kwargs["replay_buffer_kwargs"] == {"pad": 2, "n_steps": 3, "reward_scale": 0.1}
    with pytest.raises(ValueError, match="replay_buffer_kwargs.n_steps"):
        drq_sac_kwargs(
            load_hyperparams("FreeActionRealMetaWorld-v0", "drq", overrides={"n_steps": 3})
        )


# -- a short run in the real simulator --------------------------------------------------------


def cli(module: str, *args: str) -> dict:
    """Run ``python -m module args`` on one thread; its JSON report (as in test_agents.py)."""
    env = {**os.environ, "FREEACTION_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    env.update(MUJOCO_GL="osmesa", PYOPENGL_PLATFORM="osmesa")
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout[proc.stdout.index("{") :])


def test_train_drq_on_the_real_env_then_evaluate(tmp_path):
    pytest.importorskip("metaworld")
    hp_file = tmp_path / "drq.yaml"
    hp_file.write_text(yaml.safe_dump({"drq": TINY_DRQ}))
    out = tmp_path / "drq"
    summary = cli(
        "agents.train",
        "--env", "FreeActionRealMetaWorldReach-v0",
        "--algo", "drq",
        "--timesteps", "200",
        "--out", str(out),
        "--hyperparams", str(hp_file),
        "--env-kwargs", "max_episode_steps=20", "terminate_on_success=false",
        "--eval-freq", "0",
        "--checkpoint-freq", "0",
        "--video-freq", "0",
        "--no-progress",
        "--verbose", "0",
    )  # fmt: skip
    assert summary["timesteps"] == 200 and summary["algo"] == "drq"
    from freeaction_gym.evaluation.policies import load_model

    model = load_model(out / "final_model.zip")  # auto: SAC, with the DrQ policy
    assert isinstance(model.policy, DrQPolicy)
    assert model.observation_space.shape == (9, 64, 64)
    res = cli(
        "agents.evaluate",
        "--env", "FreeActionRealMetaWorldReach-v0",
        "--policy", str(out / "final_model.zip"),
        "--episodes", "1",
        "--env-kwargs", "max_episode_steps=4",
    )  # fmt: skip
    assert res["episodes"] == 1 and res["per_episode"][0]["length"] <= 4  # stack of 3 inferred
