"""Episode datasets: the MetaWorld generator, the on-disk format + reader, statistics.

Names are imported lazily (``freeaction_gym.data.ClipDataset`` imports torch on first use,
the generator imports MetaWorld/MuJoCo only when it runs).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Episode": "episodes",
    "EpisodeFormatError": "episodes",
    "ClipDataset": "episodes",
    "load_episode": "episodes",
    "list_episodes": "episodes",
    "read_meta": "episodes",
    "write_episode": "episodes",
    "episode_path": "episodes",
    "SPLITS": "episodes",
    "FORMAT_VERSION": "episodes",
    "compute_stats": "stats",
    "load_stats": "stats",
    "MetaWorldDataConfig": "metaworld_gen",
    "generate_dataset": "metaworld_gen",
    "generate_episode": "metaworld_gen",
    "make_metaworld_env": "metaworld_gen",
    "main_metaworld": "metaworld_gen",
    "CAMERA_PRESETS": "metaworld_gen",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
