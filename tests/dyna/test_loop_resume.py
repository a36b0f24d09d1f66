"""Resume: a rerun continues after the last finished stage, each stage starts from the
newest artefacts before it, and metrics.jsonl has one row per finished iteration. The
stages are stubs here (the smoke test runs the real ones)."""

from __future__ import annotations

import json

import pytest

from freeaction_gym.dyna.config import config_from_dict
from freeaction_gym.dyna.loop import DynaLoop
from freeaction_gym.dyna.state import STAGES, RunState


class Crash(Exception):
    pass


class StubLoop(DynaLoop):
    """Stages that record their calls and return what the report reads."""

    def __init__(self, cfg, calls: list, crash_at: tuple[int, str] | None = None) -> None:
        super().__init__(cfg, agent=None)
        self.calls, self.crash_at = calls, crash_at

    def setup(self):
        self.out.mkdir(parents=True, exist_ok=True)

    def _call(self, it: int, stage: str) -> None:
        if (it, stage) == self.crash_at:
            raise Crash(f"killed in {stage} of iteration {it}")
        self.calls.append((it, stage))

    def run_collect(self, it):
        self._call(it, "collect")
        return {"steps": 10, "episodes": 2, "success_rate": 0.5, "return_mean": 1.0}

    def run_world_model(self, it):
        self._call(it, "world_model")
        init = self.current(it, "world_model", "model", "init-model")
        return {"model": f"wm{it}", "init": init, "steps": 3, "loss": 0.1}

    def run_reward(self, it):
        self._call(it, "reward")
        return {"reward_head": f"head{it}"}

    def run_agent(self, it):
        self._call(it, "agent")
        init = self.current(it, "agent", "policy", None)
        return {"policy": f"pi{it}", "init": init, "timesteps": 8, "env_kwargs": {}}

    def run_evaluate(self, it):
        self._call(it, "evaluate")
        return {"real_success": it / 10, "real_success_ci": [0, 1], "real_return": 2.0 * it,
                "real_return_ci": [0, 9]}  # fmt: skip


def test_rerun_continues_after_the_last_finished_stage(tmp_path):
    cfg = config_from_dict({"iterations": 2, "output": str(tmp_path), "progress": False})
    calls: list = []
    with pytest.raises(Crash):
        StubLoop(cfg, calls, crash_at=(1, "agent")).run()
    assert calls == [(0, s) for s in STAGES] + [(1, "collect"), (1, "world_model"), (1, "reward")]
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0]

    calls.clear()
    rows = StubLoop(cfg, calls).run()
    assert calls == [(1, "agent"), (1, "evaluate")]  # finished stages are not rerun
    assert [r["real_env_steps"] for r in rows] == [10, 20]  # cumulative collected steps
    assert [r["real_success"] for r in rows] == [0.0, 0.1]
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 2
    assert (tmp_path / "dyna.png").is_file()

    state = RunState(tmp_path / "state.json")  # each stage started from the newest artefacts
    assert [state.result(i, "world_model")["init"] for i in (0, 1)] == ["init-model", "wm0"]
    assert [state.result(i, "agent")["init"] for i in (0, 1)] == [None, "pi0"]

    calls.clear()
    StubLoop(cfg, calls).run()  # finished: nothing to do
    assert calls == []
    more = config_from_dict({"iterations": 3, "output": str(tmp_path), "progress": False})
    StubLoop(more, calls).run()  # extend a finished run
    assert calls == [(2, s) for s in STAGES]


def test_state_records_stages_in_order(tmp_path):
    state = RunState(tmp_path / "state.json")
    with pytest.raises(RuntimeError, match=r"reward recorded before \['collect', 'world_model'\]"):
        state.record(0, "reward", {})
    with pytest.raises(ValueError, match="unknown stage"):
        state.result(0, "train")
    state.record(0, "collect", {"x": 1})
    assert RunState(tmp_path / "state.json").result(0, "collect") == {"x": 1}
    assert state.latest(1, "collect", "x") == 1 and state.latest(0, "collect", "x") is None
    assert not state.finished(0)
