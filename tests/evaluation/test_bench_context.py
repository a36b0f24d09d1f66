"""The imagination benchmark times models with any number of context frames, and prompt
models with the env's per-step prompt work: its own rollout loop gives exactly the library's
autoregressive rollout (same noise stream), so the frames/s it reports are of the frames a
user of the env gets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from freeaction_gym.envs.prompting import preset_camera
from freeaction_gym.evaluation.rollout import rollout_autoregressive
from freeaction_gym.prompts.proprio import ProprioModel, integrate
from freeaction_gym.prompts.skeleton import render_prompts
from freeaction_gym.world_model import load_world_model

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("model", ["tiny_world_model", "tiny_world_two_context"])
@pytest.mark.parametrize("chunk", [1, 2])
def test_bench_rollout_equals_library_rollout(model, chunk, request, load_experiment):
    bench = load_experiment("bench_imagination")
    world = load_world_model(request.getfixturevalue(model))
    n, size = world.num_context, world.dit.config.input_size
    g = torch.Generator().manual_seed(3)
    ctx = torch.rand(3, n, 3, *size, generator=g) * 2 - 1  # pixel latents in [-1, 1]
    actions = torch.rand(3, n - 1 + 4, 4, generator=g) * 2 - 1  # 4 imagined frames
    row = bench.Row("default", chunk=chunk)
    got = bench.imagine(world, row, ctx, actions, seed=5)
    want = rollout_autoregressive(
        world, ctx, actions, lambda k: bench.sampling_for(world, row, k), chunk,
        torch.Generator().manual_seed(5),
    )  # fmt: skip
    assert got.shape == (3, n + 4, 3, *size)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert torch.equal(got[:, :n], ctx) and not torch.equal(got[:, n], got[:, n - 1])


@pytest.mark.parametrize("num_context", [1, 2])
@pytest.mark.parametrize("chunk", [1, 2])
def test_bench_rollout_with_prompts_equals_library_rollout(
    num_context, chunk, tiny, tiny_prompt_world, arm_pose, load_experiment
):
    """A prompt model's timed loop makes every step's prompts with the env's PromptTracker
    (proprio integration + skeleton drawing, inside the loop) and gives exactly the library
    rollout given the prompts of an independent re-computation: the proprio model rolled out
    over all actions at once (``integrate``) and drawn by ``render_prompts``."""
    bench = load_experiment("bench_imagination")
    if num_context == 1:
        world = load_world_model(tiny.vap_dir)
    else:  # context prompts of 2 real frames: the tracker integrates the action between them
        world = tiny_prompt_world(prompt="channels", num_frames=4, num_context_frames=2)
    proprio = ProprioModel.from_pretrained(tiny.vap_dir / "proprio")
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # "trained": the untrained head moves nothing
        proprio.mlp[-1].weight.normal_(0.0, 2e-3, generator=g)
    n, size = world.num_context, world.dit.config.input_size
    assert world.takes_prompts and n == num_context
    camera = preset_camera("workspace", *size)
    keypoints, state = arm_pose  # (K, 3), (7,)
    shift = (torch.rand(3, 1, 3, generator=g) * 0.1 - 0.05).numpy()  # (3, 1, 3) m
    states = np.repeat(state[None], 3, 0)
    states[:, :3] += shift[:, 0]
    arms = (keypoints[None] + shift).astype(np.float32)  # (3, K, 3)
    ctx = torch.rand(3, n, 3, *size, generator=g) * 2 - 1  # pixel latents in [-1, 1]
    actions = torch.rand(3, n - 1 + 4, 4, generator=g) * 2 - 1  # 4 imagined frames
    row = bench.Row("default", chunk=chunk)
    start = bench.RobotStart(proprio, camera, states, arms)
    trackers = start.trackers(bench.env_groups(row, 3), actions[:, : n - 1])
    got = bench.imagine(world, row, ctx, actions, seed=5, trackers=trackers)

    _, kp = integrate(proprio, states, arms, actions)  # (3, n + 4, K, 3)
    kp[:, 0] = arms  # frame 0 is drawn from the given keypoints
    video = render_prompts(kp.reshape(-1, *kp.shape[2:]), camera)  # (3 (n + 4), H, W, 3)
    prompts = torch.from_numpy(video.reshape(3, n + 4, *video.shape[1:]))
    assert prompts[:, n:].any() and not torch.equal(prompts[:, -1], prompts[:, 0])

    def library(p):
        return rollout_autoregressive(
            world, ctx, actions, lambda k: bench.sampling_for(world, row, k), chunk,
            torch.Generator().manual_seed(5), prompts=p,
        )  # fmt: skip

    want = library(prompts)
    assert got.shape == (3, n + 4, 3, *size)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert not torch.equal(library(torch.zeros_like(prompts)), want)  # the prompts matter
