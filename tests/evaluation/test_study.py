"""Paired method comparison: noise pairing, statistics vs scipy, and the table script."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from freeaction_gym.diffusion import truncated_normal_from_uniform
from freeaction_gym.evaluation import psnr_video
from freeaction_gym.evaluation.paired_stats import mean_ci, paired_diff_ci
from freeaction_gym.evaluation.rollout import clip_generators, collect_clips, paired_initial_noise
from freeaction_gym.evaluation.study import (
    Method,
    copy_baseline,
    merge,
    run_methods,
    summarize,
)
from freeaction_gym.world_model import WorldModel

REPO = Path(__file__).resolve().parents[2]
SHAPE = (2, 3, 8, 8)


# ---------------------------------------------------------------- paired noise


def test_same_clip_same_uniforms_under_any_tau_and_batch():
    tau_a = torch.tensor([float("inf")] * 5)
    tau_b = torch.tensor([1.0] * 5)
    plain = paired_initial_noise(clip_generators(3, range(5)), SHAPE, tau_a)
    trunc = paired_initial_noise(clip_generators(3, range(5)), SHAPE, tau_b)
    # recover the uniforms of the plain draw and map them at tau = 1: must equal `trunc`
    u = torch.special.ndtr(plain.double())
    np.testing.assert_allclose(truncated_normal_from_uniform(u, 1.0), trunc, atol=1e-5)
    assert torch.equal(torch.sign(plain), torch.sign(trunc))
    assert trunc.abs().max() <= 1.0 and plain.abs().max() > 2.0
    # clip 3 alone, in a batch of its own, draws exactly what it drew in the batch
    alone = paired_initial_noise(clip_generators(3, [3]), SHAPE, tau_a[:1])
    assert torch.equal(alone[0], plain[3])
    # another seed gives other noise
    other = paired_initial_noise(clip_generators(4, range(5)), SHAPE, tau_a)
    assert not torch.allclose(other, plain)


def test_paired_noise_checks_lengths():
    with pytest.raises(ValueError, match="3 generators for 2 clips"):
        paired_initial_noise(clip_generators(0, range(3)), SHAPE, torch.ones(2))


# ---------------------------------------------------------------- statistics


def test_mean_ci_matches_scipy_t_interval():
    x = np.random.default_rng(0).normal(3.0, 2.0, 40)
    m, lo, hi = mean_ci(x)
    ref = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert m == pytest.approx(x.mean())
    assert (lo, hi) == pytest.approx(ref)
    m2, lo2, hi2 = mean_ci(np.r_[x, np.nan, np.inf])  # non-finite entries are dropped
    assert (m2, lo2, hi2) == pytest.approx((m, lo, hi))
    assert mean_ci(np.array([2.0])) == (2.0, 2.0, 2.0)
    assert all(math.isnan(v) for v in mean_ci(np.array([np.nan])))


def test_paired_diff_matches_ttest_rel():
    rng = np.random.default_rng(1)
    base = rng.normal(20, 3, 50)
    x = base + 0.4 + rng.normal(0, 0.5, 50)  # shared clip effects cancel when paired
    d, lo, hi, p = paired_diff_ci(x, base)
    assert d == pytest.approx((x - base).mean())
    assert (lo, hi) == pytest.approx(
        stats.t.interval(0.95, 49, loc=(x - base).mean(), scale=stats.sem(x - base))
    )
    assert p == pytest.approx(stats.ttest_rel(x, base).pvalue)
    assert lo > 0  # the paired interval sees the +0.4 although the unpaired one cannot
    _, ulo, uhi = mean_ci(x)
    assert ulo < base.mean() < uhi
    x[3] = np.nan  # a pair with a NaN is dropped from both
    d2, *_ = paired_diff_ci(x, base)
    assert d2 == pytest.approx(np.delete(x - base, 3).mean())
    with pytest.raises(ValueError, match="equal shapes"):
        paired_diff_ci(x, base[:10])


def test_merge_is_deep_and_does_not_mutate():
    base = {"guidance": {"mode": "none", "lam": 1.0}, "num_steps": 4}
    out = merge(base, {"guidance": {"lam": 2.0}, "num_steps": 2})
    assert out == {"guidance": {"mode": "none", "lam": 2.0}, "num_steps": 2}
    assert base["guidance"]["lam"] == 1.0


# ---------------------------------------------------------------- run_methods


@pytest.fixture(scope="module")
def clips_and_model(tiny_world_model, tiny_dataset):
    world = WorldModel.from_pretrained(tiny_world_model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # 10 training steps leave the output nearly noise-independent
        for p in world.dit.final_layer.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    clips = collect_clips(tiny_dataset, "test", num_frames=6, num_clips=5)
    return world, clips, world.encode(torch.from_numpy(clips.frames))


def test_pairing_is_independent_of_batch_and_repeatable(clips_and_model):
    world, clips, z = clips_and_model
    base = {"scheduler": "ddim", "num_steps": 2}
    plain = Method("plain", {"guidance": {"mode": "none"}, "truncation": {"mode": "none"}})
    same = Method("same", plain.overrides)
    trunc = Method(
        "trunc", {"guidance": {"mode": "none"}, "truncation": {"mode": "fixed", "fixed_tau": 0.3}}
    )
    a = run_methods(world, clips, z, [plain, same, trunc], base, seeds=[0, 1], batch=2)
    b = run_methods(world, clips, z, [plain], base, seeds=[0, 1], batch=5)
    for k, v in a["plain"].scores.items():
        np.testing.assert_allclose(v, a["same"].scores[k], err_msg=k)
        np.testing.assert_allclose(v, b["plain"].scores[k], rtol=1e-5, err_msg=k)
    assert a["plain"].scores["psnr"].shape == (2, 5)
    assert not np.allclose(a["plain"].scores["psnr"], a["trunc"].scores["psnr"])
    assert not np.allclose(a["plain"].scores["psnr"][0], a["plain"].scores["psnr"][1])
    # the kept frames are the decoded seed-0 rollouts: their PSNR is the recorded one
    pf = np.minimum(psnr_video(a["plain"].frames, clips.frames), 100.0)
    np.testing.assert_allclose(pf, a["plain"].scores["psnr"][0])
    assert a["trunc"].sampling["truncation"]["fixed_tau"] == 0.3

    table = summarize(a | {"copy": copy_baseline(clips, z)}, "plain")
    assert table["same"]["psnr"]["diff"] == pytest.approx(0.0)
    assert "diff" not in table["plain"]["psnr"]
    copy_psnr = np.minimum(psnr_video(np.repeat(clips.frames[:, :1], 6, 1), clips.frames), 100.0)
    assert table["copy"]["psnr"]["mean"] == pytest.approx(copy_psnr.mean())


# ---------------------------------------------------------------- the script


def _run(args, tmp_path) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_WAIT_POLICY": "PASSIVE", "FREEACTION_THREADS": "1"}
    cmd = [sys.executable, str(REPO / "experiments" / "freeaction_tables.py"), "--quick", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize("table", ["1", "2", "extras"])
def test_tables_quick(table, tiny_world_model, tiny_dataset, tmp_path):
    out = tmp_path / "out"
    doc = tmp_path / "RESULTS.md"
    doc.write_text(
        f"# Results\n\n<!-- table{table}:begin -->\nSTALE-BLOCK\n"
        f"<!-- table{table}:end -->\n\ntail\n"
    )
    _run(
        ["--table", table, "--model", str(tiny_world_model), "--data", str(tiny_dataset),
         "--out", str(out), "--update-doc", str(doc)],
        tmp_path,
    )  # fmt: skip
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["settings"]) == ({"short", "long"} if table == "1" else {"short"})
    short = m["settings"]["short"]
    assert short["frames"] == 9 and short["num_clips"] == 4
    rows = list(short["table"])
    assert rows[0] == "copy context" and len(rows) == {"1": 4, "2": 7, "extras": 18}[table]
    baseline = rows[1]
    assert "diff" not in short["table"][baseline]["psnr"]
    assert all(math.isfinite(short["table"][r]["psnr"]["mean"]) for r in rows)
    text = doc.read_text()
    assert "STALE-BLOCK" not in text and text.endswith("tail\n") and f"| {baseline} |" in text
    for f in ("short_best.mp4", "short_worst.png", "results.md"):
        assert (out / f).stat().st_size > 0
    if table == "1":
        assert m["settings"]["long"]["frames"] == 12
        assert (out / "psnr_over_time_long.png").is_file()
    if table == "extras":
        assert (out / "metric_vs_lambda_tau.png").is_file()
        samp = short["sampling"]
        assert samp["negative = null action (IRASim)"]["guidance"]["negative"] == "null"
        assert samp["tau (0.25, 1.0)"]["truncation"]["tau_max"] == 1.0


def test_table_on_irasim_layout_and_checkpoint(tiny, irasim_rt1_dataset, tmp_path):
    """The IRASim path end to end: RT-1-layout mp4 + JSON, an IRASim .pt and a diffusers VAE."""
    out = tmp_path / "rt1"
    _run(
        ["--table", "1", "--model", str(tiny.rt1_ckpt), "--vae", str(tiny.vae),
         "--data", str(irasim_rt1_dataset), "--data-format", "irasim", "--dataset", "rt1",
         "--out", str(out), "--batch", "2"],
        tmp_path,
    )  # fmt: skip
    m = json.loads((out / "metrics.json").read_text())
    assert m["settings"]["short"]["frames"] == 9 and m["settings"]["long"]["frames"] == 12
    lat = m["settings"]["short"]["table"]["baseline"]["latent_l2"]["mean"]
    assert math.isfinite(lat) and lat > 0


def test_irasim_checkpoint_without_vae_is_a_clear_error(tiny, irasim_rt1_dataset, tmp_path):
    env = os.environ | {"FREEACTION_THREADS": "1"}
    cmd = [sys.executable, str(REPO / "experiments" / "freeaction_tables.py"), "--quick",
           "--model", str(tiny.rt1_ckpt), "--data", str(irasim_rt1_dataset),
           "--data-format", "irasim"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode != 0 and "needs its autoencoder" in proc.stderr


def test_bench_imagination_quick(tiny_world_model, tiny_dataset, tmp_path):
    """The issue-8 benchmark runs end to end (numbers are not asserted: it is a smoke test,
    the benchmark itself lives outside the test suite)."""
    out = tmp_path / "bench.md"
    env = os.environ | {"OMP_WAIT_POLICY": "PASSIVE", "FREEACTION_THREADS": "1"}
    cmd = [sys.executable, str(REPO / "experiments" / "bench_imagination.py"), "--quick",
           "--model", str(tiny_world_model), "--data", str(tiny_dataset), "--env-steps", "0",
           "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.with_suffix(".json").read_text())
    names = [r["row"] for r in res["ladder"]]
    assert names[0].startswith("naive") and "default" in names[6]
    naive = res["ladder"][0]["config"]
    assert naive["scheduler"] == "pndm" and not naive["batch_cfg"] and naive["full_window"]
    assert all(r["frames_per_s"] > 0 and math.isfinite(r["latent_l2"]) for r in res["ladder"])
    assert "| naive (IRASim-style) |" in out.read_text()


def test_bench_imagination_compare(tiny_world_model, tiny_dataset, tmp_path):
    """--compare times the default row of each named model in one run; the same model under
    two names gives the same frames (same seed) and both rows are reported."""
    out = tmp_path / "cmp.md"
    env = os.environ | {"OMP_WAIT_POLICY": "PASSIVE", "FREEACTION_THREADS": "1"}
    cmd = [sys.executable, str(REPO / "experiments" / "bench_imagination.py"), "--quick",
           "--compare", f"a={tiny_world_model}", f"b={tiny_world_model}",
           "--data", str(tiny_dataset), "--env-steps", "0", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.with_suffix(".json").read_text())
    assert set(res["best"]) == {"a", "b"}
    a, b = res["best"]["a"], res["best"]["b"]
    assert a["frames_per_s"] > 0 and b["frames_per_s"] > 0
    assert math.isclose(a["latent_l2"], b["latent_l2"], rel_tol=1e-5)
    assert "| a (" in out.read_text() and "| b (" in out.read_text()
    bad = subprocess.run(cmd[:3] + ["--compare", "nonameonly"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)  # fmt: skip
    assert bad.returncode != 0 and "NAME=MODEL" in bad.stderr


def test_bench_imagination_times_a_prompt_model(tiny, prompt_dataset, tmp_path):
    """A prompt model runs through the whole ladder (unbatched and padded rows included) and
    --compare next to its plain twin, its rows flagged as including the prompt work."""
    env = os.environ | {"OMP_WAIT_POLICY": "PASSIVE", "FREEACTION_THREADS": "1"}
    script = [sys.executable, str(REPO / "experiments" / "bench_imagination.py"), "--quick",
              "--data", str(prompt_dataset), "--env-steps", "0"]  # fmt: skip
    for extra in (["--model", str(tiny.vap_dir)],
                  ["--compare", f"plain={tiny.world_dir}", f"vap={tiny.vap_dir}"]):  # fmt: skip
        out = tmp_path / f"{extra[0][2:]}.md"
        proc = subprocess.run(script + extra + ["--out", str(out)], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        res = json.loads(out.with_suffix(".json").read_text())
        rows = res["ladder"] if "ladder" in res else list(res["best"].values())
        assert all(r["frames_per_s"] > 0 and math.isfinite(r["latent_l2"]) for r in rows)
    assert all(
        r["prompt_work"] for r in json.loads((tmp_path / "model.json").read_text())["ladder"]
    )
    assert not res["best"]["plain"]["prompt_work"] and res["best"]["vap"]["prompt_work"]
    assert "| vap (" in out.read_text() and "integrated per step" in out.read_text()


def test_tables_copy_row_uses_the_models_context(tiny_world_two_context, state_dataset, tmp_path):
    """With 2 context frames the copy row repeats the last context frame and every row is
    scored from frame 3 on (it used to copy frame 1 and score from frame 2)."""
    out = tmp_path / "out"
    _run(["--table", "2", "--model", str(tiny_world_two_context), "--data", str(state_dataset),
          "--out", str(out)], tmp_path)  # fmt: skip
    m = json.loads((out / "metrics.json").read_text())
    short = m["settings"]["short"]
    clips = collect_clips(state_dataset, "test", short["frames"], short["num_clips"], seed=0)
    f = clips.frames.shape[1]
    copy = np.concatenate([clips.frames[:, :2], np.repeat(clips.frames[:, 1:2], f - 2, 1)], 1)
    want = np.minimum(psnr_video(copy, clips.frames, skip_first=2), 100.0).mean()
    assert short["table"]["copy context"]["psnr"]["mean"] == pytest.approx(want)
    assert f"frames 3..{f} scored" in (out / "results.md").read_text()
