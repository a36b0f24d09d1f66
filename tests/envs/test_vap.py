"""Env option ``conditioning: vap`` (visual action prompts, seed 004) on a tiny prompt model:
the env integrates the proprio model from the reset bank's robot state (checked against
``prompts.proprio.integrate``), draws the prompts the model is given (checked against
``render_prompts`` of those keypoints), reports the state in ``info`` in the single, vector
and SB3 envs, and names every mismatch of model, option, bank and reset options."""

from __future__ import annotations

import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch

from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.envs.core import Transition
from freeaction_gym.prompts.camera import PinholeCamera
from freeaction_gym.prompts.proprio import ProprioConfig, ProprioModel, integrate
from freeaction_gym.prompts.skeleton import render_prompts

ENV_ID = "FreeActionMetaWorldV2-v0"  # the action-path preset (tiny models)
HW = 32  # tiny model frames (conftest MW_HW)
FAST = {"scheduler": "ddim", "num_steps": 2}


def robot_bank(
    arm_pose: tuple[np.ndarray, np.ndarray], n: int = 3, seed: int = 0, with_robot: bool = True
) -> ResetBank:
    """``n`` random frames, each with the conftest ``arm_pose`` shifted by up to 5 cm."""
    arm_keypoints, arm_state = arm_pose
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, HW, HW, 3), dtype=np.uint8)
    shift = rng.uniform(-0.05, 0.05, (n, 1, 3)).astype(np.float32)  # each start elsewhere
    state = np.repeat(arm_state[None], n, 0)
    state[:, :3] += shift[:, 0]
    return ResetBank(
        frames, frames.copy(), np.array(["reach-v3"] * n), np.array([f"e{i}" for i in range(n)]),
        state=state if with_robot else None,
        keypoints=arm_keypoints[None] + shift if with_robot else None,
    )  # fmt: skip


@pytest.fixture(scope="module")
def vap(tmp_path_factory, tiny_prompt_world, arm_pose):
    """(world dir with proprio/ and reset_bank.npz, the proprio model)."""
    root = tmp_path_factory.mktemp("vap")
    # "trained": the branch's projections too, so prompts matter; g goes on to the proprio model
    g = torch.Generator().manual_seed(1)
    world = tiny_prompt_world(
        generator=g, trainable_only=True, prompt="controlnet", controlnet_depth=2
    )
    world_dir = world.save_pretrained(root / "world")
    robot_bank(arm_pose).save(world_dir / "reset_bank.npz")
    proprio = ProprioModel(ProprioConfig(hidden=32, depth=2))
    with torch.no_grad():  # a "trained" pose model: the keypoints move with the actions
        proprio.mlp[-1].weight.normal_(0.0, 2e-3, generator=g)
    proprio.save_pretrained(world_dir / "proprio")
    return world_dir, ProprioModel.from_pretrained(world_dir / "proprio")


def make(world_dir, **overrides) -> gym.Env:
    kw = dict(model=str(world_dir), reward="none", conditioning="vap", sampling=dict(FAST))
    return gym.make(ENV_ID, **(kw | overrides))


def spy_prompts(env) -> list[np.ndarray]:
    """Record the prompts the core hands to ``WorldModel.predict``."""
    core = env.unwrapped.core
    seen, predict = [], core.world.predict

    def wrapped(*args, prompts=None, **kwargs):
        seen.append(prompts.numpy().copy())
        return predict(*args, prompts=prompts, **kwargs)

    core.world.predict = wrapped
    return seen


def actions(n: int, k: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, k, 4)).astype(np.float32)


@pytest.mark.parametrize("chunk", [1, 2])
def test_vap_env_integrates_the_proprio_model_and_draws_its_prompts(vap, chunk):
    world_dir, proprio = vap
    env = make(world_dir, action_chunk=chunk)
    seen = spy_prompts(env)
    bank = ResetBank.load(world_dir / "reset_bank.npz")
    acts = actions(3, chunk)
    env.reset(seed=0, options={"bank_index": 1})
    infos = [env.step(a if chunk > 1 else a[0])[4] for a in acts]
    flat = acts.reshape(1, -1, 4)
    states, keypoints = integrate(proprio, bank.state[1:2], bank.keypoints[1:2], flat)
    camera = PinholeCamera.from_preset("workspace", HW)
    drawn = render_prompts(keypoints[0], camera)  # (T + 1, H, W, 3)
    for step, info in enumerate(infos):
        end = (step + 1) * chunk
        assert info["robot_state"].shape == (7,)
        np.testing.assert_allclose(info["robot_state"], states[0, end], atol=1e-6)
        frames = np.arange(end - chunk, end + 1)  # the context frame, then the chunk
        np.testing.assert_array_equal(seen[step][0], drawn[frames])
    assert not np.allclose(states[0, -1], states[0, 0])  # the robot did move
    assert drawn.max() > 0  # and is in view


def test_vap_env_is_deterministic_and_matches_the_vector_env(vap):
    world_dir, _ = vap
    acts = actions(3)

    def run(seed):
        env = make(world_dir)
        obs, _ = env.reset(seed=seed)
        out = [(obs, None)]
        for a in acts:
            o, _, _, _, info = env.step(a[0])
            out.append((o, info["robot_state"]))
        return out

    a, b = run(4), run(4)
    for (o1, s1), (o2, s2) in zip(a, b, strict=True):
        np.testing.assert_array_equal(o1, o2)
        assert (s1 is None and s2 is None) or np.array_equal(s1, s2)
    venv = gym.make_vec(
        ENV_ID, num_envs=2, model=str(world_dir), reward="none", conditioning="vap",
        sampling=dict(FAST),
    )  # fmt: skip
    venv.reset(seed=[4, 5])
    for k, act in enumerate(acts):
        *_, info = venv.step(np.stack([act[0], act[0]]))
        assert info["robot_state"].shape == (2, 7)
        np.testing.assert_array_equal(info["robot_state"][0], a[k + 1][1])


def test_sb3_infos_carry_the_robot_state(vap):
    pytest.importorskip("stable_baselines3")
    from freeaction_gym.envs.vector import make_sb3_vec_env

    world_dir, _ = vap
    venv = make_sb3_vec_env(
        num_envs=2, seed=0, model=str(world_dir), reward="none", conditioning="vap",
        sampling=dict(FAST),
    )  # fmt: skip
    venv.reset()
    _, _, _, infos = venv.step(actions(1, 2)[0])
    assert all(i["robot_state"].shape == (7,) for i in infos)
    tr = Transition(None, None, None, None, {"a": np.zeros(2), "s": np.ones((2, 7))}, None)
    assert tr.info_of(1)["a"] == 0.0 and tr.info_of(1)["s"].shape == (7,)


def test_reset_with_own_frame_needs_the_robot_state(vap, tiny, arm_pose):
    (world_dir, _), (keypoints, state) = vap, arm_pose
    env = make(world_dir)
    frame = np.zeros((HW, HW, 3), np.uint8)
    with pytest.raises(ValueError, match="initial_state of shape"):
        env.reset(options={"initial_frame": frame})
    with pytest.raises(ValueError, match="need initial_frame"):
        env.reset(options={"initial_state": state})
    env = make(world_dir)  # a fresh env: the passive checker keeps no data of failed resets
    env.reset(
        seed=0,
        options={"initial_frame": frame, "initial_state": state, "initial_keypoints": keypoints},
    )
    *_, info = env.step(actions(1)[0, 0])
    assert info["robot_state"].shape == (7,)
    plain = gym.make(ENV_ID, model=str(tiny.world_dir), reward="none", sampling=dict(FAST))
    with pytest.raises(ValueError, match="need env option conditioning='vap'"):
        plain.reset(options={"initial_frame": frame, "initial_state": state})


def test_mismatches_are_named(vap, tiny, arm_pose, tmp_path):
    world_dir, _ = vap
    with pytest.raises(ValueError, match="prompt='none'"):
        make(tiny.world_dir)
    with pytest.raises(ValueError, match="takes visual action prompts"):
        make(world_dir, conditioning="action")
    old = tmp_path / "old_bank.npz"
    robot_bank(arm_pose, with_robot=False).save(old)
    with pytest.raises(ValueError, match="stores none"):
        make(world_dir, reset_bank=str(old))
    bare = tmp_path / "bare"
    shutil.copytree(world_dir, bare, ignore=shutil.ignore_patterns("proprio"))
    with pytest.raises(FileNotFoundError, match="proprioceptive model"):
        make(bare)
    make(bare, proprio_model=str(world_dir / "proprio"))  # an explicit directory
    with pytest.raises(ValueError, match="prompt_camera"):
        make(world_dir, prompt_camera="corner2")
    with pytest.raises(ValueError, match="conditioning"):
        make(world_dir, conditioning="skeleton")


def test_bank_robot_state_round_trip(arm_pose, tmp_path):
    bank = robot_bank(arm_pose)
    assert bank.has_robot_state
    bank.save(tmp_path / "b.npz")
    back = ResetBank.load(tmp_path / "b.npz")
    np.testing.assert_array_equal(back.state, bank.state)
    np.testing.assert_array_equal(back.keypoints, bank.keypoints)
    robot_bank(arm_pose, with_robot=False).save(tmp_path / "old.npz")
    old = ResetBank.load(tmp_path / "old.npz")
    assert not old.has_robot_state and old.state is None
    with pytest.raises(ValueError, match="state must have"):
        ResetBank(bank.initial, bank.goal, bank.task, bank.episode, state=bank.state[:2])


def test_bundled_vap_preset_runs_the_prompt_model_and_its_proprio():
    """``FreeActionMetaWorldVAP-v0`` on the bundled ``metaworld_vap``: a prompt-channels
    model at the dataset's 64x64, its proprio model integrated from the bank's robot state;
    the reset bank and reward head are ``metaworld_default``'s files (not copied into vap)."""
    from freeaction_gym.assets import bundled_dir

    env = gym.make("FreeActionMetaWorldVAP-v0", sampling=dict(FAST))
    core = env.unwrapped.core
    assert core.world.dit.config.prompt == "channels"
    config = env.unwrapped.config
    assert config.reset_bank == "bundled:metaworld_default/reset_bank.npz"
    assert config.reward_head == "bundled:metaworld_default/reward_head"
    assert not (bundled_dir("metaworld_vap") / "reset_bank.npz").exists()
    bank = ResetBank.load(bundled_dir("metaworld_default") / "reset_bank.npz")
    proprio = ProprioModel.from_pretrained(bundled_dir("metaworld_vap") / "proprio")
    acts = actions(2, seed=5)[:, 0]
    obs, _ = env.reset(seed=0, options={"bank_index": 3})
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    np.testing.assert_array_equal(obs, bank.initial[3])
    for a in acts:
        obs, reward, _, _, info = env.step(a)
    states, _ = integrate(proprio, bank.state[3:4], bank.keypoints[3:4], acts[None])
    np.testing.assert_allclose(info["robot_state"], states[0, -1], atol=1e-5)
    assert np.isfinite(reward) and obs.shape == (64, 64, 3)


def test_vap_preset_files_come_from_the_default_bundle_everywhere():
    """The real counterpart mirrors the preset's ``bundled:metaworld_default/...`` bank, and
    the layouts' "own bank" of both ids is that bank (not the caller's ``reset_bank``)."""
    from freeaction_gym.assets import bundled_dir
    from freeaction_gym.envs.layouts import env_scenes
    from freeaction_gym.envs.real_metaworld import default_bank, make_real_env_config

    want = ResetBank.load(bundled_dir("metaworld_default") / "reset_bank.npz")
    real = make_real_env_config("FreeActionMetaWorldVAP-v0")
    assert real.reset_bank == "bundled:metaworld_default/reset_bank.npz"
    np.testing.assert_array_equal(default_bank(real).initial, want.initial)
    for env_id in ("FreeActionMetaWorldVAP-v0", "FreeActionRealMetaWorldVAP-v0"):
        own = env_scenes(env_id, {"reset_bank": "ignored.npz"}).own_bank
        np.testing.assert_array_equal(own.initial, want.initial, err_msg=env_id)
        np.testing.assert_array_equal(own.layout, want.layout, err_msg=env_id)


def test_a_wrong_bundled_path_option_fails_at_make_naming_it(tiny):
    kw = tiny.kwargs("FreeActionMetaWorldVAP-v0")
    with pytest.raises(FileNotFoundError, match=r"'bundled:metaworld_default/no_head'.*has no"):
        gym.make(
            "FreeActionMetaWorldVAP-v0",
            **{**kw, "reward_head": "bundled:metaworld_default/no_head"},
        )
    with pytest.raises(ValueError, match=r"unknown bundled model 'nope'"):
        gym.make("FreeActionMetaWorldVAP-v0", **{**kw, "reset_bank": "bundled:nope/reset_bank.npz"})
