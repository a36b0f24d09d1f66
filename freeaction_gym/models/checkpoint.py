"""Checkpoint I/O.

* Released IRASim checkpoints: ``torch.save({"model", "ema", "opt", "args"})`` files such as
  ``0300000.pt`` (or a plain state dict). We take the EMA weights, read the run's ``args``
  (an OmegaConf object with fields such as ``model: IRASim-XL/2``, ``dataset: rt1``,
  ``extras: 3`` (frame) / ``5`` (video), ``num_frames``, ``video_size``) when it can be
  unpickled, and otherwise infer the architecture from tensor shapes.
* Our own checkpoints: a directory with ``model.safetensors`` + ``config.json``
  (:func:`save_pretrained_dit` / :func:`load_video_dit`; a directory of any class:
  :func:`freeaction_gym.models.pretrained.load_pretrained_dit`), loaded with no flags.

Every reader raises :class:`CheckpointError` naming the file and the cause (unreadable or
truncated weights, a config that is not JSON or lacks its ``config`` entry, NaN/inf
weights: :func:`check_finite`), never a bare library error.
"""

from __future__ import annotations

import json
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from freeaction_gym.models.dit import DiTConfig, VideoDiT
from freeaction_gym.models.presets import IRASIM_DATASETS, SIZES
from freeaction_gym.utils.errors import UserError

IRASIM_DOC = "README section 'Bringing IRASim checkpoints'"


class CheckpointError(RuntimeError, UserError):
    """A checkpoint is missing, unreadable or does not fit the model (a user error: the
    command line prints its message on one line, :mod:`freeaction_gym.utils.errors`)."""


def check_finite(sd: dict[str, torch.Tensor], source: str | Path) -> dict[str, torch.Tensor]:
    """``sd`` unchanged if every floating tensor is finite, else :class:`CheckpointError`
    naming ``source`` and the first bad tensors (a corrupt file must not load as a model
    that renders black frames)."""
    bad = [k for k, v in sd.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(
            f"{source}: non-finite (NaN/inf) weights in {len(bad)} tensor(s), e.g. "
            f"{', '.join(bad[:3])}; the file is corrupt - restore or retrain it"
        )
    return sd


def load_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """A ``.safetensors`` file's tensors, checked finite; errors name ``path``."""
    try:
        sd = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"cannot read weights {path}: {err}") from err
    return check_finite(sd, path)


def read_config_json(path: str | Path, required: tuple[str, ...] = ("config",)) -> dict:
    """A checkpoint's ``config.json`` as a dict holding the ``required`` keys; errors name
    ``path`` (not JSON, not an object, a key missing)."""
    try:
        meta = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(meta).__name__}")
    missing = [k for k in required if k not in meta]
    if missing:
        raise CheckpointError(f"{path} lacks the entry {missing[0]!r} (keys: {sorted(meta)})")
    return meta


class _Placeholder:
    """Stands in for classes whose module is not importable (e.g. omegaconf)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_state"] = state


class _LenientUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return _Placeholder


class _LenientPickle:
    """A ``pickle_module`` for :func:`torch.load` that tolerates missing classes."""

    Unpickler = _LenientUnpickler
    load = pickle.load
    loads = pickle.loads


def read_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """Load a ``.pt`` file into a dict; ``args`` may come back as ``None`` (warned)."""
    path = Path(path)
    if path.is_dir():
        inside = sorted(q.name + ("/" if q.is_dir() else "") for q in path.iterdir())[:10]
        ours = (path / "config.json").is_file()
        raise CheckpointError(
            f"{path} is a directory (holding {inside}), but an IRASim checkpoint is one .pt file "
            "(e.g. rt1/checkpoints/frame_ada/0300000.pt)"
            + (
                "; this directory holds a freeaction world model (config.json): run it on a "
                "MetaWorld id or with model_format='world_model'"
                if ours
                else ""
            )
        )
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint file not found: {path}. Download the released IRASim weights yourself "
            f"(e.g. rt1/checkpoints/frame_ada/0300000.pt) and pass their path; see {IRASIM_DOC}."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        pass  # args is a pickled object: fall back to full unpickling below
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (ModuleNotFoundError, AttributeError) as err:
        warnings.warn(
            f"{path}: could not rebuild the saved run arguments ({err}); install omegaconf "
            "(pip install 'freeaction-gym[irasim]') to read them. Inferring the architecture "
            "from the weights instead.",
            stacklevel=2,
        )
        obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_LenientPickle)
        if isinstance(obj, dict) and "args" in obj:
            obj["args"] = None
        return obj
    except Exception as err:  # truncated or not a torch file
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err


def pick_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """EMA weights if present, else ``model``, else the object itself if it is a state dict."""
    if isinstance(obj, dict):
        for key in ("ema", "model", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                sd = obj[key]
                break
        else:
            sd = obj
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
        if sd and all(isinstance(v, torch.Tensor) for v in sd.values()):
            return sd
    raise CheckpointError(
        "checkpoint holds no state dict (expected keys 'ema', 'model' or tensor entries)"
    )


def _arg(args: Any, name: str) -> Any:
    if args is None:
        return None
    if isinstance(args, dict):
        return args.get(name)
    try:
        return getattr(args, name)
    except Exception:
        return None


def infer_irasim_config(sd: dict[str, torch.Tensor], args: Any = None, **overrides) -> DiTConfig:
    """Rebuild a :class:`DiTConfig` from IRASim weights (+ run args when available)."""
    try:
        pos = sd["pos_embed"]
        temp = sd["temp_embed"]
        patch_w = sd["x_embedder.proj.weight"]
    except KeyError as err:
        raise CheckpointError(f"not an IRASim state dict: missing {err}") from err
    hidden = pos.shape[-1]
    depth = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k)))
    heads = {d_: h for (_, d_, h) in SIZES.values()}.get(hidden, max(1, hidden // 64))
    model_name = _arg(args, "model")
    if isinstance(model_name, str) and (m := re.search(r"-(XL|L|B|S)/", model_name)):
        if SIZES[m.group(1)][1] == hidden:  # the weights win over a mismatching run name
            heads = SIZES[m.group(1)][2]
    dataset = _arg(args, "dataset")
    linear2 = "embed_arm_state.weight" in sd
    a_in = sd["embed_arm_state.weight" if linear2 else "embed_state.fc1.weight"].shape[1]
    num_frames = temp.shape[1]
    extras = _arg(args, "extras")
    video = extras == 5 or (extras is None and a_in == (num_frames - 1) * (2 if linear2 else 7))
    action_dim = a_in // (num_frames - 1) if video else a_in
    p = patch_w.shape[-1]
    n_tok = pos.shape[1]
    grid = None
    video_size = _arg(args, "video_size")
    if video_size is not None:
        grid = (int(video_size[0]) // 8, int(video_size[1]) // 8)
    elif dataset in IRASIM_DATASETS:
        grid = IRASIM_DATASETS[dataset]["input_size"]
    else:
        for spec in IRASIM_DATASETS.values():
            h, w = spec["input_size"]
            if (h // p) * (w // p) == n_tok:
                grid = (h, w)
                break
    if grid is None or (grid[0] // p) * (grid[1] // p) != n_tok:
        if "input_size" not in overrides:
            raise CheckpointError(
                f"cannot infer the latent size from {n_tok} tokens of patch {p}; "
                "pass input_size=(H, W) (latent grid)"
            )
    kwargs = dict(
        input_size=grid,
        patch_size=p,
        in_channels=patch_w.shape[1],
        hidden_size=hidden,
        depth=depth,
        num_heads=heads,
        num_frames=num_frames,
        action_dim=action_dim,
        action_embedder="linear2" if linear2 else "mlp",
        conditioning="video" if video else "frame",
        num_context_frames=int(_arg(args, "mask_frame_num") or 1),
    )
    kwargs.update(overrides)
    return DiTConfig(**kwargs)


def load_state_dict_strict(
    model: torch.nn.Module,
    sd: dict[str, torch.Tensor],
    source: str,
    new_modules: tuple[str, ...] = (),
) -> None:
    """Load weights, raising :class:`CheckpointError` listing every missing, unexpected and
    mis-shaped key (nothing is loaded if anything is wrong).

    Keys under ``new_modules`` (e.g. ``("refiner.",)``) may be absent from ``sd``: they keep
    their initialisation (warm-starting a model that adds an identity-initialised part)."""
    own = model.state_dict()
    missing = sorted(k for k in set(own) - set(sd) if not k.startswith(new_modules))
    unexpected = sorted(set(sd) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(sd))
        if sd[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:

        def _fmt(title: str, items: list[str]) -> str:
            head = ", ".join(items[:12]) + (
                f", ... ({len(items)} in all)" if len(items) > 12 else ""
            )
            return f"\n  {title} ({len(items)}): {head}" if items else ""

        raise CheckpointError(
            f"checkpoint {source} does not fit the model:"
            + _fmt("missing keys", missing)
            + _fmt("unexpected keys", unexpected)
            + _fmt("mis-shaped", shapes)
        )
    model.load_state_dict(sd, strict=not new_modules)


WARM_START_MODULES = ("refiner.", "controlnet.")
"""Parts a warm-started model may add (identity at initialisation)."""
PROMPT_EMBED_KEYS = ("x_embedder.proj.weight", "stem.inp.weight")
"""The input convolution whose channels prompts are stacked on (last)."""


def warm_start_dit(model: VideoDiT, sd: dict[str, torch.Tensor], source: str) -> None:
    """Load a trained DiT's weights ``sd`` into ``model``, which may add parts that start as
    the identity, so the warm-started model computes exactly what the trained one did:

    * a refiner (its last layer is zero);
    * a ControlNet prompt branch (``prompt: controlnet|both``): absent from ``sd``, its
      blocks are re-initialised as copies of the loaded first blocks (its prompt embedding
      and output projections stay zero);
    * prompt channels of the patch embedding / conv stem (``prompt: channels|both``): the
      checkpoint's input weights are zero-padded for them.

    Everything else must match (:func:`load_state_dict_strict` lists what does not)."""
    sd, own, cfg = dict(sd), model.state_dict(), model.config
    if cfg.prompt_stacked:
        for key in PROMPT_EMBED_KEYS:
            if key not in sd or key not in own:
                continue
            old, new = sd[key], own[key]
            if old.shape[1] + cfg.prompt_channels == new.shape[1] and (
                old.shape[:1] + old.shape[2:] == new.shape[:1] + new.shape[2:]
            ):
                pad = old.new_zeros(old.shape[0], cfg.prompt_channels, *old.shape[2:])
                sd[key] = torch.cat([old, pad], dim=1)  # prompts come last in the input
    fresh_branch = not any(k.startswith("controlnet.") for k in sd)
    load_state_dict_strict(model, sd, source, new_modules=WARM_START_MODULES)
    if fresh_branch and cfg.prompt_controlnet:
        model.controlnet.copy_base_blocks(model.blocks)


def load_irasim_checkpoint(path: str | Path, **overrides) -> VideoDiT:
    """A released IRASim ``.pt`` (``ema``/``model``/``args``) or plain state dict -> model.

    ``overrides`` are :class:`DiTConfig` fields that replace inferred values (e.g.
    ``num_heads``, ``input_size``)."""
    obj = read_checkpoint_file(path)
    sd = check_finite(pick_state_dict(obj), path)
    args = obj.get("args") if isinstance(obj, dict) else None
    config = infer_irasim_config(sd, args, **overrides)
    model = VideoDiT(config)
    load_state_dict_strict(model, sd, str(path))
    return model.eval()


def save_pretrained_dit(model: VideoDiT, directory: str | Path, extra: dict | None = None) -> Path:
    """Write ``model.safetensors`` + ``config.json`` (config + ``extra`` metadata).

    A composite such as :class:`~freeaction_gym.models.avid.AVIDModel` writes its own."""
    if not isinstance(model, VideoDiT):
        return model.save_pretrained(directory, extra)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = directory / "model.safetensors.tmp"
    save_file(sd, str(tmp))
    tmp.replace(directory / "model.safetensors")
    meta = {"config": model.config.to_dict(), **(extra or {})}
    (directory / "config.json").write_text(json.dumps(meta, indent=2))
    return directory


def model_files(directory: str | Path) -> tuple[Path, Path]:
    """``(model.safetensors, config.json)`` of a model directory; :class:`CheckpointError`
    naming the one that is missing."""
    directory = Path(directory)
    weights, cfg_file = directory / "model.safetensors", directory / "config.json"
    for f in (weights, cfg_file):
        if not f.is_file():
            raise CheckpointError(
                f"missing {f}; a model directory needs model.safetensors and config.json "
                "(written by `freeaction train`)"
            )
    return weights, cfg_file


def load_video_dit(directory: str | Path) -> VideoDiT:
    """Rebuild a :class:`VideoDiT` saved by :func:`save_pretrained_dit` (a directory of any
    class: :func:`freeaction_gym.models.pretrained.load_pretrained_dit`)."""
    weights, cfg_file = model_files(directory)
    meta = read_config_json(cfg_file)
    try:
        config = DiTConfig(**meta["config"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{cfg_file}: incompatible config ({err})") from err
    model = VideoDiT(config)
    load_state_dict_strict(model, load_safetensors(weights), str(weights))
    return model.eval()
