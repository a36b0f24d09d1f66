"""``experiments/pad_truncation.py --quick``: settings long enough for the scripted expert.

Its quick setting once ran 4 actions per episode (16 simulator steps), too few for any task,
so every row - the scripted expert too - read 0% success. The expert reaches in ~7-12
actions, so on the quick setting it must succeed in a clear majority of episodes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("metaworld")

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "pad_truncation.py"


def load_script():
    spec = importlib.util.spec_from_file_location("pad_truncation_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


def test_quick_keeps_given_options_and_finds_the_bundled_policy():
    script = load_script()
    assert (script.BUNDLED_POLICY / "pad.json").is_file()  # absolute: any cwd finds it
    args = script.Args(quick=True, episodes=2)
    tasks = script.apply_quick(args, ["button-press-topdown-v3", "reach-v3"])
    assert tasks == ["reach-v3"] and args.episodes == 2
    assert args.max_actions == script.QUICK["max_actions"] and args.tau_sweep == []


def test_scripted_expert_succeeds_on_the_quick_setting(monkeypatch):
    script = load_script()
    monkeypatch.setattr(script, "CONFIGS", {})  # only the reference rows: expert, random
    args = script.Args(quick=True)
    tasks = script.apply_quick(args, ["button-press-topdown-v3", "reach-v3"])
    success, _ = script.evaluate(args, model=None, stats=None, tasks=tasks)
    expert = np.concatenate([success["scripted expert"][t] for t in tasks])
    assert expert.size == args.episodes * len(tasks)
    assert expert.mean() >= 0.75, success
    assert np.concatenate([success["random"][t] for t in tasks]).mean() < 0.5
