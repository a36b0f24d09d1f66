"""Environment configuration: a typed dataclass, filled from ``envs_config/<id>.yaml``
presets and ``gym.make`` keyword arguments, validated with errors that name the option."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

CONFIG_DIR = Path(__file__).resolve().parents[2] / "envs_config"
PACKAGE_CONFIG_DIR = Path(__file__).resolve().parent.parent / "assets" / "envs_config"


@dataclass
class EnvConfig:
    """Options of :class:`~freeaction_gym.envs.env.VideoWorldModelEnv`."""

    model: str = "bundled:metaworld_default"
    """A WorldModel directory, ``bundled:<name>``, or (``model_format: irasim``) an IRASim
    ``.pt`` checkpoint."""
    model_format: Literal["world_model", "irasim"] = "world_model"
    vae: str | None = None
    """IRASim only: a local diffusers VAE directory (the SDXL VAE IRASim was trained with)."""
    irasim_dataset: Literal["rt1", "bridge", "languagetable"] = "rt1"
    reset_bank: str | None = None
    """``.npz`` reset bank (frames to start from). Default: the bundled model's bank."""
    task: str | None = None
    """Only start from reset-bank entries of this task (e.g. ``push-v3``)."""
    action_chunk: int = 1
    """Actions per env step (the model generates that many frames per step)."""
    max_episode_steps: int = 50
    observation: Literal["rgb", "latent"] = "rgb"
    frame_stack: int = 1
    """RGB observations stack the last ``frame_stack`` frames on the channel axis."""
    action_scale: list[float] | None = None
    """model_action = action_offset + action_scale * env_action (default identity)."""
    action_offset: list[float] | None = None
    out_of_range: Literal["clip", "error"] = "clip"
    """Actions outside [-1, 1]: clipped (default) or rejected."""
    sampling: dict[str, Any] = field(default_factory=dict)
    """SamplingConfig overrides: scheduler, num_steps, guidance{...}, truncation{...}, norm{...}."""
    reward: Literal["learned", "goal_latent", "none"] = "learned"
    reward_head: str | None = None
    """Learned reward head directory (default: the bundled model's ``reward_head/``)."""
    goal_success_distance: float = 0.01
    terminate_on_success: bool = True
    support: dict[str, Any] | None = None
    """Halt imagined episodes that leave the data's support (MOReL-style): ``{"low": [A],
    "high": [A], "penalty": 0.0}`` bounds on the dead-reckoned displacement (the running
    sum of env actions since reset, env units). When a step leaves the box the episode ends
    (``terminated``, ``info["out_of_support"]``) and ``penalty`` is subtracted from its reward:
    there the world model extrapolates and its reward cannot be trusted. None: off."""
    render_fps: int = 10
    compile: bool = False
    """``torch.compile`` the denoiser (CPU: ~1.1x the eager speed after a one-off compile
    of tens of seconds at the first step; docs/BENCHMARKS.md)."""
    timing_in_info: bool = False
    """Add ``step_time_ms``/``model_time_ms``/``decode_time_ms`` to ``info``. Off by default
    because wall-clock times make infos differ between identically seeded runs; the last
    step's timing is always in ``env.unwrapped.timing``."""

    def __post_init__(self) -> None:
        checks = {
            "model_format": ("world_model", "irasim"),
            "observation": ("rgb", "latent"),
            "out_of_range": ("clip", "error"),
            "reward": ("learned", "goal_latent", "none"),
        }
        for name, allowed in checks.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"env option {name}={getattr(self, name)!r}; allowed: {allowed}")
        if self.support is not None:
            self.support = check_support(self.support)
        for name in ("action_chunk", "max_episode_steps", "frame_stack"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"env option {name} must be >= 1, got {getattr(self, name)}")


def check_support(support: Any) -> dict[str, Any]:
    """Validate the ``support`` option; returns it with float lists and a float penalty."""
    if not isinstance(support, dict) or not {"low", "high"} <= set(support):
        raise ValueError(f"env option support must be a dict with low and high, got {support!r}")
    unknown = sorted(set(support) - {"low", "high", "penalty"})
    if unknown:
        raise ValueError(
            f"env option support has unknown key(s) {unknown}; known: low, high, penalty"
        )
    low = [float(v) for v in support["low"]]
    high = [float(v) for v in support["high"]]
    if len(low) != len(high) or not all(lo < hi for lo, hi in zip(low, high, strict=True)):
        raise ValueError(f"env option support needs low < high of equal length, got {low}, {high}")
    return {"low": low, "high": high, "penalty": float(support.get("penalty", 0.0))}


def make_env_config(preset: str | None = None, **kwargs: Any) -> EnvConfig:
    """Preset YAML (by env id or path) + keyword overrides -> :class:`EnvConfig`.
    Unknown keys raise ``ValueError`` naming them and listing the allowed options."""
    values: dict[str, Any] = {}
    if preset is not None:
        values.update(load_preset(preset))
    for key, value in kwargs.items():  # nested dicts (sampling) merge key by key
        values[key] = _merge(values.get(key), value)
    allowed = {f.name for f in fields(EnvConfig)}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"unknown env option(s) {unknown}; allowed: {sorted(allowed)}")
    return EnvConfig(**values)


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = _merge(base.get(k), v)
        return out
    return override


def load_preset(name_or_path: str) -> dict[str, Any]:
    path = Path(name_or_path)
    if not path.suffix:
        for d in (CONFIG_DIR, PACKAGE_CONFIG_DIR):
            if (d / f"{name_or_path}.yaml").is_file():
                path = d / f"{name_or_path}.yaml"
                break
    if not path.is_file():
        raise FileNotFoundError(f"env preset {name_or_path!r} not found (looked in {CONFIG_DIR})")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a preset must be a mapping of env options")
    allowed = {f.name for f in fields(EnvConfig)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    return data
