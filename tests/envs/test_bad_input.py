"""Bad input gets a clear error and leaves the environment usable: after each rejected
call, the next valid step matches a fresh, identically seeded env that never saw it.
Every option is validated at make time, with the option's name in the message (issue 13)."""

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

ENV_ID = "FreeActionMetaWorldV2-v0"  # the action-path preset (tiny models)
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
    pytest.param(np.array([1, 0, 0, -1]), "float array, got dtype int64", id="int"),
    pytest.param([1, 0, 0, 0], "float array, got dtype int64", id="list-of-int"),
    pytest.param(np.array([True, False, True, True]), "dtype bool", id="bool"),
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


def test_huge_finite_action_is_clipped_not_called_nan(tiny):
    env = make(tiny)
    env.reset(seed=SEED)
    huge = np.array([1e300, -1e300, 0.5, 0.0])  # finite float64, inf once cast to float32
    assert_same(env.step(huge), reference(tiny, [np.array([1, -1, 0.5, 0], np.float32)]))
    strict = make(tiny, out_of_range="error")
    strict.reset(seed=SEED)
    with pytest.raises(ValueError, match=r"outside \[-1, 1\] \(max \|a\| = 1e\+300\)"):
        strict.step(huge)


def test_action_bound_is_the_action_box(tiny):
    bound = [0.4, 0.4, 0.2, 1.0]
    env = make(tiny, action_bound=bound)
    np.testing.assert_allclose(env.action_space.high, bound)
    np.testing.assert_allclose(env.action_space.low, -np.array(bound))
    env.reset(seed=SEED)
    big = np.array([0.9, -0.6, 0.1, -3.0], np.float32)
    # the model sees the action clipped into the box: as an unbounded env given it clipped
    assert_same(env.step(big), reference(tiny, [np.array([0.4, -0.4, 0.1, -1.0], np.float32)]))
    strict = make(tiny, action_bound=bound, out_of_range="error")
    strict.reset(seed=SEED)
    with pytest.raises(ValueError, match=r"outside \[-b, b\], b = \[0.4, 0.4, 0.2, 1.0\]"):
        strict.step(A0)  # 0.5 > 0.4
    ok = np.array([0.4, -0.2, 0.1, 0.3], np.float32)  # on the edge: accepted, state intact
    assert_same(strict.step(ok), reference(tiny, [ok]))
    chunked = make(tiny, action_bound=bound, action_chunk=2)
    assert chunked.action_space.shape == (2, 4)
    np.testing.assert_allclose(chunked.action_space.high, [bound, bound])


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
    # The env's own episode limit, set here through a preset file (gym.make's
    # max_episode_steps= sets the same option: tests/envs/test_env.py).
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
    pytest.param(
        {
            "initial_frame": np.zeros((32, 32, 3), np.uint8),
            "goal_frame": np.zeros((32, 32, 3), np.uint8),
            "task": "nope",
        },
        r"task='nope'; this env's tasks: \['pick-place-v3', 'push-v3', 'reach-v3'\]",
        id="unknown-task-with-own-frames",
    ),
    pytest.param(
        {"goal_frame": np.zeros((32, 32, 3), np.uint8)},
        "goal_frame needs initial_frame",
        id="goal-without-initial",
    ),
    pytest.param({"bank_index": 99}, r"bank_index=99: need 0 <= index < 6", id="bank-index-range"),
    pytest.param({"bank_index": 1.5}, "bank_index=1.5", id="bank-index-float"),
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


def test_failed_reset_does_not_reseed(tiny):
    """reset(seed=99, options=<bad>) is rejected before the seed is applied: the next
    unseeded reset continues the first seed's stream, as if the bad call never happened."""
    env, ref = make(tiny), make(tiny)
    for e in (env, ref):
        e.reset(seed=SEED)
        e.step(A0)
    with pytest.raises(ValueError, match="bogus"):
        env.reset(seed=99, options={"bogus": 1})
    (o1, _), (o2, _) = env.reset(), ref.reset()
    np.testing.assert_array_equal(o1, o2)
    assert_same(env.step(A1), _step(ref, A1))


def test_failed_vector_reset_does_not_reseed(tiny):
    kw = dict(model=str(tiny.world_dir), sampling=dict(tiny.fast), reward="goal_latent")
    venv, ref = (gym.make_vec(ENV_ID, num_envs=2, **kw) for _ in range(2))
    for v in (venv, ref):
        v.reset(seed=SEED)
    bad = [{"bank_index": 0}, {"bank_index": 77}]  # the second env's option is out of range
    with pytest.raises(ValueError, match="bank_index=77"):
        venv.reset(seed=99, options=bad)
    np.testing.assert_array_equal(venv.reset()[0], ref.reset()[0])
    a = np.stack([A0, A1])
    np.testing.assert_array_equal(venv.step(a)[0], ref.step(a)[0])


def _step(env, action):
    obs, r, _, _, info = env.step(action)
    return obs, r, info


# -- every option at make time (issue 13) ------------------------------------------------

BAD_OPTIONS = [
    pytest.param(
        {"sampling": {"num_steps": -1}}, r"sampling\.num_steps must be >= 1", id="steps-neg"
    ),
    pytest.param({"sampling": {"num_steps": 0}}, r"sampling\.num_steps must be >= 1", id="steps-0"),
    pytest.param(
        {"sampling": {"num_steps": 2.7}}, r"sampling\.num_steps must be a whole", id="steps-2.7"
    ),
    pytest.param(
        {"sampling": {"num_steps": "2"}}, r"sampling\.num_steps must be a whole", id="steps-str"
    ),
    pytest.param(
        {"sampling": {"scheduler": "nope"}},
        r"sampling\.scheduler='nope'; allowed: pndm",
        id="scheduler",
    ),
    pytest.param(
        {"sampling": {"truncation": {"tau_min": 2.0, "tau_max": 1.0}}},
        r"0 < tau_min <= tau_max .* tau_min=2\.0, tau_max=1\.0",
        id="tau-min-above-max",
    ),
    pytest.param(
        {"sampling": {"truncation": {"tau_min": -1}}},
        r"0 < tau_min <= tau_max",
        id="tau-min-negative",
    ),
    pytest.param(
        {"sampling": {"truncation": {"fixed_tau": 0}}},
        r"truncation\.fixed_tau must be > 0",
        id="fixed-tau",
    ),
    pytest.param(
        {"sampling": {"guidance": {"lamda": 2}}},
        r"sampling\.guidance has unknown key\(s\) \['lamda'\]; known: \['cutoff', 'lam'",
        id="nested-typo",
    ),
    pytest.param(
        {"sampling": {"guidance": "none"}}, r"sampling\.guidance must be a mapping", id="nested-str"
    ),
    pytest.param(
        {"sampling": {"guidance": {"cutoff": 1.5}}},
        r"sampling\.guidance: cutoff must be",
        id="cutoff",
    ),
    pytest.param(
        {"sampling": {"guidance": {"lam": float("nan")}}},
        r"guidance\.lam must be a finite",
        id="lam-nan",
    ),
    pytest.param(
        {"sampling": {"norm": {"kind": "l1"}}}, r"sampling\.norm\.kind='l1'", id="norm-kind"
    ),
    pytest.param(
        {"sampling": {"batch_cfg": "yes"}},
        r"sampling\.batch_cfg must be true or false",
        id="batch-cfg",
    ),
    pytest.param({"sampling": [1]}, r"sampling must be a mapping", id="sampling-list"),
    pytest.param(
        {"terminate_on_success": "no"}, "terminate_on_success must be true or false", id="bool-str"
    ),
    pytest.param({"compile": 1}, "compile must be true or false", id="bool-int"),
    pytest.param(
        {"action_chunk": "2"}, "action_chunk must be a whole number, got '2'", id="chunk-str"
    ),
    pytest.param(
        {"action_chunk": 2.5}, "action_chunk must be a whole number, got 2.5", id="chunk-float"
    ),
    pytest.param(
        {"frame_stack": 2.5}, "frame_stack must be a whole number, got 2.5", id="stack-float"
    ),
    pytest.param({"frame_stack": 0}, "frame_stack must be >= 1", id="stack-0"),
    pytest.param({"max_episode_steps": True}, "max_episode_steps must be a whole", id="steps-bool"),
    pytest.param(
        {"goal_success_distance": "far"}, "goal_success_distance must be a finite", id="dist-str"
    ),
    pytest.param(
        {"action_scale": [1, "x", 1, 1]}, r"action_scale\[1\] must be a finite", id="scale-str"
    ),
    pytest.param(
        {"action_bound": [0.5, 1.5, 0.5, 1]},
        r"action_bound needs entries in \(0, 1\]",
        id="bound>1",
    ),
    pytest.param({"action_bound": []}, r"action_bound needs entries in \(0, 1\]", id="bound-empty"),
    pytest.param({"model": None}, "env option model must be a string, got None", id="model-none"),
    pytest.param({"model": 3}, "env option model must be a string, got 3", id="model-int"),
    pytest.param({"task": 7}, "env option task must be a string", id="task-int"),
]


@pytest.mark.parametrize(("options", "match"), BAD_OPTIONS)
def test_bad_option_fails_at_make_time_naming_it(tiny, options, match):
    with pytest.raises(ValueError, match=match):
        make(tiny, **options)


MODEL_BOUND_OPTIONS = [  # need the loaded model; the tiny model's window is 2 frames
    pytest.param(
        {"sampling": {"num_steps": 5000}},
        r"num_steps=5000 exceeds the model's 1000",
        id="steps-5000",
    ),
    pytest.param(
        {"sampling": {"scheduler": "pndm", "num_steps": 2}},
        r"scheduler 'pndm' cannot run num_steps=2",
        id="pndm-warmup",
    ),
    pytest.param(
        {"action_chunk": 3}, r"action_chunk=3 exceeds this model's window: .* 2 frames", id="chunk"
    ),
    pytest.param(
        {"action_scale": [1.0, 1.0]},
        "action_scale has 2 entries; the model's actions 4",
        id="scale-dim",
    ),
    pytest.param(
        {"action_bound": [0.5, 0.5]},
        "action_bound has 2 entries; the actions have 4",
        id="bound-dim",
    ),
    pytest.param(
        {"task": "drawer-open-v3"}, "no entry for task 'drawer-open-v3'", id="task-not-in-bank"
    ),
]


@pytest.mark.parametrize(("options", "match"), MODEL_BOUND_OPTIONS)
def test_model_bound_option_fails_at_make_time(tiny, options, match):
    with pytest.raises(ValueError, match=match):
        make(tiny, **options)


def test_bank_of_the_wrong_frame_size_fails_at_make_time(tiny):
    with pytest.raises(ValueError, match=r"reset bank .*irasim_bank\.npz has frames \(64, 80, 3\)"):
        make(tiny, reset_bank=str(tiny.irasim_bank))


def test_one_task_reward_head_needs_the_task_option(tiny, tmp_path):
    from freeaction_gym.rewards.learned import RewardHead, RewardHeadConfig

    head = RewardHead(RewardHeadConfig(tasks=["reach-v3"], channels=(4,), hidden=8))
    head.save_pretrained(tmp_path / "head")
    with pytest.raises(ValueError, match=r"knows tasks \['reach-v3'\].*pass task="):
        make(tiny, reward="learned", reward_head=str(tmp_path / "head"))
    env = make(tiny, reward="learned", reward_head=str(tmp_path / "head"), task="reach-v3")
    env.reset(seed=SEED)
    _, reward, *_ = env.step(np.zeros(4, np.float32))
    assert np.isfinite(reward)


def test_valid_edge_options_still_run(tiny):
    env = make(
        tiny, action_chunk=2, sampling={"num_steps": np.int64(1)}, terminate_on_success=False
    )
    assert env.unwrapped.config.sampling["num_steps"] == 1
    env.reset(seed=SEED)
    assert env.step(np.zeros((2, 4), np.float32))[0].shape == (tiny.hw, tiny.hw, 3)


# -- broken files: errors name the file and the cause (issue 13) --------------------------


def broken_copy(tiny, tmp_path, name: str, damage) -> str:
    """A copy of the tiny model directory with ``name`` damaged by ``damage(path)``."""
    target = tmp_path / "model"
    shutil.copytree(tiny.world_dir, target)
    damage(target / name)
    return str(target)


def overwrite_4kb_with_ff(path) -> None:
    """Up to 4 KB of the tensor data (past the safetensors header) set to 0xff (NaN)."""
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")  # u64 header length, then the header
    n = min(4096, (len(data) - start) // 2)
    data[start + n // 2 : start + n // 2 + n] = b"\xff" * n  # float32 0xffffffff is NaN
    path.write_bytes(bytes(data))


def test_nan_weights_are_refused_naming_the_file(tiny, tmp_path):
    model = broken_copy(tiny, tmp_path, "model.safetensors", overwrite_4kb_with_ff)
    with pytest.raises(CheckpointError, match=r"model\.safetensors: non-finite \(NaN/inf\)"):
        make(tiny, model=model)


def test_nan_reward_head_is_refused_naming_the_file(tiny, tmp_path):
    model = broken_copy(tiny, tmp_path, "reward_head/model.safetensors", overwrite_4kb_with_ff)
    with pytest.raises(CheckpointError, match=r"reward_head/model\.safetensors: non-finite"):
        make(tiny, model=model, reward="learned")


def truncate(path) -> None:
    path.write_bytes(path.read_bytes()[:5000])


BROKEN_FILES = [
    pytest.param(
        "model.safetensors", truncate, r"cannot read weights .*model\.safetensors", id="truncated"
    ),
    pytest.param(
        "config.json",
        lambda p: p.write_text("{not json"),
        r"config\.json is not valid JSON",
        id="garbage",
    ),
    pytest.param(
        "config.json",
        lambda p: p.write_text('{"codec": "pixel"}'),
        r"config\.json lacks the entry 'config'",
        id="no-config",
    ),
    pytest.param(
        "config.json",
        lambda p: p.write_text(
            p.read_text().replace('"diffusion": {', '"diffusion": {"bogus": 1, ')
        ),
        r"config\.json: cannot rebuild the world model .*bogus",
        id="bad-diffusion",
    ),
    pytest.param(
        "reset_bank.npz",
        lambda p: p.write_bytes(b"not a zip" * 100),
        r"reset_bank\.npz is not a readable reset-bank \.npz \(not an \.npz \(zip\) archive\)",
        id="bank-not-zip",
    ),
    pytest.param(
        "reset_bank.npz",
        lambda p: np.savez(p, initial=np.zeros((1, 32, 32, 3), np.uint8)),
        r"lacks the array\(s\) \['goal', 'task', 'episode'\]",
        id="bank-keys",
    ),
]


@pytest.mark.parametrize(("name", "damage", "match"), BROKEN_FILES)
def test_broken_model_files_name_file_and_cause(tiny, tmp_path, name, damage, match):
    model = broken_copy(tiny, tmp_path, name, damage)
    with pytest.raises((CheckpointError, ValueError), match=match):
        make(tiny, model=model)
