"""One save/load for the small helper networks (reward head, state probe, proprio model):
round trip, and every bad file gives an error naming it instead of a half-loaded model."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from freeaction_gym.models.checkpoint import CheckpointError
from freeaction_gym.rewards.learned import RewardHead, RewardHeadConfig
from freeaction_gym.rewards.state_probe import StateProbe, StateProbeConfig

TINY_HEAD = {"channels": (8, 16), "hidden": 8, "task_dim": 2, "tasks": ["a", "b"]}


def saved_head(tmp_path):
    torch.manual_seed(0)
    head = RewardHead(RewardHeadConfig(**TINY_HEAD)).eval()
    return head, head.save_pretrained(tmp_path / "head")


def test_round_trip_gives_identical_outputs(tmp_path):
    head, d = saved_head(tmp_path)
    loaded = RewardHead.from_pretrained(d)
    x = torch.randint(
        0, 256, (3, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    ids = torch.tensor([0, 1, 0])
    with torch.no_grad():
        for a, b in zip(head(x, ids), loaded(x, ids), strict=True):
            assert torch.equal(a, b)
    assert not loaded.training
    assert json.loads((d / "config.json").read_text())["class"] == "RewardHead"


def test_another_class_is_refused(tmp_path):
    _, d = saved_head(tmp_path)
    with pytest.raises(CheckpointError, match="is not a StateProbe config"):
        StateProbe.from_pretrained(d)


def test_mis_shaped_weights_are_refused_and_named(tmp_path):
    _, d = saved_head(tmp_path)
    meta = json.loads((d / "config.json").read_text())
    meta["config"]["hidden"] = 16  # the weights were saved with 8
    (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="mis-shaped"):
        RewardHead.from_pretrained(d)


def test_unknown_config_field_and_nan_weights_are_refused(tmp_path):
    _, d = saved_head(tmp_path)
    meta = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps(meta | {"config": meta["config"] | {"bogus": 1}}))
    with pytest.raises(CheckpointError, match="bad RewardHead config"):
        RewardHead.from_pretrained(d)
    (d / "config.json").write_text(json.dumps(meta))
    sd = load_file(str(d / "model.safetensors"))
    key = next(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1)
    sd[key][0] = float("nan")
    save_file(sd, str(d / "model.safetensors"))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        RewardHead.from_pretrained(d)


def test_probe_missing_file_names_the_command(tmp_path):
    StateProbe(StateProbeConfig(channels=(8, 8), hidden=8)).save_pretrained(tmp_path / "p")
    (tmp_path / "p" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="train-probe"):
        StateProbe.from_pretrained(tmp_path / "p")
