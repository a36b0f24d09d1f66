"""Checkpoint I/O: released IRASim .pt files (ema/model/args) and our safetensors format."""

from __future__ import annotations

import argparse
import sys

import pytest
import torch

from freeaction_gym.models import (
    CheckpointError,
    VideoDiT,
    irasim_dit,
    load_irasim_checkpoint,
    load_pretrained_dit,
    save_pretrained_dit,
)
from freeaction_gym.models.presets import dit_config

SIZE, FRAMES = (8, 10), 4


def random_irasim(seed: int, conditioning: str = "frame") -> VideoDiT:
    torch.manual_seed(seed)
    model = irasim_dit("tiny", "rt1", conditioning, input_size=SIZE, num_frames=FRAMES)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "adaLN_modulation" in name or name.startswith("final_layer.linear"):
                p.normal_(0.0, 0.05)
    return model.eval()


def run(model: VideoDiT) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    cfg = model.config
    x = torch.randn(2, cfg.num_frames, 4, *cfg.input_size, generator=g)
    actions = torch.randn(2, cfg.num_frames - 1, cfg.action_dim, generator=g)
    with torch.no_grad():
        return model(x, torch.tensor([5, 600]), actions)


def irasim_args(**kw) -> argparse.Namespace:
    d = dict(
        model="IRASim-S/2",
        dataset="rt1",
        extras=3,
        num_frames=FRAMES,
        video_size=[SIZE[0] * 8, SIZE[1] * 8],
        mask_frame_num=1,
    )
    d.update(kw)
    return argparse.Namespace(**d)


@pytest.fixture(scope="module")
def models():
    return random_irasim(1), random_irasim(2)


@pytest.fixture
def irasim_file(tmp_path, models):
    ema, other = models
    path = tmp_path / "0300000.pt"
    torch.save(
        {"ema": ema.state_dict(), "model": other.state_dict(), "opt": {}, "args": irasim_args()},
        path,
    )
    return path


def test_irasim_file_loads_ema_weights(irasim_file, models) -> None:
    ema, other = models
    loaded = load_irasim_checkpoint(irasim_file)
    assert not loaded.training
    cfg = loaded.config
    assert (cfg.input_size, cfg.num_frames, cfg.hidden_size, cfg.depth, cfg.num_heads) == (
        SIZE,
        FRAMES,
        64,
        4,
        4,
    )
    assert (cfg.conditioning, cfg.action_dim, cfg.action_embedder) == ("frame", 7, "mlp")
    out = run(loaded)
    assert torch.equal(out, run(ema))
    assert not torch.allclose(out, run(other), atol=1e-4)


def test_video_ada_file(tmp_path) -> None:
    model = random_irasim(3, "video")
    path = tmp_path / "video.pt"
    torch.save(
        {"ema": model.state_dict(), "model": {}, "opt": {}, "args": irasim_args(extras=5)}, path
    )
    loaded = load_irasim_checkpoint(path)
    assert loaded.config.conditioning == "video" and loaded.config.action_dim == 7
    assert torch.equal(run(loaded), run(model))


def test_plain_state_dict_and_module_prefix(tmp_path, models) -> None:
    ema, _ = models
    path = tmp_path / "plain.pt"
    torch.save(ema.state_dict(), path)
    # no args: the 8x10 latent does not match a known dataset, so the size must be given
    with pytest.raises(CheckpointError, match="input_size"):
        load_irasim_checkpoint(path)
    assert torch.equal(run(load_irasim_checkpoint(path, input_size=SIZE)), run(ema))
    ddp = tmp_path / "ddp.pt"
    torch.save({"model": {f"module.{k}": v for k, v in ema.state_dict().items()}}, ddp)
    assert torch.equal(run(load_irasim_checkpoint(ddp, input_size=SIZE)), run(ema))


def test_truncated_file_raises(irasim_file) -> None:
    data = irasim_file.read_bytes()
    irasim_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_irasim_checkpoint(irasim_file)


def test_missing_path_raises(tmp_path) -> None:
    path = tmp_path / "nowhere" / "0300000.pt"
    with pytest.raises(CheckpointError) as err:
        load_irasim_checkpoint(path)
    assert str(path) in str(err.value)


def test_missing_extra_and_misshaped_keys_are_listed(tmp_path, models) -> None:
    sd = dict(models[0].state_dict())
    del sd["mask_emb_fn.weight"]
    sd["blocks.0.attn.extra_bias"] = torch.zeros(3)
    sd["final_layer.linear.bias"] = torch.zeros(5)
    path = tmp_path / "bad.pt"
    torch.save({"ema": sd, "args": irasim_args()}, path)
    with pytest.raises(CheckpointError) as err:
        load_irasim_checkpoint(path)
    msg = str(err.value)
    for needle in (
        "mask_emb_fn.weight",
        "blocks.0.attn.extra_bias",
        "final_layer.linear.bias",
        "missing",
        "unexpected",
        "mis-shaped",
        "(5,)",
        "(16,)",
    ):
        assert needle in msg, needle


def test_no_state_dict_raises(tmp_path) -> None:
    path = tmp_path / "junk.pt"
    torch.save({"step": 3}, path)
    with pytest.raises(CheckpointError):
        load_irasim_checkpoint(path)


def test_unimportable_args_class_falls_back_with_warning(tmp_path, models, monkeypatch) -> None:
    ema, _ = models
    mod_dir = tmp_path / "mods"
    mod_dir.mkdir()
    (mod_dir / "fa_gone_config_mod.py").write_text(
        "class RunConfig:\n"
        "    def __init__(self):\n"
        "        self.model = 'IRASim-S/2'\n"
        "        self.dataset = 'rt1'\n"
    )
    monkeypatch.syspath_prepend(str(mod_dir))
    import fa_gone_config_mod  # noqa: PLC0415

    path = tmp_path / "0300000.pt"
    torch.save(
        {"ema": ema.state_dict(), "model": {}, "opt": {}, "args": fa_gone_config_mod.RunConfig()},
        path,
    )
    sys.path.remove(str(mod_dir))
    del sys.modules["fa_gone_config_mod"]
    with pytest.raises(ModuleNotFoundError):  # the module really is gone
        torch.load(path, weights_only=False)

    with pytest.warns(UserWarning, match="omegaconf"):
        loaded = load_irasim_checkpoint(path, input_size=SIZE)
    assert torch.equal(run(loaded), run(ema))


def test_save_load_pretrained_roundtrip(tmp_path) -> None:
    torch.manual_seed(0)
    model = VideoDiT(
        dit_config(
            "tiny",
            input_size=(8, 8),
            num_frames=5,
            action_dim=4,
            action_tokens=True,
            cumulative_actions=True,
            action_in_temporal=True,
        )
    )
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.02)
    out_dir = save_pretrained_dit(model, tmp_path / "run", extra={"step": 7})
    assert (out_dir / "model.safetensors").is_file() and (out_dir / "config.json").is_file()
    loaded = load_pretrained_dit(out_dir)
    assert loaded.config == model.config
    assert torch.equal(run(loaded), run(model.eval()))


def test_load_pretrained_missing_files(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_pretrained_dit(tmp_path / "empty")
    model = VideoDiT(dit_config("tiny", input_size=(8, 8), num_frames=5, action_dim=4))
    save_pretrained_dit(model, tmp_path / "run")
    (tmp_path / "run" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json"):
        load_pretrained_dit(tmp_path / "run")
