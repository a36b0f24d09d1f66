"""``freeaction train`` with an ``avid:`` section on the tiny MetaWorld dataset: an action-free
frozen model, then an adapter run through the CLI that writes a loadable AVID model."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from freeaction_gym.models.avid import AVIDModel
from freeaction_gym.training.config import config_from_dict
from freeaction_gym.world_model import WorldModel


def run_config(root, out, **sections) -> dict:
    d = {
        "kind": "dit",
        "data": {"root": str(root), "clip_frames": 3, "min_clip_frames": 2},
        "model": {"size": "tiny", "patch_size": 8},
        "diffusion": {"prediction_type": "sample", "target": "delta", "delta_scale": 0.0},
        "optim": {"steps": 2, "batch_size": 4, "warmup": 1, "seed": 0, "threads": 1},
        "loop": {"output": str(out), "checkpoint_every": 2, "eval_every": 0, "log_every": 1},
    }
    for k, v in sections.items():
        d[k] = d.get(k, {}) | v
    return d


@pytest.fixture(scope="module")
def frozen_model(metaworld_root, tmp_path_factory):
    """The "pretrained" action-free model: a plain DiT run with every action nulled."""
    from freeaction_gym.training.train_dit import train_dit

    out = tmp_path_factory.mktemp("frozen_run")
    cfg = run_config(metaworld_root, out, diffusion={"null_action_prob": 1.0})
    return train_dit(config_from_dict(cfg))


def test_cli_trains_an_adapter_and_writes_a_loadable_model(metaworld_root, frozen_model, tmp_path):
    d = run_config(
        metaworld_root,
        tmp_path / "avid_run",
        model={"depth": 2, "hidden_size": 32},
        avid={"frozen": str(frozen_model), "mode": "avid", "adapter_loss_weight": 0.5},
    )
    d["loop"].update(eval_every=2, eval_clips=2, eval_sample_steps=2)
    path = tmp_path / "avid.yaml"
    path.write_text(yaml.safe_dump(d))
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "FREEACTION_THREADS": "1"}
    cmd = [sys.executable, "-m", "freeaction_gym.cli", "train", "--config", str(path)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "[avid] mode=avid" in res.stdout and "model written to" in res.stdout

    world = WorldModel.from_pretrained(tmp_path / "avid_run" / "model")
    frozen = WorldModel.from_pretrained(frozen_model)
    assert isinstance(world.dit, AVIDModel) and world.dit.config.mode == "avid"
    assert world.dit.config.adapter_loss_weight == 0.5  # the run's auxiliary loss, recorded
    assert world.diffusion.delta_scale == frozen.diffusion.delta_scale  # the frozen's process
    assert world.diffusion.null_action_prob == 0.1  # the run's own training setting
    for k, v in frozen.dit.state_dict().items():  # bit-identical after the adapter's steps
        assert torch.equal(world.dit.frozen.state_dict()[k], v), k
    saved = load_file(str(tmp_path / "avid_run" / "model" / "model.safetensors"))
    assert set(saved) == set(world.dit.adapter.state_dict())

    state = torch.load(tmp_path / "avid_run" / "checkpoint.pt", weights_only=False)
    n_opt = sum(len(g["params"]) for g in state["opt"]["param_groups"])
    assert n_opt == sum(p.requires_grad for p in world.dit.adapter.parameters())  # adapter only
    assert state["step"] == 2

    frames = torch.randint(0, 256, (1, 1, 32, 32, 3), dtype=torch.uint8)
    z, _ = world.predict(
        world.encode(frames), torch.zeros(1, 2, 4), generator=torch.Generator().manual_seed(0)
    )
    assert z.shape == (1, 2, 3, 32, 32) and torch.isfinite(z).all()
    assert world.dit.last_mask is not None


def test_scratch_baseline_trains_without_a_frozen_model(metaworld_root, frozen_model, tmp_path):
    """Mode scratch: the same adapter alone; a given frozen model only lends its process."""
    from freeaction_gym.training.train_dit import train_dit

    cfg = run_config(
        metaworld_root,
        tmp_path / "scratch",
        model={"depth": 2, "hidden_size": 32},
        avid={"frozen": str(frozen_model), "mode": "scratch"},
    )
    world = WorldModel.from_pretrained(train_dit(config_from_dict(cfg)))
    assert world.dit.frozen is None and world.dit.config.mode == "scratch"
    assert (
        world.diffusion.delta_scale
        == WorldModel.from_pretrained(frozen_model).diffusion.delta_scale
    )


def test_poe_trains_exactly_as_scratch_and_combines_from_it(metaworld_root, frozen_model, tmp_path):
    """poe trains its adapter alone, as scratch does: the same weights after the same steps
    (same process, same batch size), so combine_trained_alone(scratch) is the poe model."""
    from freeaction_gym.training.avid import combine_trained_alone
    from freeaction_gym.training.train_dit import train_dit

    worlds = {}
    for mode in ("scratch", "poe"):
        cfg = run_config(
            metaworld_root,
            tmp_path / mode,
            model={"depth": 2, "hidden_size": 32},
            avid={"frozen": str(frozen_model), "mode": mode},
        )
        worlds[mode] = WorldModel.from_pretrained(train_dit(config_from_dict(cfg)))
    trained = worlds["poe"].dit.adapter.state_dict()
    for k, v in worlds["scratch"].dit.adapter.state_dict().items():
        assert torch.equal(trained[k], v), k
    derived = combine_trained_alone(worlds["scratch"], "poe", frozen_model)
    assert derived.dit.config == worlds["poe"].dit.config
    assert derived.dit.adapter is worlds["scratch"].dit.adapter  # shared, not copied
    x, t = torch.randn(2, 3, 3, 32, 32), torch.tensor([10, 500])
    a = torch.randn(2, 2, 4)
    tight = {"rtol": 1e-5, "atol": 1e-12}  # outputs are small after 2 steps (zero-init head)
    with torch.no_grad():
        want, got = worlds["poe"].dit(x, t, a), derived.dit(x, t, a)
        alone, pre = worlds["scratch"].dit(x, t, a), derived.dit.pretrained(x, t)
    torch.testing.assert_close(got, want, **tight)
    lam = derived.dit.config.poe_weight  # the frozen model joined: lam * adapt + (1 - lam) * pre
    torch.testing.assert_close(got, lam * alone + (1 - lam) * pre, **tight)
    assert (pre - alone).abs().max() > 10 * (got - want).abs().max()
    derived.save_pretrained(tmp_path / "derived")  # and it round-trips like a trained one
    back = WorldModel.from_pretrained(tmp_path / "derived")
    with torch.no_grad():
        torch.testing.assert_close(back.dit(x, t, a), want, **tight)
    with pytest.raises(ValueError, match="poe or action_cfg"):
        combine_trained_alone(worlds["scratch"], "avid", frozen_model)


def test_avid_section_is_validated():
    base = {"kind": "dit"}
    with pytest.raises(ValueError, match="unknown key.*'avid'"):
        config_from_dict(base | {"avid": {"frozen": "x", "adapter_size": "S"}})
    with pytest.raises(ValueError, match="needed in 'avid'"):
        config_from_dict(base | {"avid": {"mode": "avid"}})
    with pytest.raises(ValueError, match="unknown AVID mode"):
        config_from_dict(base | {"avid": {"frozen": "x", "mode": "controlnet"}})
    with pytest.raises(ValueError, match="kind: dit"):
        config_from_dict({"kind": "autoencoder", "avid": {"frozen": "x"}})
    cfg = config_from_dict(base | {"avid": {"mode": "scratch"}})
    assert cfg.avid.frozen is None and cfg.to_dict()["avid"]["mode"] == "scratch"


def test_frozen_model_with_another_codec_is_refused(tmp_path):
    from freeaction_gym.training.avid import check_codec

    with pytest.raises(ValueError, match="uses the 'pixel' codec; set codec: pixel"):
        check_codec(tmp_path, "pixel", str(tmp_path / "my_vae"))
