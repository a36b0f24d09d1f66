"""Bundled artifacts shipped inside the package (small: weights in float16 safetensors)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from freeaction_gym.utils.errors import UserError

ASSETS = Path(__file__).parent / "assets"
BUNDLED = ("metaworld_default", "metaworld_vap")
"""``metaworld_default``: world model v2 (action adaLN) with its reset bank, demo episodes
and reward head; ``metaworld_vap``: the same model fine-tuned on visual action prompts
(prompt channels) with its ``proprio/`` model, for ``conditioning: vap``
(``FreeActionMetaWorldVAP-v0``, whose preset takes the reset bank and reward head from
``metaworld_default`` as ``bundled:metaworld_default/...`` paths)."""


def bundled_dir(name: str = "metaworld_default") -> Path:
    """Directory of a bundled model: ``model.safetensors``, ``config.json`` and, for
    ``metaworld_default``, ``reset_bank.npz``, ``demo_episodes.npz``, ``reward_head/`` and
    ``state_probe/`` (``success: state``);
    for ``metaworld_vap``, ``proprio/`` (see docs/MODEL_CARD.md)."""
    if name not in BUNDLED:
        raise UserError(f"unknown bundled model {name!r}; available: {list(BUNDLED)}")
    d = ASSETS / name
    if not (d / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"bundled model files are missing from {d}; reinstall freeaction-gym from a full "
            "checkout or regenerate them (docs/MODEL_CARD.md)"
        )
    return d


def resolve_asset_path(spec: str | Path) -> Path:
    """A path option: ``bundled:<name>`` (a bundled model's directory),
    ``bundled:<name>/<relative path>`` (a file or directory inside it, e.g.
    ``bundled:metaworld_default/reward_head``) or a filesystem path (returned as given,
    ``~`` expanded, not checked). An unknown name raises ``UserError`` (a ``ValueError``)
    and a missing relative path ``FileNotFoundError``, both listing the bundled names."""
    spec = str(spec)
    if not spec.startswith("bundled:"):
        return Path(spec).expanduser()
    name, _, sub = spec.removeprefix("bundled:").partition("/")
    if name not in BUNDLED:
        raise UserError(
            f"{spec!r}: unknown bundled model {name!r}; available: {list(BUNDLED)} "
            "(write bundled:<name> or bundled:<name>/<relative path>)"
        )
    d = bundled_dir(name)
    rel = PurePosixPath(sub)
    if rel.is_absolute() or ".." in rel.parts:
        raise UserError(f"{spec!r}: the path after bundled:{name}/ must stay inside the bundle")
    path = d.joinpath(*rel.parts)
    if not path.exists():
        inside = sorted(p.name + ("/" if p.is_dir() else "") for p in d.iterdir())
        raise FileNotFoundError(
            f"{spec!r}: bundled model {name!r} has no {sub!r} (it holds {inside}; "
            f"bundled models: {list(BUNDLED)})"
        )
    return path


resolve_model_path = resolve_asset_path  # the ``model`` option's name for the same rules
