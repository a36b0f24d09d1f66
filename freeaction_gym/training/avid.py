"""The AVID part of ``freeaction train``: a ``kind: dit`` run with an ``avid:`` section trains
an adapter (:mod:`~freeaction_gym.models.avid`) on a frozen action-free model.

The frozen model fixes what the adapter's world model must share with it: the diffusion
parameterisation (its outputs are only meaningful in its own) and the codec (its latents).
The ``model`` section describes the adapter; only the adapter's parameters train. The frozen
model is itself a ``kind: dit`` run, trained action-free with ``diffusion.null_action_prob: 1``.

    kind: dit
    model: {size: tiny, patch_size: 8}       # the adapter
    avid: {frozen: runs/action_free/model, mode: avid}
    data: ...; optim: ...; loop: ...         # as for any DiT run
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from freeaction_gym.models.avid import (
    TRAINED_ALONE,
    AVIDConfig,
    AVIDModel,
    check_compatible,
    file_sha256,
    load_frozen,
    resolve_frozen,
)
from freeaction_gym.models.checkpoint import read_config_json
from freeaction_gym.models.dit import DiTConfig
from freeaction_gym.training.config import AVIDTrainConfig
from freeaction_gym.world_model.model import DiffusionConfig, WorldModel

TRAINING_ONLY = ("null_action_prob", "sigma_loc", "sigma_scale", "context_noise_max")
"""DiffusionConfig fields the run decides; the rest (the parameterisation) is the frozen's."""


def frozen_source(spec: str) -> str:
    """``bundled:<name>`` as is, a path made absolute (it is saved with the adapter)."""
    return spec if spec.startswith("bundled:") else str(Path(spec).expanduser().resolve())


def check_codec(frozen_dir: Path, frozen_codec: str, run_codec: str) -> None:
    """The run must encode frames as the frozen model did: the same codec kind and, for an
    autoencoder, the same weights (sha256 of its ``.safetensors``)."""
    kind = "pixel" if run_codec == "pixel" else "autoencoder"
    if kind != frozen_codec:
        fit = "pixel" if frozen_codec == "pixel" else str(frozen_dir / "vae")
        raise ValueError(
            f"codec {run_codec!r} does not fit the frozen model at {frozen_dir}, which uses "
            f"the {frozen_codec!r} codec; set codec: {fit}"
        )
    if kind == "autoencoder":
        hashes = [
            sorted(file_sha256(f) for f in Path(d).glob("*.safetensors"))
            for d in (run_codec, frozen_dir / "vae")
        ]
        if hashes[0] != hashes[1]:
            raise ValueError(
                f"the autoencoder {run_codec} is not the frozen model's ({frozen_dir / 'vae'}); "
                "the adapter must work in the frozen model's latent space"
            )


def build_avid(
    section: AVIDTrainConfig, adapter: DiTConfig, diffusion: DiffusionConfig, codec: str
) -> tuple[AVIDModel, DiffusionConfig]:
    """(model, diffusion config) of an AVID run. ``adapter``: the ``model`` section's DiT
    config for the data; ``diffusion``/``codec``: the run's sections."""
    config = AVIDConfig(
        adapter, section.mode, section.poe_weight, section.cfg_weight, section.mask_init,
        section.adapter_loss_weight,
    )  # fmt: skip
    frozen, source, sha = None, None, None
    if section.frozen is not None:
        source = frozen_source(section.frozen)
        frozen = load_frozen(source, where="avid.frozen")  # checks the files, names them
        path = resolve_frozen(source)
        meta = read_config_json(path / "config.json")
        check_codec(path, meta.get("codec", "pixel"), codec)
        parameterisation = DiffusionConfig(**meta.get("diffusion", {}))
        diffusion = replace(parameterisation, **{k: getattr(diffusion, k) for k in TRAINING_ONLY})
        sha = file_sha256(path / "model.safetensors")
    if config.mode == "scratch":
        frozen, source, sha = None, None, None  # it only lent its parameterisation
    model = AVIDModel(config, frozen, frozen_source=source, frozen_sha256=sha)
    frozen_n = 0 if frozen is None else sum(p.numel() for p in frozen.parameters())
    print(
        f"[avid] mode={config.mode} frozen={source}: {model.trainable_parameters() / 1e6:.3f}M "
        f"trainable, {frozen_n / 1e6:.3f}M frozen params; diffusion "
        f"{diffusion.parameterization}/{diffusion.prediction_type}/{diffusion.target}",
        flush=True,
    )
    return model, diffusion


def combine_trained_alone(world: WorldModel, mode: str, frozen: str | Path) -> WorldModel:
    """``world`` (an adapter trained alone: mode ``scratch``, ``poe`` or ``action_cfg``)
    combined with the frozen model at ``frozen`` in ``mode`` (``poe`` or ``action_cfg``).

    Those modes train the adapter exactly as ``scratch`` does (the frozen model is not run
    in training), so one trained adapter serves all three rows; only sampling differs. The
    adapter's weights are shared, not copied."""
    dit = world.dit
    if not isinstance(dit, AVIDModel) or dit.config.mode not in TRAINED_ALONE:
        raise ValueError(f"needs an adapter trained alone ({', '.join(TRAINED_ALONE)})")
    if mode not in TRAINED_ALONE or mode == "scratch":
        raise ValueError(f"mode {mode!r}: combine with poe or action_cfg")
    source = frozen_source(str(frozen))
    net = load_frozen(source, where="combine_trained_alone")
    check_compatible(net.config, dit.config.adapter)
    sha = file_sha256(resolve_frozen(source) / "model.safetensors")
    model = AVIDModel(
        replace(dit.config, mode=mode), net, adapter=dit.adapter, frozen_source=source,
        frozen_sha256=sha,
    )  # fmt: skip
    return WorldModel(model, world.codec, world.diffusion, world.stats).eval()
