"""Visual action prompts (seed 004): the arm's keypoints rendered as skeleton images through
the dataset camera, and a proprioceptive dynamics model that turns actions into keypoints.

Data path: ``camera`` (pinhole model of a MuJoCo free camera) -> ``skeleton`` (prompt
images) -> ``proprio`` (actions -> robot state and keypoints) -> ``alignment`` (checks of
prompts against MuJoCo's own renders; needs MuJoCo). Names are imported lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PinholeCamera": "camera",
    "SkeletonStyle": "skeleton",
    "render_prompts": "skeleton",
    "gripper_region": "skeleton",
    "ProprioConfig": "proprio",
    "ProprioModel": "proprio",
    "integrate": "proprio",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
