"""Issue 38's environment items, in the style of test_bad_input.py: bad input gets a
``ValueError`` naming the option and the problem, and leaves the environment as a fresh,
identically seeded env that never saw it."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
from test_bad_input import A0, A1, ENV_ID, SEED, assert_same, make, reference  # shared helpers

from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.envs.vector import make_sb3_vec_env


def check_rejected_reset(tiny, options, match, first: bool, **overrides) -> None:
    """``reset(options=options)`` raises ``ValueError`` matching ``match``; the running
    episode (``first=False``) and the next reset are those of a fresh env."""
    env = make(tiny, disable_env_checker=first, **overrides)
    if not first:
        env.reset(seed=SEED)
        env.step(A0)
    with pytest.raises(ValueError, match=match):
        env.reset(seed=SEED, options=options)
    if not first:
        assert_same(env.step(A1), reference(tiny, [A0, A1], **overrides))
    env.reset(seed=SEED)
    assert_same(env.step(A0), reference(tiny, [A0], **overrides))


# -- item 10: num_envs and the options container ---------------------------------------------


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_num_envs_must_be_at_least_one(tiny, n):
    kw = dict(model=str(tiny.world_dir), sampling=dict(tiny.fast), reward="goal_latent")
    with pytest.raises(ValueError, match=rf"num_envs must be a whole number >= 1, got {n!r}"):
        gym.make_vec(ENV_ID, num_envs=n, **kw)
    with pytest.raises(ValueError, match=rf"num_envs must be a whole number >= 1, got {n!r}"):
        make_sb3_vec_env(num_envs=n, **kw)


@pytest.mark.parametrize("options", [[1, 2], "bank_index=0", 3], ids=["list", "str", "int"])
@pytest.mark.parametrize("first", [True, False], ids=["first-reset", "later-reset"])
def test_reset_options_must_be_a_dict(tiny, options, first):
    check_rejected_reset(tiny, options, "reset options must be a dict", first)


def test_vector_reset_options_must_be_dicts(tiny):
    kw = dict(model=str(tiny.world_dir), sampling=dict(tiny.fast), reward="goal_latent")
    venv, ref = (gym.make_vec(ENV_ID, num_envs=2, **kw) for _ in range(2))
    for v in (venv, ref):
        v.reset(seed=SEED)
    with pytest.raises(ValueError, match="reset options must be a dict"):
        venv.reset(seed=99, options=[{"bank_index": 0}, [1, 2]])
    np.testing.assert_array_equal(venv.reset()[0], ref.reset()[0])


# -- item 11: options that were silently ignored ---------------------------------------------


def test_latent_observation_refuses_frame_stack(tiny):
    with pytest.raises(ValueError, match=r"frame_stack=3 stacks RGB frames; observation='latent'"):
        make(tiny, observation="latent", frame_stack=3)
    env = make(tiny, observation="latent", frame_stack=1)  # the edge still runs
    assert env.observation_space.shape == (3, tiny.hw, tiny.hw)


@pytest.mark.parametrize("mode", ["human", "ansi", "rgb_array_list"])
def test_unsupported_render_mode_lists_the_supported_ones(tiny, mode):
    kw = dict(model=str(tiny.world_dir), sampling=dict(tiny.fast), reward="goal_latent")
    match = rf"render_mode='{mode}' is not supported; supported render modes: \['rgb_array'\]"
    with pytest.raises(ValueError, match=match):
        gym.make(ENV_ID, render_mode=mode, **kw)
    with pytest.raises(ValueError, match=match):
        gym.make_vec(ENV_ID, num_envs=2, render_mode=mode, **kw)
    env = gym.make(ENV_ID, render_mode="rgb_array", **kw)
    env.reset(seed=SEED)
    assert env.render().shape == (tiny.hw, tiny.hw, 3)


# -- item 3: a bank entry is a scene of one task ---------------------------------------------

# the tiny bank cycles reach-v3, push-v3, pick-place-v3: entry 0 is reach, 1 push, 2 pick-place
MISLABELLED = r"bank_index=0 is a 'reach-v3' scene, but the task is 'push-v3' \({}\)"


@pytest.mark.parametrize("first", [True, False], ids=["first-reset", "later-reset"])
def test_bank_index_of_another_task_is_refused(tiny, first):
    match = MISLABELLED.format("reset option task") + r".*bank indices \[1, 4\]"
    check_rejected_reset(tiny, {"bank_index": 0, "task": "push-v3"}, match, first)


@pytest.mark.parametrize("first", [True, False], ids=["first-reset", "later-reset"])
def test_bank_index_outside_the_envs_fixed_task_is_refused(tiny, first):
    match = MISLABELLED.format("env option task")
    check_rejected_reset(tiny, {"bank_index": 0}, match, first, task="push-v3")


def test_bank_index_of_the_task_is_labelled_with_it(tiny):
    env = make(tiny, task="push-v3")
    _, info = env.reset(seed=SEED, options={"bank_index": 4})
    assert info["task"] == "push-v3"
    _, info = make(tiny).reset(seed=SEED, options={"bank_index": 2, "task": "pick-place-v3"})
    assert info["task"] == "pick-place-v3"


def test_real_env_refuses_the_same_mismatch(tiny, tmp_path):
    """The real counterpart checks before it builds a simulator, with the same words."""
    from freeaction_gym.envs.real_metaworld import RealMetaWorldEnv

    bank = ResetBank.load(tiny.world_dir / "reset_bank.npz")
    n = len(bank)
    with_layouts = ResetBank(
        bank.initial, bank.goal, bank.task, bank.episode, np.arange(n), np.full(n, 1000)
    )
    with_layouts.save(tmp_path / "bank.npz")
    kw = dict(reset_bank=str(tmp_path / "bank.npz"), resolution=tiny.hw)
    env = RealMetaWorldEnv(**kw)
    with pytest.raises(ValueError, match=MISLABELLED.format("reset option task")):
        env.reset(seed=SEED, options={"bank_index": 0, "task": "push-v3"})
    fixed = RealMetaWorldEnv(task="push-v3", **kw)
    with pytest.raises(ValueError, match=MISLABELLED.format("env option task")):
        fixed.reset(seed=SEED, options={"bank_index": 0})
    assert fixed._needs_reset and fixed.scene == {}  # nothing started


# -- item 5: NaN/inf in a reset bank ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "row", "value"),
    [("state", 2, np.nan), ("keypoints", 0, np.inf), ("goal_pos", 5, -np.inf)],
)
def test_non_finite_bank_array_is_refused_naming_file_and_array(tiny, tmp_path, name, row, value):
    with np.load(tiny.vap_dir / "reset_bank.npz") as z:
        arrays = dict(z)
    n = len(arrays["initial"])
    arrays.setdefault("goal_pos", np.zeros((n, 3), np.float32))
    arrays[name] = arrays[name].copy()
    arrays[name][row].flat[1] = value
    path = tmp_path / "bad_bank.npz"
    np.savez(path, **arrays)
    match = (
        rf"reset bank {re.escape(str(path))} is broken \(reset bank array '{name}' holds "
        rf"non-finite values \(NaN/inf\) in 1 of {n} entries \(first: \[{row}\]\)"
    )
    with pytest.raises(ValueError, match=match):
        ResetBank.load(path)
    with pytest.raises(ValueError, match=match):  # at make time, before any observation
        gym.make(
            ENV_ID, model=str(tiny.vap_dir), reset_bank=str(path), proprio_obs=True,
            proprio_model=str(tiny.vap_dir / "proprio"), sampling=dict(tiny.fast),
        )  # fmt: skip
    arrays[name][row].flat[1] = 0.0  # the same bank, finite, loads
    np.savez(path, **arrays)
    assert np.isfinite(getattr(ResetBank.load(path), name)).all()


# -- items 6 and 7: absurd sampler values, a negative support penalty -------------------------

SUPPORT = {"low": [-5.0] * 4, "high": [5.0] * 4}

ABSURD_OPTIONS = [
    pytest.param(
        {"sampling": {"guidance": {"lam": -1}}},
        r"sampling\.guidance: lam must be in \[0, 10\] .*got -1",
        id="lam-negative",
    ),
    pytest.param(
        {"sampling": {"guidance": {"lam": 1e6}}},
        r"sampling\.guidance: lam must be in \[0, 10\] .*got 1000000",
        id="lam-huge",
    ),
    pytest.param(
        {"sampling": {"guidance": {"mode": "fixed", "scale": -2}}},
        r"sampling\.guidance: scale must be in \[1, 20\] .*got -2",
        id="scale-negative",
    ),
    pytest.param(
        {"sampling": {"truncation": {"mu_act": 0}}},
        r"sampling\.truncation\.mu_act must be > 0 .*got 0",
        id="mu-act-0",
    ),
    pytest.param(
        {"sampling": {"truncation": {"mu_act": -0.5}}},
        r"sampling\.truncation: mu_act must be >= 0 .*got -0\.5",
        id="mu-act-negative",
    ),
    pytest.param(
        {"sampling": {"rho": -1}}, r"sampling: rho must be in \(0, 100\] .*got -1", id="rho"
    ),
    pytest.param(
        {"sampling": {"sigma_min": 2.0, "sigma_max": 1.0}},
        r"sampling: edm noise levels need 0 < sigma_min < sigma_max",
        id="sigmas",
    ),
    pytest.param(
        {"support": {**SUPPORT, "penalty": -1.0}},
        r"support\.penalty must be a finite number >= 0 .*got -1\.0",
        id="penalty-negative",
    ),
    pytest.param(
        {"support": {**SUPPORT, "penalty": float("inf")}},
        r"support\.penalty must be a finite number >= 0",
        id="penalty-inf",
    ),
]


@pytest.mark.parametrize(("options", "match"), ABSURD_OPTIONS)
def test_absurd_option_fails_at_make_time_naming_option_and_range(tiny, options, match):
    with pytest.raises(ValueError, match=match):
        make(tiny, **options)


def test_range_edges_still_run(tiny):
    env = make(
        tiny,
        sampling={"guidance": {"lam": 10.0}, "truncation": {"mu_act": 0.1}},
        support={**SUPPORT, "penalty": 0.0},
    )
    env.reset(seed=SEED)
    assert np.isfinite(env.step(A0)[1])
    make(tiny, sampling={"guidance": {"mode": "fixed", "scale": 1.0}, "rho": 100.0})


def test_sampler_dataclasses_refuse_out_of_range_values():
    """Outside the env too: the sampler's own configs check their documented ranges."""
    from freeaction_gym.diffusion.guidance import ActionCFG
    from freeaction_gym.diffusion.truncation import NoiseTruncation
    from freeaction_gym.world_model.model import SamplingConfig

    with pytest.raises(ValueError, match=r"lam must be in \[0, 10\]"):
        ActionCFG(lam=float("nan"))
    with pytest.raises(ValueError, match=r"scale must be in \[1, 20\]"):
        ActionCFG(mode="fixed", scale=0.5)
    with pytest.raises(ValueError, match="mu_act must be >= 0"):
        NoiseTruncation(mu_act=-1.0)
    with pytest.raises(ValueError, match=r"rho must be in \(0, 100\]"):
        SamplingConfig(rho=0.0)
    assert NoiseTruncation().mu_act == 0.0  # "not given" stays the default


# -- item 12: paths and checkpoints; item 13: bundled names for from_pretrained --------------


def test_irasim_id_accepts_a_bundled_reset_bank(tiny, no_irasim_env_vars):
    kw = tiny.irasim_kwargs("FreeActionRT1-v0")
    kw["reset_bank"] = "bundled:metaworld_default/reset_bank.npz"
    # the bundle is found (not "missing or nonexistent"); its 64x64 frames do not fit 64x80
    with pytest.raises(
        ValueError,
        match=r"reset bank bundled:metaworld_default/reset_bank\.npz "
        r"has frames \(64, 64, 3\); the model makes \(64, 80",
    ):
        gym.make("FreeActionRT1-v0", **kw)  # fmt: skip
    kw["reset_bank"] = "bundled:metaworld_default/no_such_bank.npz"
    with pytest.raises(FileNotFoundError, match="has no 'no_such_bank.npz'"):
        gym.make("FreeActionRT1-v0", **kw)


def test_irasim_id_given_a_model_directory_says_it_expects_a_pt_file(tiny, no_irasim_env_vars):
    from freeaction_gym.models.checkpoint import CheckpointError

    kw = tiny.irasim_kwargs("FreeActionRT1-v0") | {"model": str(tiny.world_dir)}
    match = r"is a directory \(holding .*config\.json.*\), but an IRASim checkpoint is one \.pt"
    with pytest.raises(CheckpointError, match=match + r".*holds a freeaction world model"):
        gym.make("FreeActionRT1-v0", **kw)


def test_metaworld_id_given_a_garbage_file_says_it_is_not_a_checkpoint(tiny, tmp_path):
    from freeaction_gym.models.checkpoint import CheckpointError

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(
        CheckpointError,
        match=r"garbage\.pt is not a valid world-model checkpoint"
        r".*IRASim ids",
    ):
        make(tiny, model=str(garbage))  # fmt: skip
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"lacks config\.json \(it holds \['notes\.txt'\]"):
        make(tiny, model=str(empty))


def test_predict_names_non_finite_actions(tiny):
    import torch

    from freeaction_gym.world_model import WorldModel

    world = WorldModel.from_pretrained(tiny.world_dir)
    n = world.num_context
    context = torch.zeros(2, n, 3, tiny.hw, tiny.hw)
    actions = torch.zeros(2, n, tiny.action_dim)
    actions[1, -1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"actions must be finite: samples \[1\] of 2 hold NaN"):
        world.predict(context, actions, world.default_sampling(1, **tiny.fast))
    actions[1, -1, 2] = float("inf")
    with pytest.raises(ValueError, match="actions must be finite"):
        world.predict(context, actions, world.default_sampling(1, **tiny.fast))


def test_from_pretrained_takes_bundled_names_from_any_directory(tmp_path, monkeypatch):
    from freeaction_gym.world_model import WorldModel

    monkeypatch.chdir(tmp_path)  # not the repository root
    world = WorldModel.from_pretrained("bundled:metaworld_default")
    assert world.action_dim == 4
    with pytest.raises(ValueError, match="unknown bundled model 'nope'"):
        WorldModel.from_pretrained("bundled:nope")
