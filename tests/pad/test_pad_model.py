"""PAD-style joint denoiser: shapes, attention structure, modality-selective truncation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from freeaction_gym.pad.model import PADConfig, PADDiT
from freeaction_gym.pad.sampling import initial_noise, sample_joint

CFG = PADConfig(image_size=16, patch_size=4, hidden_size=32, depth=2, num_heads=2, horizon=3,
                future_frames=2, num_tasks=3)  # fmt: skip


def _model(cfg: PADConfig = CFG, seed: int = 0) -> PADDiT:
    torch.manual_seed(seed)
    m = PADDiT(cfg)
    with torch.no_grad():  # adaLN-Zero makes a fresh model output exactly zero
        for name, p in m.named_parameters():
            if "adaLN_modulation" in name or ".linear." in name:
                p.normal_(0, 0.1)
    return m.eval()


def _inputs(b: int = 2, seed: int = 1, cfg: PADConfig = CFG):
    g = torch.Generator().manual_seed(seed)
    s = cfg.image_size
    rgb = torch.rand(b, 3, s, s, generator=g) * 2 - 1
    depth = torch.randn(b, 1, s, s, generator=g)
    noisy = {k: torch.randn(v, generator=g) for k, v in cfg.shapes(b).items()}
    return rgb, depth, noisy, torch.tensor([10, 700])[:b], torch.tensor([0, 2])[:b]


def test_output_shapes_follow_config():
    out = _model()(*_inputs())
    assert {k: tuple(v.shape) for k, v in out.items()} == CFG.shapes(2)
    assert all(torch.isfinite(v).all() for v in out.values())


@pytest.mark.parametrize("blocked", [True, False])
def test_image_tokens_ignore_depth_and_action_only_when_blocked(blocked):
    cfg = PADConfig(**(CFG.to_dict() | {"image_attends_only_image": blocked}))
    m = _model(cfg)
    rgb, depth, noisy, t, task = _inputs(cfg=cfg)
    base = m(rgb, depth, noisy, t, task)
    other = dict(noisy, action=noisy["action"] + 1.0, depth=noisy["depth"] - 1.0)
    moved = m(rgb, depth * 2, other, t, task)
    same_image = torch.allclose(base["image"], moved["image"], atol=1e-6)
    assert same_image == blocked
    assert not torch.allclose(base["action"], moved["action"])  # actions see everything


def test_initial_noise_truncates_only_selected_modalities():
    shapes = {"image": (64, 3, 16, 16), "depth": (64, 1, 16, 16), "action": (4096, 4, 4)}
    plain = initial_noise(shapes, (), 1.0, torch.Generator().manual_seed(0))
    trunc = initial_noise(shapes, ("image", "depth"), 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(plain["action"], trunc["action"])  # untouched modality: same draws
    for m in ("image", "depth"):
        assert trunc[m].abs().max() <= 1.0 and plain[m].abs().max() > 3.0
        assert torch.equal(torch.sign(trunc[m]), torch.sign(plain[m]))  # paired draws
        assert trunc[m].std().item() == pytest.approx(stats.truncnorm.std(-1, 1), rel=0.02)
        assert plain[m].std().item() == pytest.approx(1.0, rel=0.02)
    act = initial_noise(shapes, ("action",), 1.5, torch.Generator().manual_seed(0))["action"]
    ks = stats.kstest(act.flatten().numpy()[:20000], stats.truncnorm(-1.5, 1.5).cdf)
    assert ks.pvalue > 0.01
    with pytest.raises(ValueError, match="unknown modalities"):
        initial_noise(shapes, ("rgb",))


def test_sampler_is_deterministic_given_noise_and_truncation_changes_the_result():
    m = _model()
    rgb, depth, _, _, task = _inputs()
    shapes = CFG.shapes(2)
    n0 = initial_noise(shapes, (), 1.0, torch.Generator().manual_seed(3))
    a = sample_joint(m, rgb, depth, task, n0, num_steps=4)
    b = sample_joint(m, rgb, depth, task, n0, num_steps=4)
    for k in a:
        assert torch.equal(a[k], b[k]) and a[k].shape == shapes[k]
    n1 = initial_noise(shapes, ("action",), 0.5, torch.Generator().manual_seed(3))
    c = sample_joint(m, rgb, depth, task, n1, num_steps=4)
    assert not torch.allclose(a["action"], c["action"])
    assert np.isfinite(c["image"].numpy()).all()


def test_config_validation():
    with pytest.raises(ValueError, match="not divisible"):
        PADConfig(image_size=30, patch_size=4)
    with pytest.raises(ValueError, match=">= 1"):
        PADConfig(horizon=0)


@pytest.mark.parametrize("kind", ["sample", "epsilon"])
def test_joint_loss_targets_follow_prediction_type(kind, monkeypatch):
    """An oracle returning exactly the right target (x0 or the noise) has zero loss."""
    from freeaction_gym.pad import train as pad_train

    cfg = PADConfig(**(CFG.to_dict() | {"prediction_type": kind}))
    rgb, depth, _, _, task = _inputs(cfg=cfg)
    batch = {"obs_rgb": rgb, "obs_depth": depth, "task": task}
    batch |= {k: torch.randn(v) for k, v in cfg.shapes(2).items()}
    drawn = {}
    real_randn = torch.randn

    def spy_randn(*a, **kw):
        out = real_randn(*a, **kw)
        drawn[len(drawn)] = out
        return out

    monkeypatch.setattr(pad_train.torch, "randn", spy_randn)

    class Oracle(torch.nn.Module):
        config = cfg

        def forward(self, obs_rgb, obs_depth, noisy, t, task):
            if kind == "sample":
                return {k: batch[k] for k in ("image", "depth", "action")}
            return {k: drawn[i] for i, k in enumerate(("image", "depth", "action"))}

    assert float(pad_train.joint_loss(Oracle(), batch, [1, 1, 1])) == pytest.approx(0.0, abs=1e-12)
    wrong = PADConfig(
        **(cfg.to_dict() | {"prediction_type": "sample" if kind == "epsilon" else "epsilon"})
    )
    Oracle.config = wrong
    assert float(pad_train.joint_loss(Oracle(), batch, [1, 1, 1])) > 0.5


def test_policy_rejects_unknown_modalities_without_drawing_noise():
    from freeaction_gym.pad.data import DemoStats
    from freeaction_gym.pad.policy import PADPolicy

    stats = DemoStats(0.0, 1.0, ["reach-v3", "push-v3", "pick-place-v3"])
    model = _model()  # seeds the global generator itself
    state = torch.get_rng_state()
    PADPolicy(model, stats, ("image", "action"), 1.0)
    assert torch.equal(torch.get_rng_state(), state)  # construction draws nothing
    with pytest.raises(ValueError, match="unknown modalities"):
        PADPolicy(model, stats, ("rgb",))
