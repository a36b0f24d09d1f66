"""Training config: YAML + overrides into typed dataclasses, errors that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from freeaction_gym.training.config import TrainConfig, config_from_dict, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

BASE = {
    "kind": "dit",
    "data": {"root": "/tmp/x", "clip_frames": 4},
    "model": {"size": "tiny", "patch_size": 8},
    "diffusion": {"target": "delta", "prediction_type": "sample"},
    "optim": {"steps": 100, "batch_size": 2, "lr": 1.0e-3},
    "loop": {"output": "/tmp/run", "eval_every": 50},
}


def write(tmp_path: Path, d: dict) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def test_load_config_with_overrides(tmp_path):
    path = write(tmp_path, BASE)
    cfg = load_config(path, ["optim.steps=3", "loop.output=/elsewhere", "data.tasks=[reach-v3]"])
    assert isinstance(cfg, TrainConfig)
    assert cfg.optim.steps == 3 and isinstance(cfg.optim.steps, int)
    assert cfg.optim.lr == 1.0e-3 and cfg.optim.batch_size == 2  # untouched values kept
    assert cfg.loop.output == "/elsewhere" and cfg.loop.eval_every == 50
    assert cfg.data.tasks == ["reach-v3"] and cfg.data.clip_frames == 4
    assert cfg.diffusion.target == "delta" and cfg.diffusion.prediction_type == "sample"
    assert cfg.model == {"size": "tiny", "patch_size": 8}
    # defaults fill what the file leaves out
    assert cfg.optim.warmup == 200 and cfg.codec == "pixel"
    # an override may create a section the file does not have
    path = write(tmp_path, {"kind": "autoencoder"})
    cfg = load_config(path, ["optim.kl_weight=0.5", "model.latent_channels=2"])
    assert cfg.kind == "autoencoder" and cfg.optim.kl_weight == 0.5
    assert cfg.model == {"latent_channels": 2}
    assert load_config(path).to_dict()["optim"]["steps"] == 20000


def test_override_needs_an_equals_sign(tmp_path):
    with pytest.raises(ValueError, match="optim.steps"):
        load_config(write(tmp_path, BASE), ["optim.steps"])


@pytest.mark.parametrize("section", ["data", "diffusion", "optim", "loop"])
def test_unknown_key_names_key_and_section(tmp_path, section):
    d = {**BASE, section: {**BASE[section], "bogus_key": 1}}
    with pytest.raises(ValueError, match=rf"bogus_key.*'{section}'"):
        load_config(write(tmp_path, d))
    # a typo in an override is caught the same way
    with pytest.raises(ValueError, match=rf"typo_key.*'{section}'"):
        load_config(write(tmp_path, BASE), [f"{section}.typo_key=1"])


def test_unknown_top_level_key(tmp_path):
    with pytest.raises(ValueError, match=r"top-level.*optimiser|optimiser.*top-level"):
        load_config(write(tmp_path, {**BASE, "optimiser": {"steps": 1}}))
    with pytest.raises(ValueError, match="kind"):
        config_from_dict({"kind": "gan"})
    with pytest.raises(ValueError, match="target"):
        config_from_dict({"diffusion": {"target": "residual"}})


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(missing)


def test_empty_file_gives_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(path) == TrainConfig()


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_validate(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.kind in ("dit", "autoencoder") and cfg.optim.steps > 0
