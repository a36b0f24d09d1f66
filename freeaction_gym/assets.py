"""Bundled artifacts shipped inside the package (small: weights in float16 safetensors)."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).parent / "assets"
BUNDLED = ("metaworld_default", "metaworld_vap")
"""``metaworld_default``: world model v2 (action adaLN); ``metaworld_vap``: the same model
fine-tuned on visual action prompts (prompt channels) with its ``proprio/`` model, for
``conditioning: vap`` (``FreeActionMetaWorldVAP-v0``)."""


def bundled_dir(name: str = "metaworld_default") -> Path:
    """Directory of a bundled model: ``model.safetensors``, ``config.json``,
    ``reset_bank.npz``, ``reward_head/`` and for ``metaworld_vap`` ``proprio/`` (see
    docs/MODEL_CARD.md)."""
    if name not in BUNDLED:
        raise ValueError(f"unknown bundled model {name!r}; available: {list(BUNDLED)}")
    d = ASSETS / name
    if not (d / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"bundled model files are missing from {d}; reinstall freeaction-gym from a full "
            "checkout or regenerate them (docs/MODEL_CARD.md)"
        )
    return d


def resolve_model_path(spec: str | Path) -> Path:
    """``bundled:<name>`` or a filesystem path."""
    spec = str(spec)
    if spec.startswith("bundled:"):
        return bundled_dir(spec.split(":", 1)[1])
    return Path(spec).expanduser()
