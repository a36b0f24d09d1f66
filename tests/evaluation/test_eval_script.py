"""Smoke test: experiments/eval_world_model.py --quick on the tiny session model."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_eval(model, data, out, *extra: str) -> dict:
    """experiments/eval_world_model.py --quick; returns its metrics.json."""
    env = os.environ | {"OMP_WAIT_POLICY": "PASSIVE", "FREEACTION_THREADS": "1"}
    cmd = [
        sys.executable,
        str(REPO / "experiments" / "eval_world_model.py"),
        "--quick",
        "--model", str(model),
        "--data", str(data),
        "--out", str(out),
        *extra,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def noisy_model(tiny_world_model, tmp_path_factory) -> Path:
    """The tiny model with its final layer perturbed so its frames depend on the noise (10
    training steps leave them nearly noise-independent)."""
    import torch

    from freeaction_gym.world_model import WorldModel

    world = WorldModel.from_pretrained(tiny_world_model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in world.dit.final_layer.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return world.save_pretrained(tmp_path_factory.mktemp("noisy"))


@pytest.fixture(scope="module")
def quick_eval(noisy_model, tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    return out, run_eval(noisy_model, tiny_dataset, out, "--batch", "4")


def test_eval_world_model_quick(noisy_model, quick_eval):
    out, metrics = quick_eval
    assert metrics["model_dir"] == str(noisy_model.resolve())
    assert "--quick" in metrics["command"] and metrics["args"]["quick"] is True
    assert set(metrics["settings"]) == {"short", "irasim16", "long"}
    short = metrics["settings"]["short"]
    assert short["frames"] == 5 and short["num_clips"] == 4
    assert {"model", "copy", "model+FreeAction", "model (shuffled)"} <= set(short["rows"])
    assert math.isfinite(short["rows"]["model"]["psnr"]["mean"])
    assert metrics["settings"]["irasim16"]["frames"] == 16
    long = metrics["settings"]["long"]
    assert long["frames"] == 21 and len(long["per_frame"]["model"]["psnr"]) == 20
    assert long["health"]["model"]["nonfinite_latents"] == 0
    assert metrics["sampling"]["model"]["guidance"]["mode"] == "none"
    assert metrics["sampling"]["model+FreeAction"]["truncation"]["mu_act"] > 0

    results = (out / "results.md").read_text()
    for row in ("| model |", "| copy |", "| model+FreeAction |", "| model (shuffled) |"):
        assert row in results
    for name in ("short", "irasim16", "long"):
        assert (out / f"{name}.mp4").stat().st_size > 0
        assert (out / f"{name}_strip.png").stat().st_size > 0
    assert (out / "psnr_over_time_long.png").is_file()


def test_sweep_sampler_steps_quick(tiny_world_model, tiny_dataset, tmp_path):
    out = tmp_path / "sweep.md"
    env = os.environ | {"OMP_WAIT_POLICY": "PASSIVE", "FREEACTION_THREADS": "1"}
    cmd = [
        sys.executable,
        str(REPO / "experiments" / "sweep_sampler_steps.py"),
        "--quick",
        "--model",
        str(tiny_world_model),
        "--data",
        str(tiny_dataset),
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [r for r in out.read_text().splitlines() if r.startswith("| ") and r[2].isdigit()]
    assert len(rows) == 2 * 3  # steps 1, 2 x three sampling variants
    # every row's copy baseline is the same clips' copy PSNR
    assert len({r.split("|")[4] for r in rows}) == 1


def test_eval_world_model_does_not_depend_on_batch(noisy_model, tiny_dataset, quick_eval):
    """Clip i's noise is seeded by (seed, i) (evaluation/study.py), so --batch 3 (clips grouped
    3 + 1) reproduces --batch 4's numbers up to float rounding."""
    other = run_eval(noisy_model, tiny_dataset, quick_eval[0].parent / "b3", "--batch", "3")
    runs = [quick_eval[1], other]
    for setting in ("short", "irasim16", "long"):
        a, b = runs[0]["settings"][setting], runs[1]["settings"][setting]
        for row in ("model", "model+truncation", "model+FreeAction"):
            for metric in ("psnr", "ssim", "latent_l2"):
                x, y = a["rows"][row][metric]["mean"], b["rows"][row][metric]["mean"]
                assert y == pytest.approx(x, rel=1e-3, abs=1e-3), (setting, row, metric)
