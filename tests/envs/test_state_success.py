"""``success: state``: MetaWorld's success rule on a state probe's reading of each imagined
frame, against the reset bank's ``goal_pos`` (or the ``goal_pos`` reset option).

Probes here are tiny :class:`StateProbe` s whose last layer is set so they output a known
state for any frame (weights 0, bias = the normalised state), or random ones whose outputs
the rule is recomputed on by hand (numpy)."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import freeaction_gym  # noqa: F401  (registers the ids)
from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.rewards.state_probe import StateProbe, StateProbeConfig
from freeaction_gym.rewards.state_success import METAWORLD_SUCCESS_RULES, TCP_OFFSET, StateSuccess

ENV_ID = "FreeActionMetaWorldV2-v0"  # the action-path preset (tiny models)
GOAL = np.array([0.05, 0.8, 0.05], np.float32)
README = Path(__file__).resolve().parents[2] / "README.md"


def constant_probe(directory: Path, state: np.ndarray | None) -> Path:
    """A tiny probe saved to ``directory`` that outputs ``state`` (7,) for every frame
    (random weights when ``state`` is None)."""
    torch.manual_seed(0)
    probe = StateProbe(StateProbeConfig(channels=(8,), pool_size=2, hidden=8))
    if state is not None:
        last = probe.mlp[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.copy_(probe.normalize(torch.as_tensor(state, dtype=torch.float32)[None])[0])
    probe.save_pretrained(directory)
    return directory


def state_at(hand_tcp_offset: float, object_offset: float) -> np.ndarray:
    """A state whose tcp is ``hand_tcp_offset`` m and object ``object_offset`` m from GOAL
    (along x)."""
    hand = GOAL - np.array(TCP_OFFSET, np.float32) + [hand_tcp_offset, 0, 0]
    return np.concatenate([hand, [0.5], GOAL + [object_offset, 0, 0]]).astype(np.float32)


@pytest.fixture(scope="module")
def goal_bank(tiny, tmp_path_factory) -> Path:
    """The tiny world's bank (tasks reach, push, pick-place, ...) with every goal at GOAL."""
    bank = ResetBank.load(tiny.world_dir / "reset_bank.npz")
    path = tmp_path_factory.mktemp("goal_bank") / "bank.npz"
    ResetBank(
        bank.initial, bank.goal, bank.task, bank.episode, goal_pos=np.tile(GOAL, (len(bank), 1))
    ).save(path)
    return path


def make(tiny, goal_bank, probe: Path, **kw):
    kw = {**tiny.kwargs(ENV_ID), "reset_bank": str(goal_bank), "terminate_on_success": False, **kw}
    return gym.make(ENV_ID, success="state", state_probe=str(probe), **kw)


@pytest.mark.parametrize(
    "hand, obj, expected",  # task -> success, thresholds: reach 0.05 (tcp), push 0.05, pp 0.07
    [
        (0.2, 0.03, {"reach-v3": False, "push-v3": True, "pick-place-v3": True}),
        (0.2, 0.06, {"reach-v3": False, "push-v3": False, "pick-place-v3": True}),
        (0.2, 0.08, {"reach-v3": False, "push-v3": False, "pick-place-v3": False}),
        (0.04, 0.2, {"reach-v3": True, "push-v3": False, "pick-place-v3": False}),
        (0.06, 0.2, {"reach-v3": False, "push-v3": False, "pick-place-v3": False}),
    ],
)
def test_success_flips_at_the_threshold(tiny, goal_bank, tmp_path, hand, obj, expected):
    state = state_at(hand, obj)
    env = make(tiny, goal_bank, constant_probe(tmp_path / "probe", state))
    for j in range(3):
        _, info = env.reset(seed=0, options={"bank_index": j})
        task = info["task"]
        _, _, _, _, info = env.step(env.action_space.sample())
        assert info["success"] is expected[task] and info["is_success"] is expected[task], task
        np.testing.assert_allclose(info["predicted_state"], state, atol=1e-5)


def test_reward_is_the_heads(tiny, goal_bank, tmp_path):
    """Only success changes: the rewards equal those of ``success: reward`` step for step."""
    probe = constant_probe(tmp_path / "probe", state_at(0.0, 0.0))
    a = make(tiny, goal_bank, probe)
    b = gym.make(ENV_ID, **{**tiny.kwargs(ENV_ID), "reset_bank": str(goal_bank)},
                 terminate_on_success=False)  # fmt: skip
    a.reset(seed=3), b.reset(seed=3)
    for action in np.random.default_rng(0).uniform(-1, 1, (3, 4)).astype(np.float32):
        oa, ra, *_, ia = a.step(action)
        ob, rb, *_, ib = b.step(action)
        np.testing.assert_array_equal(oa, ob)
        assert ra == rb and ia["success"] and "predicted_state" not in ib


def test_vector_and_single_envs_agree_with_the_rule_by_hand(tiny, goal_bank, tmp_path):
    probe_dir = constant_probe(tmp_path / "probe", None)  # random weights: varied readings
    n, steps = 3, 3
    venv = gym.make_vec(ENV_ID, num_envs=n, **{**tiny.kwargs(ENV_ID), "reset_bank":
                        str(goal_bank)}, success="state", state_probe=str(probe_dir),
                        terminate_on_success=False)  # fmt: skip
    actions = np.random.default_rng(1).uniform(-1, 1, (steps, n, 4)).astype(np.float32)
    venv.reset(seed=0, options=[{"bank_index": i} for i in range(n)])
    vec = [venv.step(actions[t])[4] for t in range(steps)]
    for i in range(n):
        env = make(tiny, goal_bank, probe_dir)
        _, info0 = env.reset(seed=i, options={"bank_index": i})
        for t in range(steps):
            info = env.step(actions[t, i])[4]
            np.testing.assert_allclose(info["predicted_state"], vec[t]["predicted_state"][i],
                                       atol=1e-3)  # fmt: skip
            assert info["success"] == vec[t]["success"][i]
            s = info["predicted_state"].astype(np.float64)
            rule = METAWORLD_SUCCESS_RULES[info0["task"]]
            point = s[:3] + TCP_OFFSET if rule.point == "tcp" else s[4:7]
            assert info["success"] == (np.linalg.norm(point - GOAL) <= rule.threshold)


def test_initial_frame_needs_goal_pos(tiny, goal_bank, tmp_path):
    env = make(tiny, goal_bank, constant_probe(tmp_path / "probe", state_at(0.2, 0.03)))
    frame = np.zeros((tiny.hw, tiny.hw, 3), np.uint8)
    env.reset(seed=0)  # (gymnasium's passive checker wants one good reset first)
    with pytest.raises(ValueError, match="needs reset option goal_pos"):
        env.reset(options={"initial_frame": frame, "task": "push-v3"})
    with pytest.raises(ValueError, match="goal_pos needs initial_frame"):
        env.reset(options={"goal_pos": GOAL})
    env.reset(options={"initial_frame": frame, "task": "push-v3", "goal_pos": GOAL})
    assert env.step(env.action_space.sample())[4]["success"] is True
    env.reset(options={"initial_frame": frame, "task": "push-v3", "goal_pos": GOAL + [0, 0.2, 0]})
    assert env.step(env.action_space.sample())[4]["success"] is False


def test_errors_name_the_option(tiny, goal_bank, tmp_path):
    probe = constant_probe(tmp_path / "probe", state_at(0.2, 0.2))
    with pytest.raises(ValueError, match="success='bogus'; allowed: 'reward', 'state'"):
        gym.make(ENV_ID, **tiny.kwargs(ENV_ID), success="bogus")
    with pytest.raises(ValueError, match="success='state'.*no goal_pos.*layouts"):
        gym.make(ENV_ID, **tiny.kwargs(ENV_ID), success="state", state_probe=str(probe))
    env = gym.make(ENV_ID, **{**tiny.kwargs(ENV_ID), "reset_bank": str(goal_bank)})
    env.reset(seed=0)
    with pytest.raises(ValueError, match="goal_pos needs env option success='state'"):
        env.reset(options={"initial_frame": np.zeros((tiny.hw,) * 2 + (3,), np.uint8),
                           "goal_pos": GOAL})  # fmt: skip
    with pytest.raises(ValueError, match="no success rule for task.*door-open-v3"):
        StateSuccess(StateProbe.from_pretrained(probe), ["reach-v3", "door-open-v3"])


def test_goal_pos_from_layouts_is_the_real_envs_target(tmp_path):
    """A bank with layouts but no goal_pos: the computed positions are the targets of the
    real env (RealMetaWorldEnv) reset to the same scenes (also the goal in its 39-D state)."""
    pytest.importorskip("metaworld")
    from freeaction_gym.envs.real_metaworld import RealMetaWorldEnv

    tasks = np.array(["reach-v3", "push-v3", "pick-place-v3", "push-v3"])
    layouts, seeds = np.array([0, 7, 13, 42]), np.array([1000, 1000, 0, 500])
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    bank = ResetBank(frames, frames, tasks, tasks, layouts, seeds)
    path = tmp_path / "bank.npz"
    bank.save(path)
    goal_pos = ResetBank.load(path).with_goal_pos().goal_pos
    env = RealMetaWorldEnv(reset_bank=str(path), resolution=32)
    try:
        for j in range(4):
            env.reset(seed=0, options={"bank_index": j})
            np.testing.assert_allclose(goal_pos[j], env._sim._target_pos, atol=1e-6)
            np.testing.assert_allclose(goal_pos[j], env.state[-3:], atol=1e-6)
    finally:
        env.close()
    assert len({tuple(g) for g in goal_pos}) == 4


def test_bundled_probe_and_bank():
    """The bundled probe is float16 on disk and loads; the bundled bank stores goal_pos,
    equal to the positions computed from its layouts."""
    from safetensors.numpy import load_file

    from freeaction_gym.assets import resolve_asset_path

    path = resolve_asset_path("bundled:metaworld_default/state_probe")
    assert {v.dtype for v in load_file(str(path / "model.safetensors")).values()} == {
        np.dtype("float16")
    }
    probe = StateProbe.from_pretrained(path)
    bank = ResetBank.load(resolve_asset_path("bundled:metaworld_default/reset_bank.npz"))
    assert bank.goal_pos is not None and bank.goal_pos.shape == (len(bank), 3)
    fp32 = Path(__file__).resolve().parents[2] / "checkpoints" / "probe_v2"
    if fp32.is_dir():  # a checkout with the training run: fp16 matches fp32 within 1 mm
        x = torch.from_numpy(bank.initial)
        with torch.inference_mode():
            diff = (probe(x) - StateProbe.from_pretrained(fp32)(x)).abs().max()
        assert diff < 1e-3
    if os.environ.get("MUJOCO_GL") and bank.has_layouts:
        pytest.importorskip("metaworld")
        from dataclasses import replace

        computed = replace(bank, goal_pos=None).with_goal_pos().goal_pos
        np.testing.assert_allclose(bank.goal_pos, computed, atol=1e-6)


def test_documented():
    readme = README.read_text()
    options = readme[readme.index("Main options") :][:3000]
    assert "`success` (`reward`" in options and "`state_probe`" in options
    from freeaction_gym.envs.config import CONFIG_DIR

    for preset in CONFIG_DIR.glob("FreeActionMetaWorld*.yaml"):
        text = preset.read_text()  # the learned-head presets vs the grounded ones
        learned = preset.stem in ("FreeActionMetaWorldV2-v0", "FreeActionMetaWorldVAP-v0")
        assert ("\nsuccess: reward" if learned else "\nsuccess: state") in text
        assert "state" in text
