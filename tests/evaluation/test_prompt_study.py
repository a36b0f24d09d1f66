"""experiments/prompt_study.py --quick end to end on tiny datasets: a proprio model, a warm
start, the 4 variants (adaLN, prompt channels, ControlNet, both) for equal CPU time from it,
scoring in-domain and on a test-only "transfer" dataset with true and proprio prompts, the
tables, figures and doc block (linking copies next to the doc); a second call trains and
scores nothing. Plus the transfer data checks (the generation command) and the paired ratio
interval (against scipy)."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from freeaction_gym.data.episodes import FORMAT_VERSION, read_meta, write_json_atomic
from freeaction_gym.evaluation.paired_stats import paired_ratio_ci

REPO = Path(__file__).resolve().parents[2]
VARIANTS = ("adaln", "channels", "controlnet", "both")
PROMPTED = ("channels", "controlnet", "both")
# data/metaworld_v2/meta.json's generator settings the transfer data must repeat
V2_CONFIG = {"tasks": ["reach-v3", "push-v3", "pick-place-v3"], "frames": 64, "action_repeat": 4,
             "resolution": 64, "camera": "workspace", "random_walk_prob": 0.25}  # fmt: skip


def run_study(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_WAIT_POLICY": "PASSIVE", "FREEACTION_THREADS": "1"}
    configs = REPO / "configs"
    cmd = [sys.executable, str(REPO / "experiments" / "prompt_study.py"), "--quick",
           f"--config={configs / 'prompts' / 'study.yaml'}",
           f"--base-config={configs / 'v2' / 'metaworld_v2_hourglass.yaml'}", *args]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_prompt_study_quick_end_to_end(prompt_dataset, transfer_prompt_dataset, tmp_path):
    out, doc = tmp_path / "out", tmp_path / "RESULTS.md"
    doc.write_text("# R\n\n<!-- prompt-study:begin -->\nSTALE\n<!-- prompt-study:end -->\n\ntail\n")
    args = ["--data", str(prompt_dataset), "--transfer-data", str(transfer_prompt_dataset),
            "--out", str(out), "--probe", str(tmp_path / "probe"),
            "--update-doc", str(doc)]  # fmt: skip
    run_study(args, tmp_path)

    # the proprio model, the probe and the shared warm start were made on the fly
    for d in (out / "proprio", tmp_path / "probe", out / "init" / "model"):
        assert (d / "config.json").is_file(), d
    # every variant: its prompt input, the same warm start, equal CPU time
    costs = json.loads((out / "costs.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    init = str((out / "init" / "model").resolve())
    for v in VARIANTS:
        cfg = yaml.safe_load((out / "runs" / v / "config.yaml").read_text())
        assert cfg["model"]["prompt"] == ("none" if v == "adaln" else v)
        assert cfg["loop"]["init_from"] == init
        steps = metrics["runs"][v]["steps"]
        assert steps == cfg["optim"]["steps"] == max(1, round(0.002 * 60 / costs[v]))
    params = {v: metrics["runs"][v]["trainable_parameters"] for v in VARIANTS}
    assert params["adaln"] < params["channels"] < params["controlnet"] < params["both"]

    # scoring: adaLN once (it takes no prompts), the prompt models with both sources
    true_models = json.loads((out / "scores" / "true" / "metrics.json").read_text())["models"]
    proprio_models = json.loads((out / "scores" / "proprio" / "metrics.json").read_text())["models"]
    assert set(true_models) == set(VARIANTS) and set(proprio_models) == set(PROMPTED)
    assert true_models["adaln"]["prompts"] is None and true_models["both"]["prompts"] == "true"
    assert all(m["prompts"].startswith("proprio") for m in proprio_models.values())
    summary = metrics["summary"]
    assert set(summary) == {"in-domain", "transfer"}
    for label, s in summary.items():
        want = {"adaln|-", *(f"{v}|{src}" for v in PROMPTED for src in ("true", "proprio"))}
        assert set(s["rows"]) == want, label
        assert s["key_step"] == 10 and math.isfinite(s["floor"]["10"]["mean"])
        for row, c in s["rows"].items():
            for metric in ("psnr", "ssim", "hand_cm", "sharpness"):
                assert math.isfinite(c[metric]["mean"]), (label, row, metric)
            assert all(math.isfinite(c["gripper"][k]["mean"]) for k in ("1", "5", "10", "20"))
            assert math.isfinite(c["gripper_floor"]) and c["ms"] > 0
            if row != "adaln|-":  # paired against adaLN on the same episodes and noise
                v = c["vs_base"]
                assert math.isfinite(v["psnr"]["mean"]) and math.isfinite(v["gripper"]["mean"])
                r = v["gripper_ratio"]
                assert r["lo"] <= r["mean"] <= r["hi"] and r["mean"] > 0
            assert ("proprio_minus_true" in c) == row.endswith("|proprio")

    results = (out / "results.md").read_text()
    for text in ("#### in-domain", "#### transfer", "*real frames (probe floor)*",
                 "| action adaLN | - |", "| prompt ControlNet | proprio |", "Skeleton quality",
                 "In-domain -> unseen tasks", "halves the gripper error at step 10",
                 "Unseen tasks, beats adaLN"):  # fmt: skip
        assert text in results, text
    for name in ("gripper_vs_step.png", "prompts_in-domain.png", "prompts_transfer.png"):
        assert (out / "figures" / name).stat().st_size > 0
    text = doc.read_text()
    assert "STALE" not in text and text.endswith("tail\n") and "#### Targets (issue 15)" in text
    # the block links copies next to the doc (--out is not committed), and they resolve
    block = text.split("<!-- prompt-study:begin -->")[1].split("<!-- prompt-study:end -->")[0]
    links = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", block)
    names = ("gripper_vs_step.png", "prompts_in-domain.png", "prompts_transfer.png")
    assert links == [f"figures/prompt_study/{n}" for n in names]
    assert all((doc.parent / link).is_file() for link in links), links
    copies = tmp_path / "figures" / "prompt_study"
    strip = (out / "scores" / "true" / "strip_test.png").read_bytes()
    assert (copies / "strip_in-domain_true.png").read_bytes() == strip  # the transfer one stays
    assert (copies / "results.md").read_text() == results
    assert sorted(p.name for p in copies.iterdir()) == sorted(
        [*names, "results.md", "strip_in-domain_true.png"]
    )

    second = run_study(args, tmp_path)  # resumable: finished runs skipped, scores reused
    assert "[train]" not in second.stdout and "[cost]" not in second.stdout
    assert second.stdout.count("up to date") == 2
    assert json.loads((out / "metrics.json").read_text())["summary"] == summary


def test_transfer_data_checks(
    prompt_dataset, transfer_prompt_dataset, tmp_path, monkeypatch, load_experiment
):
    study = load_experiment("prompt_study")
    # the command in the docstring: the unseen tasks have scripted experts, and it repeats
    # data/metaworld_v2's generator settings (what transfer_command builds from meta.json)
    doc = study.__doc__.split("freeaction data metaworld data/metaworld_transfer", 1)[1]
    doc = "freeaction data metaworld data/metaworld_transfer" + doc.split("\n\n", 1)[0]
    words = shlex.split(doc.replace("\\\n", " "))
    v2 = tmp_path / "v2"
    v2.mkdir()
    write_json_atomic(v2 / "meta.json", {"format_version": FORMAT_VERSION, "config": V2_CONFIG})
    assert words == shlex.split(study.transfer_command(str(v2), "data/metaworld_transfer"))
    tasks = words[words.index("--tasks") + 1 : words.index("--train")]
    from metaworld.policies import ENV_POLICY_MAP

    from freeaction_gym.data.metaworld_gen import MetaWorldDataConfig

    assert tasks == list(study.TRANSFER_TASKS) and set(tasks) <= set(ENV_POLICY_MAP)
    assert not set(tasks) & set(V2_CONFIG["tasks"])
    MetaWorldDataConfig(tasks=tasks, train_episodes=0, val_episodes=0, test_episodes=20)

    with pytest.raises(SystemExit, match="freeaction data metaworld .* --tasks drawer-open-v3"):
        study.check_transfer(str(prompt_dataset), str(tmp_path / "missing"))
    (note,) = study.check_transfer(str(prompt_dataset), str(transfer_prompt_dataset))
    assert "none in the training data" in note
    other = tmp_path / "other"
    shutil.copytree(transfer_prompt_dataset, other)
    meta = read_meta(other)
    write_json_atomic(other / "meta.json", meta | {"config": {"resolution": 64}})
    with pytest.raises(SystemExit, match="resolution"):
        study.check_transfer(str(prompt_dataset), str(other))


def test_paired_ratio_ci_matches_scipy_bootstrap():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.4, 40)
    x = 0.5 * base + rng.normal(0, 0.02, 40)
    x[3] = np.nan  # dropped with its pair
    ok = np.isfinite(x)
    ratio, lo, hi = paired_ratio_ci(x, base)
    assert ratio == pytest.approx(x[ok].mean() / base[ok].mean())
    ref = stats.bootstrap(
        (x[ok], base[ok]), lambda a, b, axis=-1: a.mean(axis) / b.mean(axis), paired=True,
        vectorized=True, method="percentile", n_resamples=20_000, random_state=1,
    ).confidence_interval  # fmt: skip
    assert lo == pytest.approx(ref.low, abs=0.005) and hi == pytest.approx(ref.high, abs=0.005)
    assert paired_ratio_ci(2 * base, base) == pytest.approx((2.0, 2.0, 2.0))
    assert all(math.isnan(v) for v in paired_ratio_ci(base, np.zeros(40)))
