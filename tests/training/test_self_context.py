"""Training on the model's own imagined context: draws, the replaced frames against an
independent re-computation with ``predict``, and a training run that uses it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freeaction_gym.models import VideoDiT, dit_config
from freeaction_gym.training.config import config_from_dict
from freeaction_gym.training.data import Clips
from freeaction_gym.training.self_context import SelfContext, imagine_context
from freeaction_gym.world_model import WorldModel
from freeaction_gym.world_model.model import DiffusionConfig


def _world() -> WorldModel:
    torch.manual_seed(0)
    cfg = dit_config("tiny", input_size=(16, 16), in_channels=3, patch_size=8, num_frames=4,
                     action_dim=4, num_context_frames=2, context_mode="channels")  # fmt: skip
    dit = VideoDiT(cfg)
    with torch.no_grad():  # adaLN-Zero would make every prediction "no change"
        for name, p in dit.named_parameters():
            if "adaLN" in name or name.startswith("final_layer.linear"):
                p.normal_(0, 0.05)
    diffusion = DiffusionConfig(prediction_type="sample", target="delta", delta_scale=2.0)
    return WorldModel(dit, diffusion=diffusion)


def test_draw_follows_prob_and_range():
    rng = np.random.default_rng(0)
    assert {SelfContext(prob=0.0).draw(rng) for _ in range(50)} == {0}
    assert {SelfContext(prob=1.0, max_steps=3).draw(rng) for _ in range(200)} == {1, 2, 3}
    half = [SelfContext(prob=0.5, max_steps=1).draw(rng) for _ in range(2000)]
    assert 0.45 < np.mean(half) < 0.55
    with pytest.raises(ValueError, match="prob in"):
        SelfContext(prob=1.5)


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_imagined_context_equals_step_by_step_predictions(steps):
    world = _world().train()
    g = torch.Generator().manual_seed(1)
    f = 4
    z = torch.rand(3, steps + f, 3, 16, 16, generator=g) * 2 - 1
    a = torch.randn(3, steps + f - 1, 4, generator=g)
    out = imagine_context(
        world, Clips(z, a), steps, sample_steps=2, generator=torch.Generator().manual_seed(5)
    )
    assert out.latents.shape == (3, f, 3, 16, 16) and out.actions.shape == (3, f - 1, 4)
    assert torch.equal(out.actions, a[:, steps:])
    assert world.dit.training  # mode restored
    sampling = world.default_sampling(
        1, num_steps=2, guidance={"mode": "none"}, truncation={"mode": "none"}
    )
    ref, g = z.clone(), torch.Generator().manual_seed(5)
    with torch.no_grad():
        world.dit.eval()
        for r in range(steps):
            pred, _ = world.predict(ref[:, r : r + 2], a[:, r : r + 2], sampling, g)
            ref[:, r + 2] = pred[:, 0]
    torch.testing.assert_close(out.latents, ref[:, steps:], rtol=0, atol=1e-6)
    # the imagined frames differ from the real ones, later frames stay real
    assert (
        out.latents[:, 2 - min(steps, 2) : 2] - z[:, steps + 2 - min(steps, 2) : steps + 2]
    ).abs().max() > 1e-3  # noqa: E501
    assert torch.equal(out.latents[:, 2:], z[:, steps + 2 :])
    assert not out.latents.requires_grad
    same = imagine_context(world, Clips(z, a), 0, sample_steps=2)
    assert torch.equal(same.latents, z)


def test_training_run_with_self_context(metaworld_root, tmp_path):
    from test_train_dit import dit_config as run_config  # the tiny trainer config

    from freeaction_gym.training.train_dit import train_dit

    cfg = run_config(metaworld_root, tmp_path / "run", steps=3)
    cfg["data"].update(clip_frames=4, min_clip_frames=3)
    cfg["model"].update(num_context_frames=2, context_mode="channels")
    cfg["optim"].update(self_context_prob=1.0, self_context_steps=2)
    world = WorldModel.from_pretrained(train_dit(config_from_dict(cfg)))
    assert world.num_context == 2
    bad = dict(cfg, optim=dict(cfg["optim"], self_context_steps=0))
    bad["loop"] = dict(cfg["loop"], output=str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="max_steps >= 1"):
        train_dit(config_from_dict(bad))
