"""Batched environments: ``gym.make_vec`` (native VectorEnv, next-step autoreset, one
batched model call per step, env i == a single env seeded seed + i up to float rounding,
per-env reset options) and the stable-baselines3 ``VecEnv`` adapter."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.envs.vector import VideoWorldModelVectorEnv, make_sb3_vec_env
from freeaction_gym.world_model import WorldModel

ENV_ID = "FreeActionMetaWorldV2-v0"  # the action-path preset (tiny models)
N = 3


def kwargs(tiny, **overrides) -> dict:
    kw = dict(model=str(tiny.world_dir), sampling=dict(tiny.fast), reward="goal_latent")
    kw.update(overrides)
    return kw


def batched_actions(steps: int, n: int = N, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (steps, n, 4)).astype(np.float32)


def is_bank_frame(bank: ResetBank, obs: np.ndarray) -> bool:
    return any(np.array_equal(f, obs) for f in bank.initial)


def assert_same_up_to_rounding(batched: np.ndarray, single: np.ndarray) -> None:
    """The documented guarantee for frames of env i vs a lone env seeded alike: same start,
    noise and actions, so frames differ only by float rounding of batched matrix products -
    at most 2 uint8 levels, on fewer than 1% of the values."""
    diff = np.abs(batched.astype(int) - single.astype(int))
    assert diff.max() <= 2 and (diff > 0).mean() < 0.01, (diff.max(), (diff > 0).mean())


@pytest.fixture(params=["this-cpu", "other-cpu"])
def rounding(request, monkeypatch):
    """``other-cpu`` emulates a CPU whose batched kernels round differently from batch-size-1
    ones (the fresh-machine failure of issue 13): the DiT output of every batch of more than
    one sample is scaled by 1 + 1e-6 (about 8 float32 ulps)."""
    if request.param == "other-cpu":
        from freeaction_gym.models.dit import VideoDiT

        original = VideoDiT.forward

        def forward(self, x, *args, **kwargs):
            out = original(self, x, *args, **kwargs)
            return out * (1 + 1e-6) if x.shape[0] > 1 else out

        monkeypatch.setattr(VideoDiT, "forward", forward)
    return request.param


@pytest.mark.parametrize("env_id", [ENV_ID, "FreeActionRT1-v0"])
def test_env_i_matches_a_single_env_seeded_seed_plus_i(tiny, env_id, rounding):
    seed, steps = 10, 3
    kw = kwargs(tiny) if env_id == ENV_ID else tiny.irasim_kwargs(env_id)
    venv = gym.make_vec(env_id, num_envs=N, **kw)
    assert isinstance(venv.unwrapped, VideoWorldModelVectorEnv)
    single_space = gym.make(env_id, **kw).observation_space
    assert venv.observation_space.shape == (N, *single_space.shape)
    shape = (steps, N, *venv.single_action_space.shape)
    acts = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    obs, _ = venv.reset(seed=seed)
    batched = [(obs, np.zeros(N, np.float32))]
    for a in acts:
        o, r, *_ = venv.step(a)
        batched.append((o, r))
    for i in range(N):
        env = gym.make(env_id, **kw)
        o, _ = env.reset(seed=seed + i)
        np.testing.assert_array_equal(batched[0][0][i], o)  # the same start, exactly
        single = [(o, 0.0)] + [env.step(a[i])[:2] for a in acts]
        for (bo, br), (so, sr) in zip(batched[1:], single[1:], strict=True):
            assert_same_up_to_rounding(bo[i], so)
            assert br[i] == pytest.approx(sr, rel=1e-3, abs=1e-4)


def test_next_step_autoreset_after_truncation(tiny):
    bank = ResetBank.load(tiny.world_dir / "reset_bank.npz")
    venv = gym.make_vec(ENV_ID, num_envs=N, **kwargs(tiny, max_episode_steps=2))
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    venv.reset(seed=0)
    acts = batched_actions(4)
    _, _, term, trunc, _ = venv.step(acts[0])
    assert not term.any() and not trunc.any()
    last, _, term, trunc, _ = venv.step(acts[1])
    assert trunc.all() and not term.any()
    obs, reward, term, trunc, info = venv.step(acts[2])  # the reset step
    assert (reward == 0).all() and not term.any() and not trunc.any()
    assert all(is_bank_frame(bank, obs[i]) for i in range(N))
    assert not info["success"].any()
    obs, reward, term, trunc, _ = venv.step(acts[3])  # a normal step of the new episode
    assert not any(is_bank_frame(bank, obs[i]) for i in range(N))
    assert not trunc.any() and (reward != 0).all()


def test_one_batched_model_call_per_step(tiny, monkeypatch):
    calls: list[int] = []
    original = WorldModel.predict

    def spy(self, context, actions, *args, **kw):
        calls.append(context.shape[0])
        return original(self, context, actions, *args, **kw)

    monkeypatch.setattr(WorldModel, "predict", spy)
    venv = gym.make_vec(ENV_ID, num_envs=N, **kwargs(tiny, max_episode_steps=2))
    venv.reset(seed=0)
    assert calls == []
    for t, a in enumerate(batched_actions(3)):  # includes the autoreset step
        venv.step(a)
        assert calls == [N] * (t + 1)


def test_vector_info_and_bad_actions(tiny):
    venv = gym.make_vec(ENV_ID, num_envs=N, **kwargs(tiny))
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(batched_actions(1)[0])
    venv.reset(seed=0)
    _, _, _, _, info = venv.step(batched_actions(1)[0])
    for key in ("action_norm", "tau", "guidance_weight", "success"):
        assert np.asarray(info[key]).shape == (N,), key
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.zeros((N + 1, 4), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        venv.step(np.full((N, 4), np.nan, np.float32))


def test_sb3_vec_env(tiny):
    from stable_baselines3.common.vec_env import VecEnv, VecMonitor

    bank = ResetBank.load(tiny.world_dir / "reset_bank.npz")
    venv = make_sb3_vec_env(num_envs=2, seed=0, **kwargs(tiny, max_episode_steps=2))
    assert isinstance(venv, VecEnv) and venv.num_envs == 2
    venv = VecMonitor(venv)
    obs = venv.reset()
    assert obs.shape == (2, tiny.hw, tiny.hw, 3) and obs.dtype == np.uint8
    for t in range(5):
        venv.step_async(batched_actions(1, n=2, seed=t)[0])
        obs, rewards, dones, infos = venv.step_wait()
        assert obs.shape == (2, tiny.hw, tiny.hw, 3)
        assert rewards.shape == (2,) and rewards.dtype == np.float32 and np.isfinite(rewards).all()
        assert dones.tolist() == [t % 2 == 1] * 2
        for i, info in enumerate(infos):
            assert {"action_norm", "tau", "guidance_weight", "success", "is_success"} <= set(info)
            if dones[i]:
                assert info["TimeLimit.truncated"] is True
                term = info["terminal_observation"]
                assert term.shape == (tiny.hw, tiny.hw, 3) and not is_bank_frame(bank, term)
                assert is_bank_frame(bank, obs[i])  # same-step reset
                assert info["episode"]["l"] == 2  # VecMonitor saw the episode end
            else:
                assert "terminal_observation" not in info
    assert len(venv.get_images()) == 2
    assert venv.env_is_wrapped(gym.Wrapper) == [False, False]
    venv.close()


def test_sb3_seeding_is_reproducible(tiny):
    def run():
        venv = make_sb3_vec_env(num_envs=2, **kwargs(tiny))
        venv.seed(7)
        out = [venv.reset()]
        for a in batched_actions(2, n=2):
            venv.step_async(a)
            out.append(venv.step_wait()[0])
        return out

    for x, y in zip(run(), run(), strict=True):
        np.testing.assert_array_equal(x, y)


def test_sb3_step_before_reset_says_so(tiny):
    venv = make_sb3_vec_env(num_envs=2, **kwargs(tiny))
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        venv.step(batched_actions(1, n=2)[0])


def test_per_env_reset_options(tiny):
    bank = ResetBank.load(tiny.world_dir / "reset_bank.npz")
    venv = gym.make_vec(ENV_ID, num_envs=N, **kwargs(tiny))
    own = np.random.default_rng(5).integers(0, 256, (tiny.hw, tiny.hw, 3), dtype=np.uint8)
    options = [{"bank_index": 4}, None, {"initial_frame": own, "goal_frame": own}]
    obs, _ = venv.reset(seed=0, options=options)
    np.testing.assert_array_equal(obs[0], bank.initial[4])
    assert is_bank_frame(bank, obs[1])
    np.testing.assert_array_equal(obs[2], own)
    with pytest.raises(ValueError, match="got 2 options for 3 envs"):
        venv.reset(options=options[:2])
    obs, _ = venv.reset(seed=0, options={"bank_index": 2})  # one dict: every env
    assert all(np.array_equal(o, bank.initial[2]) for o in obs)
