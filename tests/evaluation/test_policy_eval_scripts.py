"""Smoke runs (subprocess, tiny budgets, the bundled model and the real simulator) of the
issue-6 scripts: the imagined-vs-real policy study, the imagination-trained agent and the
README demo with its agent part."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = {
    **os.environ,
    "OMP_WAIT_POLICY": "PASSIVE",
    "MUJOCO_GL": "osmesa",
    "PYOPENGL_PLATFORM": "osmesa",
}


def run(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, *argv], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_policy_eval_study_quick(tmp_path):
    doc = tmp_path / "RESULTS.md"
    doc.write_text("before\n<!-- policy-eval:begin -->\nold\n<!-- policy-eval:end -->\nafter\n")
    run(
        "experiments/policy_eval_study.py",
        "--quick",
        "--out",
        str(tmp_path / "o"),
        "--update-doc",
        str(doc),
    )
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    policies = ["expert sigma=0", "expert sigma=4", "random"]
    assert list(res["real"]) == policies and list(res["plain"]) == policies
    real = res["real"]
    # the noiseless reach expert earns more real reward than the noisiest one and random
    assert (
        real["expert sigma=0"]["reach-v3"]["return"] > real["expert sigma=4"]["reach-v3"]["return"]
    )
    assert real["expert sigma=0"]["reach-v3"]["return"] > real["random"]["reach-v3"]["return"]
    for p in policies:
        for t in ("reach-v3", "push-v3"):
            cell = res["plain"][p][t]
            assert cell["episodes"] == 2 and 0.0 <= cell["success"] <= 1.0
            lo, hi = cell["return_ci"]
            assert lo <= cell["return"] <= hi
    ag = res["agreement"]["plain"]["return"]
    assert ag["points"] == 6 and -1.0 <= ag["pearson"] <= 1.0
    assert (tmp_path / "o" / "imagined_vs_real.png").stat().st_size > 10_000
    text = doc.read_text()
    assert "old" not in text and "| plain |" in text and text.endswith("after\n")
    sub = run(
        "experiments/policy_eval_subset.py",
        str(tmp_path / "o" / "results.json"),
        "--exclude",
        "random",
    ).stdout
    assert "2 policies x 2 tasks = 4 points" in sub and "| plain |" in sub


def test_policy_eval_study_success_from_state(tmp_path):
    """--success state: imagined success from MetaWorld's rule on the state probe's reading,
    or (--state-source proprio) on the integrated robot state; the frames (so the returns)
    are the learned-head run's, only success may differ. --doc-key picks the block.
    --proprio (worlds with proprio_obs) changes nothing for policies that ignore it."""
    doc = tmp_path / "RESULTS.md"
    doc.write_text("<!-- pe-proprio:begin -->\nold\n<!-- pe-proprio:end -->\n")
    runs = {}
    proprio = ["--success", "state", "--state-source", "proprio"]
    proprio += ["--update-doc", str(doc), "--doc-key", "pe-proprio"]
    variants = (("head", []), ("state", ["--success", "state"]), ("proprio", proprio),
                ("proprio_obs", ["--proprio"]))  # fmt: skip
    for name, extra in variants:
        out = tmp_path / name
        run("experiments/policy_eval_study.py", "--quick", "--out", str(out), *extra)
        runs[name] = json.loads((out / "results.json").read_text())
        runs[name]["table"] = (out / "table.md").read_text()
    assert "success from the state probe" in runs["state"]["table"]
    assert "success from the state probe" not in runs["head"]["table"]
    assert (
        "the proprio model `bundled:metaworld_vap/proprio` integrates" in runs["proprio"]["table"]
    )
    assert "| plain |" in doc.read_text() and "old" not in doc.read_text()
    # --proprio: worlds that also show hand xyz + gripper give these image/plan policies the
    # same episodes (the frames do not depend on it)
    assert runs["proprio_obs"]["plain"] == runs["head"]["plain"]
    assert runs["proprio_obs"]["real"] == runs["head"]["real"]
    for name in ("state", "proprio"):
        for p, tasks in runs[name]["plain"].items():
            for t, cell in tasks.items():
                assert cell["return"] == runs["head"]["plain"][p][t]["return"], (name, p, t)
                assert 0.0 <= cell["success"] <= 1.0


def test_imagination_agent_quick(tmp_path):
    out = tmp_path / "ia"
    run("experiments/imagination_agent.py", "--quick", "--out", str(out))
    res = json.loads((out / "results.json").read_text())
    names = [
        "PPO in imagination",
        "PPO in imagination, no support guard",
        "PPO in real simulator",
        "random",
    ]
    assert list(res["policies"]) == names
    assert res["runs"]["PPO in imagination"]["env"] == "FreeActionMetaWorldReach-v0"
    assert res["runs"]["PPO in real simulator"]["env"] == "FreeActionRealMetaWorldReach-v0"
    for name in names:
        row = res["policies"][name]
        assert row["real"]["return"] > 0 and 0.0 <= row["imagined"]["success"] <= 1.0
    assert res["policies"]["random"]["real_return_vs_random"][0] == 0.0
    assert len(list((out / "videos").glob("*.mp4"))) == 3
    cfg = json.loads((out / "imagined" / "train_config.json").read_text())
    assert cfg["hyperparams"]["env_kwargs"]["support"]["low"][0] < 0  # the guard is on
    cfg = json.loads((out / "imagined_no_support" / "train_config.json").read_text())
    assert cfg["args"]["env_kwargs"] == {"support": None}
    # a second call reuses the finished runs instead of training again
    before = (out / "imagined" / "final_model.zip").stat().st_mtime
    run("experiments/imagination_agent.py", "--quick", "--out", str(out))
    assert (out / "imagined" / "final_model.zip").stat().st_mtime == before


def test_readme_demo_with_agent(tmp_path):
    out = tmp_path / "demo"
    run(
        "-m",
        "freeaction_gym.cli",
        "demo",
        "--out",
        str(out),
        "--episodes",
        "2",
        "--steps",
        "4",
        "--agent-steps",
        "128",
        "--agent-scenes",
        "2",
        "--agent-seeds",
        "2",
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 2 and summary["steps"] == 4
    agent = json.loads((out / "agent" / "agent.json").read_text())
    assert agent["timesteps"] == 128 and len(agent["scenes"]) == 2
    assert set(agent["seeds"]) == {"0", "1"}
    for run_ in (*agent["seeds"].values(), agent["random"]):
        for world in ("imagined", "real"):
            assert len(run_[world]["success"]) == 2
    for world in ("imagined", "real"):  # the mean over seeds with its interval
        s = agent["ppo (imagination)"][world]["success_rate"]
        assert s["n"] == 2 and 0.0 <= s["low"] <= s["mean"] <= s["high"] <= 1.0
        rates = [r[world]["success_rate"] for r in agent["seeds"].values()]
        assert s["mean"] == pytest.approx(np.mean(rates))
    for seed in ("seed_0", "seed_1"):
        assert (out / "agent" / seed / "final_model.zip").is_file()
    assert (out / "agent" / "agent_real_vs_imagined.mp4").stat().st_size > 0
    assert "PPO trained 128 steps in imagination (2 seeds" in (out / "summary.md").read_text()


def test_policy_eval_study_model_without_a_bank(tmp_path):
    """A model directory without its own reset_bank.npz (e.g. a Dyna fine-tune) runs on the
    scenes of ``--reset-bank``; one task, so a one-task head would fit too."""
    import shutil

    from freeaction_gym.assets import bundled_dir

    model = tmp_path / "model"
    shutil.copytree(bundled_dir(), model, ignore=shutil.ignore_patterns("reset_bank.npz"))
    argv = ["experiments/policy_eval_study.py", "--quick", "--tasks", "reach-v3",
            "--preset", "FreeActionMetaWorldV2-v0",  # the bundle copied is the v2 model
            "--model", str(model), "--out", str(tmp_path / "o")]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, *argv], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode != 0 and "pass reset_bank=" in proc.stderr
    run(*argv, "--reset-bank", str(bundled_dir() / "reset_bank.npz"))
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    real = res["real"]
    assert set(real["random"]) == {"reach-v3"}
    assert real["expert sigma=0"]["reach-v3"]["return"] > real["random"]["reach-v3"]["return"]
    table = (tmp_path / "o" / "table.md").read_text()
    assert f"Imagined: the model `{model}`, scenes of `{bundled_dir() / 'reset_bank.npz'}`" in table
