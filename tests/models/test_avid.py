"""AVID adapter on tiny models: the frozen model stays frozen, the mask and every mode's
combination against a straightforward re-computation, save/load, and an env on an adapter."""

from __future__ import annotations

import json
import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from freeaction_gym.diffusion.loss import WithAuxiliary, prediction_loss
from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.models import CheckpointError, VideoDiT, dit_config
from freeaction_gym.models.avid import AVIDConfig, AVIDModel, CrossModelActionCFG
from freeaction_gym.world_model import DiffusionConfig, PixelCodec, WorldModel, load_world_model

HW, C, F, A = 32, 3, 3, 4  # pixel frames, as the env's tiny world model
MODES = ("avid", "no_mask", "no_conditioning", "poe", "action_cfg", "scratch")
WITH_FROZEN = MODES[:-1]


def perturb(model: torch.nn.Module, seed: int, std: float = 0.2) -> None:
    """Replace adaLN-Zero's zero init so outputs depend on the inputs (and masks vary)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "adaLN_modulation" in name or name.startswith("final_layer.linear"):
                p.copy_(torch.randn(p.shape, generator=g) * std)


def base_config(**kw) -> dict:
    return dict(input_size=(HW, HW), in_channels=C, patch_size=8, num_frames=F, action_dim=A) | kw


def frozen_dit(seed: int = 1) -> VideoDiT:
    torch.manual_seed(seed)
    dit = VideoDiT(dit_config("tiny", **base_config()))
    perturb(dit, seed)
    return dit.eval()


def adapter_config(mode: str, **kw) -> AVIDConfig:
    return AVIDConfig(dit_config("tiny", **base_config(depth=2, hidden_size=32)), mode, **kw)


def avid(mode: str, frozen: VideoDiT | None = None, seed: int = 2, **kw) -> AVIDModel:
    torch.manual_seed(seed)
    if mode != "scratch":
        frozen = frozen if frozen is not None else frozen_dit()
    model = AVIDModel(adapter_config(mode, **kw), None if mode == "scratch" else frozen)
    perturb(model.adapter, seed)
    return model.eval()


def inputs(b: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, F, C, HW, HW, generator=g)
    t = torch.tensor([900, 40, 500][:b])
    return x, t, torch.randn(b, F - 1, A, generator=g)


def frozen_output(frozen: VideoDiT, x, t) -> torch.Tensor:
    """The frozen model as the action-free model: null action, zero actions."""
    b = x.shape[0]
    with torch.no_grad():
        return frozen(x, t, torch.zeros(b, F - 1, A), torch.ones(b, dtype=torch.bool))


def x_padded(x: torch.Tensor) -> torch.Tensor:
    """The adapter's input with a mask: the video plus a zero channel (B, F, C+1, H, W)."""
    return torch.cat([x, torch.zeros_like(x[:, :, :1])], dim=2)


def seen(pre: torch.Tensor) -> torch.Tensor:
    """The frozen prediction as the adapter sees it: zero on the context frame."""
    return torch.cat([torch.zeros_like(pre[:, :1]), pre[:, 1:]], dim=1)


@pytest.fixture(scope="module")
def frozen_dir(tmp_path_factory):
    """A saved frozen world model (pixel codec, delta target) with a reset bank."""
    d = tmp_path_factory.mktemp("frozen")
    world = WorldModel(frozen_dit(), PixelCodec(), DiffusionConfig("sample", "delta"), {})
    world.save_pretrained(d)
    return d


# -- frozen stays frozen -------------------------------------------------------------------
@pytest.mark.parametrize("parameterization", ["ddpm", "edm"])
@pytest.mark.parametrize("mode", WITH_FROZEN)
def test_frozen_model_gets_no_gradients_and_stays_bit_identical(mode, parameterization):
    model = avid(mode)
    world = WorldModel(model, diffusion=DiffusionConfig(parameterization=parameterization))
    before = {k: v.clone() for k, v in model.frozen.state_dict().items()}
    adapter_before = {k: v.clone() for k, v in model.adapter.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)  # all, on purpose
    model.train()
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        z = torch.rand(2, F, C, HW, HW, generator=g) * 2 - 1
        loss = world.training_loss(z, torch.randn(2, F - 1, A, generator=g), generator=g)
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is None for p in model.frozen.parameters())
        assert all(not p.requires_grad for p in model.frozen.parameters())
        opt.step()
    assert not model.frozen.training and model.adapter.training
    for k, v in model.frozen.state_dict().items():
        assert torch.equal(v, before[k]), k
    changed = [
        k for k, v in model.adapter.state_dict().items() if not torch.equal(v, adapter_before[k])
    ]
    assert len(changed) > 10
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in model.adapter.parameters() if p.requires_grad}


# -- the mask ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["avid", "no_conditioning"])
def test_mask_is_in_unit_interval_and_varies(mode):
    model = avid(mode)
    with torch.no_grad():
        model(*inputs())
    m = model.last_mask
    assert m.shape == (2, F, 1, HW, HW)
    assert float(m.min()) >= 0.0 and float(m.max()) <= 1.0
    assert float(m.std()) > 1e-3


def mask_rows(model: AVIDModel) -> torch.Tensor:
    """Output rows of the adapter's final linear layer that make the mask logit: per patch
    the layout is (row, col, channel) with channel C the mask."""
    n = model.adapter.final_layer.linear.out_features
    return torch.arange(n)[torch.arange(n) % (C + 1) == C]


def test_mask_forced_to_one_gives_the_frozen_output_exactly():
    model = avid("avid")
    rows = mask_rows(model)
    with torch.no_grad():
        model.adapter.final_layer.linear.weight[rows] = 0.0
        model.adapter.final_layer.linear.bias[rows] = 100.0  # sigmoid(100) == 1 in float32
    x, t, a = inputs()
    pre = frozen_output(model.frozen, x, t)
    with torch.no_grad():
        out = model(x, t, a)
        adapt = model.adapter(x_padded(x), t, a, extra=seen(pre))
    assert torch.equal(model.last_mask, torch.ones_like(model.last_mask))
    assert float(adapt[:, 1:, :C].abs().mean()) > 1e-2  # the adapter's own prediction is not 0
    assert torch.equal(out[:, 1:], pre[:, 1:])


def test_mask_history_and_mask_init():
    model = avid("avid", mask_init=0.9)
    with torch.no_grad():
        model.adapter.final_layer.linear.weight.zero_()
        model.adapter.final_layer.linear.bias.zero_()
    model.mask_history = []
    for _ in range(2):
        with torch.no_grad():
            model(*inputs())
    assert len(model.mask_history) == 2
    torch.testing.assert_close(model.mask_history[0], torch.full((2, F, 1, HW, HW), 0.9))


def test_adapter_loss_keeps_the_adapter_learning_when_the_mask_saturates():
    """With m = 1 the seed's loss gives the adapter no gradient at all; the auxiliary loss
    on its own prediction does, and adds exactly w x that prediction's error."""
    grads, losses = {}, {}
    for w in (0.0, 0.5):
        model = avid("avid", adapter_loss_weight=w) if w else avid("avid")
        rows = mask_rows(model)
        with torch.no_grad():
            model.adapter.final_layer.linear.weight[rows] = 0.0
            model.adapter.final_layer.linear.bias[rows] = 100.0  # mask == 1
        world = WorldModel(model, diffusion=DiffusionConfig(prediction_type="sample"))
        model.train()
        g = torch.Generator().manual_seed(0)
        z = torch.rand(2, F, C, HW, HW, generator=g) * 2 - 1
        loss = world.training_loss(z, torch.randn(2, F - 1, A, generator=g), generator=g)
        loss.backward()
        grads[w] = sum(
            float(p.grad.abs().sum()) for p in model.adapter.parameters() if p.grad is not None
        )
        losses[w] = float(loss.detach())
    assert grads[0.0] == 0.0
    assert grads[0.5] > 1e-3
    assert losses[0.5] > losses[0.0] + 1e-4  # the adapter's own (untrained) error is added


def test_adapter_output_is_plain_outside_gradient_training():
    model = avid("avid", adapter_loss_weight=1.0)
    x, t, a = inputs()
    model.train()
    out = model(x, t, a)
    assert isinstance(out, WithAuxiliary) and out.weight == 1.0
    assert out.output.shape == out.auxiliary.shape == (2, F, C, HW, HW)
    with torch.no_grad():
        o = model.adapter(x_padded(x), t, a, extra=seen(frozen_output(model.frozen, x, t)))
        torch.testing.assert_close(out.auxiliary, o[:, :, :C], atol=1e-6, rtol=0)
        assert torch.is_tensor(model(x, t, a))  # no gradients (e.g. sampling in training)
    model.eval()
    assert torch.is_tensor(model(x, t, a))


def test_prediction_loss_adds_the_weighted_auxiliary_error():
    g = torch.Generator().manual_seed(3)
    out, aux = torch.randn(2, 3, 1, 4, 4, generator=g), torch.randn(2, 3, 1, 4, 4, generator=g)
    goal = torch.randn(2, 2, 1, 4, 4, generator=g)
    weights = torch.rand(2, 2, 1, 4, 4, generator=g) + 0.5

    def mse(p):
        return float(((p[:, 1:] - goal) ** 2 * weights).sum() / weights.sum())

    got = prediction_loss(WithAuxiliary(out, aux, 0.25), goal, 1, weights)
    assert float(got) == pytest.approx(mse(out) + 0.25 * mse(aux), rel=1e-6)
    assert float(prediction_loss(out, goal, 1)) == pytest.approx(
        float(((out[:, 1:] - goal) ** 2).mean()), rel=1e-6
    )


@pytest.mark.parametrize(
    "mode,weight,match",
    [("poe", 1.0, "mask modes"), ("no_mask", 1.0, "mask modes"), ("avid", -1.0, ">= 0"),
     ("avid", float("nan"), ">= 0")],
)  # fmt: skip
def test_bad_adapter_loss_weight_is_a_clear_error(mode, weight, match):
    with pytest.raises(ValueError, match=match):
        adapter_config(mode, adapter_loss_weight=weight)


# -- every mode's combination -----------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_mode_output_equals_a_straightforward_recomputation(mode):
    model = avid(mode, poe_weight=0.3, cfg_weight=2.5)
    x, t, a = inputs(b=3)
    null = torch.tensor([False, True, False])
    ad = model.adapter
    with torch.no_grad():
        out = model(x, t, a, null)
        if mode == "scratch":
            want = ad(x, t, a, null)
        else:
            pre = frozen_output(model.frozen, x, t)
            if mode == "avid":
                o = ad(x_padded(x), t, a, null, extra=seen(pre))
                m = torch.sigmoid(o[:, :, C:])
                want = m * pre + (1 - m) * o[:, :, :C]
            elif mode == "no_mask":
                want = pre + ad(x, t, a, null, extra=seen(pre))
            elif mode == "no_conditioning":
                o = ad(x_padded(x), t, a, null)
                m = torch.sigmoid(o[:, :, C:])
                want = m * pre + (1 - m) * o[:, :, :C]
            elif mode == "poe":
                want = 0.3 * ad(x, t, a, null) + 0.7 * pre
            else:  # action_cfg: eps_pre + lambda_a (eps_adapt(a) - eps_adapt(null))
                uncond = ad(x, t, a, torch.ones(3, dtype=torch.bool))
                want = pre + 2.5 * (ad(x, t, a, null) - uncond)
                torch.testing.assert_close(out[1], pre[1], atol=1e-5, rtol=0)  # null sample
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)
    if mode in ("poe", "action_cfg"):  # the adapter is trained alone
        model.train()
        with torch.no_grad():
            torch.testing.assert_close(model(x, t, a, null), ad(x, t, a, null), atol=0, rtol=0)


def test_cross_model_cfg_wrapper_on_toy_models():
    """pre(x) = 2x, adapt(x, a) = x + sum(a) unless null: out = 2x + lam sum(a)."""

    def pre(x, t, **kw):
        return 2 * x

    def adapt(x, t, a, null):
        return x + a.sum(dim=1, keepdim=True) * (~null).float()[:, None]

    x, a = torch.randn(3, 4), torch.randn(3, 2)
    out = CrossModelActionCFG(pre, adapt, lam=3.0)(x, torch.zeros(3), a)
    torch.testing.assert_close(out, 2 * x + 3.0 * a.sum(dim=1, keepdim=True))
    null = torch.tensor([True, False, True])
    out = CrossModelActionCFG(pre, adapt, lam=3.0)(x, torch.zeros(3), a, null)
    torch.testing.assert_close(out[null], 2 * x[null])


def test_frozen_model_must_fit_the_adapter():
    frozen = VideoDiT(dit_config("tiny", **base_config(input_size=(16, 16))))
    with pytest.raises(ValueError, match="input_size"):
        AVIDModel(adapter_config("avid"), frozen)
    with pytest.raises(ValueError, match="needs a frozen model"):
        AVIDModel(adapter_config("avid"))
    with pytest.raises(ValueError, match="unknown AVID mode"):
        adapter_config("bogus")


# -- save / load ------------------------------------------------------------------------
def adapter_world(mode: str, frozen_dir) -> WorldModel:
    frozen = load_world_model(frozen_dir).dit
    model = avid(mode, frozen)
    if mode != "scratch":
        from freeaction_gym.models.avid import file_sha256

        model.frozen_source = str(frozen_dir)
        model.frozen_sha256 = file_sha256(frozen_dir / "model.safetensors")
    stats = {"action_mean": [0.0] * A, "action_std": [1.0] * A}
    return WorldModel(model, PixelCodec(), DiffusionConfig("sample", "delta"), stats)


@pytest.mark.parametrize("mode", MODES)
def test_save_load_round_trip_gives_identical_outputs(mode, frozen_dir, tmp_path):
    world = adapter_world(mode, frozen_dir)
    d = world.save_pretrained(tmp_path / "adapter")
    weights = load_file(str(d / "model.safetensors"))
    assert set(weights) == set(world.dit.adapter.state_dict())  # the adapter only
    meta = json.loads((d / "config.json").read_text())
    assert meta["class"] == "AVIDModel" and meta["config"]["mode"] == mode
    assert ("frozen" in meta) == (mode != "scratch")
    loaded = load_world_model(d)
    assert isinstance(loaded.dit, AVIDModel) and loaded.dit.config == world.dit.config
    x, t, a = inputs()
    with torch.no_grad():
        assert torch.equal(loaded.dit(x, t, a), world.dit(x, t, a))
    ctx = torch.rand(2, 1, C, HW, HW) * 2 - 1
    s = world.default_sampling(2, num_steps=2)
    z1, _ = world.predict(ctx, a, s, torch.Generator().manual_seed(0))
    z2, _ = loaded.predict(ctx, a, s, torch.Generator().manual_seed(0))
    assert torch.equal(z1, z2)


def test_missing_or_changed_frozen_model_is_a_clear_error(frozen_dir, tmp_path):
    own = tmp_path / "frozen_copy"
    shutil.copytree(frozen_dir, own)
    world = adapter_world("avid", own)
    d = world.save_pretrained(tmp_path / "adapter")
    (own / "model.safetensors").rename(own / "moved.safetensors")
    with pytest.raises(CheckpointError, match="frozen model directory .* has no model.safetensors"):
        load_world_model(d)
    frozen = VideoDiT(world.dit.frozen.config)  # other weights
    WorldModel(frozen, PixelCodec(), DiffusionConfig("sample", "delta")).save_pretrained(own)
    with pytest.raises(CheckpointError, match="changed since the adapter was trained"):
        load_world_model(d)
    meta = json.loads((d / "config.json").read_text())
    meta["frozen"]["sha256"] = None  # no hash to check: the saved architecture still is
    meta["frozen"]["config"]["depth"] = 2
    (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="another architecture"):
        load_world_model(d)
    del meta["frozen"]
    (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="lacks the entry 'frozen'"):
        load_world_model(d)


def test_relative_frozen_path_is_taken_from_the_adapter_directory(frozen_dir, tmp_path):
    shutil.copytree(frozen_dir, tmp_path / "pack" / "frozen")
    world = adapter_world("avid", tmp_path / "pack" / "frozen")
    world.dit.frozen_source = "../frozen"  # relative to the adapter's directory
    d = world.save_pretrained(tmp_path / "pack" / "adapter")
    shutil.move(tmp_path / "pack", tmp_path / "moved")  # the pair moves together
    loaded = load_world_model(tmp_path / "moved" / "adapter")
    x, t, a = inputs()
    with torch.no_grad():
        assert torch.equal(loaded.dit(x, t, a), world.dit(x, t, a))
    assert d.name == "adapter"


# -- an env on an adapter world model ---------------------------------------------------
def test_env_runs_on_an_adapter_world_model(frozen_dir, tmp_path):
    d = adapter_world("avid", frozen_dir).save_pretrained(tmp_path / "adapter")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, HW, HW, 3), dtype=np.uint8)
    ResetBank(frames, frames, np.array(["reach-v3"] * 2), np.array(["a", "b"])).save(
        d / "reset_bank.npz"
    )
    sampling = {"scheduler": "ddim", "num_steps": 2, "guidance": {"mode": "action_scaled"}}
    env = gym.make("FreeActionMetaWorldV2-v0", model=str(d), sampling=sampling, reward="none")
    obs, _ = env.reset(seed=0)
    assert isinstance(env.unwrapped.core.world.dit, AVIDModel)
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.shape == (HW, HW, 3) and obs.dtype == np.uint8
    assert env.unwrapped.core.world.dit.last_mask is not None
    env.close()
