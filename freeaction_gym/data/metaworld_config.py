"""What defines a generated MetaWorld dataset: :class:`MetaWorldDataConfig` (saved in
``meta.json``), the layout of each episode and its seed.

Each episode is one MetaWorld v3 task in one fixed layout (``metaworld.MT1(task, seed=S)``
gives 50 layouts per seed; the splits use disjoint seeds, ``train`` S=0, ``val`` S=500,
``test`` S=1000, and episode ``i`` uses layout ``i % 50``).
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from freeaction_gym.data.episodes import SPLITS

LAYOUTS_PER_SEED = 50  # metaworld.MT1(task, seed).train_tasks


@dataclass
class MetaWorldDataConfig:
    """What defines a generated MetaWorld dataset (saved in ``meta.json``)."""

    tasks: list[str] = field(default_factory=lambda: ["reach-v3", "push-v3", "pick-place-v3"])
    """MetaWorld v3 task names (``metaworld.env_dict.ALL_V3_ENVIRONMENTS``)."""
    train_episodes: int = 100
    """Episodes per task in the train split."""
    val_episodes: int = 10
    """Episodes per task in the val split."""
    test_episodes: int = 20
    """Episodes per task in the test split."""
    frames: int = 64
    """Actions per episode T; T+1 frames are stored (the initial frame included)."""
    action_repeat: int = 4
    """Simulator steps each recorded action is held for."""
    resolution: int = 64
    """Square image size in pixels."""
    camera: str = "workspace"
    """A ``CAMERA_PRESETS`` name or a MetaWorld camera name (corner* are flipped upright)."""
    depth: bool = True
    """Store metric depth."""
    depth_clip_m: float = 10.0
    """Depth is clipped at this many meters (the background is ~113 m away)."""
    base_seed: int = 0
    """Root of the per-episode seeds (derived from base_seed, task, split, index)."""
    layout_seeds: dict[str, int] = field(
        default_factory=lambda: {"train": 0, "val": 500, "test": 1000}
    )
    """``metaworld.MT1(task, seed=S)`` seed per split (disjoint layouts)."""
    noise_sigma_range: tuple[float, float] = (0.05, 0.5)
    """Per-episode sigma of the Gaussian noise on expert actions (uniform in this range)."""
    random_action_prob: float = 0.15
    """Mean per-frame probability of a uniform random action instead of the noisy expert."""
    perturb_start_prob: float = 0.04
    """Mean per-frame probability of starting a perturbation segment (held random action)."""
    perturb_len_range: tuple[int, int] = (2, 6)
    """Perturbation segment length in frames, inclusive range."""
    gripper_override_prob: float = 0.2
    """Per-episode probability of a non-expert gripper (always open/closed/random toggles)."""
    gripper_toggle_prob: float = 0.15
    """Per-frame flip probability in the random-toggle gripper behaviour."""
    stop_after_success: int = -1
    """End an episode this many actions after its first success (demonstrations for a
    policy); -1 always records ``frames`` actions."""
    random_walk_prob: float = 0.0
    """Per-episode probability of a :class:`RandomWalkPolicy` episode instead of the noisy
    expert: smooth random motion that reaches where agents go, not only where experts go."""
    train_layout_seeds: int = 1
    """The train split draws layouts from this many consecutive ``MT1`` seeds (episode ``i``
    uses seed ``layout_seeds["train"] + (i // 50) % n``, layout ``i % 50``): more distinct
    scenes than one seed's 50. Must not reach the val/test seeds."""

    @classmethod
    def demonstrations(cls, **kw) -> MetaWorldDataConfig:
        """Clean scripted-expert demos (no noise, perturbations or gripper overrides), cut
        2 actions after the first success unless ``stop_after_success`` is given."""
        clean = dict(
            noise_sigma_range=(0.0, 0.0),
            random_action_prob=0.0,
            perturb_start_prob=0.0,
            gripper_override_prob=0.0,
            stop_after_success=2,
        )
        return cls(**(clean | kw))

    def __post_init__(self) -> None:
        self.noise_sigma_range = tuple(self.noise_sigma_range)  # type: ignore[assignment]
        self.perturb_len_range = tuple(self.perturb_len_range)  # type: ignore[assignment]
        for name in ("frames", "action_repeat", "resolution"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"MetaWorldDataConfig.{name} must be >= 1, got {getattr(self, name)}"
                )
        for split in SPLITS:
            if self.episodes(split) < 0:
                raise ValueError(f"{split}_episodes must be >= 0")
        if set(self.layout_seeds) != set(SPLITS):
            raise ValueError(
                f"layout_seeds needs exactly the splits {SPLITS}, got {self.layout_seeds}"
            )
        if len(set(self.layout_seeds.values())) != len(SPLITS):
            raise ValueError(f"layout_seeds must differ between splits, got {self.layout_seeds}")
        if not self.tasks:
            raise ValueError("MetaWorldDataConfig.tasks is empty")
        if self.perturb_len_range[0] < 1 or self.perturb_len_range[1] < self.perturb_len_range[0]:
            raise ValueError(f"bad perturb_len_range {self.perturb_len_range}")
        if not 0.0 <= self.random_walk_prob <= 1.0:
            raise ValueError(f"random_walk_prob must be in [0, 1], got {self.random_walk_prob}")
        if self.train_layout_seeds < 1:
            raise ValueError(f"train_layout_seeds must be >= 1, got {self.train_layout_seeds}")
        first = self.layout_seeds["train"]
        clash = [
            s
            for split, s in self.layout_seeds.items()
            if split != "train" and first <= s < first + self.train_layout_seeds
        ]
        if clash:
            raise ValueError(
                f"train_layout_seeds={self.train_layout_seeds} makes the train split use "
                f"the val/test layout seeds {clash}"
            )

    def layout_of(self, split: str, index: int) -> tuple[int, int]:
        """``(MT1 seed, layout index)`` of episode ``index`` of ``split``."""
        seed = self.layout_seeds[split]
        if split == "train":
            seed += (index // LAYOUTS_PER_SEED) % self.train_layout_seeds
        return seed, index % LAYOUTS_PER_SEED

    def episodes(self, split: str) -> int:
        return {"train": self.train_episodes, "val": self.val_episodes, "test": self.test_episodes}[
            split
        ]

    # Fields that only say how many episodes exist: a dataset may grow along them.
    COUNT_FIELDS = ("tasks", "train_episodes", "val_episodes", "test_episodes")


def episode_seed(base_seed: int, task: str, split: str, index: int) -> int:
    """Stable per-episode seed (independent of generation order and of Python's hash salt)."""
    seq = np.random.SeedSequence([base_seed, zlib.crc32(task.encode()), SPLITS.index(split), index])
    return int(seq.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def config_from_meta(root: str | os.PathLike) -> MetaWorldDataConfig:
    """The :class:`MetaWorldDataConfig` stored in ``{root}/meta.json``."""
    meta = json.loads((Path(root) / "meta.json").read_text())
    known = {f.name for f in fields(MetaWorldDataConfig)}
    return MetaWorldDataConfig(**{k: v for k, v in meta["config"].items() if k in known})
