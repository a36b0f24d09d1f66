"""Trainers on a tiny generated MetaWorld dataset: artefacts, exact resume, the autoencoder
trainer and the CLI entry point."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from freeaction_gym.training.config import config_from_dict
from freeaction_gym.world_model import WorldModel

EVAL_KEYS = {
    "psnr",
    "psnr_copy",
    "ssim",
    "ssim_copy",
    "moving_psnr",
    "moving_psnr_copy",
    "psnr_shuffled",
    "moving_psnr_shuffled",
    "step",
}


def dit_config(root: Path, out: Path, steps: int) -> dict:
    return {
        "kind": "dit",
        "data": {"root": str(root), "clip_frames": 3, "min_clip_frames": 2},
        "model": {"size": "tiny", "patch_size": 8},
        "codec": "pixel",
        # delta_scale 0 -> measured from the data on the first run, restored on resume
        "diffusion": {"prediction_type": "sample", "target": "delta", "delta_scale": 0.0},
        "optim": {
            "steps": steps,
            "batch_size": 4,
            "lr": 1e-3,
            "warmup": 2,
            "ema_decay": 0.5,  # so that the EMA visibly moves in 6 steps
            "seed": 0,
            "threads": 1,
        },
        "loop": {
            "output": str(out),
            "checkpoint_every": 3,
            "eval_every": 6,
            "log_every": 1,
            "eval_clips": 2,
            "eval_sample_steps": 2,
        },
    }


def train(root: Path, out: Path, steps: int) -> Path:
    from freeaction_gym.training.train_dit import train_dit

    return train_dit(config_from_dict(dit_config(root, out, steps)))


def log_steps(out: Path) -> list[int]:
    rows = list(csv.reader(open(out / "log.csv")))
    assert rows[0] == ["step", "loss", "lr", "sec_per_step", "clip_frames"]
    assert all(r[0] != "step" for r in rows[1:])  # one header, even after a resume
    assert all(np.isfinite(float(r[1])) for r in rows[1:])
    return [int(r[0]) for r in rows[1:]]


def checkpoint(out: Path) -> dict:
    return torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)


@pytest.fixture(scope="module")
def full_run(metaworld_root, tmp_path_factory) -> Path:
    """An uninterrupted 6-step run."""
    out = tmp_path_factory.mktemp("dit_full")
    assert train(metaworld_root, out, 6) == out / "model"
    return out


def test_dit_run_writes_its_artefacts(full_run):
    out = full_run
    for name in ("config.yaml", "log.csv", "eval.jsonl", "loss.png", "checkpoint.pt"):
        assert (out / name).is_file(), name
    assert (out / "model" / "config.json").is_file()
    assert (out / "model" / "model.safetensors").is_file()
    assert log_steps(out) == [1, 2, 3, 4, 5, 6]
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [6]
    assert set(evals[0]) == EVAL_KEYS
    assert np.isfinite(evals[0]["psnr_copy"]) and np.isfinite(evals[0]["psnr"])
    assert checkpoint(out)["step"] == 6
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_exported_model_loads_and_predicts(full_run, metaworld_root):
    world = WorldModel.from_pretrained(full_run / "model")
    state = checkpoint(full_run)
    # the export is the EMA network, with the measured delta scale and the dataset stats
    exported = load_file(str(full_run / "model" / "model.safetensors"))
    assert exported.keys() == state["ema"].keys()
    assert not [k for k, v in exported.items() if not torch.equal(v, state["ema"][k])]
    assert world.diffusion.target == "delta" and world.diffusion.delta_scale > 0
    assert world.diffusion.delta_scale == state["diffusion"]["delta_scale"]
    stats = json.loads((metaworld_root / "stats.json").read_text())
    assert world.stats["action_mean"] == stats["action_mean"]
    cfg = world.dit.config
    assert (cfg.input_size, cfg.patch_size, cfg.num_frames, cfg.in_channels) == ((32, 32), 8, 3, 3)
    assert cfg.action_dim == 4 and cfg.hidden_size == 64
    video = torch.randint(0, 256, (1, 1, 32, 32, 3), dtype=torch.uint8)
    z, info = world.predict(
        world.encode(video), torch.zeros(1, 2, 4), generator=torch.Generator().manual_seed(0)
    )
    assert z.shape == (1, 2, 3, 32, 32) and torch.isfinite(z).all()
    assert info["tau"].shape == (1,)


def test_resume_continues_and_matches_an_uninterrupted_run(full_run, metaworld_root, tmp_path):
    out = tmp_path / "resumed"
    train(metaworld_root, out, 3)
    first = checkpoint(out)
    assert first["step"] == 3 and log_steps(out) == [1, 2, 3]
    train(metaworld_root, out, 6)  # same config, more steps: resumes from step 3
    assert log_steps(out) == [1, 2, 3, 4, 5, 6]
    resumed, full = checkpoint(out), checkpoint(full_run)
    assert resumed["step"] == 6
    assert resumed["diffusion"] == full["diffusion"]
    for part in ("model", "ema"):
        differ = [k for k, v in full[part].items() if not torch.equal(resumed[part][k], v)]
        assert not differ, (part, differ)
    changed = [k for k, v in first["model"].items() if not torch.equal(v, full["model"][k])]
    assert changed  # steps 4-6 did train; the equality above is not vacuous
    a = load_file(str(out / "model" / "model.safetensors"))
    b = load_file(str(full_run / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # eval ran at the end of each invocation (step == steps)
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [3, 6]


def test_autoencoder_run_writes_a_scaled_diffusers_vae(metaworld_root, tmp_path):
    from freeaction_gym.models.autoencoder import VideoAutoencoder
    from freeaction_gym.training.data import EpisodeBank
    from freeaction_gym.training.train_autoencoder import _frames, train_autoencoder
    from freeaction_gym.world_model import PixelCodec

    cfg = config_from_dict(
        {
            "kind": "autoencoder",
            "data": {"root": str(metaworld_root)},
            "model": {
                "block_out_channels": [8, 16],
                "norm_num_groups": 4,
                "latent_channels": 4,
                "sample_size": 32,
            },
            "optim": {"steps": 2, "batch_size": 4, "lr": 1e-3, "warmup": 1, "threads": 1},
            "loop": {
                "output": str(tmp_path),
                "checkpoint_every": 2,
                "eval_every": 2,
                "log_every": 1,
            },
        }
    )
    out = train_autoencoder(cfg)
    assert (out / "config.json").is_file()
    ae = VideoAutoencoder.from_pretrained(out)
    sf = ae.scaling_factor
    assert np.isfinite(sf) and sf > 0 and sf != 1.0
    assert ae.latent_channels == 4 and ae.downsample == 2
    # the scale is 1 / std of the exported encoder's latents on the validation frames
    val = EpisodeBank.from_metaworld(metaworld_root, "val", PixelCodec().encode)
    frames = _frames(val, 128, np.random.default_rng(3))
    with torch.inference_mode():
        z = ae.encode_frames(frames)  # already multiplied by the scaling factor
    assert z.shape == (128, 4, 16, 16)
    assert abs(float(z.std()) - 1.0) < 1e-4
    m = json.loads((tmp_path / "eval.jsonl").read_text().splitlines()[-1])
    assert m["step"] == 2 and np.isfinite(m["val_psnr"])


def test_cli_train_smoke(metaworld_root, tmp_path):
    d = dit_config(metaworld_root, tmp_path / "cli_run", 50)
    d["loop"].update(eval_every=2, checkpoint_every=2)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(d))
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "FREEACTION_THREADS": "1"}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "freeaction_gym.cli",
            "train",
            "--config",
            str(path),
            "optim.steps=2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "model written to" in res.stdout
    assert checkpoint(tmp_path / "cli_run")["step"] == 2
    WorldModel.from_pretrained(tmp_path / "cli_run" / "model")


def test_init_from_starts_a_new_run_from_saved_weights(metaworld_root, tmp_path):
    """loop.init_from loads a saved model's weights (and its measured delta_scale) into a
    fresh run: with lr 0 the exported model equals the source model exactly."""
    from freeaction_gym.training.train_dit import train_dit

    src = train(metaworld_root, tmp_path / "src", 3)
    d = dit_config(metaworld_root, tmp_path / "dst", 2)
    d["optim"]["lr"] = 0.0
    d["diffusion"]["delta_scale"] = 5.0  # overridden by the source model's value
    d["loop"]["init_from"] = str(src)
    dst = train_dit(config_from_dict(d))
    a, b = WorldModel.from_pretrained(src), WorldModel.from_pretrained(dst)
    assert b.diffusion.delta_scale == a.diffusion.delta_scale != 5.0
    for k, v in a.dit.state_dict().items():
        torch.testing.assert_close(b.dit.state_dict()[k], v, rtol=0, atol=0)


def test_v2_recipe_trains_exports_and_predicts(metaworld_root, tmp_path):
    """EDM + 2 channel-stacked context frames + context-noise augmentation + conv head:
    trains, exports a model that rebuilds from its directory alone and samples with the
    EDM Euler scheduler by default; the uint8 frame bank is cached beside the data."""
    cfg = dit_config(metaworld_root, tmp_path / "run", steps=3)
    cfg["data"].update(clip_frames=4, min_clip_frames=3)
    cfg["model"].update(
        num_context_frames=2,
        context_mode="channels",
        context_noise_embed=True,
        refiner_width=4,
        refiner_depth=2,
    )
    cfg["diffusion"].update(parameterization="edm", context_noise_max=0.2)
    cfg["loop"].update(eval_every=3, eval_sample_steps=3)
    from freeaction_gym.training.train_dit import train_dit

    model_dir = train_dit(config_from_dict(cfg))
    assert (Path(metaworld_root) / ".cache" / "cache_train_pixel.pt").is_file()
    world = WorldModel.from_pretrained(model_dir)
    assert world.num_context == 2 and world.diffusion.parameterization == "edm"
    assert world.dit.config.context_mode == "channels"
    ev = [json.loads(line) for line in open(tmp_path / "run" / "eval.jsonl")]
    assert ev[-1]["step"] == 3 and np.isfinite(ev[-1]["psnr"])
    frames = torch.randint(0, 256, (1, 2, 32, 32, 3), dtype=torch.uint8)
    z, _ = world.predict(
        world.encode(frames), torch.zeros(1, 3, 4), generator=torch.Generator().manual_seed(0)
    )
    assert z.shape == (1, 2, 3, 32, 32) and torch.isfinite(z).all()
    bad = dict(cfg, data=dict(cfg["data"], min_clip_frames=2))
    bad["loop"] = dict(cfg["loop"], output=str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="min_clip_frames=2 leaves no frame to predict"):
        train_dit(config_from_dict(bad))
