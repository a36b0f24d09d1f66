"""Branching a Dyna run: the stages a change cannot affect are copied (files and state,
with paths moved to the branch), the rest rerun in the branch, and the source run is left
untouched. Stages are stubs that write one file each (the smoke test runs real ones)."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from freeaction_gym.dyna.branch import (
    branch_run,
    first_affected,
    load_branch_config,
    rewrite_paths,
)
from freeaction_gym.dyna.config import config_from_dict, save_config
from freeaction_gym.dyna.dataset import collected_index
from freeaction_gym.dyna.loop import DynaLoop
from freeaction_gym.dyna.state import STAGES, RunState


class FileLoop(DynaLoop):
    """Each stage writes ``iter_k/stage/out.txt`` naming its input and returns its path;
    collect writes two collected episodes into ``data/train``."""

    def __init__(self, cfg, calls: list) -> None:
        super().__init__(cfg, agent=None)
        self.calls = calls

    def setup(self):
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(self.cfg, self.out / "config.yaml")

    def _stage(self, it: int, stage: str, note: str) -> str:
        self.calls.append((it, stage))
        d = self.stage_dir(it, stage)
        d.mkdir(parents=True, exist_ok=True)
        (d / "out.txt").write_text(f"{stage} {it} from {note}")
        return str(d / "out.txt")

    def run_collect(self, it):
        train = self.out / "data" / "train"
        train.mkdir(parents=True, exist_ok=True)
        for k in range(2):
            (train / f"reach-v3_{collected_index(it, k)}.npz").write_bytes(b"ep%d" % it)
        path = self._stage(it, "collect", "env")
        return {"steps": 10, "episodes": 2, "success_rate": 0.5, "return_mean": 1.0, "f": path}

    def run_world_model(self, it):
        init = self.current(it, "world_model", "model", "bundled")
        return {"model": self._stage(it, "world_model", init), "steps": 3, "loss": 0.1}

    def run_reward(self, it):
        return {"reward_head": self._stage(it, "reward", "data")}

    def run_agent(self, it):
        wm = self.state.result(it, "world_model")["model"]
        path = self._stage(it, "agent", wm)
        return {"policy": path, "timesteps": 8, "env_kwargs": {"model": wm}}

    def run_evaluate(self, it):
        self._stage(it, "evaluate", self.state.result(it, "agent")["policy"])
        return {"real_success": it / 10, "real_success_ci": [0, 1], "real_return": 2.0 * it,
                "real_return_ci": [0, 9]}  # fmt: skip


@pytest.fixture()
def source(tmp_path):
    """A finished two-iteration run in tmp_path/src with a link to a 'base' episode."""
    out = tmp_path / "src"
    cfg = config_from_dict({"iterations": 2, "output": str(out), "progress": False})
    (out / "data" / "train").mkdir(parents=True)
    (tmp_path / "base.npz").write_bytes(b"base")
    os.symlink(tmp_path / "base.npz", out / "data" / "train" / "reach-v3_0.npz")
    (out / "banks").mkdir()
    (out / "banks" / "eval.npz").write_bytes(b"bank")
    FileLoop(cfg, []).run()
    return out


def snapshot(root):
    return {
        str(p.relative_to(root)): (os.readlink(p) if p.is_symlink() else p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


def test_branch_reruns_only_the_stages_the_change_feeds(source, tmp_path):
    before = snapshot(source)
    new = tmp_path / "branch"
    cfg = load_branch_config(
        source, [f"output={new}", "agent.timesteps=99", "iterations=3", "progress=false"]
    )
    record = branch_run(source, cfg, iteration=1)
    assert record["first_stage"] == "agent"
    assert record["changed"] == {"agent.timesteps": 99}
    assert record["was"]["agent.timesteps"] == 20000  # the default
    assert record["kept_stages"] == len(STAGES) + 3  # iteration 0 + collect/wm/reward of 1
    assert record["collected_episodes_copied"] == 4
    assert json.loads((new / "branch.json").read_text()) == record

    state = RunState(new / "state.json")
    assert state.finished(0) and state.result(1, "reward") is not None
    assert state.result(1, "agent") is None
    wm1 = state.result(1, "world_model")["model"]
    assert wm1 == str(new / "iter_001" / "world_model" / "out.txt")  # moved to the branch
    assert (new / "iter_001" / "world_model" / "out.txt").read_text() == (
        f"world_model 1 from {source}/iter_000/world_model/out.txt"
    )  # the file is the source's, copied
    assert state.result(0, "agent")["env_kwargs"]["model"].startswith(str(new))
    assert not (new / "iter_001" / "agent").exists()
    assert os.readlink(new / "data" / "train" / "reach-v3_0.npz") == str(tmp_path / "base.npz")
    assert yaml.safe_load((new / "config.yaml").read_text())["agent"]["timesteps"] == 99

    calls: list = []
    rows = FileLoop(cfg, calls).run()  # the branch continues as an ordinary run
    assert calls[:2] == [(1, "agent"), (1, "evaluate")]
    assert calls[2:] == [(2, s) for s in STAGES]
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert (new / "iter_001" / "agent" / "out.txt").read_text() == f"agent 1 from {wm1}"
    assert (new / "iter_002" / "world_model" / "out.txt").read_text() == (
        f"world_model 2 from {wm1}"
    )  # the chain of fine-tunes goes on from the copied model
    assert snapshot(source) == before  # the source run is untouched


def test_compare_script_tables_a_run_and_its_branch(source, tmp_path, load_experiment):
    new = tmp_path / "branch"
    cfg = load_branch_config(source, [f"output={new}", "reward.steps=7", "progress=false"])
    branch_run(source, cfg, iteration=1)
    FileLoop(cfg, []).run()  # the stub's evaluation: real success it / 10, return 2 it
    compare = load_experiment("dyna_compare")
    doc = tmp_path / "doc.md"
    doc.write_text("# results\n")
    summary = compare.main(compare.Args(
        runs=[f"src={source}", f"b={new}"], from_iteration=1, out=str(tmp_path / "cmp"),
        update_doc=str(doc),
    ))  # fmt: skip
    assert summary["src"] == {"iterations": [1], "real_success": 0.1, "real_return": 2.0}
    assert summary["b"] == summary["src"]
    text = doc.read_text()
    assert "| b | 1 | 20 | 0.10 [0.00, 1.00] | 2 [0, 9] |" in text
    assert "| src | 0 |" not in text  # before --from-iteration
    assert f"b: branch of `{source}` at iteration 1 (reward onwards rerun): reward.steps" in text
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 0
    with pytest.raises(SystemExit, match="not a dyna run"):
        compare.main(compare.Args(runs=[f"x={tmp_path}"], out=str(tmp_path / "cmp")))


def test_branch_at_a_collect_change_drops_that_iterations_episodes(source, tmp_path):
    new = tmp_path / "b2"
    cfg = load_branch_config(source, [f"output={new}", "collect.noise_sigma=0.5"])
    record = branch_run(source, cfg, iteration=1)
    assert record["first_stage"] == "collect"
    names = sorted(p.name for p in (new / "data" / "train").iterdir())
    assert names == ["reach-v3_0.npz", "reach-v3_100000.npz", "reach-v3_100001.npz"]
    assert len(RunState(new / "state.json").iterations) == 1
    assert (new / "banks" / "eval.npz").read_bytes() == b"bank"


def test_an_option_newer_than_the_source_is_not_a_change(source, tmp_path):
    """The source's config.yaml predates ``reward.imagined_episodes``: the branch counts
    only what it sets, and records the default as what it was."""
    saved = yaml.safe_load((source / "config.yaml").read_text())
    del saved["reward"]["imagined_episodes"]
    (source / "config.yaml").write_text(yaml.safe_dump(saved))
    cfg = load_branch_config(source, [f"output={tmp_path / 'b'}", "agent.start_stride=2"])
    record = branch_run(source, cfg, iteration=1)
    assert record["changed"] == {"agent.start_stride": 2} and record["first_stage"] == "agent"
    assert record["was"] == {"agent.start_stride": None}
    cfg = load_branch_config(source, [f"output={tmp_path / 'c'}", "reward.imagined_episodes=9"])
    assert branch_run(source, cfg, iteration=1)["was"] == {"reward.imagined_episodes": 0}


def test_branch_refusals(source, tmp_path):
    same = load_branch_config(source, [f"output={tmp_path / 'x'}"])
    with pytest.raises(ValueError, match="changes no setting"):
        branch_run(source, same, 1)
    seed = load_branch_config(source, [f"output={tmp_path / 'x'}", "seed=3"])
    with pytest.raises(ValueError, match=r"cannot change \['seed'\].*start a new run"):
        branch_run(source, seed, 1)
    later = load_branch_config(source, [f"output={tmp_path / 'x'}", "eval.episodes=5"])
    with pytest.raises(ValueError, match="has not finished collect of iteration 2"):
        branch_run(source, later, 3)
    onto_itself = load_branch_config(source, ["agent.timesteps=5"])
    with pytest.raises(FileExistsError, match="not empty"):
        branch_run(source, onto_itself, 1)
    with pytest.raises(FileNotFoundError, match="not a dyna run"):
        load_branch_config(tmp_path / "nothing", ["output=y"])
    assert not (tmp_path / "x").exists()  # a refused branch writes nothing


def test_first_affected_stage_and_path_rewrite():
    assert first_affected(["eval.episodes", "reward.steps"]) == "reward"
    assert first_affected(["agent.env_kwargs"]) == "agent"
    assert first_affected(["world_model.steps", "collect.steps"]) == "collect"
    moved = rewrite_paths(
        {"a": ["runs/s0/iter_000/x", "runs/s01/y", "runs/s0"], "b": 3}, "runs/s0", "runs/b"
    )
    assert moved == {"a": ["runs/b/iter_000/x", "runs/s01/y", "runs/b"], "b": 3}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--config", "c.yaml", "--branch-from", "r", "--at-iteration", "1"], "exactly one"),
        (["--branch-from", "r", "output=x"], "go together"),
        (["--config", "c.yaml", "--at-iteration", "1"], "go together"),
        (["--branch-from", "r", "--at-iteration", "1", "agent.timesteps=5"], "output=NEW"),
    ],
)
def test_branch_cli_refuses_incomplete_arguments(argv, message, capsys):
    from freeaction_gym.dyna.cli import main

    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err
