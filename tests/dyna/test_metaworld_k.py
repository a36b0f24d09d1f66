"""experiments/metaworld_k.py --quick end to end on tiny artefacts (the session's 32x32 world
model and the 32x32 reach-v3 base dataset): Dyna and model-free DrQ trained on train
layouts, all four methods evaluated on the held-out test layouts, the table written into a
markdown file, the plot, and a rerun that skips everything. The expert's evaluation is
recomputed independently with a plain loop over the real env."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("metaworld")

from freeaction_gym.data.metaworld_policies import scripted_action  # noqa: E402
from freeaction_gym.dyna.report import read_metrics  # noqa: E402
from freeaction_gym.dyna.state import STAGES, RunState  # noqa: E402
from freeaction_gym.envs.bank import ResetBank  # noqa: E402
from freeaction_gym.envs.layouts import scene_keys  # noqa: E402
from freeaction_gym.envs.real_metaworld import RealMetaWorldEnv  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TASK = "reach-v3"
STEPS = 6  # --quick: actions per evaluation episode


def run_quick(out: Path, base_root: Path, world: Path, doc: Path, *extra: str) -> None:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "FREEACTION_THREADS": "1",
           "MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"}  # fmt: skip
    argv = [
        sys.executable, "experiments/metaworld_k.py", "--quick", "--no-progress",
        "--out", str(out), "--data", str(base_root), "--update-doc", str(doc),
        "--dyna-overrides", f"world_model.init={world}", *extra,
    ]  # fmt: skip
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def expert_returns(bank_path: Path, base_root: Path, scenes: list[int]) -> list[float]:
    """The noiseless scripted expert on each scene, summed reward over STEPS actions."""
    env = RealMetaWorldEnv(reset_bank=str(bank_path), data=str(base_root),
                           terminate_on_success=False, max_episode_steps=STEPS)  # fmt: skip
    out, experts = [], {}
    try:
        for j in scenes:
            env.reset(seed=0, options={"bank_index": j})
            total = 0.0
            for _ in range(STEPS):
                total += env.step(scripted_action(TASK, env.state, experts))[1]
            out.append(total)
    finally:
        env.close()
    return out


def test_metaworld_k_quick(tiny, base_root, tmp_path):
    out, doc = tmp_path / "mwk", tmp_path / "RESULTS.md"
    doc.write_text("intro\n<!-- metaworld-k:begin -->\nSTALE\n<!-- metaworld-k:end -->\nafter\n")
    run_quick(out, base_root, tiny.world_dir, doc)

    res = json.loads((out / "results.json").read_text())
    assert res["points"] == [12, 24]
    cells = res["summary"]
    expected = {f"{m}|{TASK}|{s}" for m in ("dyna", "model_free") for s in (12, 24)}
    assert set(cells) == expected | {f"random|{TASK}|0", f"expert|{TASK}|0"}
    for cell in cells.values():
        assert cell["seeds"] == [0, 1] and cell["episodes"] == 4  # 2 seeds x 2 test scenes
        assert 0.0 <= cell["success"] <= 1.0 and np.isfinite(cell["return"])
        for m in ("success", "return"):
            lo, hi = cell[f"{m}_ci"]
            assert lo <= cell[m] <= hi
            assert np.mean(cell[f"{m}_per_seed"]) == pytest.approx(cell[m])
    for steps in (12, 24):
        diff = res["diffs"][f"dyna|{TASK}|{steps}"]
        assert diff["return"]["pairs"] == 4  # paired over (seed, scene)
        dyna, free = cells[f"dyna|{TASK}|{steps}"], cells[f"model_free|{TASK}|{steps}"]
        assert diff["return"]["diff"] == pytest.approx(dyna["return"] - free["return"])

    # every method ran on the same held-out scenes; the policies are the runs' own
    records = {p.stem: json.loads(p.read_text()) for p in (out / "evals" / TASK).glob("*.json")}
    assert len(records) == 12
    assert len({tuple(r["scenes"]) for r in records.values()}) == 1
    assert records["dyna_s1_12"]["policy"].endswith("s1/iter_000/agent/final_model.zip")
    assert records["dyna_s1_24"]["policy"].endswith("s1/iter_001/agent/final_model.zip")
    assert records["model_free_s0_12"]["policy"].endswith("s0/checkpoints/drq_12_steps.zip")
    assert Path(records["model_free_s0_24"]["policy"]).is_file()
    assert records["dyna_s0_24"]["train_seconds"] > records["dyna_s0_12"]["train_seconds"] > 0

    # the expert's returns, recomputed by a plain loop, and above random's
    test_bank = out / "banks" / f"{TASK}_test.npz"
    for seed in (0, 1):
        rec = records[f"expert_s{seed}_0"]
        ref = expert_returns(test_bank, base_root, rec["scenes"])
        np.testing.assert_allclose(rec["returns"], ref, rtol=1e-5)
    assert cells[f"expert|{TASK}|0"]["return"] > cells[f"random|{TASK}|0"]["return"]

    # learners trained only on train layouts, disjoint from the evaluation's test layouts
    held_out = scene_keys(ResetBank.load(test_bank))
    assert held_out and {s for _, s, _ in held_out} == {1000}
    for seed in (0, 1):
        mf = ResetBank.load(out / "runs/model_free" / TASK / f"s{seed}" / "train_layouts.npz")
        dyna = ResetBank.load(out / "runs/dyna" / TASK / f"s{seed}" / "banks/collect.npz")
        for bank in (mf, dyna):
            assert scene_keys(bank) and not scene_keys(bank) & held_out
    cfg = json.loads((out / "runs/model_free" / TASK / "s0/train_config.json").read_text())
    assert cfg["summary"]["layouts"]["train_env"]["split"] == "train"

    # the doc block, the table and the plot
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("after\n") and "STALE" not in text
    assert f"| {TASK} | 12 | Dyna |" in text and f"| {TASK} | - | expert |" in text
    assert "experiments/metaworld_k.py --quick" in text
    # the loops' per-iteration trace: seed means of each run's metrics.jsonl
    rows = {s: read_metrics(out / "runs/dyna" / TASK / f"s{s}" / "metrics.jsonl") for s in (0, 1)}
    assert f"Dyna loop on {TASK}, per iteration" in text
    for it in (0, 1):
        mean = (rows[0][it]["real_success"] + rows[1][it]["real_success"]) / 2
        assert f"| {it} ({12 * (it + 1)}) | 0,1 | {mean:.2f} |" in text
    assert (out / "metaworld_k.png").read_bytes()[:4] == b"\x89PNG"

    # a rerun finds every run and evaluation finished
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.suffix in (".json", ".zip")}
    stamps = {p: t for p, t in stamps.items() if p.name != "results.json"}
    run_quick(out, base_root, tiny.world_dir, doc)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # the control: model-free whose buffer starts with the Dyna run's iteration-0 episodes
    # (2 x 6 generator steps), which count towards its budgets; nothing else reruns
    run_quick(out, base_root, tiny.world_dir, doc, "--methods", "model_free_seeded")
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    for seed in (0, 1):
        run = out / "runs/model_free_seeded" / TASK / f"s{seed}"
        summary = json.loads((run / "train_config.json").read_text())["summary"]
        assert summary["prefill_transitions"] == 12 and summary["timesteps"] == 12
        rec = json.loads((out / "evals" / TASK / f"model_free_seeded_s{seed}_24.json").read_text())
        assert rec["policy"].endswith(f"s{seed}/checkpoints/drq_12_steps.zip")
        assert rec["scenes"] == records["dyna_s0_24"]["scenes"]
    assert not (out / "evals" / TASK / "model_free_seeded_s0_12.json").exists()  # all prefill
    res = json.loads((out / "results.json").read_text())
    seeded, free = (res["summary"][f"{m}|{TASK}|24"] for m in ("model_free_seeded", "model_free"))
    diff = res["diffs"][f"model_free_seeded|{TASK}|24"]["return"]
    assert diff["pairs"] == 4 and diff["diff"] == pytest.approx(seeded["return"] - free["return"])
    text = doc.read_text()
    assert f"| {TASK} | 24 | model-free + generator episodes |" in text
    assert "Dyna vs model-free + generator episodes (paired" in text
    assert f"- {TASK}, 24 real steps: success" in text and f"- {TASK}, 12 real steps" not in text
    vs = res["dyna_vs_seeded"][f"dyna|{TASK}|24"]["success"]
    dyna = res["summary"][f"dyna|{TASK}|24"]
    assert vs["pairs"] == 4 and vs["diff"] == pytest.approx(dyna["success"] - seeded["success"])
    bold = "**" if vs["lo"] > 0 or vs["hi"] < 0 else ""
    assert f"- {TASK}, 24 real steps: success {bold}{vs['diff']:+.2f} [" in text
    # --report-only tabulates the records that exist and runs nothing, not even a missing one
    (out / "evals" / TASK / "dyna_s1_24.json").unlink()
    # (and needs none of the runs' inputs: a copy of --out elsewhere is enough); a branch
    # kept beside the seeds' runs is not a seed of the trace
    branch = out / "runs/dyna" / TASK / "s0_branch"
    branch.mkdir()
    (branch / "metrics.jsonl").write_text(
        (out / "runs/dyna" / TASK / "s0/metrics.jsonl").read_text()
    )
    gone = tmp_path / "gone"
    run_quick(out, gone / "base", gone / "world", doc, "--report-only")
    assert {p: p.stat().st_mtime_ns for p in stamps if p.exists()} == {
        p: t for p, t in stamps.items() if p.exists()
    }
    assert not (out / "evals" / TASK / "dyna_s1_24.json").exists()
    cells = json.loads((out / "results.json").read_text())["summary"]
    assert cells[f"dyna|{TASK}|24"]["seeds"] == [0] and cells[f"dyna|{TASK}|12"]["seeds"] == [0, 1]
    assert cells[f"dyna|{TASK}|24"]["episodes"] == 2
    assert "seeds 0, 1;" in doc.read_text()
    assert "| 0 (12) | 0,1 |" in doc.read_text()  # the trace's seeds, not the branch
    # the text names the base the runs were trained on, not --data (only in the command)
    assert f"train layouts of `{base_root}`" in doc.read_text()
    assert f"train layouts of `{gone / 'base'}`" not in doc.read_text()


def test_seeded_control_needs_the_dyna_runs_first_collection(tmp_path, load_experiment):
    """model_free_seeded with --no-train and no Dyna run to take the generator episodes
    from: an error that says which run is missing and what to run."""
    mwk = load_experiment("metaworld_k")
    args = mwk.Args(out=str(tmp_path), train=False)
    with pytest.raises(FileNotFoundError, match="--methods dyna for push-v3 seed 2 first"):
        mwk.dyna_first_collection(args, "push-v3", 2, [10_000])
    assert not (tmp_path / "runs").exists()


def test_seeded_control_collects_the_missing_first_collection_only(
    tiny, base_root, tmp_path, load_experiment
):
    """Without the Dyna run, the control makes its iteration-0 collection and nothing else
    (the generator's episodes on train scenes, in the loop dataset's format); a second call
    reuses it, and the Dyna loop later continues that run without collecting again."""
    mwk = load_experiment("metaworld_k")
    args = mwk.Args(out=str(tmp_path / "out"), data=str(base_root), progress=False,
                    dyna_overrides=[f"world_model.init={tiny.world_dir}"])  # fmt: skip
    mwk.apply_quick(args)  # 2 episodes x 6 actions per iteration, points 12 and 24
    paths = mwk.dyna_first_collection(args, TASK, 1, [12, 24])
    run = tmp_path / "out" / "runs" / "dyna" / TASK / "s1"
    state = RunState(run / "state.json")
    assert state.result(0, "collect")["policy"] == "generator mix"
    assert [state.result(0, s) for s in STAGES if s != "collect"] == [None] * (len(STAGES) - 1)
    assert len(paths) == 2 and all(p.parent == run / "data" / "train" for p in paths)
    train_scenes = ResetBank.from_dataset(base_root, "train", [TASK])
    for p in paths:
        with np.load(p) as ep:
            assert ep["action"].shape == (6, 4) and np.isfinite(ep["action"]).all()
            assert np.abs(ep["action"]).max() <= 1.0
            assert int(ep["layout"]) in set(train_scenes.layout.tolist())
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    assert mwk.dyna_first_collection(args, TASK, 1, [12, 24]) == paths
    rows, ran = mwk.run_dyna(args, TASK, 1, [12])
    assert ran and [r[0] for r in rows] == [12]
    state = RunState(run / "state.json")
    assert all(state.result(0, s) is not None for s in STAGES)
    assert {p: p.stat().st_mtime_ns for p in paths} == stamps


def test_control_text_bolds_the_differences_whose_interval_excludes_0(load_experiment):
    """One line per budget; a difference is bold exactly when its interval excludes 0
    (either sign), as in the main table."""
    mwk = load_experiment("metaworld_k")

    def d(diff: float, lo: float, hi: float) -> dict:
        return {"diff": diff, "lo": lo, "hi": hi, "pairs": 40}

    control = {
        "dyna|reach-v3|10000": {"success": d(0.2, 0.03, 0.37), "return": d(-42, -133, 48)},
        "dyna|push-v3|5000": {"success": d(-0.15, -0.38, 0.08), "return": d(-430, -666, -195)},
    }
    text = mwk.control_text(control)
    assert (
        "- reach-v3, 10,000 real steps: success **+0.20 [+0.03, +0.37]**, return -42 "
        "[-133, +48] (40 pairs)" in text
    )
    assert (
        "- push-v3, 5,000 real steps: success -0.15 [-0.38, +0.08], return **-430 "
        "[-666, -195]** (40 pairs)" in text
    )
    assert mwk.control_text({}) == ""


def test_no_train_takes_the_saved_checkpoints_of_a_run_in_progress(tmp_path, load_experiment):
    """--no-train on a model-free run still training elsewhere: the checkpoints saved so far,
    timed by the run's resume snapshots (interpolated), none past the newest snapshot."""
    mwk = load_experiment("metaworld_k")
    out = tmp_path / "s0"
    (out / "checkpoints").mkdir(parents=True)
    (out / "resume").mkdir()
    history = [[10.0, 5.0], [20.0, 9.0]]
    (out / "resume" / "state.json").write_text(json.dumps({"steps": 20, "history": history}))
    ckpt = {p: out / "checkpoints" / f"drq_{p}_steps.zip" for p in (12, 24, 30)}
    for p in (12, 24):  # 24: saved, but the snapshot history stops at 20
        ckpt[p].write_bytes(b"zip")
    own = {p: p for p in ckpt}
    rows = mwk._saved_checkpoints(out, ckpt, own)
    assert [(p, path) for p, path, _ in rows] == [(12, str(ckpt[12]))]
    assert rows[0][2] == pytest.approx(5.0 + 0.2 * 4.0)
    assert mwk._saved_checkpoints(tmp_path / "none", ckpt, own) == []  # no snapshots: no times
    # a seeded run (12 steps prefilled): its 24-step budget is its own step 12, inside history
    rows = mwk._saved_checkpoints(out, {24: ckpt[12]}, {24: 12})
    assert [(p, path) for p, path, _ in rows] == [(24, str(ckpt[12]))]
    assert rows[0][2] == pytest.approx(5.0 + 0.2 * 4.0)


def test_seeded_control_refuses_an_n_envs_that_drops_prefill_episodes(tmp_path, load_experiment):
    """Three generator episodes and a model-free agent with two env columns: its buffer would
    take only two, so the control would not start where Dyna did. The error says so before
    any training (no run directory is made)."""
    mwk = load_experiment("metaworld_k")
    episodes = []
    for i in range(3):
        episodes.append(tmp_path / f"ep{i}.npz")
        np.savez(episodes[-1], action=np.zeros((4, 4), np.float32))
    hp = tmp_path / "hp.yml"
    hp.write_text("drq:\n  n_envs: 2\n")
    args = mwk.Args(out=str(tmp_path / "out"), hyperparams=str(hp), algo="drq")
    with pytest.raises(ValueError, match="n_envs=2 does not divide the 3 prefill episodes"):
        mwk.run_model_free(args, TASK, 0, [24], "base", 6, "model_free_seeded", episodes)
    assert not (tmp_path / "out").exists()
    hp.write_text("drq:\n  n_envs: 3\n")  # divides: the budget check comes next (12 < 24 own)
    with pytest.raises(ValueError, match="within the 12 prefilled steps"):
        mwk.run_model_free(args, TASK, 0, [12], "base", 6, "model_free_seeded", episodes)
