"""The SB3 side of the loop (freeaction_gym/agents/dyna.py): training continues from the previous
iteration's weights, and the policy acts on frames as the evaluation worlds expect (also a
frame-stacked agent, against SB3's own frame stacking)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from freeaction_gym.agents.dyna import SB3DynaAgent
from freeaction_gym.dyna.config import AgentConfig
from freeaction_gym.evaluation.worlds import Scenes

TINY = {
    "n_steps": 8,
    "batch_size": 8,
    "n_epochs": 1,
    "policy_kwargs": {
        "features_extractor_kwargs": {"features_dim": 16, "channels": [8, 8]},
        "net_arch": {"pi": [16], "vf": [16]},
    },
}


def params(path) -> dict[str, torch.Tensor]:
    from stable_baselines3 import PPO

    return PPO.load(path, device="cpu").policy.state_dict()


def env_options(tiny) -> dict:
    """As the loop passes them: an explicit reset bank (here the tiny model's own)."""
    bank = str(tiny.world_dir / "reset_bank.npz")
    return {"model": str(tiny.world_dir), "task": "reach-v3", "sampling": tiny.fast,
            "reset_bank": bank}  # fmt: skip


def test_training_continues_from_init_from(tiny, tmp_path):
    env_kwargs = env_options(tiny)
    cfg = AgentConfig(timesteps=8, num_envs=1, hp=TINY)
    first = SB3DynaAgent(cfg, progress=False).train(env_kwargs, tmp_path / "a", None, seed=0)
    assert first["timesteps"] == 8 and first["env_kwargs"]["task"] == "reach-v3"
    assert "support" in first["env_kwargs"]  # the hyperparameters' own env options kept

    frozen = AgentConfig(timesteps=8, num_envs=1, hp={**TINY, "learning_rate": 0.0})
    agent = SB3DynaAgent(frozen, progress=False)
    cont = agent.train(env_kwargs, tmp_path / "b", first["policy"], seed=1)
    fresh = agent.train(env_kwargs, tmp_path / "c", None, seed=1)
    start, kept, new = (params(r["policy"]) for r in (first, cont, fresh))
    assert all(torch.equal(start[k], kept[k]) for k in start)  # lr 0: exactly the init
    assert any(not torch.equal(start[k], new[k]) for k in start)

    policy = agent.policy(cont["policy"])
    scenes = Scenes(np.array([0, 1]), np.array(["reach-v3"] * 2))
    policy.reset(scenes, seed=0)
    obs = np.zeros((2, tiny.hw, tiny.hw, 3), np.uint8)
    a = policy.act(obs, 0, None)
    assert a.shape == (2, 4) and np.array_equal(a, policy.act(obs, 1, None))  # deterministic


TINY_DRQ = {
    "buffer_size": 64,
    "learning_starts": 4,
    "batch_size": 4,
    "policy_kwargs": {
        "features_extractor_kwargs": {"features_dim": 8, "channels": [8, 8], "strides": [2, 2]},
        "net_arch": [8],
    },
}


def test_frame_stacked_agent_stacks_the_worlds_single_frames(tiny, tmp_path):
    """A DrQ agent trained on 3 stacked frames acts in the evaluation worlds (single frames)
    as SB3's VecFrameStack would show it the episode: zeros before the first frame."""
    from stable_baselines3.common.vec_env.stacked_observations import StackedObservations

    env_kwargs = env_options(tiny)
    cfg = AgentConfig(algo="drq", timesteps=8, num_envs=1, hp=TINY_DRQ)
    agent = SB3DynaAgent(cfg, progress=False)
    trained = agent.train(env_kwargs, tmp_path / "drq", None, seed=0)
    assert trained["timesteps"] == 8 and trained["env_kwargs"]["terminate_on_success"] is False
    policy = agent.policy(trained["policy"])
    assert policy.channels == 9

    frames = np.random.default_rng(0).integers(0, 256, (2, 5, tiny.hw, tiny.hw, 3), np.uint8)
    space = gym.spaces.Box(0, 255, (tiny.hw, tiny.hw, 3), np.uint8)
    for episode in range(2):  # the stack starts afresh with every batch of episodes
        policy.reset(Scenes(np.array([0, 1]), np.array(["reach-v3"] * 2)), seed=0)
        reference = StackedObservations(2, 3, space, channels_order="last")
        stacked = reference.reset(frames[:, 0])
        for t in range(5):
            if t > 0:
                stacked, _ = reference.update(frames[:, t], np.zeros(2, bool), [{}, {}])
            expected = policy.model.predict(stacked, deterministic=True)[0]
            assert np.array_equal(policy.act(frames[:, t], t, None), expected), (episode, t)
