"""RealMetaWorldEnv: the real simulator behind the world model's interface. References are
independent: episodes written by the dataset generator (frames, rewards, success of a
replayed action sequence), a directly built MetaWorld env + renderer, and the imagined env
(same seed -> same reset-bank entry -> same first frame)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("metaworld")

from freeaction_gym.data.episodes import episode_path, load_episode, write_episode  # noqa: E402
from freeaction_gym.data.metaworld_gen import (  # noqa: E402
    MetaWorldDataConfig,
    generate_dataset,
    generate_episode,
    make_metaworld_env,
)
from freeaction_gym.envs.bank import ResetBank  # noqa: E402
from freeaction_gym.envs.real_metaworld import RealMetaWorldEnv, make_real_vec_env  # noqa: E402
from freeaction_gym.envs.registration import REAL_ENV_IDS  # noqa: E402

FAST = {"scheduler": "ddim", "num_steps": 2}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A 4-action test split written by the generator: reach layouts 0 and 17, push 0."""
    root = tmp_path_factory.mktemp("mw_data")
    cfg = MetaWorldDataConfig(
        tasks=["reach-v3", "push-v3"],
        train_episodes=0,
        val_episodes=0,
        test_episodes=1,
        frames=4,
        depth=False,
    )
    generate_dataset(root, cfg, num_workers=1, progress=False, log=lambda _: None)
    write_episode(
        episode_path(root, "test", "reach-v3", 17), generate_episode(cfg, "reach-v3", "test", 17)
    )
    return root


@pytest.fixture(scope="module")
def bank_path(dataset, tmp_path_factory):
    path = tmp_path_factory.mktemp("bank") / "bank.npz"
    ResetBank.from_dataset(dataset, "test").save(path)
    return path


@pytest.fixture(scope="module")
def world_dir(bank_path, tmp_path_factory):
    """A tiny 64x64 pixel-space world model whose reset bank is the real one."""
    from freeaction_gym.models import VideoDiT, dit_config
    from freeaction_gym.world_model import DiffusionConfig, PixelCodec, WorldModel

    torch.manual_seed(0)
    cfg = dit_config(
        "tiny", input_size=(64, 64), in_channels=3, patch_size=16, num_frames=2, action_dim=4
    )
    stats = {
        "mu_act": {"mean_step_l2": {"raw": {"1": 0.9}}},
        "action_mean": [0.0] * 4,
        "action_std": [1.0] * 4,
    }
    world = WorldModel(
        VideoDiT(cfg), PixelCodec(), DiffusionConfig(prediction_type="sample"), stats
    )
    d = world.save_pretrained(tmp_path_factory.mktemp("world64") / "world")
    ResetBank.load(bank_path).save(d / "reset_bank.npz")
    return d


def test_bank_from_dataset_records_layouts(dataset, bank_path):
    bank = ResetBank.load(bank_path)
    eps = [load_episode(dataset / "test" / name, load_depth=False) for name in bank.episode]
    assert bank.has_layouts
    np.testing.assert_array_equal(bank.layout, [ep.layout for ep in eps])
    np.testing.assert_array_equal(bank.layout_seed, [ep.info["layout_seed"] for ep in eps])
    assert sorted(bank.layout.tolist()) == [0, 0, 17]
    assert set(bank.layout_seed.tolist()) == {1000}


def test_bank_without_layouts_loads_as_unknown(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    old = tmp_path / "old.npz"  # a bank written before layouts were recorded
    np.savez(
        old, initial=frames, goal=frames, task=np.array(["a", "b"]), episode=np.array(["x", "y"])
    )
    bank = ResetBank.load(old)
    assert bank.layout.tolist() == [-1, -1] and not bank.has_layouts
    bank.save(tmp_path / "new.npz")
    again = ResetBank.load(tmp_path / "new.npz")
    assert again.layout_seed.tolist() == [-1, -1]
    with pytest.raises(ValueError, match="layout must have shape"):
        ResetBank(frames, frames, np.array(["a", "b"]), np.array(["x", "y"]), np.array([1]))
    with pytest.raises(ValueError, match="does not name MetaWorld layouts"):
        RealMetaWorldEnv(reset_bank=str(old))


def test_first_observation_is_the_bank_frame(bank_path):
    bank = ResetBank.load(bank_path)
    env = RealMetaWorldEnv(reset_bank=str(bank_path))
    try:
        for j in (2, 0, 1, 2):  # switching tasks and back keeps each task's scene exact
            obs, info = env.reset(options={"bank_index": j})
            assert obs.dtype == np.uint8 and obs.shape == (64, 64, 3)
            diff = np.abs(obs.astype(int) - bank.initial[j].astype(int)).max()
            assert diff <= 2, (j, diff)
            assert info["bank_index"] == j and info["task"] == bank.task[j]
            assert info["layout"] == bank.layout[j]
    finally:
        env.close()


def test_replayed_actions_reproduce_the_dataset_episode(dataset, bank_path):
    """Frames after each held action, summed rewards and max-over-repeats success."""
    bank = ResetBank.load(bank_path)
    env = RealMetaWorldEnv(reset_bank=str(bank_path), terminate_on_success=False)
    try:
        for j in range(len(bank)):
            ep = load_episode(dataset / "test" / bank.episode[j], load_depth=False)
            env.reset(options={"bank_index": j})
            for k, a in enumerate(ep.action):
                obs, reward, _, _, info = env.step(a)
                assert np.abs(obs.astype(int) - ep.rgb[k + 1].astype(int)).max() <= 2
                assert reward == pytest.approx(float(ep.reward[k]), rel=1e-5, abs=1e-5)
                assert info["success"] == bool(ep.success[k])
    finally:
        env.close()


@pytest.mark.parametrize("task", [None, "reach-v3"])
def test_same_seed_same_scene_as_the_imagined_env(world_dir, task):
    env_id = "FreeActionMetaWorldV2-v0"  # the action-path preset (this test's model)
    kw = {} if task is None else {"task": task}
    imagined = gym.make(env_id, model=str(world_dir), reward="none", sampling=dict(FAST), **kw)
    real = gym.make("FreeActionRealMetaWorldV2-v0", model=str(world_dir), **kw)
    bank = ResetBank.load(world_dir / "reset_bank.npz")
    try:
        seen = set()
        for seed in (0, 1, 2, None, None, 5, None):  # seeded and unseeded (same RNG stream)
            obs_i, info_i = imagined.reset(seed=seed)
            obs_r, info_r = real.reset(seed=seed)
            j = info_r["bank_index"]
            seen.add(j)
            np.testing.assert_array_equal(obs_i, bank.initial[j])
            assert np.abs(obs_r.astype(int) - obs_i.astype(int)).max() <= 2
            assert info_i["task"] == info_r["task"]
        if task is not None:
            assert {bank.task[j] for j in seen} == {"reach-v3"}
        assert len(seen) >= 2
        for j in range(len(bank)):
            if task is not None and bank.task[j] != "reach-v3":
                continue
            obs_i, _ = imagined.reset(options={"bank_index": j})
            obs_r, _ = real.reset(options={"bank_index": j})
            assert np.abs(obs_r.astype(int) - obs_i.astype(int)).max() <= 2
    finally:
        imagined.close()
        real.close()


def test_without_a_bank_layouts_come_from_the_test_seed(tmp_path):
    env = RealMetaWorldEnv(model=str(tmp_path / "no_model"), task="push-v3")
    ref_env, render = make_metaworld_env("push-v3", 1000, 7, depth=False)
    try:
        assert env.bank is None
        obs, info = env.reset(seed=0, options={"layout": 7})
        assert info == {"task": "push-v3", "layout_seed": 1000, "layout": 7, "bank_index": -1}
        ref_env.reset()
        np.testing.assert_array_equal(obs, render()[0])
        layouts = {env.reset(seed=s)[1]["layout"] for s in range(6)}
        assert len(layouts) > 1 and layouts <= set(range(50))
        with pytest.raises(ValueError, match="needs a reset bank"):
            env.reset(options={"bank_index": 0})
    finally:
        render.close()
        ref_env.close()
        env.close()


def test_episode_ends_on_success_or_time_limit(bank_path):
    from metaworld.policies import ENV_POLICY_MAP

    env = gym.make("FreeActionRealMetaWorldReach-v0", reset_bank=str(bank_path))
    expert = ENV_POLICY_MAP["reach-v3"]()
    try:
        env.reset(seed=0)
        for _ in range(40):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                a = np.clip(expert.get_action(env.unwrapped.state), -1, 1)
            _, reward, terminated, truncated, info = env.step(a)
            if terminated or truncated:
                break
        assert terminated and not truncated and info["success"] and info["is_success"]
        assert reward > 0
        with pytest.raises(RuntimeError, match="call reset"):
            env.step(a)
        short = gym.make(
            "FreeActionRealMetaWorldReach-v0", reset_bank=str(bank_path), max_episode_steps=2
        )
        short.reset(seed=0)
        assert short.step(np.zeros(4, np.float32))[3] is False
        out = short.step(np.zeros(4, np.float32))
        assert out[2] is False and out[3] is True and out[4]["is_success"] is False
        # gym.make's max_episode_steps is the env's own option (issue 13): no step past it
        assert short.unwrapped.config.max_episode_steps == 2
        with pytest.raises(RuntimeError, match="call reset"):
            short.step(np.zeros(4, np.float32))
        short.close()
    finally:
        env.close()


def test_actions_are_validated(bank_path):
    env = RealMetaWorldEnv(reset_bank=str(bank_path), out_of_range="error")
    try:
        env.reset(seed=0)
        with pytest.raises(ValueError, match="outside"):
            env.step(np.full(4, 2.0, np.float32))
        with pytest.raises(ValueError, match="shape"):
            env.step(np.zeros(3, np.float32))
        with pytest.raises(ValueError, match="unknown reset option"):
            env.reset(options={"bank_idx": 0})
    finally:
        env.close()
    with pytest.raises(ValueError, match="unknown real env option"):
        RealMetaWorldEnv(reset_bank=str(bank_path), frame_skip=2)
    with pytest.raises(ValueError, match="terminate_on_success must be true or false"):
        RealMetaWorldEnv(reset_bank=str(bank_path), terminate_on_success="no")
    with pytest.raises(ValueError, match="action_repeat must be a whole number, got 2.5"):
        RealMetaWorldEnv(reset_bank=str(bank_path), action_repeat=2.5)
    with pytest.raises(ValueError, match="resolution=32"):
        RealMetaWorldEnv(reset_bank=str(bank_path), resolution=32)


def test_action_bound_shrinks_the_box_and_clips_into_it(bank_path):
    bound = [0.3, 0.5, 0.2, 1.0]
    small = RealMetaWorldEnv(reset_bank=str(bank_path), action_bound=bound)
    full = RealMetaWorldEnv(reset_bank=str(bank_path))
    strict = RealMetaWorldEnv(reset_bank=str(bank_path), action_bound=bound, out_of_range="error")
    try:
        np.testing.assert_allclose(small.action_space.high, bound)
        np.testing.assert_allclose(small.action_space.low, -np.array(bound))
        big = np.array([0.9, -0.9, 0.1, -1.0], np.float32)
        small.reset(seed=4)
        full.reset(seed=4)
        o_small, r_small, *_ = small.step(big)
        o_full, r_full, *_ = full.step(np.clip(big, -np.array(bound), bound).astype(np.float32))
        np.testing.assert_array_equal(o_small, o_full)
        np.testing.assert_array_equal(small.state, full.state)
        assert r_small == pytest.approx(r_full)
        strict.reset(seed=4)
        with pytest.raises(ValueError, match=r"outside \[-b, b\], b = \[0.3, 0.5, 0.2, 1.0\]"):
            strict.step(big)
        strict.step(np.array([0.3, -0.5, 0.1, -1.0], np.float32))  # on the edge: accepted
    finally:
        for env in (small, full, strict):
            env.close()
    with pytest.raises(ValueError, match=r"action_bound needs entries in \(0, 1\]"):
        RealMetaWorldEnv(reset_bank=str(bank_path), action_bound=[0.5, 0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="action_bound has 3 entries; the actions have 4"):
        RealMetaWorldEnv(reset_bank=str(bank_path), action_bound=[0.5, 0.5, 0.5])


def test_check_env_real_ids(bank_path):
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    assert set(REAL_ENV_IDS) <= set(gym.registry)
    env = gym.make(REAL_ENV_IDS[0], render_mode="rgb_array", reset_bank=str(bank_path))
    try:
        assert isinstance(env.unwrapped, RealMetaWorldEnv)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # any checker warning fails
            gym_check_env(env.unwrapped)
            sb3_check_env(env, warn=True)
    finally:
        env.close()


def test_real_vec_env_matches_single_envs(bank_path):
    vec = make_real_vec_env(2, seed=3, reset_bank=str(bank_path))
    singles = [RealMetaWorldEnv(reset_bank=str(bank_path)) for _ in range(2)]
    try:
        obs = vec.reset()
        assert obs.shape == (2, 64, 64, 3) and obs.dtype == np.uint8
        a = np.array([[0.5, -0.2, 0.1, 1.0], [-0.3, 0.4, 0.0, -1.0]], np.float32)
        obs2, rew, dones, infos = vec.step(a)
        for i, env in enumerate(singles):
            o, _ = env.reset(seed=3 + i)
            np.testing.assert_array_equal(obs[i], o)
            o, r, *_ = env.step(a[i])
            np.testing.assert_array_equal(obs2[i], o)
            assert rew[i] == pytest.approx(r)
        assert not dones.any() and "is_success" in infos[0]
    finally:
        vec.close()
        for env in singles:
            env.close()


def test_camera_and_resolution_come_from_the_dataset_meta(tmp_path):
    from dataclasses import asdict

    from freeaction_gym.data.episodes import write_json_atomic

    cfg = MetaWorldDataConfig(camera="corner2", resolution=48, action_repeat=2)
    write_json_atomic(tmp_path / "meta.json", {"format_version": 1, "config": asdict(cfg)})
    env = RealMetaWorldEnv(model=str(tmp_path / "no_model"), task="reach-v3", data=str(tmp_path))
    ref_env, render = make_metaworld_env("reach-v3", 1000, 4, "corner2", 48, depth=False)
    try:
        assert (env.config.camera, env.config.action_repeat) == ("corner2", 2)
        assert env.observation_space.shape == (48, 48, 3)
        obs, _ = env.reset(seed=0, options={"layout": 4})
        ref_env.reset()
        np.testing.assert_array_equal(obs, render()[0])  # corner cameras flipped upright too
    finally:
        render.close()
        ref_env.close()
        env.close()


def test_failed_reset_does_not_reseed(bank_path):
    env, ref = (RealMetaWorldEnv(reset_bank=str(bank_path)) for _ in range(2))
    try:
        env.reset(seed=3)
        ref.reset(seed=3)
        with pytest.raises(ValueError, match="bank_index 9 out of range"):
            env.reset(seed=99, options={"bank_index": 9})
        assert env.reset()[1] == ref.reset()[1]  # the same scene: seed 3's stream continues
        assert env.reset()[1] == ref.reset()[1]
    finally:
        env.close()
        ref.close()
