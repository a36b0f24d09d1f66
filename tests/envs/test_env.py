"""VideoWorldModelEnv on the tiny pixel-space world model: seeding, reset options,
observation variants, action chunks, rendering, info (FreeAction tau / guidance weight,
re-computed here from eq. 2-3), rewards, and a slow long-rollout memory check."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from freeaction_gym.diffusion.truncation import truncation_threshold
from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.envs.env import VideoWorldModelEnv
from freeaction_gym.rewards.learned import RewardHead

MW_HW, MU_ACT = 32, 0.9  # as built by conftest.tiny (checked in test_tiny_constants)

ENV_ID = "FreeActionMetaWorldV2-v0"  # the action-path preset (tiny models)


def make(tiny, **overrides) -> gym.Env:
    kw = dict(model=str(tiny.world_dir), sampling=dict(tiny.fast), reward="goal_latent")
    kw.update(overrides)
    return gym.make(ENV_ID, **kw)


def actions(n: int, shape=(4,), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(n)]


def rollout(env: gym.Env, seed: int, acts) -> list:
    obs, info = env.reset(seed=seed)
    out = [(obs, info)]
    for a in acts:
        out.append(env.step(a))
    return out


def frame(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (MW_HW, MW_HW, 3), dtype=np.uint8)


def test_tiny_constants(tiny):
    assert (tiny.hw, tiny.mu_act) == (MW_HW, MU_ACT)


# -- seeding ------------------------------------------------------------------------------


def test_same_seed_same_rollout(tiny):
    acts = actions(4)
    a, b = rollout(make(tiny), 3, acts), rollout(make(tiny), 3, acts)
    np.testing.assert_array_equal(a[0][0], b[0][0])
    assert a[0][1] == b[0][1]
    for (o1, r1, te1, tr1, i1), (o2, r2, te2, tr2, i2) in zip(a[1:], b[1:], strict=True):
        np.testing.assert_array_equal(o1, o2)
        assert (r1, te1, tr1) == (r2, te2, tr2)
        assert i1 == i2
    assert any(not np.array_equal(a[0][0], o[0]) for o in a[1:])  # the model does move


def test_reseeding_the_same_env_repeats_the_rollout(tiny):
    env, acts = make(tiny), actions(3)
    first = [o[0] for o in rollout(env, 11, acts)]
    second = [o[0] for o in rollout(env, 11, acts)]
    for x, y in zip(first, second, strict=True):
        np.testing.assert_array_equal(x, y)


def test_different_seeds_differ(tiny):
    acts = actions(3)
    a, b = rollout(make(tiny), 0, acts), rollout(make(tiny), 1, acts)
    # The initial frame may coincide (small bank); the sampler noise must not.
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a[1:], b[1:], strict=True))


# -- reset options and observation variants -----------------------------------------------


def test_reset_from_given_frames_and_goal_latent_reward(tiny):
    f, g = frame(1), frame(2)
    env = make(tiny)
    obs, info = env.reset(seed=0, options={"initial_frame": f, "goal_frame": g, "task": "push-v3"})
    np.testing.assert_array_equal(obs, f)  # pixel codec: lossless start
    assert info["task"] == "push-v3"
    # Same rollout in latent observations: reward = -mean((z - z_goal)^2) (independent).
    lat = make(tiny, observation="latent")
    z0, _ = lat.reset(seed=0, options={"initial_frame": f, "goal_frame": g})
    np.testing.assert_allclose(z0, f.transpose(2, 0, 1) / 127.5 - 1.0, atol=1e-6)
    a = actions(1)[0]
    obs, r, *_ = env.step(a)
    z, r_lat, *_ = lat.step(a)
    expected = -np.mean((z.astype(np.float64) - (g.transpose(2, 0, 1) / 127.5 - 1.0)) ** 2)
    assert r == pytest.approx(expected, rel=1e-5)
    assert r_lat == pytest.approx(r, rel=1e-6)
    np.testing.assert_array_equal(
        obs, ((np.clip(z, -1, 1) + 1) * 127.5).round().astype(np.uint8).transpose(1, 2, 0)
    )


def test_reset_from_bank_starts_at_a_bank_frame_of_the_task(tiny):
    bank = ResetBank.load(tiny.world_dir / "reset_bank.npz")
    env = make(tiny, task="reach-v3")
    for seed in range(4):
        obs, info = env.reset(seed=seed)
        assert info["task"] == "reach-v3"
        hits = [j for j in range(len(bank)) if np.array_equal(bank.initial[j], obs)]
        assert hits and all(bank.task[j] == "reach-v3" for j in hits)
    obs, info = env.reset(options={"bank_index": 3})  # a reach-v3 entry
    np.testing.assert_array_equal(obs, bank.initial[3])
    assert info["task"] == "reach-v3"
    with pytest.raises(ValueError, match="bank_index=4 is a 'push-v3' scene"):  # issue 38
        env.reset(options={"bank_index": 4})


def test_frame_stack(tiny):
    env = make(tiny, frame_stack=2)
    assert env.observation_space.shape == (MW_HW, MW_HW, 6)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (MW_HW, MW_HW, 6) and obs.dtype == np.uint8
    np.testing.assert_array_equal(obs[..., :3], obs[..., 3:])
    obs2 = env.step(actions(1)[0])[0]
    np.testing.assert_array_equal(obs2[..., :3], obs[..., 3:])  # previous frame slides back
    assert not np.array_equal(obs2[..., 3:], obs[..., 3:])


def test_latent_observation(tiny):
    env = make(tiny, observation="latent")
    assert env.observation_space.dtype == np.float32
    assert env.observation_space.shape == (3, MW_HW, MW_HW)  # pixel codec: (C, h, w)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (3, MW_HW, MW_HW)
    assert env.observation_space.contains(obs)
    obs = env.step(actions(1)[0])[0]
    assert obs.dtype == np.float32 and obs.shape == (3, MW_HW, MW_HW) and np.isfinite(obs).all()


def test_action_chunk_space_and_flat_actions(tiny):
    env, flat = make(tiny, action_chunk=2), make(tiny, action_chunk=2)
    assert env.action_space.shape == (2, 4)
    a = actions(1, (2, 4))[0]
    env.reset(seed=5)
    flat.reset(seed=5)
    o1, r1, *_, i1 = env.step(a)
    o2, r2, *_, i2 = flat.step(a.reshape(8))
    np.testing.assert_array_equal(o1, o2)
    assert r1 == r2 and i1 == i2
    # ||a|| of a chunk: mean over its steps of the per-step L2 norm (mean_step_l2).
    assert i1["action_norm"] == pytest.approx(np.linalg.norm(a, axis=1).mean(), rel=1e-5)


def test_render_returns_the_current_frame(tiny):
    env = make(tiny, render_mode="rgb_array", frame_stack=2)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(env.render(), obs[..., 3:])
    obs = env.step(actions(1)[0])[0]
    img = env.render()
    assert img.shape == (MW_HW, MW_HW, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img, obs[..., 3:])


# -- info: FreeAction quantities ----------------------------------------------------------


def test_info_tau_and_guidance_with_the_preset_sampling(tiny):
    env = gym.make(ENV_ID, model=str(tiny.world_dir), reward="none")  # preset sampling
    env.reset(seed=0)
    a = np.array([0.6, -0.3, 0.2, 0.1], np.float32)
    _, _, _, _, info = env.step(a)
    assert {"action_norm", "tau", "guidance_weight", "success", "task"} <= set(info)
    norm = float(np.linalg.norm(a))
    assert info["action_norm"] == pytest.approx(norm, rel=1e-5)
    # eq. 3 with the preset's tau_min 0.5, tau_max 1.5 and mu_act from the model stats
    assert info["tau"] == pytest.approx(0.5 + 1.0 / (1.0 + np.exp(-(norm - MU_ACT))), rel=1e-5)
    assert info["tau"] == pytest.approx(float(truncation_threshold(norm, mu_act=MU_ACT)), rel=1e-6)
    # the MetaWorld presets ship with CFG off (it lowered fidelity, docs/RESULTS.md)
    assert info["guidance_weight"] == 0.0
    assert info["success"] is False
    # opted in: eq. 2, w = lam * ||a|| on the first (noisiest) step, lam = 1
    env = gym.make(
        ENV_ID,
        model=str(tiny.world_dir),
        reward="none",
        sampling={"guidance": {"mode": "action_scaled"}},
    )
    env.reset(seed=0)
    info = env.step(a)[4]
    assert info["guidance_weight"] == pytest.approx(norm, rel=1e-5)


def test_info_with_truncation_and_guidance_switched_off(tiny):
    env = make(
        tiny,
        sampling={"num_steps": 2, "truncation": {"mode": "none"}, "guidance": {"mode": "none"}},
    )
    env.reset(seed=0)
    info = env.step(np.full(4, 0.5, np.float32))[-1]
    assert info["tau"] == float("inf")
    assert info["guidance_weight"] == 0.0
    assert info["action_norm"] == pytest.approx(1.0, rel=1e-6)


def test_timing_only_in_info_when_asked(tiny):
    env = make(tiny)
    env.reset(seed=0)
    info = env.step(actions(1)[0])[-1]
    assert "step_time_ms" not in info
    assert env.unwrapped.timing["step_time_ms"] > 0
    timed = make(tiny, timing_in_info=True)
    timed.reset(seed=0)
    info = timed.step(actions(1)[0])[-1]
    assert info["step_time_ms"] >= info["model_time_ms"] > 0


# -- rewards ------------------------------------------------------------------------------


def test_learned_reward_matches_the_head(tiny):
    env = make(
        tiny, reward="learned", reward_head=str(tiny.reward_head), terminate_on_success=False
    )
    head = RewardHead.from_pretrained(tiny.reward_head)
    _, info = env.reset(seed=0, options={"task": "pick-place-v3"})
    assert info["task"] == "pick-place-v3"
    for a in actions(3):
        obs, r, terminated, _, info = env.step(a)
        with torch.no_grad():
            ref, logit = head(
                torch.from_numpy(obs)[None], torch.tensor([tiny.tasks.index("pick-place-v3")])
            )
        assert r == pytest.approx(float(ref[0]), rel=1e-5, abs=1e-6)
        assert info["success"] == bool(torch.sigmoid(logit[0]) > 0.5)
        assert not terminated


def test_learned_reward_default_head_is_the_model_dirs(tiny):
    env = make(tiny, reward="learned")  # <model>/reward_head
    env.reset(seed=0)
    assert np.isfinite(env.step(actions(1)[0])[1])


def test_success_terminates_and_zero_reward(tiny):
    f = frame(3)
    env = make(tiny, goal_success_distance=1e9)  # every frame is "at the goal"
    env.reset(seed=0, options={"initial_frame": f, "goal_frame": f})
    _, _, terminated, truncated, info = env.step(actions(1)[0])
    assert terminated and not truncated and info["success"]
    env = make(tiny, reward="none", max_episode_steps=2)  # gym.make: a TimeLimit wrapper
    env.reset(seed=0)
    steps = [env.step(a) for a in actions(2)]
    assert [s[1] for s in steps] == [0.0, 0.0]
    assert [(s[2], s[3]) for s in steps] == [(False, False), (False, True)]


# -- episode length: one meaning of max_episode_steps (issue 13) ---------------------------


def run_until_done(env: gym.Env, limit: int = 100) -> int:
    """Steps until terminated/truncated (reward 'none': never terminated); returns the count."""
    for t in range(1, limit + 1):
        _, _, terminated, truncated, _ = env.step(actions(1, seed=t)[0])
        if terminated or truncated:
            assert truncated and not terminated
            return t
    raise AssertionError(f"no episode end within {limit} steps")


@pytest.mark.parametrize("n", [3, 45])  # below and above the preset's 40
def test_gym_make_max_episode_steps_is_the_env_option(tiny, n):
    env = make(tiny, reward="none", max_episode_steps=n)
    assert env.unwrapped.config.max_episode_steps == n
    env.reset(seed=0)
    assert run_until_done(env) == n
    with pytest.raises(RuntimeError, match="reset"):  # the env's own check, not TimeLimit's
        env.step(actions(1)[0])
    env.reset(seed=1)
    assert run_until_done(env) == n


@pytest.mark.parametrize("mode", ["vector_entry_point", "sync"])
def test_make_vec_max_episode_steps_means_the_same(tiny, mode):
    venv = gym.make_vec(
        ENV_ID,
        num_envs=2,
        vectorization_mode=mode,
        model=str(tiny.world_dir),
        sampling=dict(tiny.fast),
        reward="none",
        max_episode_steps=3,
    )
    venv.reset(seed=0)
    ends = [venv.step(np.zeros((2, 4), np.float32))[3].tolist() for _ in range(3)]
    assert ends == [[False, False], [False, False], [True, True]]
    if mode == "sync":
        assert all(e.unwrapped.config.max_episode_steps == 3 for e in venv.unwrapped.envs)
    else:
        assert venv.unwrapped.config.max_episode_steps == 3


def test_is_success_means_any_step_so_far(tiny):
    """``success``: reached at this step; ``is_success``: at any step of the episode so far
    (SB3's EvalCallback reads it at the end), as in the real counterpart."""
    env = make(tiny, goal_success_distance=0.2, terminate_on_success=False)
    f = frame(3)
    env.reset(seed=0, options={"initial_frame": f, "goal_frame": f})
    flags = [env.step(a)[4] for a in actions(6, seed=4)]
    success = [i["success"] for i in flags]
    assert success[0] and not all(success), success  # starts at the goal, then drifts off
    assert [i["is_success"] for i in flags] == list(np.logical_or.accumulate(success))
    env.reset(seed=0)
    assert env.step(actions(1)[0])[4]["is_success"] is False  # a new episode starts over


# -- long rollouts ------------------------------------------------------------------------


def _rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    import resource  # peak, not current: a weaker check where /proc is missing

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.slow
def test_ten_thousand_imagined_steps_stay_finite_and_do_not_leak(tiny):
    n = 10_000
    # The class directly: gym.make(max_episode_steps=n) would only add a TimeLimit wrapper
    # (and the preset's own 40-step limit would still end the episode).
    env = VideoWorldModelEnv(
        ENV_ID,
        model=str(tiny.world_dir),
        reward="none",
        max_episode_steps=n,
        sampling={"num_steps": 1},
    )
    core = env.core
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    acts = rng.uniform(-1, 1, (n, 4)).astype(np.float32)
    rss = {}
    for t in range(n):
        obs, r, terminated, truncated, _ = env.step(acts[t])
        if t + 1 in (1_000, n):
            rss[t + 1] = _rss_mb()
        if t % 500 == 0 or t == n - 1:
            assert torch.isfinite(core.context).all(), f"non-finite latent at step {t + 1}"
    assert obs.dtype == np.uint8 and obs.shape == (MW_HW, MW_HW, 3)
    assert truncated and not terminated and r == 0.0
    print(f"RSS MB at steps 1000 / {n}: {rss[1_000]:.1f} / {rss[n]:.1f}")
    assert rss[n] - rss[1_000] < 50, rss


@pytest.mark.slow
def test_compiled_denoiser_gives_the_same_observations(tiny):
    """compile=True swaps in torch.compile's module; observations match eager closely."""
    eager, compiled = make(tiny), make(tiny, compile=True)
    o1, _ = eager.reset(seed=3)
    o2, _ = compiled.reset(seed=3)
    for a in actions(2):
        o1 = eager.step(a)[0]
        o2 = compiled.step(a)[0]
    assert "OptimizedModule" in type(compiled.unwrapped.core.world.dit).__name__
    assert np.abs(o1.astype(int) - o2.astype(int)).max() <= 2
