"""Make-time validation of the env options.

* :func:`check_fields` / :func:`check_value` - every field of a config dataclass against its
  annotation (``bool`` takes ``True``/``False`` only, ``int`` whole numbers, ``float``
  finite numbers, ``Literal`` one of its names); then the checks beyond a field's type:
* :func:`check_sampling` - the ``sampling`` dict (``SamplingConfig`` overrides): known keys
  at every level (a typo such as ``{"guidance": {"lamda": 2}}`` is named), types (whole
  ``num_steps``, finite floats), scheduler names from
  :data:`freeaction_gym.diffusion.schedule.SCHEDULERS`, and ranges (``num_steps >= 1``,
  ``0 < tau_min <= tau_max``, ``fixed_tau > 0``, ``mu_act > 0`` when given, and the
  dataclasses' own: ``0 <= cutoff <= 1``, ``0 <= lam <= 10``, ``1 <= scale <= 20``,
  ``0 < rho <= 100``, ``0 < sigma_min < sigma_max``).
* :func:`check_support` - the ``support`` box (``low < high``, ``penalty >= 0``);
  :func:`check_action_bound` - the ``action_bound`` box.
* :func:`check_against_model` - what needs the loaded model: the action chunk fits the
  model's window, the sampler accepts ``num_steps`` for this model's schedule, action
  scales/bound/support have the model's action dimension, reset-bank frames have the model's
  frame size, and the learned reward head knows every task the bank starts from.
* :func:`check_conditioning` - ``conditioning`` fits the model (``vap`` needs a prompt
  input, ``action`` forbids one), the camera preset exists and the reset bank stores the
  robot state ``vap`` starts from; with the proprio model loaded (``vap`` or
  ``state_source: proprio``), its keypoints and actions fit and the bank has robot states
  (:func:`check_proprio`).

Every error is a ``ValueError`` that names the option (``sampling.truncation.tau_min``).
"""

from __future__ import annotations

import math
import types
from dataclasses import fields, is_dataclass
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import numpy as np


def check_fields(cfg: Any, what: str) -> None:
    """Check (and normalise: numpy scalars -> Python) every field of the dataclass ``cfg``
    against its annotation; ``ValueError`` naming ``what`` and the field otherwise."""
    hints = get_type_hints(type(cfg))
    for f in fields(cfg):
        setattr(cfg, f.name, check_value(getattr(cfg, f.name), hints[f.name], f"{what} {f.name}"))


SCALARS: dict[type, tuple[tuple[type, ...], str]] = {  # annotation -> (accepted, error words)
    bool: ((bool, np.bool_), "true or false"),
    int: ((int, np.integer), "a whole number"),
    float: ((int, float, np.integer, np.floating), "a finite number"),
    str: ((str,), "a string"),
}


def check_value(value: Any, hint: Any, name: str) -> Any:
    """``value`` as the type ``hint`` (bool, int, float, str, Literal, list, dict, Any or a
    union with None) allows, or ``ValueError`` naming ``name``."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return check_value(value, inner[0], name)
    if origin is Literal:
        if not isinstance(value, str | int | float | bool | None) or value not in args:
            raise ValueError(f"{name}={value!r}; allowed: {', '.join(map(repr, args))}")
        return value
    if hint is Any:
        return value
    if hint in SCALARS:
        accepted, what = SCALARS[hint]
        bad = not isinstance(value, accepted) or (hint is not bool and isinstance(value, bool))
        if bad or (hint is float and not math.isfinite(value)):
            raise ValueError(f"{name} must be {what}, got {value!r}")
        return hint(value)
    if origin is list:
        if not isinstance(value, list | tuple | np.ndarray):
            raise ValueError(f"{name} must be a list, got {value!r}")
        return [check_value(v, args[0], f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be a mapping, got {value!r}")
        return dict(value)
    raise TypeError(f"{name}: no check for annotation {hint!r}")  # a new field's type


def check_sampling(sampling: Any) -> dict[str, Any]:
    """Validate the ``sampling`` option; returns it with Python ints/floats/bools."""
    from freeaction_gym.diffusion.schedule import SCHEDULERS
    from freeaction_gym.world_model.model import SamplingConfig

    if not isinstance(sampling, dict):
        raise ValueError(f"env option sampling must be a mapping, got {sampling!r}")
    hints = get_type_hints(SamplingConfig)
    _reject_unknown(sampling, hints, "sampling")
    out: dict[str, Any] = {}
    for key, value in sampling.items():
        name, hint = f"sampling.{key}", hints[key]
        if isinstance(hint, type) and is_dataclass(hint):  # guidance, truncation, norm
            if not isinstance(value, dict):
                raise ValueError(f"env option {name} must be a mapping, got {value!r}")
            sub = get_type_hints(hint)
            _reject_unknown(value, sub, name)
            out[key] = {
                k: check_value(v, sub[k], f"env option {name}.{k}") for k, v in value.items()
            }
            try:
                hint(**out[key])
            except (TypeError, ValueError) as err:
                raise ValueError(f"env option {name}: {err}") from err
        elif key == "scheduler":
            if value not in SCHEDULERS:
                raise ValueError(f"env option {name}={value!r}; allowed: {', '.join(SCHEDULERS)}")
            out[key] = value
        else:
            out[key] = check_value(value, hint, f"env option {name}")
    _check_ranges(out)
    try:
        SamplingConfig.from_dict(out)
    except (TypeError, ValueError) as err:
        raise ValueError(f"env option sampling: {err}") from err
    return out


def _reject_unknown(values: dict, known: dict, name: str) -> None:
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"env option {name} has unknown key(s) {unknown}; known: {sorted(known)}")


def _check_ranges(s: dict[str, Any]) -> None:
    if s.get("num_steps", 1) < 1:
        raise ValueError(f"env option sampling.num_steps must be >= 1, got {s['num_steps']}")
    t = s.get("truncation", {})
    lo, hi = t.get("tau_min", 0.5), t.get("tau_max", 1.5)
    if not 0 < lo <= hi:
        raise ValueError(
            "env option sampling.truncation needs 0 < tau_min <= tau_max (the truncation "
            f"thresholds, eq. 3), got tau_min={lo}, tau_max={hi}"
        )
    if t.get("fixed_tau", 1.0) <= 0:
        raise ValueError(
            f"env option sampling.truncation.fixed_tau must be > 0, got {t['fixed_tau']}"
        )
    if "mu_act" in t and t["mu_act"] <= 0:
        raise ValueError(
            "env option sampling.truncation.mu_act must be > 0 (the dataset's mean ||a|| "
            f"eq. 3 centres on; leave it out to take the model's statistics), got {t['mu_act']}"
        )


def check_num_envs(num_envs: Any) -> int:
    """``num_envs`` of a vector env: a whole number >= 1, else ``ValueError`` naming it."""
    if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
        raise ValueError(f"num_envs must be a whole number >= 1, got {num_envs!r}")
    return int(num_envs)


def check_options_dict(options: Any) -> dict:
    """Reset ``options`` as a new dict: None -> {}; anything but a mapping -> ``ValueError``."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ValueError(
            f"reset options must be a dict (or None), got {type(options).__name__} {options!r}; "
            "e.g. reset(options={'bank_index': 0})"
        )
    return dict(options)


def check_support(support: Any) -> dict[str, Any]:
    """Validate the ``support`` option; returns it with float lists and a float penalty."""
    if not isinstance(support, dict) or not {"low", "high"} <= set(support):
        raise ValueError(f"env option support must be a dict with low and high, got {support!r}")
    unknown = sorted(set(support) - {"low", "high", "penalty"})
    if unknown:
        raise ValueError(
            f"env option support has unknown key(s) {unknown}; known: low, high, penalty"
        )
    try:
        low = [float(v) for v in support["low"]]
        high = [float(v) for v in support["high"]]
        penalty = float(support.get("penalty", 0.0))
    except (TypeError, ValueError) as err:
        raise ValueError(f"env option support needs numbers: {err}") from err
    if not 0.0 <= penalty < float("inf"):  # a negative penalty would reward leaving support
        raise ValueError(
            f"env option support.penalty must be a finite number >= 0 (subtracted from the "
            f"reward of the step that leaves the support box), got {penalty}"
        )
    if len(low) != len(high) or not all(lo < hi for lo, hi in zip(low, high, strict=True)):
        raise ValueError(f"env option support needs low < high of equal length, got {low}, {high}")
    return {"low": low, "high": high, "penalty": penalty}


def check_action_bound(bound: list[float] | None, action_dim: int | None = None) -> None:
    """``ValueError`` unless ``bound`` is None or (``action_dim``,) entries in (0, 1]."""
    if bound is None:
        return
    if not bound or not all(0.0 < b <= 1.0 for b in bound):
        raise ValueError(f"env option action_bound needs entries in (0, 1], got {bound}")
    if action_dim is not None and len(bound) != action_dim:
        raise ValueError(
            f"env option action_bound has {len(bound)} entries; the actions have {action_dim}"
        )


def check_conditioning(cfg, world, bank) -> None:
    """``conditioning`` against the model and the bank (before a proprio model is loaded)."""
    from freeaction_gym.data.metaworld_gen import CAMERA_PRESETS

    prompt = world.dit.config.prompt
    if cfg.conditioning == "vap" and prompt == "none":
        raise ValueError(
            f"env option conditioning='vap' needs a world model with a visual-action-prompt "
            f"input (trained with model.prompt: channels, controlnet or both); {cfg.model} has "
            "prompt='none': use conditioning='action' (or the action-path preset "
            "FreeActionMetaWorldV2-v0, e.g. gym.make('FreeActionMetaWorldV2-v0', model=..., "
            "task=...))"
        )
    if cfg.conditioning == "action" and prompt != "none":
        raise ValueError(
            f"{cfg.model} takes visual action prompts (prompt={prompt!r}): make the env with "
            "conditioning='vap' (a proprio model and a reset bank with robot states)"
        )
    if cfg.conditioning != "vap":
        return
    if world.dit.config.prompt_channels != 3:
        raise ValueError(
            f"env option conditioning='vap' draws RGB prompts; {cfg.model} takes "
            f"{world.dit.config.prompt_channels} prompt channels"
        )
    if cfg.prompt_camera not in CAMERA_PRESETS:
        raise ValueError(
            f"env option prompt_camera={cfg.prompt_camera!r}; allowed: {sorted(CAMERA_PRESETS)}"
        )
    if bank is not None and not bank.has_robot_state:
        raise ValueError(
            f"env option conditioning='vap' starts from each reset-bank entry's robot state, "
            f"but the reset bank {cfg.reset_bank or '(the model directory default)'} stores "
            "none (built before banks kept it, or from data without state/keypoints): rebuild "
            "it with `freeaction bank --data <root> --split test --out bank.npz`"
        )


def proprio_reason(cfg) -> str | None:
    """The env option that needs a proprioceptive model (named in errors), or None."""
    if cfg.conditioning == "vap":
        return "conditioning='vap'"
    if "state" in (cfg.success, cfg.reward) and cfg.state_source == "proprio":
        return "state_source='proprio'"
    return "proprio_obs=True" if cfg.proprio_obs else None


def check_proprio(cfg, world, bank, proprio) -> None:
    """The loaded proprio model fits the world model's actions and the bank's keypoints, and
    (``state_source: proprio``, ``proprio_obs``) the bank stores the robot state it starts
    from."""
    why = proprio_reason(cfg)
    if proprio is None:
        if cfg.conditioning == "vap":
            raise ValueError("env option conditioning='vap' needs a proprio model")
        return
    if world.action_dim != 4:
        raise ValueError(
            f"env option {why} integrates MetaWorld actions (4-D); the model's "
            f"actions are {world.action_dim}-D"
        )
    if bank is not None and not bank.has_robot_state:
        raise ValueError(
            f"env option {why} starts from each reset-bank entry's robot state, but the reset "
            f"bank {cfg.reset_bank or '(the model directory default)'} stores none: rebuild it "
            "with `freeaction bank --data <root> --split test --out bank.npz`"
        )
    k = proprio.config.num_keypoints
    if bank is not None and bank.keypoints.shape[1:] != (k, 3):
        raise ValueError(
            f"the reset bank's keypoints are {bank.keypoints.shape[1:]}; the proprio model "
            f"{cfg.proprio_model or '(proprio/)'} tracks ({k}, 3)"
        )


def check_against_model(cfg, world, bank, task_names: list[str], proprio=None):
    """Options that need the model (see the module docstring); returns the
    :class:`~freeaction_gym.world_model.model.SamplingConfig` the env samples with."""
    check_conditioning(cfg, world, bank)
    check_proprio(cfg, world, bank, proprio)
    a, k = world.action_dim, cfg.action_chunk
    window = world.dit.config.num_frames - world.num_context
    if k > window:
        raise ValueError(
            f"env option action_chunk={k} exceeds this model's window: it predicts at most "
            f"{window} frames per call ({world.dit.config.num_frames} frames, "
            f"{world.num_context} of them context)"
        )
    for name in ("action_scale", "action_offset"):
        value = getattr(cfg, name)
        if value is not None and len(value) != a:
            raise ValueError(f"env option {name} has {len(value)} entries; the model's actions {a}")
    check_action_bound(cfg.action_bound, a)
    if cfg.support is not None and len(cfg.support["low"]) != a:
        raise ValueError(
            f"env option support bounds have {len(cfg.support['low'])} entries; the model's "
            f"actions have {a}"
        )
    if bank is not None and tuple(bank.initial.shape[1:]) != frame_shape(world):
        raise ValueError(
            f"reset bank {cfg.reset_bank or '(the model directory default)'} has frames "
            f"{tuple(bank.initial.shape[1:])}; the model makes {frame_shape(world)}"
        )
    if bank is not None and cfg.task is not None:
        bank.indices(cfg.task)  # names the bank's tasks
    if bank is not None and cfg.reward == "learned":
        starts = [cfg.task] if cfg.task is not None else bank.tasks  # where episodes start
        unknown = sorted(set(starts) - set(task_names))
        if unknown:
            raise ValueError(
                f"the reward head knows tasks {task_names}, but the reset bank also starts "
                f"from {unknown}: pass task=... or a reward head trained on those tasks"
            )
    return _model_sampling(cfg, world)


def _model_sampling(cfg, world):
    sampling = world.default_sampling(cfg.action_chunk, **cfg.sampling)
    name, steps = sampling.scheduler, sampling.num_steps
    limit = world.diffusion.num_train_timesteps
    if getattr(world.diffusion, "parameterization", "ddpm") == "ddpm" and steps > limit:
        raise ValueError(
            f"env option sampling.num_steps={steps} exceeds the model's {limit} training timesteps"
        )
    if sampling.norm.space == "normalized" and "action_std" not in world.stats:
        raise ValueError(
            "env option sampling.norm.space='normalized' needs the dataset's action mean/std, "
            "which this model's statistics lack; use space='raw'"
        )
    try:  # the scheduler's own limits (e.g. PNDM's warm-up needs several steps)
        world.scheduler(name, sampling).set_timesteps(steps)
    except (ValueError, IndexError, ZeroDivisionError) as err:
        raise ValueError(
            f"env option sampling: scheduler {name!r} cannot run num_steps={steps} for this "
            f"model ({err})"
        ) from err
    return sampling


def frame_shape(world) -> tuple[int, int, int]:
    """(H, W, 3) of the frames the model makes: its latent grid times the codec's stride."""
    h, w = world.dit.config.input_size
    r = getattr(world.codec, "downsample", 1)
    return (h * r, w * r, 3)


def latent_shape(world) -> tuple[int, int, int]:
    """(C, h, w) of one latent frame."""
    return (world.dit.config.in_channels, *world.dit.config.input_size)
