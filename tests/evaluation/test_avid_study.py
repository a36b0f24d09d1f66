"""experiments/avid_study.py --quick end to end on a tiny dataset: pretraining, every variant
at 10/30/100% of the data for equal CPU time (ControlNet on skeleton prompts included),
scoring, the mask figures and the doc block (linking copies next to the doc); a second call
trains and scores nothing."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
VARIANTS = ("avid", "avid_aux", "avid_open", "no_mask", "no_conditioning", "poe", "action_cfg",
            "scratch", "finetune", "controlnet")  # fmt: skip
FRACTIONS = (0.1, 0.3, 1.0)


def run_study(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_WAIT_POLICY": "PASSIVE", "FREEACTION_THREADS": "1"}
    configs = [f"--{k}-config={REPO / 'configs' / 'avid' / f'{k}.yaml'}"
               for k in ("pretrain", "adapter", "finetune")]  # fmt: skip
    cmd = [sys.executable, str(REPO / "experiments" / "avid_study.py"), "--quick", *configs, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_avid_study_quick_end_to_end(prompt_dataset, tmp_path):
    out, doc = tmp_path / "out", tmp_path / "RESULTS.md"
    doc.write_text(
        "# Results\n\n<!-- avid-study:begin -->\nSTALE\n<!-- avid-study:end -->\n\ntail\n"
    )
    args = ["--data", str(prompt_dataset), "--out", str(out), "--probe", str(tmp_path / "probe"),
            "--idm", str(tmp_path / "idm"), "--update-doc", str(doc)]  # fmt: skip
    first = run_study(args, tmp_path)

    runs = [f"{v}_f{f:g}" for v in VARIANTS for f in FRACTIONS]
    summary = json.loads((out / "metrics.json").read_text())["summary"]
    assert sorted(summary) == sorted(runs)
    costs = json.loads((out / "costs.json").read_text())
    per_clip = json.loads((out / "per_clip.json").read_text())
    for run in runs:
        r = per_clip[run]
        derived = r["variant"] in ("poe", "action_cfg")  # the scratch run's adapter
        cost = costs["scratch" if derived else r["variant"]]
        assert r["steps"] == max(1, round(0.002 * 60 / cost)), run  # equal CPU time
        assert r.get("derived_from") == (f"scratch_f{r['fraction']:g}" if derived else None)
        for metric in ("psnr", "ssim", "aer", "gripper"):
            assert len(r["scores"][metric]) == 3 and math.isfinite(summary[run][metric]["mean"])
        if r["variant"] != "scratch":  # paired against the same-fraction scratch run
            assert "psnr - scratch" in summary[run]
        cfg = yaml.safe_load((out / "runs" / run / "config.yaml").read_text())
        assert cfg["data"]["fraction"] == r["fraction"] and cfg["optim"]["steps"] == r["steps"]
        masks = r["masks"]
        mask_modes = ("avid", "avid_aux", "avid_open", "no_conditioning")
        assert (masks is not None) == (r["variant"] in mask_modes)
        if masks:
            assert len(masks["per_step"]) == 3  # --quick: 3 DDIM steps in the mask rollouts
            assert all(0 <= v <= 1 for v in masks["per_step"] + masks["moving"])
            assert (out / "figures" / f"mask_rollout_{run}.png").stat().st_size > 0
    # equal trainable parameters within the adapters, more with weight access
    n = {v: per_clip[f"{v}_f0.1"]["trainable_parameters"] for v in VARIANTS}
    assert n["scratch"] <= n["avid"] < n["finetune"] < n["controlnet"]
    assert n["poe"] == n["action_cfg"] == n["scratch"]
    # the data fraction: 10% of the 48 train episodes of the one task
    assert "5 train (data.fraction=0.1)" in first.stdout
    # the fine-tuned models train on actions; the pretrained one never saw any
    null = {d: json.loads((out / d / "model" / "config.json").read_text())["diffusion"]
            ["null_action_prob"] for d in ("pretrain", "runs/finetune_f0.1")}  # fmt: skip
    assert null == {"pretrain": 1.0, "runs/finetune_f0.1": 0.1}
    for name in ("mask_per_step.png", "psnr_vs_data.png"):
        assert (out / "figures" / name).stat().st_size > 0
    text = doc.read_text()
    assert "STALE" not in text and text.endswith("tail\n")
    assert "| 10% | AVID (mask, sees the frozen output) |" in text
    assert "AVID" in text and "equal-size scratch model" in text
    # our two fixes of the mask collapse: their settings reach the saved models, and the
    # claim is checked for them too
    saved = {v: json.loads((out / "runs" / f"{v}_f0.1" / "model" / "config.json").read_text())
             ["config"] for v in ("avid", "avid_aux", "avid_open")}  # fmt: skip
    assert [saved[v]["adapter_loss_weight"] for v in saved] == [0.0, 1.0, 0.0]
    assert [saved[v]["mask_init"] for v in saved] == [0.5, 0.5, 0.1]
    assert "data: AVID + loss on the adapter's own prediction (ours)" in text
    # figure links: to copies next to the doc (--out is not committed), and they resolve
    links = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)
    assert "figures/avid_study/mask_per_step.png" in links
    assert "figures/avid_study/psnr_vs_data.png" in links
    assert all((doc.parent / link).is_file() for link in links), links

    # resumable: finished runs are skipped, scores reused; --doc-key writes a second block
    # beside the first (its figures in --doc-figures), leaving the first as it was
    block = text[text.index("<!-- avid-study:begin -->") : text.index("<!-- avid-study:end -->")]
    extra = ["--doc-key", "avid-study-b", "--doc-figures", str(tmp_path / "figures_b")]
    second = run_study(args + extra, tmp_path)
    assert "[train]" not in second.stdout and "[cost]" not in second.stdout
    assert json.loads((out / "metrics.json").read_text())["summary"] == summary
    text = doc.read_text()
    assert block in text and "<!-- avid-study-b:begin -->" in text
    assert (tmp_path / "figures_b" / "mask_per_step.png").is_file()


def test_missing_pretraining_data_names_the_command(tmp_path):
    env = os.environ | {"OMP_WAIT_POLICY": "PASSIVE", "FREEACTION_THREADS": "1"}
    cmd = [sys.executable, str(REPO / "experiments" / "avid_study.py"),
           f"--pretrain-config={REPO / 'configs' / 'avid' / 'pretrain.yaml'}",
           "--pretrain-data", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode != 0 and "no pretraining data" in proc.stderr
    header = (REPO / "configs" / "avid" / "pretrain.yaml").read_text()
    tasks = header.split("--tasks", 1)[1].split("--train", 1)[0].replace("#", " ").split()
    tasks = [t for t in tasks if t != "\\"]
    assert len(tasks) >= 10 and all(t.endswith("-v3") for t in tasks)
    from metaworld.policies import ENV_POLICY_MAP  # every task has a scripted expert

    assert set(tasks) <= set(ENV_POLICY_MAP)
