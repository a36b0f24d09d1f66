"""IRASim video DiT: shapes, conditioning paths, fixed embeddings, IRASim layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from freeaction_gym.models import VideoDiT, count_parameters, dit_config, irasim_dit
from freeaction_gym.models.layers import TimestepEmbedder

F, A, HW, C = 5, 4, 8, 4


def tiny(seed: int = 0, randomize: bool = True, **overrides) -> VideoDiT:
    """Tiny model; ``randomize`` replaces the zero init of adaLN and the final layer."""
    torch.manual_seed(seed)
    kw = dict(input_size=(HW, HW), num_frames=F, action_dim=A)
    kw.update(overrides)
    model = VideoDiT(dit_config("tiny", **kw)).eval()
    if randomize:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "adaLN_modulation" in name or name.startswith("final_layer.linear"):
                    p.normal_(0.0, 0.05)
    return model


def zero_gates(block) -> None:
    """Zero gate_msa and gate_mlp (chunks 2 and 5 of 6): the block becomes the identity."""
    lin = block.adaLN_modulation[-1]
    d = lin.out_features // 6
    with torch.no_grad():
        for k in (2, 5):
            lin.weight[k * d : (k + 1) * d] = 0
            lin.bias[k * d : (k + 1) * d] = 0


def inputs(b: int = 2, f: int = F, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, f, C, HW, HW, generator=g)
    t = torch.tensor([10, 700, 300, 999][:b])
    actions = torch.randn(b, f - 1, A, generator=g)
    return x, t, actions


def changed_frames(model, x, t, actions, k: int, atol: float = 1e-6) -> list[int]:
    """Frames whose output changes when action k of sample 0 changes."""
    with torch.no_grad():
        out = model(x, t, actions)
        a2 = actions.clone()
        a2[0, k] += 1.5
        out2 = model(x, t, a2)
    diff = (out - out2).abs().amax(dim=(2, 3, 4))  # (B, F)
    assert torch.equal(diff[1:], torch.zeros_like(diff[1:]))  # other samples untouched
    frames = [f for f in range(x.shape[1]) if diff[0, f] > atol]
    for f in frames:
        assert diff[0, f] > 1e-4, (f, diff[0, f])  # a clear change, not rounding noise
    return frames


# -- shapes -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"conditioning": "video"},
        {"action_embedder": "linear2"},
        {"conditioning": "video", "action_embedder": "linear2"},
        {"input_size": (8, 12), "patch_size": 2},
        {"input_size": (8, 8), "patch_size": 4},
    ],
)
def test_output_shape(overrides) -> None:
    model = tiny(**overrides)
    x, t, actions = inputs()
    x = torch.randn(2, F, C, *model.config.input_size)
    with torch.no_grad():
        out = model(x, t, actions)
    assert out.shape == x.shape
    assert torch.isfinite(out).all() and out.abs().max() > 0


def test_zero_init_outputs_zero() -> None:
    """adaLN-Zero + zero final layer: an untrained model predicts exactly 0."""
    model = tiny(randomize=False)
    x, t, actions = inputs()
    with torch.no_grad():
        assert torch.equal(model(x, t, actions), torch.zeros_like(x))


def test_fewer_frames_frame_ada_and_errors() -> None:
    model = tiny()
    x, t, actions = inputs(f=3)
    with torch.no_grad():
        assert model(x, t, actions).shape == x.shape
    with pytest.raises(ValueError):
        model(*inputs(f=F + 1))
    with pytest.raises(ValueError):
        model(x, t, actions[:, :1])
    video = tiny(conditioning="video")
    with pytest.raises(ValueError):
        video(x, t, actions)
    with pytest.raises(ValueError):
        dit_config("tiny", depth=3)
    with pytest.raises(ValueError):
        dit_config("tiny", input_size=(9, 8))
    with pytest.raises(ValueError):
        dit_config("huge")


def test_embed_actions_shapes() -> None:
    frame, video = tiny(), tiny(conditioning="video")
    _, _, actions = inputs()
    with torch.no_grad():
        e = frame.embed_actions(actions, None)
        assert e.shape == (2, F, 64)
        assert torch.equal(e[:, 0], frame.mask_emb_fn.weight[0].expand(2, -1))  # null first
        assert video.embed_actions(actions, None).shape == (2, 64)


# -- conditioning ---------------------------------------------------------------------------
def test_frame_ada_per_frame_when_temporal_gates_are_zero() -> None:
    """1 spatial + 1 temporal block: with the temporal block's gates zeroed nothing mixes
    frames, so action k (conditioning frame k+1) changes exactly frame k+1's output."""
    model = tiny(depth=2)
    zero_gates(model.blocks[1])
    x, t, actions = inputs()
    for k in range(F - 1):
        assert changed_frames(model, x, t, actions, k) == [k + 1]


def test_temporal_block_mixes_frames() -> None:
    model = tiny(depth=2)
    x, t, actions = inputs()
    assert changed_frames(model, x, t, actions, 1) == list(range(F))
    # deeper model: action k affects frame k+1 (and, through attention, the others)
    model = tiny()
    for k in range(F - 1):
        assert k + 1 in changed_frames(model, x, t, actions, k)


def test_video_ada_conditions_every_frame() -> None:
    model = tiny(depth=2, conditioning="video")
    zero_gates(model.blocks[1])
    x, t, actions = inputs()
    assert changed_frames(model, x, t, actions, 0) == list(range(F))


def test_released_frame_ada_final_layer_ignores_actions() -> None:
    """IRASim: final layer and temporal blocks see t only. With identity blocks (zero
    adaLN) and a random final layer, the output does not depend on the actions."""
    model = tiny(randomize=False)
    with torch.no_grad():
        model.final_layer.adaLN_modulation[-1].weight.normal_(0, 0.05)
        model.final_layer.linear.weight.normal_(0, 0.05)
    x, t, actions = inputs()
    assert changed_frames(model, x, t, actions, 2) == []


def test_action_in_temporal_conditions_final_layer_per_frame() -> None:
    base = tiny(randomize=False)
    with torch.no_grad():
        base.final_layer.adaLN_modulation[-1].weight.normal_(0, 0.05)
        base.final_layer.linear.weight.normal_(0, 0.05)
    ext = tiny(randomize=False, action_in_temporal=True)
    ext.load_state_dict(base.state_dict())
    x, t, actions = inputs()
    assert changed_frames(base, x, t, actions, 2) == []
    assert changed_frames(ext, x, t, actions, 2) == [3]


def test_action_in_temporal_per_frame_path_equals_shared_path_for_equal_c() -> None:
    """With a zero null embedding and every sample nulled, every frame's c equals t_emb, so
    the per-frame temporal adaLN must reproduce the shared one exactly."""
    base = tiny()
    with torch.no_grad():
        base.mask_emb_fn.weight.zero_()
    ext = tiny(action_in_temporal=True)
    ext.load_state_dict(base.state_dict())
    x, t, actions = inputs(b=3)
    null = torch.ones(3, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(
            ext(x, t, actions, null), base(x, t, actions, null), rtol=1e-5, atol=1e-6
        )
        # and without the null mask the extension does change the output
        assert not torch.allclose(ext(x, t, actions), base(x, t, actions), atol=1e-4)


def test_action_tokens() -> None:
    base = tiny(randomize=False)
    with torch.no_grad():
        base.final_layer.adaLN_modulation[-1].weight.normal_(0, 0.05)
        base.final_layer.linear.weight.normal_(0, 0.05)
    ext = tiny(randomize=False, action_tokens=True)
    missing, unexpected = ext.load_state_dict(base.state_dict(), strict=False)
    assert missing == ["action_token_proj.weight", "action_token_proj.bias"] and not unexpected
    x, t, actions = inputs()
    with torch.no_grad():
        assert torch.equal(ext(x, t, actions), base(x, t, actions))  # zero-initialised
        ext.action_token_proj.weight.normal_(0, 0.1)
    # identity blocks: the projection of frame f's action reaches only frame f's tokens
    assert changed_frames(ext, x, t, actions, 1) == [2]


def test_cumulative_actions() -> None:
    plain = tiny(depth=2)
    cum = tiny(depth=2, cumulative_actions=True)
    assert cum.embed_state.fc1.in_features == 2 * A
    for m in (plain, cum):
        zero_gates(m.blocks[1])
    x, t, actions = inputs()
    assert changed_frames(plain, x, t, actions, 1) == [2]
    # a_1 enters the running sum of every later frame
    assert changed_frames(cum, x, t, actions, 1) == [2, 3, 4]
    seen = []
    h = cum.embed_state.fc1.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    with torch.no_grad():
        cum(x, t, actions)
    h.remove()
    torch.testing.assert_close(seen[0], torch.cat([actions, actions.cumsum(1)], dim=-1))


def test_batch_of_two_equals_two_batches_of_one() -> None:
    for conditioning in ("frame", "video"):
        model = tiny(conditioning=conditioning)
        x, t, actions = inputs()
        null = torch.tensor([False, True])
        with torch.no_grad():
            both = model(x, t, actions, null)
            one = [
                model(x[i : i + 1], t[i : i + 1], actions[i : i + 1], null[i : i + 1])
                for i in range(2)
            ]
        torch.testing.assert_close(both, torch.cat(one), rtol=0, atol=1e-5)
        assert not torch.allclose(both[0], both[1])


@pytest.mark.parametrize("overrides", [{}, {"conditioning": "video"}, {"action_tokens": True}])
def test_null_action_makes_output_independent_of_actions(overrides) -> None:
    model = tiny(**overrides)
    if overrides.get("action_tokens"):
        with torch.no_grad():
            model.action_token_proj.weight.normal_(0, 0.1)
    x, t, actions = inputs()
    other = torch.randn_like(actions) * 3
    null = torch.tensor([True, False])
    with torch.no_grad():
        o1, o2 = model(x, t, actions, null), model(x, t, other, null)
        all_null = model(x, t, actions, torch.ones(2, dtype=torch.bool))
    assert torch.equal(o1[0], o2[0])
    assert not torch.allclose(o1[1], o2[1], atol=1e-4)
    assert torch.equal(all_null[0], o1[0])
    # the null embedding is the learned one: changing it changes the nulled output
    with torch.no_grad():
        model.mask_emb_fn.weight.add_(0.5)
        assert not torch.allclose(model(x, t, actions, null)[0], o1[0], atol=1e-4)


def test_timestep_changes_output() -> None:
    model = tiny()
    x, t, actions = inputs()
    with torch.no_grad():
        assert not torch.allclose(model(x, t, actions), model(x, t + 100, actions), atol=1e-4)


# -- fixed embeddings ---------------------------------------------------------------------
def test_pos_embed_matches_2d_sincos_by_hand() -> None:
    model = tiny(randomize=False, input_size=(8, 12))  # 4 x 6 grid: rows != cols
    d, gh, gw = 64, 4, 6
    q = d // 4
    ref = np.zeros((gh * gw, d))
    for r in range(gh):
        for c in range(gw):
            n = r * gw + c  # row-major token order
            for i in range(q):
                omega = 1.0 / 10000 ** (i / q)
                ref[n, i] = math.sin(c * omega)  # first half: column index, [sin | cos]
                ref[n, q + i] = math.cos(c * omega)
                ref[n, 2 * q + i] = math.sin(r * omega)  # second half: row index
                ref[n, 3 * q + i] = math.cos(r * omega)
    assert model.pos_embed.shape == (1, gh * gw, d)
    assert not model.pos_embed.requires_grad
    np.testing.assert_allclose(model.pos_embed[0].numpy(), ref, atol=1e-6)


def test_temp_embed_matches_1d_sincos_by_hand() -> None:
    model = tiny(randomize=False)
    d = 64
    ref = np.zeros((F, d))
    for f in range(F):
        for i in range(d // 2):
            omega = 1.0 / 10000 ** (i / (d / 2))
            ref[f, i] = math.sin(f * omega)
            ref[f, d // 2 + i] = math.cos(f * omega)
    assert model.temp_embed.shape == (1, F, d) and not model.temp_embed.requires_grad
    np.testing.assert_allclose(model.temp_embed[0].numpy(), ref, atol=1e-6)


def test_timestep_embedding_is_cos_then_sin() -> None:
    t = torch.tensor([0, 1, 37, 999])
    emb = TimestepEmbedder.frequencies(t, 256)
    assert emb.shape == (4, 256)
    for j, tj in enumerate(t.tolist()):
        for i in (0, 1, 5, 64, 127):
            freq = math.exp(-math.log(10000) * i / 128)
            assert emb[j, i].item() == pytest.approx(math.cos(tj * freq), abs=1e-4)
            assert emb[j, 128 + i].item() == pytest.approx(math.sin(tj * freq), abs=1e-4)
    assert torch.equal(emb[0, :128], torch.ones(128))  # cos(0) first


def test_unpatchify_inverts_patch_layout() -> None:
    """Per patch the channel vector is laid out (row, col, channel)."""
    model = tiny(randomize=False, input_size=(4, 6))
    p, gh, gw = 2, 2, 3
    img = torch.arange(C * 4 * 6, dtype=torch.float32).reshape(1, C, 4, 6)
    tokens = torch.zeros(1, gh * gw, p * p * C)
    for r in range(gh):
        for c in range(gw):
            for i in range(p):
                for j in range(p):
                    for ch in range(C):
                        tokens[0, r * gw + c, (i * p + j) * C + ch] = img[
                            0, ch, r * p + i, c * p + j
                        ]
    assert torch.equal(model.unpatchify(tokens), img)


# -- IRASim layout ----------------------------------------------------------------------------
def _expected_keys(depth: int, embed: list[str]) -> set[str]:
    keys = {
        "pos_embed",
        "temp_embed",
        "x_embedder.proj.weight",
        "x_embedder.proj.bias",
        "t_embedder.mlp.0.weight",
        "t_embedder.mlp.0.bias",
        "t_embedder.mlp.2.weight",
        "t_embedder.mlp.2.bias",
        "mask_emb_fn.weight",
        "final_layer.linear.weight",
        "final_layer.linear.bias",
        "final_layer.adaLN_modulation.1.weight",
        "final_layer.adaLN_modulation.1.bias",
    }
    keys |= {f"{e}.{wb}" for e in embed for wb in ("weight", "bias")}
    for k in range(depth):
        for sub in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2", "adaLN_modulation.1"):
            keys |= {f"blocks.{k}.{sub}.weight", f"blocks.{k}.{sub}.bias"}
    return keys


def test_irasim_xl_rt1_frame_ada_size_and_keys() -> None:
    with torch.device("meta"):
        model = irasim_dit("XL", "rt1", "frame")
    sd = model.state_dict()
    assert count_parameters(model) == 679_397_776
    assert len(sd) == 297
    assert set(sd) == _expected_keys(28, ["embed_state.fc1", "embed_state.fc2"])
    assert sd["pos_embed"].shape == (1, 320, 1152)
    assert sd["temp_embed"].shape == (1, 16, 1152)
    assert sd["x_embedder.proj.weight"].shape == (1152, 4, 2, 2)
    assert sd["embed_state.fc1.weight"].shape == (4 * 1152, 7)
    assert sd["embed_state.fc2.weight"].shape == (1152, 4 * 1152)
    assert sd["mask_emb_fn.weight"].shape == (1, 1152)
    assert sd["blocks.0.adaLN_modulation.1.weight"].shape == (6 * 1152, 1152)
    assert sd["final_layer.adaLN_modulation.1.weight"].shape == (2 * 1152, 1152)
    assert sd["final_layer.linear.weight"].shape == (2 * 2 * 4, 1152)
    assert model.blocks[0].attn.num_heads == 16


def test_irasim_video_ada_and_language_table_layouts() -> None:
    with torch.device("meta"):
        video = irasim_dit("XL", "rt1", "video")
        lt = irasim_dit("XL", "languagetable", "frame")
    assert video.state_dict()["embed_state.fc1.weight"].shape == (4 * 1152, 7 * 15)
    sd = lt.state_dict()
    assert set(sd) == _expected_keys(28, ["embed_arm_state", "embed_state"])
    assert sd["embed_arm_state.weight"].shape == (4 * 1152, 2)
    assert sd["embed_state.weight"].shape == (1152, 4 * 1152)
    assert sd["pos_embed"].shape == (1, 18 * 32, 1152)


# -- world model v2 extensions ------------------------------------------------------------
def _v2(context_mode: str, n: int = 2, **kw) -> VideoDiT:
    from freeaction_gym.models.presets import dit_config

    torch.manual_seed(0)
    cfg = dit_config(
        "tiny",
        input_size=(16, 16),
        patch_size=4,
        in_channels=3,
        action_dim=4,
        num_frames=n + 3,
        num_context_frames=n,
        context_mode=context_mode,
        cumulative_actions=True,
        **kw,
    )
    return VideoDiT(cfg).eval()


def _randomise(model: VideoDiT) -> None:
    """Non-zero weights everywhere (adaLN-Zero would make every output 0 at init)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def test_channel_context_uses_only_predicted_frames_as_tokens():
    m = _v2("channels", n=2)
    assert m.x_embedder.proj.in_channels == 9  # (1 + 2 context frames) x 3
    assert m.temp_embed.shape[1] == 3  # the sequence holds the 3 predicted frames only
    _randomise(m)
    x, a = torch.randn(2, 5, 3, 16, 16), torch.randn(2, 4, 4)
    out = m(x, torch.tensor([10.0, 900.0]), a)
    assert out.shape == x.shape
    torch.testing.assert_close(out[:, :2], x[:, :2])  # context slots echo the context
    # every context frame reaches every predicted frame's output
    for j in range(2):
        x2 = x.clone()
        x2[:, j] += 1.0
        assert (m(x2, torch.tensor([10.0, 900.0]), a)[:, 2:] - out[:, 2:]).abs().amax() > 1e-4
    # the action between the two context frames does not matter (motion is in the pixels)
    a2 = a.clone()
    a2[:, 0] += 5.0
    torch.testing.assert_close(m(x, torch.tensor([10.0, 900.0]), a2), out)
    # shorter clips work (fewer predicted frames)
    assert m(x[:, :3], torch.tensor([1.0, 2.0]), a[:, :2]).shape == (2, 3, 3, 16, 16)


def test_channel_context_rejects_video_ada():
    with pytest.raises(ValueError, match="context_mode='channels' needs conditioning='frame'"):
        _v2("channels", conditioning="video")


def test_context_noise_embedding_starts_neutral_and_then_matters():
    m = _v2("channels", n=1, context_noise_embed=True)
    x, a, t = torch.randn(2, 4, 3, 16, 16), torch.randn(2, 3, 4), torch.tensor([5.0, 600.0])
    _randomise(m)
    with torch.no_grad():
        torch.nn.init.zeros_(m.ctx_noise_embedder.mlp[2].weight)
        torch.nn.init.zeros_(m.ctx_noise_embedder.mlp[2].bias)
    base = m(x, t, a)
    torch.testing.assert_close(m(x, t, a, context_noise=torch.tensor([0.3, 1.0])), base)
    with torch.no_grad():
        m.ctx_noise_embedder.mlp[2].weight.normal_(0, 0.05)
    assert (m(x, t, a, context_noise=torch.tensor([0.3, 1.0])) - base).abs().amax() > 1e-4
    fresh = _v2("channels", n=1, context_noise_embed=True)
    assert not fresh.ctx_noise_embedder.mlp[2].weight.any()  # zero-initialised
