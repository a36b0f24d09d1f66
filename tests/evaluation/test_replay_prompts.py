"""Visual action prompts in the offline evaluation: rollouts hand every chunk its window of
the prompt video (checked against step-by-step ``WorldModel.predict`` calls), replay and
short clips pass them on (shuffled with the actions), ``true`` prompts are the stored
keypoints drawn through the dataset camera (checked against ``render_prompts`` through the
camera preset), ``proprio`` prompts are the proprio model integrated from the first frame
(checked against ``prompts.proprio.integrate``), and every mismatch is named."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from freeaction_gym.data.episodes import FORMAT_VERSION, write_episode, write_json_atomic
from freeaction_gym.data.metaworld_gen import CAMERA_PRESETS
from freeaction_gym.diffusion import ActionCFG, NoiseTruncation
from freeaction_gym.evaluation.prompt_source import clip_prompts, proprio_prompts, true_prompts
from freeaction_gym.evaluation.replay import (
    evaluate_replay,
    load_replay_set,
    short_clip_scores,
)
from freeaction_gym.evaluation.rollout import (
    clip_generators,
    collect_clips,
    encode_frames,
    rollout_autoregressive,
)
from freeaction_gym.prompts.camera import PinholeCamera
from freeaction_gym.prompts.proprio import ProprioConfig, ProprioModel, integrate
from freeaction_gym.prompts.skeleton import render_prompts
from freeaction_gym.world_model import SamplingConfig, WorldModel

REPO = Path(__file__).resolve().parents[2]
HW, A = 32, 4


def plain(steps: int = 2) -> SamplingConfig:
    return SamplingConfig(
        num_steps=steps, guidance=ActionCFG(mode="none"), truncation=NoiseTruncation(mode="none")
    )


@pytest.fixture
def prompt_world(tiny_prompt_world):
    """``prompt_world(num_context=2, prompt="both")``: a 32x32 pixel-space prompt model
    (4 frames), every weight perturbed so the prompts and both prompt paths matter."""

    def make(num_context: int = 2, prompt: str = "both") -> WorldModel:
        return tiny_prompt_world(num_frames=4, num_context_frames=num_context, prompt=prompt)

    return make


def write_robot_dataset(root, arm_pose, actions: int = 9, seed: int = 0):
    """3 test episodes with per-frame state and keypoints (the conftest ``arm_pose`` drifting
    by up to 1 cm per frame) and 1 val episode with keypoints but no state; meta.json carries
    the camera."""
    arm_keypoints, arm_state = arm_pose
    rng = np.random.default_rng(seed)
    camera = asdict(CAMERA_PRESETS["workspace"])
    meta = {"format_version": FORMAT_VERSION, "camera": camera, "config": {"resolution": HW}}
    write_json_atomic(root / "meta.json", meta)
    for split, count in (("test", 3), ("val", 1)):
        for i in range(count):
            drift = np.cumsum(rng.uniform(-0.01, 0.01, (actions + 1, 1, 3)), 0).astype(np.float32)
            keypoints = arm_keypoints[None] + drift  # (T+1, K, 3)
            state = np.repeat(arm_state[None], actions + 1, 0)
            state[:, :3] = keypoints[:, 4]  # the hand
            arrays = {
                "rgb": rng.integers(0, 256, (actions + 1, HW, HW, 3), dtype=np.uint8),
                "action": rng.uniform(-1, 1, (actions, A)).astype(np.float32),
                "reward": np.zeros(actions, np.float32),
                "success": np.zeros(actions, bool),
                "layout": np.array(i),
                "seed": np.array(i),
                "task": np.array("reach-v3"),
                "keypoints": keypoints,
            }
            if split == "test":
                arrays["state"] = state
            write_episode(root / split / f"reach-v3_{i:05d}.npz", arrays)
    return root


@pytest.fixture(scope="module")
def robot_dataset(tmp_path_factory, arm_pose):
    return write_robot_dataset(tmp_path_factory.mktemp("robot_data"), arm_pose)


def stored(root, split, name):
    with np.load(root / split / name) as z:
        return {k: z[k] for k in z.files}


def moving_proprio(seed: int = 2) -> ProprioModel:
    """A "trained" pose model: the keypoints move with the actions (same seed, same model)."""
    torch.manual_seed(seed)
    proprio = ProprioModel(ProprioConfig(hidden=32, depth=2))
    with torch.no_grad():
        proprio.mlp[-1].weight.normal_(0.0, 2e-3, generator=torch.Generator().manual_seed(seed))
    return proprio.eval()


def random_inputs(b: int = 2, n: int = 2, t: int = 5, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    ctx = torch.rand(b, n, 3, HW, HW, generator=g) * 2 - 1
    acts = torch.rand(b, n - 1 + t, A, generator=g) * 2 - 1
    prompts = torch.randint(0, 256, (b, n + t, HW, HW, 3), dtype=torch.uint8, generator=g)
    return ctx, acts, prompts


# -- rollout --------------------------------------------------------------------------------
def test_rollout_at_chunk_one_is_predict_step_by_step_on_prompt_windows(prompt_world):
    world, n, t = prompt_world(), 2, 5
    ctx, acts, prompts = random_inputs(n=n, t=t)
    z = rollout_autoregressive(
        world, ctx, acts, plain(), chunk=1, generator=torch.Generator().manual_seed(0),
        prompts=prompts,
    )  # fmt: skip
    g = torch.Generator().manual_seed(0)
    frames = list(ctx.unbind(1))
    for f in range(n, n + t):  # frame f: context f - n .. f - 1, actions into them, prompts
        out, _ = world.predict(torch.stack(frames[-n:], 1), acts[:, f - n : f], plain(),
                               generator=g, prompts=prompts[:, f - n : f + 1])  # fmt: skip
        frames.append(out[:, 0])
    assert z.shape == (2, n + t, 3, HW, HW)
    assert torch.equal(z, torch.stack(frames, 1))
    # frame f's prompt reaches frame f and later, never earlier ones
    other = prompts.clone()
    other[:, 4] = 255 - other[:, 4]
    z2 = rollout_autoregressive(
        world, ctx, acts, plain(), chunk=1, generator=torch.Generator().manual_seed(0),
        prompts=other,
    )  # fmt: skip
    assert torch.equal(z2[:, :4], z[:, :4]) and not torch.allclose(z2[:, 4], z[:, 4])


def test_rollout_chunks_hand_each_window_its_prompts(prompt_world, monkeypatch):
    world, n, t = prompt_world(), 2, 5
    ctx, acts, prompts = random_inputs(n=n, t=t)
    calls, predict = [], world.predict

    def spy(context, actions, sampling=None, **kw):
        calls.append((actions.clone(), kw["prompts"].clone()))
        return predict(context, actions, sampling, **kw)

    monkeypatch.setattr(world, "predict", spy)
    z = rollout_autoregressive(world, ctx, acts, plain(), None, clip_generators(0, [0, 1]),
                               prompts)  # fmt: skip
    assert z.shape == (2, n + t, 3, HW, HW)
    done = 0
    for k in (2, 2, 1):  # chunks of the maximum 2, then the rest
        a, p = calls.pop(0)
        assert torch.equal(a, acts[:, done : done + n - 1 + k])
        assert torch.equal(p, prompts[:, done : done + n + k])  # n context + k new frames
        done += k
    assert not calls


def test_rollout_prompt_errors(prompt_world):
    world = prompt_world()
    ctx, acts, prompts = random_inputs(n=2, t=3)
    with pytest.raises(ValueError, match="cover every frame"):
        rollout_autoregressive(world, ctx, acts, plain(), prompts=prompts[:, 1:])
    with pytest.raises(ValueError, match="cover every frame"):
        rollout_autoregressive(world, ctx, acts, plain(), prompts=prompts[:1])
    with pytest.raises(ValueError, match="uint8"):
        rollout_autoregressive(world, ctx, acts, plain(), prompts=prompts.float())
    with pytest.raises(ValueError, match="needs prompts"):  # WorldModel.predict's own check
        rollout_autoregressive(world, ctx, acts, plain())
    with pytest.raises(ValueError, match="takes no prompts"):
        rollout_autoregressive(prompt_world(prompt="none"), ctx, acts, plain(), prompts=prompts)


# -- prompt sources -------------------------------------------------------------------------
def test_true_prompts_are_the_stored_keypoints_drawn(robot_dataset):
    clips = collect_clips(robot_dataset, "test", 4)  # 10 frames: windows at 0 and 4
    assert clips.starts == [0, 4, 0, 4, 0, 4]
    prompts = clip_prompts(robot_dataset, "test", clips, "true")
    assert prompts.dtype == np.uint8 and prompts.shape == (6, 4, HW, HW, 3)
    camera = PinholeCamera.from_preset("workspace", HW)
    for i, (name, s) in enumerate(zip(clips.episodes, clips.starts, strict=True)):
        keypoints = stored(robot_dataset, "test", name)["keypoints"][s : s + 4]
        np.testing.assert_array_equal(prompts[i], render_prompts(keypoints, camera))
    assert prompts.max() > 0 and not np.array_equal(prompts[:, 0], prompts[:, -1])


def test_proprio_prompts_integrate_from_the_first_frame(robot_dataset):
    clips = collect_clips(robot_dataset, "test", 5, num_clips=2, seed=1)
    truth = true_prompts(robot_dataset, "test", clips)
    # a fresh model predicts no pose change: the arm stays where the clip starts
    still = proprio_prompts(robot_dataset, "test", clips, ProprioModel(ProprioConfig(hidden=8)))
    np.testing.assert_array_equal(still, np.repeat(truth[:, :1], 5, axis=1))
    # a moving one: its open-loop keypoints drawn through the camera preset
    proprio = moving_proprio()
    prompts = clip_prompts(robot_dataset, "test", clips, "proprio", proprio)
    camera = PinholeCamera.from_preset("workspace", HW)
    for i, (name, s) in enumerate(zip(clips.episodes, clips.starts, strict=True)):
        ep = stored(robot_dataset, "test", name)
        _, keypoints = integrate(
            proprio, ep["state"][s : s + 1], ep["keypoints"][s : s + 1], clips.actions[i : i + 1]
        )  # (1, 5, K, 3)
        np.testing.assert_array_equal(prompts[i], render_prompts(keypoints[0], camera))
    np.testing.assert_array_equal(prompts[:, 0], truth[:, 0])
    assert not np.array_equal(prompts[:, -1], still[:, -1])


def test_prompt_sources_name_what_is_missing(robot_dataset, tiny_dataset):
    clips = collect_clips(tiny_dataset, "test", 4, num_clips=1)
    with pytest.raises(ValueError, match="stores no keypoints"):
        clip_prompts(tiny_dataset, "test", clips, "true")
    val = collect_clips(robot_dataset, "val", 4)
    assert clip_prompts(robot_dataset, "val", val, "true").shape == (2, 4, HW, HW, 3)
    with pytest.raises(ValueError, match="stores no robot state"):
        clip_prompts(robot_dataset, "val", val, "proprio", moving_proprio())
    with pytest.raises(ValueError, match="needs a ProprioModel"):
        clip_prompts(robot_dataset, "val", val, "proprio")
    with pytest.raises(ValueError, match="unknown prompt source"):
        clip_prompts(robot_dataset, "val", val, "skeleton")
    five = ProprioModel(ProprioConfig(num_keypoints=5, hidden=8))
    test = collect_clips(robot_dataset, "test", 4, num_clips=1)
    with pytest.raises(ValueError, match="proprio model takes 5"):
        clip_prompts(robot_dataset, "test", test, "proprio", five)


# -- replay and short clips -----------------------------------------------------------------
def test_replay_set_cuts_prompts_with_the_frames(robot_dataset):
    data = load_replay_set(robot_dataset, "test", num_context=2, horizon=4, num_clips=2)
    prompts = true_prompts(robot_dataset, "test", data.clips)
    data = replace(data, prompts=prompts)
    one = data.for_context(1)
    np.testing.assert_array_equal(one.prompts, prompts[:, 1:])
    assert one.prompts.shape[:2] == one.clips.frames.shape[:2]
    np.testing.assert_array_equal(data.for_context(2).prompts, prompts)
    with pytest.raises(ValueError, match=r"\(N, F\) = \(2, 6\)"):
        replace(data, prompts=prompts[:, 1:])
    with pytest.raises(ValueError, match="uint8"):
        replace(data, prompts=prompts.astype(np.float32))


def test_evaluate_replay_rolls_out_with_the_sets_prompts(robot_dataset, prompt_world):
    world = prompt_world()
    data = load_replay_set(robot_dataset, "test", num_context=2, horizon=4, num_clips=3)
    data = replace(data, prompts=true_prompts(robot_dataset, "test", data.clips))
    res = evaluate_replay(world, data, plain(), None, (1, 4), chunk=None, seed=5, batch=3)
    frames = data.clips.frames
    ctx = encode_frames(world, frames[:, :2])
    gens, prompts = clip_generators(5, range(3)), torch.from_numpy(data.prompts)
    z = rollout_autoregressive(world, ctx, data.clips.actions, plain(), None, gens, prompts)
    np.testing.assert_array_equal(res.imagined, world.decode(z).numpy())
    np.testing.assert_array_equal(res.imagined[:, :2], frames[:, :2])
    with pytest.raises(ValueError, match="needs prompts"):
        evaluate_replay(world, replace(data, prompts=None), plain(), None, (1,))


def test_short_clips_shuffle_prompts_with_the_actions(robot_dataset, prompt_world, monkeypatch):
    world, n = prompt_world(), 2
    clips = collect_clips(robot_dataset, "test", n + 4, num_clips=3)
    prompts = true_prompts(robot_dataset, "test", clips)
    calls, predict = [], world.predict

    def spy(context, actions, sampling=None, **kw):
        calls.append((actions.clone(), kw["prompts"].numpy().copy()))
        return predict(context, actions, sampling, **kw)

    monkeypatch.setattr(world, "predict", spy)
    scores = short_clip_scores(world, clips, n, plain(), None, seed=0, batch=3, prompts=prompts)
    assert all(v.shape == (3,) and np.isfinite(v).all() for v in scores.values())
    rolled = np.concatenate([prompts[:, :n], np.roll(prompts[:, n:], 1, axis=0)], axis=1)
    acts = clips.actions
    rolled_acts = torch.cat([acts[:, : n - 1], acts[:, n - 1 :].roll(1, 0)], 1)
    assert len(calls) == 4  # two chunks of 2 frames, for the true then the shuffled actions
    for run, (p, a) in enumerate(((prompts, acts), (rolled, rolled_acts))):
        for j, done in enumerate((0, 2)):
            got_a, got_p = calls[2 * run + j]
            np.testing.assert_array_equal(got_p, p[:, done : done + n + 2])
            assert torch.equal(got_a, a[:, done : done + n + 1])
    # clip b's context keeps its own prompts, its new frames show clip b - 1's
    np.testing.assert_array_equal(calls[2][1][1, :n], prompts[1, :n])
    np.testing.assert_array_equal(calls[2][1][1, n:], prompts[0, n : n + 2])


# -- the experiment script ------------------------------------------------------------------
def test_script_gives_prompt_models_their_prompts(
    robot_dataset, tiny_dataset, prompt_world, tmp_path, monkeypatch, load_experiment
):
    script = load_experiment("world_model_fidelity")
    with_proprio, bare = tmp_path / "with", tmp_path / "bare"
    prompt_world().save_pretrained(with_proprio)
    prompt_world().save_pretrained(bare)
    moving_proprio().save_pretrained(with_proprio / "proprio")
    worlds = {"vap": WorldModel.from_pretrained(with_proprio), "plain": prompt_world(2, "none")}
    specs = {"vap": str(with_proprio), "plain": "unused"}
    clips = collect_clips(robot_dataset, "test", 4, num_clips=2)

    assert script.proprio_models("true", None, specs, worlds) == {}
    proprio = script.proprio_models("proprio", None, specs, worlds)  # <model dir>/proprio
    assert set(proprio) == {"vap"} and proprio["vap"][0] == with_proprio / "proprio"
    got = script.model_prompts(str(robot_dataset), "test", clips, worlds, "proprio", proprio)
    assert got["plain"] is None
    want = proprio_prompts(robot_dataset, "test", clips, moving_proprio())  # as saved
    np.testing.assert_array_equal(got["vap"], want)
    got = script.model_prompts(str(robot_dataset), "test", clips, worlds, "true", {})
    np.testing.assert_array_equal(got["vap"], true_prompts(robot_dataset, "test", clips))

    with pytest.raises(SystemExit, match="needs a proprio model"):
        script.proprio_models("proprio", None, {"vap": str(bare)}, {"vap": worlds["vap"]})
    explicit = script.proprio_models("proprio", str(with_proprio / "proprio"),
                                     {"vap": str(bare)}, {"vap": worlds["vap"]})  # fmt: skip
    assert explicit["vap"][0] == with_proprio / "proprio"
    no_keypoints = collect_clips(tiny_dataset, "test", 4, num_clips=1)
    with pytest.raises(SystemExit, match="model 'vap' takes visual action prompts"):
        script.model_prompts(str(tiny_dataset), "test", no_keypoints, worlds, "true", {})
