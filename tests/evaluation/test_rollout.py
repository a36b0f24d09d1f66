"""Autoregressive rollouts on a tiny untrained world model, and evaluation clip collection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freeaction_gym.data.episodes import write_episode, write_json_atomic
from freeaction_gym.diffusion import ActionCFG, NoiseTruncation
from freeaction_gym.evaluation.rollout import (
    chunk_sizes,
    collect_clips,
    demo_clips,
    encode_frames,
    max_chunk,
    rollout_autoregressive,
)
from freeaction_gym.models import VideoDiT, dit_config
from freeaction_gym.world_model import DiffusionConfig, SamplingConfig, WorldModel

A, HW = 4, 16


def tiny_world(
    num_frames: int = 5, num_context: int = 1, target: str = "delta", randomise: bool = True
) -> WorldModel:
    torch.manual_seed(0)
    cfg = dit_config(
        "tiny",
        input_size=(HW, HW),
        patch_size=4,
        in_channels=3,
        num_frames=num_frames,
        num_context_frames=num_context,
        action_dim=A,
        depth=2,
        cumulative_actions=True,
    )
    dit = VideoDiT(cfg)
    if randomise:  # leave adaLN-Zero's identity start so outputs depend on inputs
        with torch.no_grad():
            for name, p in dit.named_parameters():
                if "adaLN_modulation" in name or name.startswith("final_layer.linear"):
                    p.normal_(0.0, 0.05)
    diffusion = DiffusionConfig(prediction_type="sample", target=target, delta_scale=1.0)
    return WorldModel(dit, diffusion=diffusion).eval()


def plain(steps: int = 3) -> SamplingConfig:
    return SamplingConfig(
        num_steps=steps, guidance=ActionCFG(mode="none"), truncation=NoiseTruncation(mode="none")
    )


def inputs(b: int = 2, n: int = 1, t: int = 11, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ctx = torch.rand(b, n, 3, HW, HW, generator=g) * 2 - 1
    acts = torch.rand(b, n - 1 + t, A, generator=g) * 2 - 1
    return ctx, acts


@pytest.mark.parametrize(
    "num_actions, chunk, expected",
    [(15, 4, [4, 4, 4, 3]), (8, 4, [4, 4]), (3, 4, [3]), (64, 4, [4] * 16)],
)
def test_chunk_sizes(num_actions, chunk, expected):
    assert chunk_sizes(num_actions, chunk) == expected
    assert sum(chunk_sizes(num_actions, chunk)) == num_actions


@pytest.mark.parametrize("t", [1, 4, 11, 16])
def test_rollout_shape_and_context_first(t):
    world = tiny_world()
    ctx, acts = inputs(t=t)
    z = rollout_autoregressive(world, ctx, acts, plain(), generator=torch.Generator())
    assert z.shape == (2, 1 + t, 3, HW, HW)
    assert torch.equal(z[:, :1], ctx)
    assert torch.isfinite(z).all()


@pytest.mark.parametrize("n", [1, 2])
def test_chunks_cover_every_action_once_and_chain_latents(monkeypatch, n):
    world = tiny_world(num_frames=6, num_context=n)
    ctx, acts = inputs(n=n, t=11)
    calls = []
    real_predict = world.predict

    def spy(context, actions, sampling=None, generator=None, noise=None):
        out = real_predict(context, actions, sampling, generator=generator, noise=noise)
        calls.append((context.clone(), actions.clone(), out[0].clone()))
        return out

    monkeypatch.setattr(world, "predict", spy)
    z = rollout_autoregressive(world, ctx, acts, plain(), generator=torch.Generator())
    k = max_chunk(world)
    assert k == 6 - n
    assert [c[2].shape[1] for c in calls] == chunk_sizes(11, k)
    # the new actions of successive chunks are exactly the sequence, each used once
    new = torch.cat([a[:, n - 1 :] for _, a, _ in calls], dim=1)
    assert torch.equal(new, acts[:, n - 1 :])
    # each chunk's context is the previous frames as generated (no decode/re-encode)
    seen = torch.cat([ctx] + [out for _, _, out in calls], dim=1)
    done = 0
    for context, actions, out in calls:
        assert torch.equal(context, seen[:, done : done + n])
        assert torch.equal(actions, acts[:, done : done + n - 1 + out.shape[1]])
        done += out.shape[1]
    assert torch.equal(z, seen)


def test_untrained_delta_model_repeats_the_context():
    # adaLN-Zero + zero final layer: the x0-prediction of the delta is exactly 0; DDIM's last
    # step keeps sqrt(1 - abar_0) = 1% of the (here |z| <= 1) noise.
    world = tiny_world(target="delta", randomise=False)
    ctx, acts = inputs(t=9)
    sampling = SamplingConfig(
        num_steps=4,
        guidance=ActionCFG(mode="none"),
        truncation=NoiseTruncation(mode="fixed", fixed_tau=1.0),
    )
    z = rollout_autoregressive(world, ctx, acts, sampling, generator=torch.Generator())
    assert z.shape[1] == 10
    start = 1
    for k in chunk_sizes(9, 4):  # every chunk repeats its context (the last generated frame)
        context = z[:, start - 1 : start].expand(-1, k, -1, -1, -1)
        torch.testing.assert_close(z[:, start : start + k], context, atol=0.0101, rtol=0)
        start += k
    torch.testing.assert_close(z, ctx.expand(-1, 10, -1, -1, -1), atol=3 * 0.0101, rtol=0)


def test_seeded_generator_is_deterministic_and_seed_matters():
    world = tiny_world()
    ctx, acts = inputs(t=7)
    sampling = world.default_sampling(4, num_steps=3)  # FreeAction: CFG + truncation
    run = lambda seed: rollout_autoregressive(  # noqa: E731
        world, ctx, acts, sampling, generator=torch.Generator().manual_seed(seed)
    )
    assert torch.equal(run(0), run(0))
    assert not torch.allclose(run(0), run(1))


def test_sampling_can_depend_on_chunk_length():
    world = tiny_world()
    ctx, acts = inputs(t=6)
    seen = []

    def per_chunk(k: int) -> SamplingConfig:
        seen.append(k)
        return plain()

    rollout_autoregressive(world, ctx, acts, per_chunk, chunk=4, generator=torch.Generator())
    assert seen == [4, 2]


def test_rejects_bad_chunk_and_context():
    world = tiny_world()
    ctx, acts = inputs(t=5)
    with pytest.raises(ValueError, match="chunk"):
        rollout_autoregressive(world, ctx, acts, plain(), chunk=5)
    with pytest.raises(ValueError, match="context_latent"):
        rollout_autoregressive(world, ctx[:, 0], acts, plain())


@pytest.fixture()
def dataset(tmp_path):
    rng = np.random.default_rng(0)
    write_json_atomic(tmp_path / "meta.json", {"format_version": 1})
    for i, t in enumerate((12, 9)):
        write_episode(
            tmp_path / "test" / f"reach-v3_{i:05d}.npz",
            {
                "rgb": rng.integers(0, 256, (t + 1, 8, 8, 3), dtype=np.uint8),
                "action": rng.uniform(-1, 1, (t, A)).astype(np.float32),
                "reward": np.zeros(t, np.float32),
                "success": np.zeros(t, bool),
                "layout": np.array(i),
                "seed": np.array(i),
                "task": np.array("reach-v3"),
            },
        )
    return tmp_path


def test_collect_clips_are_non_overlapping_windows(dataset):
    clips = collect_clips(dataset, "test", num_frames=5)
    # episode 0: 13 frames -> starts 0, 5; episode 1: 10 frames -> starts 0, 5
    assert clips.starts == [0, 5, 0, 5]
    assert clips.frames.shape == (4, 5, 8, 8, 3) and clips.actions.shape == (4, 4, A)
    ep = np.load(dataset / "test" / "reach-v3_00000.npz")
    np.testing.assert_array_equal(clips.frames[1], ep["rgb"][5:10])
    np.testing.assert_array_equal(clips.actions[1].numpy(), ep["action"][5:9])
    assert clips.tasks == ["reach-v3"] * 4

    sub = collect_clips(dataset, "test", num_frames=5, num_clips=2, seed=3)
    assert len(sub) == 2
    assert sub.episodes == collect_clips(dataset, "test", 5, num_clips=2, seed=3).episodes

    whole = collect_clips(dataset, "test", num_frames=None)  # cut to the shortest episode
    assert whole.frames.shape[:2] == (2, 10) and whole.actions.shape[1] == 9
    with pytest.raises(ValueError, match="no test episode has 40 frames"):
        collect_clips(dataset, "test", num_frames=40)


def test_demo_clips_window_the_bundled_demo_episodes():
    from freeaction_gym.assets import bundled_dir

    demo = np.load(bundled_dir() / "demo_episodes.npz")  # rgb (E, T+1, H, W, 3)
    clips = demo_clips(num_frames=16)  # the bundled file by default
    per_episode = demo["rgb"].shape[1] // 16
    assert len(clips) == len(demo["rgb"]) * per_episode
    assert clips.starts[:per_episode] == [16 * k for k in range(per_episode)]
    np.testing.assert_array_equal(clips.frames[1], demo["rgb"][0, 16:32])
    np.testing.assert_array_equal(clips.actions[1].numpy(), demo["action"][0, 16:31])
    assert clips.tasks[0] == str(demo["task"][0])
    push = demo_clips(num_frames=None, tasks=["push-v3"])
    assert set(push.tasks) == {"push-v3"} and push.frames.shape[1] == demo["rgb"].shape[1]
    sub = demo_clips(num_frames=8, num_clips=3, seed=1)
    assert len(sub) == 3 and sub.starts == demo_clips(num_frames=8, num_clips=3, seed=1).starts
    with pytest.raises(ValueError, match="no demo episode has 99 frames"):
        demo_clips(num_frames=99)


def test_encode_frames_batches_match_one_call():
    world = tiny_world()
    frames = np.random.default_rng(0).integers(0, 256, (5, 3, HW, HW, 3), dtype=np.uint8)
    z = encode_frames(world, frames, batch=2)
    assert torch.equal(z, world.encode(torch.from_numpy(frames)))
    assert z.shape == (5, 3, 3, HW, HW)
