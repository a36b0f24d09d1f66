"""Typed training configuration, loaded from YAML with validation.

One file describes one run: ``kind: dit`` (the world model) or ``kind: autoencoder``.
Unknown keys are errors that name the key and the section, so typos never silently fall
back to defaults.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from freeaction_gym.data.episodes import check_fraction
from freeaction_gym.models.avid import AVIDMode, check_mode
from freeaction_gym.utils.errors import UserError
from freeaction_gym.world_model.model import DiffusionConfig


@dataclass
class DataConfig:
    root: str = "data/metaworld_default"
    """Dataset directory (MetaWorld format with meta.json, or an IRASim-layout root)."""
    format: Literal["metaworld", "irasim"] = "metaworld"
    irasim_dataset: str = "rt1"
    """For ``format: irasim``: rt1, bridge or languagetable."""
    tasks: list[str] | None = None
    """Subset of MetaWorld tasks (None = all in the dataset)."""
    clip_frames: int = 5
    """Frames per training clip (context + predicted), the model's temporal length."""
    min_clip_frames: int = 2
    """Each batch uses a random clip length in [min_clip_frames, clip_frames]."""
    resolution: int | list[int] | None = None
    """IRASim layout: resize frames to this size (int = square, or [H, W])."""
    fraction: float = 1.0
    """Train on this share (in (0, 1]) of the train split's episodes, per task: a fixed
    subset chosen by ``fraction_seed`` (:func:`~freeaction_gym.data.episodes.stratified_subset`;
    smaller fractions are subsets of larger ones). Val/test are untouched. MetaWorld only."""
    fraction_seed: int = 0
    """Seed of the ``fraction`` subset (independent of ``optim.seed``)."""
    oversample_pattern: str | None = None
    """MetaWorld only: a regular expression; train episodes whose file stem matches it in
    full (e.g. the Dyna loop's collected ones) make up ``oversample_share`` of every batch."""
    oversample_share: float = 0.0
    """Probability that a training clip comes from a matching episode (else from the
    others); 0 or no pattern: episodes are drawn uniformly."""

    def __post_init__(self) -> None:
        self.fraction = check_fraction(self.fraction, "data.fraction")
        if self.format == "irasim" and self.fraction < 1.0:
            raise ValueError("data.fraction < 1 needs MetaWorld-format data (format: metaworld)")
        if not 0.0 <= self.oversample_share < 1.0:
            raise ValueError(
                f"data.oversample_share must be in [0, 1), got {self.oversample_share}"
            )
        if self.oversample_pattern is not None:
            if self.format != "metaworld":
                raise ValueError("data.oversample_pattern needs MetaWorld-format data")
            try:
                re.compile(self.oversample_pattern)
            except re.error as err:
                raise ValueError(
                    f"data.oversample_pattern {self.oversample_pattern!r} is not a regular "
                    f"expression ({err})"
                ) from err


@dataclass
class OptimConfig:
    steps: int = 20000
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup: int = 200
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    moving_weight: float = 0.0
    """Extra loss weight on elements whose target differs from the context (delta != 0)."""
    timestep_power: float = 1.0
    """t = T (1 - (1 - u)^p): p > 1 trains more on noisy steps, where actions matter."""
    self_context_prob: float = 0.0
    """Fraction of batches trained on the model's own imagined context
    (:mod:`~freeaction_gym.training.self_context`); 0 = off."""
    self_context_steps: int = 2
    """Imagined steps before such a batch's clip, drawn from 1..this."""
    kl_weight: float = 1e-6
    """Autoencoder only: weight of the KL term."""
    seed: int = 0
    threads: int | None = None


@dataclass
class LoopConfig:
    output: str = "runs/default"
    checkpoint_every: int = 200
    eval_every: int = 1000
    log_every: int = 20
    eval_clips: int = 32
    eval_sample_steps: int = 10
    init_from: str | None = None
    """Start a fresh run (no checkpoint.pt yet) from the weights of a saved model directory,
    e.g. the bundled one, whose config must match; optimizer state starts anew."""
    max_minutes: float | None = None
    """Stop (after a checkpoint) when this wall-clock budget is used up."""


@dataclass
class AVIDTrainConfig:
    """``avid:`` section of a ``kind: dit`` run: train an AVID adapter
    (:mod:`~freeaction_gym.models.avid`) on a frozen action-free model. The ``model`` section
    then describes the adapter (``size`` + DiTConfig overrides) and only its parameters train."""

    frozen: str | None = None
    """Directory of the frozen world model (``freeaction train`` output or ``bundled:<name>``);
    its diffusion parameterisation (and codec kind) is used. Required except in mode
    ``scratch``, where it only lends the parameterisation if given."""
    mode: AVIDMode = "avid"
    """avid, no_mask, no_conditioning, poe, action_cfg or scratch (see :data:`AVIDMode`)."""
    poe_weight: float = 0.5
    """lambda_p of mode ``poe`` (used at sampling time; changeable in config.json)."""
    cfg_weight: float = 1.0
    """lambda_a of mode ``action_cfg`` (used at sampling time; changeable in config.json)."""
    mask_init: float = 0.5
    """Mask value of the untrained adapter (0.5: no logit offset)."""
    adapter_loss_weight: float = 0.0
    """Mask modes: weight of an extra denoising loss on the adapter's own prediction, which
    keeps the adapter learning when the mask saturates on the frozen model (0: the seed's
    loss on the combined output only)."""

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if self.frozen is None and self.mode != "scratch":
            raise ValueError(f"avid.frozen (the frozen model directory) is needed in {self.mode!r}")


@dataclass
class TrainConfig:
    kind: Literal["dit", "autoencoder"] = "dit"
    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=dict)
    """DiT: ``size`` (a preset) plus DiTConfig overrides; autoencoder: AutoencoderConfig."""
    codec: str = "pixel"
    """DiT only: ``pixel`` or a path to a trained autoencoder directory."""
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    avid: AVIDTrainConfig | None = None
    """DiT only: train an AVID adapter on a frozen model (None: a plain DiT)."""

    def to_dict(self) -> dict:
        return asdict(self)


def _build(cls, values: dict | None, where: str):
    values = dict(values or {})
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in section '{where}'; allowed: {sorted(names)}")
    return cls(**values)


def config_from_dict(d: dict) -> TrainConfig:
    d = dict(d)
    top = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(d) - top)
    if unknown:
        raise ValueError(f"unknown top-level key(s) {unknown}; allowed: {sorted(top)}")
    kind = d.get("kind", "dit")
    if kind not in ("dit", "autoencoder"):
        raise ValueError(f"kind must be 'dit' or 'autoencoder', got {kind!r}")
    if d.get("avid") is not None and kind != "dit":
        raise ValueError("the 'avid' section belongs to kind: dit runs")
    return TrainConfig(
        kind=kind,
        data=_build(DataConfig, d.get("data"), "data"),
        model=dict(d.get("model") or {}),
        codec=d.get("codec", "pixel"),
        diffusion=_build(DiffusionConfig, d.get("diffusion"), "diffusion"),
        optim=_build(OptimConfig, d.get("optim"), "optim"),
        loop=_build(LoopConfig, d.get("loop"), "loop"),
        avid=_build(AVIDTrainConfig, d["avid"], "avid") if d.get("avid") is not None else None,
    )


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """YAML file -> :class:`TrainConfig`; ``overrides`` like ``["optim.steps=10"]``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training config not found: {path}")
    d = yaml.safe_load(path.read_text()) or {}
    for item in overrides or []:
        key, _, raw = item.partition("=")
        if not _:
            raise UserError(f"override {item!r} must look like section.key=value")
        node = d
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(raw)
    try:
        return config_from_dict(d)
    except ValueError as err:  # a bad option in the file or an override: the user's to fix
        raise UserError(f"{path}: {err}") from err
