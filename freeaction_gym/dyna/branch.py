"""Branch a Dyna run: continue a finished part of one run under changed settings.

To compare one change to the loop at equal cost, both arms should share everything before
the change takes effect. :func:`branch_run` copies a source run's output directory into a
new one, keeping every stage the changed settings cannot have affected:

- iterations before ``iteration`` are kept whole;
- in ``iteration``, the stages before the first stage a changed section feeds
  (:data:`FIRST_STAGE`) are kept; that stage and the ones after it run again.

The copy holds the kept stages' directories, the collected episodes of kept collections,
the banks and the dataset's links to the base. Paths inside ``state.json`` are rewritten to
the new directory, so the branch never reads or writes the source run, and
``branch.json`` records where it came from. The branch is then an ordinary run: the loop
(``freeaction dyna --config OUT/config.yaml``) continues it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from freeaction_gym.data.episodes import write_json_atomic
from freeaction_gym.dyna.config import (
    RESUMABLE_CHANGES,
    DynaConfig,
    changed_settings,
    config_from_dict,
    load_dyna_config,
    save_config,
)
from freeaction_gym.dyna.dataset import COLLECTED_OFFSET, COLLECTED_PATTERN
from freeaction_gym.dyna.state import STAGES, RunState

FIRST_STAGE: dict[str, str] = {
    "collect": "collect",
    "world_model": "world_model",
    "reward": "reward",
    "agent": "agent",
    "eval": "evaluate",
}
"""Config section -> the first stage that reads it (later stages depend on that stage)."""

NOT_BRANCHABLE = ("task", "seed", "data")
"""Settings every stage depends on: changing them is a new run, not a branch."""


def first_affected(changed: list[str]) -> str:
    """The earliest stage any of the ``changed`` settings (``section.key``) feeds."""
    refused = [k for k in changed if k.split(".")[0] in NOT_BRANCHABLE]
    if refused:
        raise ValueError(
            f"a branch cannot change {refused}: every stage depends on them; start a new run"
        )
    stages = [FIRST_STAGE[k.split(".")[0]] for k in changed]
    return min(stages, key=STAGES.index)


def kept_stages(state: RunState, iteration: int, first: str) -> list[tuple[int, str]]:
    """``(iteration, stage)`` pairs the branch keeps; all of them must be finished."""
    keep = [(it, s) for it in range(iteration) for s in STAGES]
    keep += [(iteration, s) for s in STAGES[: STAGES.index(first)]]
    missing = [f"{s} of iteration {it}" for it, s in keep if state.result(it, s) is None]
    if missing:
        raise ValueError(
            f"cannot branch at iteration {iteration} ({first} onwards changes): the source "
            f"run has not finished {', '.join(missing[:3])}"
            + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        )
    return keep


def rewrite_paths(value: Any, old: str, new: str) -> Any:
    """Every string in ``value`` that is ``old`` or starts with ``old/``, moved under ``new``."""
    if isinstance(value, dict):
        return {k: rewrite_paths(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [rewrite_paths(v, old, new) for v in value]
    if isinstance(value, str) and (value == old or value.startswith(old + "/")):
        return new + value[len(old) :]
    return value


def _copy_dataset(src: Path, dst: Path, kept_collections: int) -> int:
    """Copy the loop dataset ``src`` -> ``dst``: links to the base as links, collected
    episodes of iterations ``< kept_collections`` as files. Returns the episodes copied."""
    collected = re.compile(COLLECTED_PATTERN)
    copied = 0
    for path in sorted(src.rglob("*")):
        target = dst / path.relative_to(src)
        if path.is_dir() and not path.is_symlink():
            target.mkdir(parents=True, exist_ok=True)
        elif path.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(path), target)
        elif path.suffix == ".npz" and collected.fullmatch(path.stem):
            iteration = int(path.stem.rsplit("_", 1)[1]) // COLLECTED_OFFSET - 1
            if iteration < kept_collections:
                shutil.copy2(path, target)
                copied += 1
        else:
            shutil.copy2(path, target)
    return copied


def branch_run(source: str | Path, cfg: DynaConfig, iteration: int) -> dict[str, Any]:
    """Make ``cfg.output`` a branch of the run in ``source`` at ``iteration`` (see the
    module doc). ``cfg`` is the source's saved config with the changed settings applied.
    Returns what ``branch.json`` records."""
    source, out = Path(source), Path(cfg.output)
    saved_path = source / "config.yaml"
    if not saved_path.is_file() or not (source / "state.json").is_file():
        raise FileNotFoundError(f"{source} is not a dyna run (no config.yaml and state.json)")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"branch output {out} exists and is not empty; pick a new one")
    if out.resolve() == source.resolve():
        raise ValueError("a branch needs its own output directory")
    saved = yaml.safe_load(saved_path.read_text())
    ignored = ("output", *RESUMABLE_CHANGES)
    changed = [k for k in changed_settings(saved, cfg) if k not in ignored]
    if not changed:
        raise ValueError("the branch changes no setting; pass at least one section.key=value")
    if iteration < 0:
        raise ValueError(f"branch iteration must be >= 0, got {iteration}")
    was = config_from_dict(saved).to_dict()  # the source's settings, defaults filled in
    first = first_affected(changed)
    state = RunState(source / "state.json")
    keep = kept_stages(state, iteration, first)

    out.mkdir(parents=True, exist_ok=True)
    for it, stage in keep:
        stage_dir = source / f"iter_{it:03d}" / stage
        if stage_dir.is_dir():
            shutil.copytree(stage_dir, out / f"iter_{it:03d}" / stage, symlinks=True)
    kept_collections = sum(1 for _, s in keep if s == "collect")
    episodes = 0
    if (source / "data").is_dir():
        episodes = _copy_dataset(source / "data", out / "data", kept_collections)
    if (source / "banks").is_dir():
        shutil.copytree(source / "banks", out / "banks")

    old_prefix = str(saved.get("output", source)).rstrip("/")
    new_state: dict[str, Any] = {"iterations": []}
    for it, stage in keep:
        while len(new_state["iterations"]) <= it:
            new_state["iterations"].append({})
        result = rewrite_paths(state.result(it, stage), old_prefix, str(cfg.output))
        new_state["iterations"][it][stage] = result
    write_json_atomic(out / "state.json", new_state)
    save_config(cfg, out / "config.yaml")
    record = {
        "source": str(source),
        "iteration": iteration,
        "first_stage": first,
        "changed": {k: _lookup(cfg.to_dict(), k) for k in changed},
        "was": {k: _lookup(was, k) for k in changed},
        "kept_stages": len(keep),
        "collected_episodes_copied": episodes,
    }
    (out / "branch.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _lookup(d: dict[str, Any], dotted: str) -> Any:
    node: Any = d
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def load_branch_config(source: str | Path, overrides: list[str]) -> DynaConfig:
    """The source run's saved config with ``overrides`` (``section.key=value``) applied."""
    saved_path = Path(source) / "config.yaml"
    if not saved_path.is_file():
        raise FileNotFoundError(f"{source} is not a dyna run (no config.yaml)")
    return load_dyna_config(saved_path, overrides, check_paths=False)
