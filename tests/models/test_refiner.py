"""Conv refiner extension: identity at init, warm start from a refiner-less checkpoint,
round trip through our checkpoint format, and its effect once trained."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from freeaction_gym.models import VideoDiT, dit_config
from freeaction_gym.models.checkpoint import (
    CheckpointError,
    load_state_dict_strict,
    save_pretrained_dit,
)
from freeaction_gym.models.pretrained import load_pretrained_dit


def _base():
    torch.manual_seed(0)
    cfg = dit_config("tiny", input_size=(16, 16), in_channels=3, patch_size=8, num_frames=3,
                     action_dim=4)  # fmt: skip
    dit = VideoDiT(cfg)
    with torch.no_grad():  # adaLN-Zero would make every output exactly zero
        for p in dit.final_layer.parameters():
            p.normal_(0, 0.05)
    return dit


def _inputs(b=2):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, 3, 3, 16, 16, generator=g)
    return x, torch.tensor([10, 900])[:b], torch.randn(b, 2, 4, generator=g)


def test_refiner_starts_as_identity_and_warm_starts_from_plain_weights():
    plain = _base()
    refined = VideoDiT(replace(plain.config, refiner_width=8, refiner_depth=3))
    with pytest.raises(CheckpointError, match="missing keys"):
        load_state_dict_strict(refined, plain.state_dict(), "plain")
    load_state_dict_strict(refined, plain.state_dict(), "plain", new_modules=("refiner.",))
    x, t, a = _inputs()
    assert torch.equal(refined(x, t, a), plain(x, t, a))
    # only the named new module may be missing
    sd = {k: v for k, v in plain.state_dict().items() if not k.startswith("final_layer.")}
    with pytest.raises(CheckpointError, match="final_layer"):
        load_state_dict_strict(refined, sd, "broken", new_modules=("refiner.",))


def test_refiner_changes_only_predicted_frames_and_learns(tmp_path):
    dit = VideoDiT(replace(_base().config, refiner_width=8, refiner_depth=3))
    x, t, a = _inputs()
    target = torch.randn(2, 2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    opt = torch.optim.Adam(dit.refiner.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = (dit(x, t, a)[:, 1:] - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]  # zero-initialised last layer still receives gradient
    before = VideoDiT(replace(dit.config, refiner_width=0))
    before.load_state_dict({k: v for k, v in dit.state_dict().items() if "refiner" not in k})
    with torch.no_grad():
        out, ref = dit(x, t, a), before(x, t, a)
    assert torch.equal(out[:, :1], ref[:, :1])  # context slot untouched
    assert not torch.allclose(out[:, 1:], ref[:, 1:])
    path = save_pretrained_dit(dit, tmp_path / "m")
    back = load_pretrained_dit(path)
    assert back.config.refiner_width == 8
    with torch.no_grad():
        assert torch.equal(back(x, t, a), out)


def test_refiner_needs_two_layers():
    with pytest.raises(ValueError, match="depth >= 2"):
        VideoDiT(replace(_base().config, refiner_width=8, refiner_depth=1))
