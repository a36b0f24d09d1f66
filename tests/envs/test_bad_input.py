"""Bad input gets a clear error and leaves the environment usable: after each rejected
call, the next valid step matches a fresh, identically seeded env that never saw it."""

from __future__ import annotations

import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from freeaction_gym.envs.env import VideoWorldModelEnv
from freeaction_gym.models.checkpoint import CheckpointError

ENV_ID = "FreeActionMetaWorld-v0"
SEED = 7
A0 = np.array([0.5, -0.2, 0.1, 0.3], np.float32)
A1 = np.array([-0.4, 0.6, 0.0, -0.1], np.float32)


def make(tiny, **overrides) -> gym.Env:
    kw = dict(model=str(tiny.world_dir), sampling=dict(tiny.fast), reward="goal_latent")
    kw.update(overrides)
    return gym.make(ENV_ID, **kw)


def reference(tiny, actions, **overrides):
    """(obs, reward, info) after reset(seed=SEED) and ``actions`` in a fresh env."""
    env = make(tiny, **overrides)
    env.reset(seed=SEED)
    out = None
    for a in actions:
        obs, r, _, _, info = env.step(a)
        out = (obs, r, info)
    return out


def assert_same(step_out, ref) -> None:
    obs, r, _, _, info = step_out
    np.testing.assert_array_equal(obs, ref[0])
    assert r == ref[1] and info == ref[2]


BAD_ACTIONS = [
    pytest.param(np.zeros(5, np.float32), "shape", id="wrong-shape"),
    pytest.param(np.zeros((2, 4), np.float32), "shape", id="chunk-for-chunk-1"),
    pytest.param(np.float32(0.3), "shape", id="scalar"),
    pytest.param(np.array([0.1, np.nan, 0.0, 0.0], np.float32), "NaN", id="nan"),
    pytest.param(np.array([0.1, np.inf, 0.0, 0.0]), "inf", id="inf"),
    pytest.param(np.array(["0.1", "0", "0", "0"]), "dtype", id="str"),
    pytest.param(np.array([0.1, None, 0.0, 0.0], dtype=object), "dtype", id="object"),
    pytest.param(["a", "b", "c", "d"], "dtype", id="list-of-str"),
]


@pytest.mark.parametrize(("bad", "match"), BAD_ACTIONS)
def test_bad_action_is_rejected_and_state_is_intact(tiny, bad, match):
    env = make(tiny)
    env.reset(seed=SEED)
    env.step(A0)
    with pytest.raises(ValueError, match=match):
        env.step(bad)
    assert_same(env.step(A1), reference(tiny, [A0, A1]))


def test_out_of_range_error_mode(tiny):
    env = make(tiny, out_of_range="error")
    env.reset(seed=SEED)
    env.step(A0)
    with pytest.raises(ValueError, match=r"outside \[-1, 1\].*out_of_range='clip'"):
        env.step(A1 * 3)
    assert_same(env.step(A1), reference(tiny, [A0, A1], out_of_range="error"))


def test_out_of_range_clip_mode_is_the_default(tiny):
    env = make(tiny)
    assert env.unwrapped.config.out_of_range == "clip"
    env.reset(seed=SEED)
    big = np.array([3.0, -2.0, 0.5, 1.5], np.float32)
    out = env.step(big)
    ref = reference(tiny, [np.clip(big, -1, 1)])
    assert_same(out, ref)
    assert out[-1]["action_norm"] == pytest.approx(np.linalg.norm(np.clip(big, -1, 1)), rel=1e-5)


def test_step_before_reset(tiny):
    env = make(tiny)
    with pytest.raises(gym.error.ResetNeeded):  # gym.make's OrderEnforcing wrapper
        env.step(A0)
    with pytest.raises(RuntimeError, match="reset"):  # the env itself
        env.unwrapped.step(A0)
    env.reset(seed=SEED)
    assert_same(env.step(A0), reference(tiny, [A0]))


def test_step_after_truncation_needs_reset(tiny, tmp_path):
    # The env's own episode limit (gym.make's max_episode_steps= is gymnasium's TimeLimit
    # wrapper, which never reaches the env), set here through a preset file.
    preset = tmp_path / "short.yaml"
    from freeaction_gym.envs.config import load_preset

    preset.write_text(yaml.safe_dump({**load_preset(ENV_ID), "max_episode_steps": 1}))
    env = make(tiny, preset=str(preset))
    assert env.unwrapped.config.max_episode_steps == 1
    env.reset(seed=SEED)
    assert env.step(A0)[3] is True
    with pytest.raises(RuntimeError, match="reset"):
        env.step(A1)
    env.reset(seed=SEED)
    assert_same(env.step(A0), reference(tiny, [A0]))


def test_step_after_termination_needs_reset(tiny):
    f = np.random.default_rng(0).integers(0, 256, (tiny.hw, tiny.hw, 3), dtype=np.uint8)
    env = make(tiny, goal_success_distance=1e9)  # success at once
    env.reset(seed=SEED, options={"initial_frame": f, "goal_frame": f})
    assert env.step(A0)[2] is True
    with pytest.raises(RuntimeError, match="reset"):
        env.step(A1)
    env.reset(seed=SEED)
    assert_same(env.step(A0), reference(tiny, [A0], goal_success_distance=1e9))


BAD_RESETS = [
    pytest.param(
        {"initial_frames": None}, "unknown reset option.*initial_frames", id="unknown-option"
    ),
    pytest.param({"initial_frame": np.zeros((16, 16, 3), np.uint8)}, "shape", id="frame-shape"),
    pytest.param(
        {"initial_frame": np.zeros((32, 32, 4), np.uint8)},
        "uint8 \\(H, W, 3\\)",
        id="frame-channels",
    ),
    pytest.param({"initial_frame": np.zeros((32, 32, 3), np.float32)}, "uint8", id="frame-dtype"),
    pytest.param(
        {
            "initial_frame": np.zeros((32, 32, 3), np.uint8),
            "goal_frame": np.zeros((8, 8, 3), np.uint8),
        },
        "goal_frame",
        id="goal-shape",
    ),
    pytest.param(
        {"task": "drawer-open-v3"}, "no entry for task 'drawer-open-v3'", id="unknown-task"
    ),
    pytest.param(
        {"initial_frame": np.zeros((32, 32, 3), np.uint8)}, "goal", id="goal-reward-without-goal"
    ),
]


@pytest.mark.parametrize(("options", "match"), BAD_RESETS)
@pytest.mark.parametrize("first", [True, False], ids=["first-reset", "later-reset"])
def test_bad_reset_is_rejected_and_state_is_intact(tiny, options, match, first):
    # gymnasium's PassiveEnvChecker cannot recover from a failed *first* reset (its
    # reset/step data-reuse check then unpacks None on the first step), so the first-reset
    # case tests the environment without that wrapper.
    env = make(tiny, disable_env_checker=first)
    if not first:
        env.reset(seed=SEED)
        env.step(A0)
    with pytest.raises(ValueError, match=match):
        env.reset(seed=SEED, options=options)
    if not first:  # the running episode is untouched
        assert_same(env.step(A1), reference(tiny, [A0, A1]))
    env.reset(seed=SEED)
    assert_same(env.step(A0), reference(tiny, [A0]))


# -- construction ---------------------------------------------------------------------------


def test_missing_model_dir(tiny, tmp_path):
    missing = tmp_path / "no_model_here"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        gym.make(ENV_ID, model=str(missing))


def test_missing_reward_head_explains_alternatives(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match="goal_latent"):
        make(tiny, reward="learned", reward_head=str(tmp_path / "nothing"))


def test_incompatible_world_model_checkpoint_lists_missing_key(tiny, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny.world_dir, broken)
    sd = load_file(str(broken / "model.safetensors"))
    del sd["blocks.1.attn.proj.weight"]
    save_file(sd, str(broken / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): blocks\.1\.attn\.proj\.weight"):
        gym.make(ENV_ID, model=str(broken))


def test_incompatible_irasim_checkpoint_lists_missing_key(tiny, tmp_path):
    obj = torch.load(tiny.rt1_ckpt, weights_only=True)
    del obj["ema"]["blocks.3.mlp.fc2.bias"]
    torch.save(obj, tmp_path / "broken.pt")
    kw = tiny.irasim_kwargs("FreeActionRT1-v0")
    kw["model"] = str(tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match=r"blocks\.3\.mlp\.fc2\.bias"):
        gym.make("FreeActionRT1-v0", **kw)


def test_unknown_kwarg_is_named(tiny):
    with pytest.raises(ValueError, match="frame_skip"):
        make(tiny, frame_skip=4)
    with pytest.raises(ValueError, match="num_step"):
        make(tiny, sampling={"num_step": 2})
    with pytest.raises(ValueError, match="observation='depth'"):
        make(tiny, observation="depth")


def test_unknown_yaml_key_is_named(tiny, tmp_path):
    preset = tmp_path / "custom.yaml"
    preset.write_text(f"model: {tiny.world_dir}\nreward: none\nframe_skip: 4\n")
    with pytest.raises(ValueError, match=r"custom\.yaml: unknown key\(s\) \['frame_skip'\]"):
        gym.make(ENV_ID, preset=str(preset))
    with pytest.raises(ValueError, match="frame_skip"):
        VideoWorldModelEnv(preset=str(preset))
