"""The browser play page's message protocol (JSON over one websocket), free of any server.

Page -> server, one JSON object per message, ``type`` first:

* ``{"type": "action", "key": K, "id": N}``: one env step with the terminal key ``K`` (see
  :data:`freeaction_gym.play.MOVES`; ``" "`` no motion, ``"g"`` toggles the gripper and
  does not step). ``id`` (optional int) is echoed in the frame it produced, or in a
  ``dropped`` reply when a newer action replaced it before it ran.
* ``{"type": "step", "key": K, "id": N}``: one step even while paused (``key`` default
  ``" "``).
* ``{"type": "reset", "task": T, "bank_index": J, "seed": S}``: a new episode (each field
  optional; ``null`` = drawn).
* ``{"type": "pause", "paused": B}``: while paused ``action`` messages do not step.
* ``{"type": "sampling", ...}``: sampler controls, any of :data:`SAMPLER_RANGES`'s keys
  plus the switches ``cfg`` (action-scaled CFG on/off) and ``truncation`` (action-scaled
  truncated initial noise on/off); applied from the next step.

Server -> page: ``hello`` (env, tasks, bank entries, key map, active sampler), ``frame``
(images, reward, success, PSNR/SSIM, info with the active sampler), ``dropped``, ``state``
(pause / gripper) and ``error`` (``message``; the episode is unchanged).

:func:`parse_message` turns a page message into one of the dataclasses below or raises
:class:`ProtocolError`; :func:`sampling_overrides` and :func:`active_sampling` translate
between the page's flat sampler controls and the env's ``sampling`` option.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

MAX_MESSAGE_CHARS = 4096
STEP_KEYS = ("w", "s", "a", "d", "r", "f", " ", "g")
"""Keys an ``action``/``step`` message may carry (the terminal play keys that act)."""
SAMPLER_RANGES: dict[str, tuple[type, float, float]] = {
    "num_steps": (int, 1, 100),
    "lam": (float, 0.0, 20.0),
    "cutoff": (float, 0.0, 1.0),
    "tau_min": (float, 0.01, 10.0),
    "tau_max": (float, 0.01, 10.0),
}
"""Sampler control -> (type, lowest, highest), inclusive. ``lam``/``cutoff`` are
action-scaled CFG's lambda and guided fraction of the steps (eq. 2), ``tau_min``/``tau_max``
the truncation thresholds (eq. 3)."""
SAMPLER_SWITCHES = ("cfg", "truncation")


class ProtocolError(ValueError):
    """A page message that cannot be acted on; its text is the error reply."""


@dataclass(frozen=True)
class Action:
    key: str
    id: int | None = None
    force: bool = False
    """True for ``step`` messages: step even while paused."""


@dataclass(frozen=True)
class Reset:
    task: str | None = None
    bank_index: int | None = None
    seed: int | None = None


@dataclass(frozen=True)
class Pause:
    paused: bool


@dataclass(frozen=True)
class Sampling:
    values: dict[str, Any]
    """Validated controls (a subset of :data:`SAMPLER_RANGES` and :data:`SAMPLER_SWITCHES`)."""


Message = Action | Reset | Pause | Sampling

FIELDS = {
    "action": {"key", "id"},
    "step": {"key", "id"},
    "reset": {"task", "bank_index", "seed"},
    "pause": {"paused"},
    "sampling": set(SAMPLER_RANGES) | set(SAMPLER_SWITCHES),
}


def parse_message(text: str | bytes) -> Message:
    """One page message -> its dataclass; :class:`ProtocolError` for bad JSON, a non-object,
    an unknown ``type`` or field, a wrong type or an out-of-range value."""
    if len(text) > MAX_MESSAGE_CHARS:
        raise ProtocolError(f"message of {len(text)} characters; at most {MAX_MESSAGE_CHARS}")
    try:
        msg = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ProtocolError(f"bad JSON: {err}") from None
    if not isinstance(msg, dict):
        raise ProtocolError(f"a message must be a JSON object, got {type(msg).__name__}")
    kind = msg.get("type")
    if kind not in FIELDS:
        raise ProtocolError(f"unknown message type {kind!r}; known: {sorted(FIELDS)}")
    body = {k: v for k, v in msg.items() if k != "type"}
    unknown = sorted(set(body) - FIELDS[kind])
    if unknown:
        raise ProtocolError(f"{kind}: unknown key(s) {unknown}; known: {sorted(FIELDS[kind])}")
    if kind in ("action", "step"):
        key = body.get("key", " " if kind == "step" else None)
        if key not in STEP_KEYS:
            raise ProtocolError(f"{kind}: key={key!r}; allowed: {list(STEP_KEYS)}")
        return Action(key, _optional_int(body, "id", kind), force=kind == "step")
    if kind == "reset":
        task = body.get("task")
        if task is not None and not isinstance(task, str):
            raise ProtocolError(f"reset: task must be a string or null, got {task!r}")
        index = _optional_int(body, "bank_index", kind)
        seed = _optional_int(body, "seed", kind)
        if (index is not None and index < 0) or (seed is not None and seed < 0):
            raise ProtocolError("reset: bank_index and seed must be >= 0")
        return Reset(task, index, seed)
    if kind == "pause":
        if not isinstance(body.get("paused"), bool):
            raise ProtocolError(f"pause: paused must be true or false, got {body.get('paused')!r}")
        return Pause(body["paused"])
    return Sampling(_sampler_values(body))


def _optional_int(body: dict, name: str, kind: str) -> int | None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ProtocolError(f"{kind}: {name} must be a whole number or null, got {value!r}")
    return value


def _sampler_values(body: dict) -> dict[str, Any]:
    if not body:
        raise ProtocolError(f"sampling: no controls given; known: {sorted(FIELDS['sampling'])}")
    out: dict[str, Any] = {}
    for name, value in body.items():
        if name in SAMPLER_SWITCHES:
            if not isinstance(value, bool):
                raise ProtocolError(f"sampling: {name} must be true or false, got {value!r}")
            out[name] = value
            continue
        kind, lo, hi = SAMPLER_RANGES[name]
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if kind is int and not (numeric and float(value).is_integer()):
            raise ProtocolError(f"sampling: {name} must be a whole number, got {value!r}")
        if not numeric or not math.isfinite(value) or not lo <= value <= hi:
            raise ProtocolError(f"sampling: {name}={value!r} out of range [{lo}, {hi}]")
        out[name] = kind(value)
    if "tau_min" in out and "tau_max" in out and out["tau_min"] > out["tau_max"]:
        raise ProtocolError(
            f"sampling: tau_min={out['tau_min']} > tau_max={out['tau_max']} "
            "(need tau_min <= tau_max)"
        )
    return out


def sampling_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """The page's flat controls -> the env's ``sampling`` option overrides (``cfg`` on is
    ``guidance.mode: action_scaled``, off ``none``; likewise ``truncation``)."""
    out: dict[str, Any] = {}
    if "num_steps" in values:
        out["num_steps"] = values["num_steps"]
    guidance = {k: values[k] for k in ("lam", "cutoff") if k in values}
    if "cfg" in values:
        guidance["mode"] = "action_scaled" if values["cfg"] else "none"
    truncation = {k: values[k] for k in ("tau_min", "tau_max") if k in values}
    if "truncation" in values:
        truncation["mode"] = "action_scaled" if values["truncation"] else "none"
    if guidance:
        out["guidance"] = guidance
    if truncation:
        out["truncation"] = truncation
    return out


def active_sampling(sampling: Any) -> dict[str, Any]:
    """A :class:`~freeaction_gym.world_model.model.SamplingConfig` as the page's flat
    controls (plus ``scheduler`` and the modes' names), echoed with every step."""
    g, t = sampling.guidance, sampling.truncation
    return {
        "scheduler": sampling.scheduler,
        "num_steps": sampling.num_steps,
        "cfg": g.mode != "none",
        "guidance_mode": g.mode,
        "lam": g.lam,
        "cutoff": g.cutoff,
        "truncation": t.mode != "none",
        "truncation_mode": t.mode,
        "tau_min": t.tau_min,
        "tau_max": t.tau_max,
    }
