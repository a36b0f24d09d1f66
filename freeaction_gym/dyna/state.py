"""What a Dyna run has finished: ``{output}/state.json``, rewritten atomically after every
stage, so a rerun continues after the last finished stage.

Layout: ``{"iterations": [{"collect": {...}, "world_model": {...}, ...}, ...]}``; a stage's
entry is the JSON result its function returned (paths of what it wrote, metrics, seconds).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from freeaction_gym.data.episodes import write_json_atomic

STAGES: tuple[str, ...] = ("collect", "world_model", "reward", "agent", "evaluate")
"""The stages of one iteration, in order."""


class RunState:
    """Finished stages of a run, backed by ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.data: dict[str, Any] = {"iterations": []}
        if self.path.is_file():
            self.data = json.loads(self.path.read_text())

    @property
    def iterations(self) -> list[dict[str, dict]]:
        return self.data["iterations"]

    def result(self, iteration: int, stage: str) -> dict | None:
        """The recorded result of ``stage`` of ``iteration``, or None if not finished."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages: {STAGES}")
        if iteration >= len(self.iterations):
            return None
        return self.iterations[iteration].get(stage)

    def record(self, iteration: int, stage: str, result: dict) -> None:
        """Mark ``stage`` of ``iteration`` finished with ``result`` (and save)."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages: {STAGES}")
        missing = [s for s in STAGES[: STAGES.index(stage)] if self.result(iteration, s) is None]
        if missing:
            raise RuntimeError(f"iteration {iteration}: {stage} recorded before {missing}")
        while len(self.iterations) <= iteration:
            self.iterations.append({})
        self.iterations[iteration][stage] = result
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, self.data)

    def finished(self, iteration: int) -> bool:
        return all(self.result(iteration, s) is not None for s in STAGES)

    def latest(self, before: int, stage: str, key: str) -> Any:
        """``result[key]`` of ``stage`` in the newest iteration before ``before`` that has
        it, or None (the first iteration starts from the config's artefacts)."""
        for it in range(min(before, len(self.iterations)) - 1, -1, -1):
            res = self.result(it, stage)
            if res is not None:
                return res[key]
        return None
