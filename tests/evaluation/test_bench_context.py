"""The imagination benchmark times models with any number of context frames: its own
rollout loop gives exactly the library's autoregressive rollout (same noise stream), so the
frames/s it reports are of the frames a user of the env gets."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from freeaction_gym.evaluation.rollout import rollout_autoregressive
from freeaction_gym.world_model import load_world_model

REPO = Path(__file__).resolve().parents[2]


def bench_module():
    spec = importlib.util.spec_from_file_location(
        "bench_imagination", REPO / "experiments" / "bench_imagination.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("model", ["tiny_world_model", "tiny_world_two_context"])
@pytest.mark.parametrize("chunk", [1, 2])
def test_bench_rollout_equals_library_rollout(model, chunk, request):
    bench = bench_module()
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
