"""AVID (seed 002): adapt a frozen action-free video model into an action-conditioned one.

The frozen model is only run (no gradients, eval mode, always with the null action) to get
its prediction ``pre``. A small trainable adapter (a :class:`VideoDiT`) sees the noisy video
and ``pre`` (stacked on its channels before the patch embedding, ``extra_in_channels``) and
outputs its own prediction ``adapt`` plus one mask-logit channel; the model's output is

    out = m * pre + (1 - m) * adapt,   m = sigmoid(logit) in [0, 1]      (seed eq. 5)

with the mask broadcast over channels, trained with the plain denoising loss on ``out``.
``adapter_loss_weight`` w > 0 (our addition, not the seed's) adds w x the same loss on
``adapt`` alone: without it the adapter stops learning once the mask saturates at 1 (then
``out`` does not depend on ``adapt``), which is what happens when the frozen model already
predicts well.
The combination is linear in the two predictions, so it holds for eps, x0, v or EDM's F
alike. Other modes are the seed's baselines and ablations (:data:`AVIDMode`).

The adapter is a DiT over C + 1 channels when it has a mask: its input's last channel is a
constant zero (the mask has no noisy input) and its output's last channel is the logit, so
the DiT itself needs no output change. :class:`AVIDModel` has the DiT's call signature and
its ``config`` the DiT interface fields, so :class:`~freeaction_gym.world_model.WorldModel`
serves it like any DiT (training loss, sampler, FreeAction guidance, envs).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal, get_args

import torch
from safetensors.torch import save_file
from torch import nn

from freeaction_gym.diffusion.loss import WithAuxiliary
from freeaction_gym.models.checkpoint import (
    CheckpointError,
    load_safetensors,
    load_state_dict_strict,
    load_video_dit,
    read_config_json,
)
from freeaction_gym.models.dit import DiTConfig, VideoDiT

AVIDMode = Literal["avid", "no_mask", "no_conditioning", "poe", "action_cfg", "scratch"]
"""``avid``: m * pre + (1 - m) * adapt. ``no_mask``: pre + adapt (the adapter sees pre).
``no_conditioning``: the avid mask, but the adapter does not see pre. ``poe``: product of
experts lambda_p * adapt + (1 - lambda_p) * pre; ``action_cfg``: pre + lambda_a * (adapt(a) -
adapt(null)); in both the adapter is trained alone (train mode returns ``adapt``) and
combined in eval mode. ``scratch``: the adapter alone, no frozen model."""
SEES_PRE = ("avid", "no_mask")
HAS_MASK = ("avid", "no_conditioning")
TRAINED_ALONE = ("poe", "action_cfg", "scratch")


def check_mode(mode: str) -> str:
    if mode not in get_args(AVIDMode):
        raise ValueError(f"unknown AVID mode {mode!r}; choose one of {list(get_args(AVIDMode))}")
    return mode


def avid_combine(pre: torch.Tensor, adapt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Seed eq. 5: ``mask * pre + (1 - mask) * adapt``; pre/adapt (B, F, C, H, W), mask
    (B, F, 1, H, W) in [0, 1], broadcast over channels."""
    return mask * pre + (1 - mask) * adapt


def product_of_experts(pre: torch.Tensor, adapt: torch.Tensor, lam: float) -> torch.Tensor:
    """Seed §4.1 PoE baseline (Yang et al. 2024): ``lam * adapt + (1 - lam) * pre``."""
    return lam * adapt + (1 - lam) * pre


class CrossModelActionCFG:
    """Action classifier-free guidance across two models (seed §4.1 baseline):

        out = pre(x) + lambda_a * (adapt(x, a) - adapt(x, null))

    A denoiser wrapper with the DiT call signature (x (B, F, C, H, W), t (B,), actions
    (B, F-1, A), null_action (B,) bool, keywords) over ``pretrained(x, t, **kw)`` (action-free)
    and an ``adapter`` trained alone with classifier-free action dropout. Unlike ordinary CFG
    the base and the unconditional term come from different models trained on different
    data. The adapter's conditional and unconditional passes run as one batch of 2B; a
    sample whose ``null_action`` is set gets the pretrained output.
    """

    def __init__(self, pretrained, adapter, lam: float = 1.0) -> None:
        self.pretrained, self.adapter, self.lam = pretrained, adapter, lam

    def __call__(self, x, t, actions, null_action=None, **kw):
        b = x.shape[0]
        null = torch.ones(b, dtype=torch.bool, device=x.device)
        cond = null_action.to(x.device).bool() if null_action is not None else ~null
        kw2 = {k: torch.cat([v, v]) if torch.is_tensor(v) else v for k, v in kw.items()}
        pair = self.adapter(  # conditional and unconditional passes as one batch of 2B
            torch.cat([x, x]),
            torch.cat([t, t]),
            torch.cat([actions, actions]),
            torch.cat([cond, null]),
            **kw2,
        )
        return self.pretrained(x, t, **kw) + self.lam * (pair[:b] - pair[b:])


@dataclass
class AVIDConfig:
    """An AVID model: the adapter's architecture and how it meets the frozen model."""

    adapter: DiTConfig
    """The adapter DiT as for the data (``in_channels`` = the video's C); the mask channel
    and the frozen prediction's input channels are added by :meth:`network_config`."""
    mode: AVIDMode = "avid"
    poe_weight: float = 0.5
    """lambda_p of ``poe`` (the seed tunes it in {0.2, 0.4, 0.6})."""
    cfg_weight: float = 1.0
    """lambda_a of ``action_cfg``."""
    mask_init: float = 0.5
    """Mask of the untrained adapter (whose zero-initialised output layer gives logit 0):
    a constant logit offset ``logit(mask_init)``; 0.5 = no offset."""
    adapter_loss_weight: float = 0.0
    """Training only, mask modes: weight of the denoising loss on the adapter's own
    prediction ``adapt``, added to the loss on the combined output (0: the seed's loss)."""

    def __post_init__(self) -> None:
        if isinstance(self.adapter, dict):
            self.adapter = DiTConfig(**self.adapter)
        check_mode(self.mode)
        if self.adapter.extra_in_channels:
            raise ValueError("the adapter's extra_in_channels is set by AVIDModel; leave it 0")
        if not 0.0 < self.mask_init < 1.0:
            raise ValueError(f"mask_init must be in (0, 1), got {self.mask_init}")
        if not (math.isfinite(self.adapter_loss_weight) and self.adapter_loss_weight >= 0):
            raise ValueError(f"adapter_loss_weight must be >= 0, got {self.adapter_loss_weight}")
        if self.adapter_loss_weight > 0 and self.mode not in HAS_MASK:
            raise ValueError(
                f"adapter_loss_weight applies to the mask modes {HAS_MASK}, not {self.mode!r}"
            )

    def __getattr__(self, name: str):
        """Any other field reads as the adapter's (``num_frames``, ``num_context_frames``,
        ``action_dim``, ``input_size``, ``in_channels``, ...): what the world model, envs and
        validation read as ``world.dit.config.X`` is the adapter's interface to the data."""
        if name == "adapter" or name.startswith("__"):  # not yet set (copy, unpickling)
            raise AttributeError(name)
        return getattr(self.adapter, name)

    def network_config(self) -> DiTConfig:
        """The adapter DiT as built: + 1 channel (zero in, mask logit out) with a mask,
        + C side-input channels when it sees the frozen prediction."""
        c = self.adapter.in_channels
        return replace(
            self.adapter,
            in_channels=c + (self.mode in HAS_MASK),
            extra_in_channels=c if self.mode in SEES_PRE else 0,
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "adapter": self.adapter.to_dict()}


class AVIDModel(nn.Module):
    """A frozen action-free DiT + a trainable adapter DiT, called like a :class:`VideoDiT`.

    ``frozen`` (None only in mode ``scratch``) is switched to eval mode with
    ``requires_grad=False`` and run under ``torch.no_grad``; only the adapter trains.
    ``frozen_source`` is the directory it was loaded from (saved with the adapter);
    ``frozen_sha256`` the hash of its weights file (a changed frozen model is an error at
    load time). ``last_mask`` holds the mask (B, F, 1, H, W) of the last call (mask modes);
    set ``mask_history`` to a list to collect every call's mask (e.g. per sampling step).
    """

    def __init__(
        self,
        config: AVIDConfig,
        frozen: VideoDiT | None = None,
        adapter: VideoDiT | None = None,
        frozen_source: str | None = None,
        frozen_sha256: str | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        net = config.network_config()
        if adapter is not None and adapter.config != net:
            raise ValueError(f"adapter config {adapter.config} does not match {net}")
        self.adapter = adapter if adapter is not None else VideoDiT(net)
        if (frozen is None) != (config.mode == "scratch"):
            need = "needs a" if frozen is None else "takes no"
            raise ValueError(f"mode {config.mode!r} {need} frozen model")
        if frozen is not None:
            check_compatible(frozen.config, config.adapter)
            frozen.requires_grad_(False).eval()
        self.frozen = frozen
        self.frozen_source, self.frozen_sha256 = frozen_source, frozen_sha256
        self.mask_offset = math.log(config.mask_init / (1 - config.mask_init))
        self.last_mask: torch.Tensor | None = None
        self.mask_history: list[torch.Tensor] | None = None

    def train(self, mode: bool = True) -> AVIDModel:
        super().train(mode)
        if self.frozen is not None:  # the frozen model never leaves eval mode
            self.frozen.eval()
        return self

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # ----------------------------------------------------------------------------------
    def pretrained(self, x: torch.Tensor, t: torch.Tensor, actions=None, null_action=None, **kw):
        """The frozen model's prediction (B, F, C, H, W). It is action-free: ``actions``,
        ``null_action`` and action-like keywords (e.g. visual prompts) are ignored, it gets
        the null action (zeros of its own action size) and ``context_noise`` only."""
        b, f = x.shape[:2]
        a0 = x.new_zeros(b, f - 1, self.frozen.config.action_dim)
        null = torch.ones(b, dtype=torch.bool, device=x.device)
        with torch.no_grad():
            return self.frozen(x, t, a0, null, context_noise=kw.get("context_noise"))

    def forward_with_mask(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        actions: torch.Tensor,
        null_action: torch.Tensor | None = None,
        **kw,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(output (B, F, C, H, W), mask (B, F, 1, H, W) or None); arguments as the DiT's."""
        out, mask, _ = self._predict(x, t, actions, null_action, **kw)
        return out, mask

    def _predict(self, x, t, actions, null_action=None, **kw):
        """(output, mask or None, the adapter's own prediction (mask modes) or None)."""
        mode, n = self.config.mode, self.config.num_context_frames
        if mode in TRAINED_ALONE and (self.training or mode == "scratch"):
            return self.adapter(x, t, actions, null_action, **kw), None, None
        if mode == "poe":
            pre, adapt = self.pretrained(x, t, **kw), self.adapter(x, t, actions, null_action, **kw)
            return product_of_experts(pre, adapt, self.config.poe_weight), None, None
        if mode == "action_cfg":
            cfg = CrossModelActionCFG(self.pretrained, self.adapter, self.config.cfg_weight)
            return cfg(x, t, actions, null_action, **kw), None, None
        pre = self.pretrained(x, t, **kw)  # (B, F, C, H, W)
        extra = None
        if mode in SEES_PRE:  # context frames' output carries no meaning: not shown
            extra = torch.cat([torch.zeros_like(pre[:, :n]), pre[:, n:]], dim=1)
        x_in = x
        if mode in HAS_MASK:
            x_in = torch.cat([x, torch.zeros_like(x[:, :, :1])], dim=2)  # (B, F, C+1, H, W)
        out = self.adapter(x_in, t, actions, null_action, extra=extra, **kw)
        if mode == "no_mask":
            return pre + out, None, None
        c = self.config.in_channels
        mask = torch.sigmoid(out[:, :, c:] + self.mask_offset)  # (B, F, 1, H, W)
        return avid_combine(pre, out[:, :, :c], mask), mask, out[:, :, :c]

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        actions: torch.Tensor,
        null_action: torch.Tensor | None = None,
        **kw,
    ) -> torch.Tensor | WithAuxiliary:
        """As :meth:`VideoDiT.forward`: x (B, F, C, H, W), t (B,), actions (B, F-1, A),
        null_action (B,) bool; keywords (e.g. ``context_noise``) go to the adapter (the frozen
        model takes ``context_noise`` only). Returns (B, F, C, H, W); in training with
        gradients and ``adapter_loss_weight`` > 0, a :class:`WithAuxiliary` of it and the
        adapter's own prediction (the denoising losses take both)."""
        out, mask, adapt = self._predict(x, t, actions, null_action, **kw)
        if mask is not None:
            self.last_mask = mask.detach()
            if self.mask_history is not None:
                self.mask_history.append(mask.detach().cpu())
        w = self.config.adapter_loss_weight
        if w > 0 and adapt is not None and self.training and torch.is_grad_enabled():
            return WithAuxiliary(out, adapt, w)
        return out

    # -- persistence ---------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, extra: dict | None = None) -> Path:
        """``model.safetensors`` (the adapter only) + ``config.json`` (the AVID config, the
        frozen model's directory, config and weights hash, and ``extra`` metadata)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        sd = {k: v.detach().contiguous().cpu() for k, v in self.adapter.state_dict().items()}
        tmp = directory / "model.safetensors.tmp"
        save_file(sd, str(tmp))
        tmp.replace(directory / "model.safetensors")
        meta: dict = {"class": "AVIDModel", "config": self.config.to_dict()}
        if self.frozen is not None:
            if self.frozen_source is None:
                raise ValueError(
                    "saving an AVID adapter needs its frozen model's directory "
                    "(AVIDModel(frozen_source=...))"
                )
            meta["frozen"] = {
                "path": self.frozen_source,
                "sha256": self.frozen_sha256,
                "config": self.frozen.config.to_dict(),
            }
        (directory / "config.json").write_text(json.dumps(meta | (extra or {}), indent=2))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> AVIDModel:
        """Rebuild a model saved by :meth:`save_pretrained`: the adapter from the directory,
        the frozen model from the directory it names (a relative path is taken relative to
        ``directory``); errors name the file and what is wrong."""
        directory = Path(directory)
        cfg_file, weights = directory / "config.json", directory / "model.safetensors"
        meta = read_config_json(cfg_file)
        try:
            config = AVIDConfig(**meta["config"])
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{cfg_file}: incompatible AVID config ({err})") from err
        frozen, source, sha = None, None, None
        if config.mode != "scratch":
            entry = meta.get("frozen")
            if not isinstance(entry, dict) or "path" not in entry:
                raise CheckpointError(
                    f"{cfg_file} lacks the entry 'frozen' (the directory of the frozen model "
                    f"the {config.mode!r} adapter was trained with)"
                )
            source, sha = entry["path"], entry.get("sha256")
            frozen = load_frozen(source, relative_to=directory, sha256=sha, where=cfg_file)
            try:  # through DiTConfig: fields added since the save take their defaults
                trained_with = DiTConfig(**entry.get("config", frozen.config.to_dict()))
            except (TypeError, ValueError) as err:
                raise CheckpointError(f"{cfg_file}: bad 'frozen.config' ({err})") from err
            if trained_with != frozen.config:
                raise CheckpointError(
                    f"{cfg_file}: the frozen model at {source} has another architecture than "
                    "the one the adapter was trained with"
                )
        model = cls(config, frozen, frozen_source=source, frozen_sha256=sha)
        load_state_dict_strict(model.adapter, load_safetensors(weights), str(weights))
        return model.eval()


def check_compatible(frozen: DiTConfig, adapter: DiTConfig) -> None:
    """The frozen model must take the adapter's clips: same latent grid, channels and context
    frames, at least as many frames."""
    bad = [
        f"{k}: frozen {getattr(frozen, k)} vs adapter {getattr(adapter, k)}"
        for k in ("input_size", "in_channels", "num_context_frames")
        if getattr(frozen, k) != getattr(adapter, k)
    ]
    if frozen.num_frames < adapter.num_frames:
        bad.append(f"num_frames: frozen {frozen.num_frames} < adapter {adapter.num_frames}")
    if bad:
        raise ValueError("the frozen model does not fit the adapter: " + "; ".join(bad))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_frozen(source: str, relative_to: Path | None = None) -> Path:
    """``bundled:<name>``, an absolute path, or a path relative to ``relative_to``."""
    from freeaction_gym.assets import resolve_model_path

    path = resolve_model_path(source)
    if not path.is_absolute() and relative_to is not None:
        path = relative_to / path
    return path


def load_frozen(
    source: str,
    relative_to: Path | None = None,
    sha256: str | None = None,
    where: str | Path = "AVID",
) -> VideoDiT:
    """The frozen DiT of a model directory (``config.json`` + ``model.safetensors``), checked
    against ``sha256`` (the hash of its weights file) when given."""
    path = resolve_frozen(source, relative_to)
    missing = [n for n in ("config.json", "model.safetensors") if not (path / n).is_file()]
    if missing:
        raise CheckpointError(
            f"{where}: the frozen model directory {path} has no {' or '.join(missing)}; the "
            "AVID adapter needs the frozen model it was trained with (restore it, or point "
            "'frozen.path' in the adapter's config.json at a copy)"
        )
    if sha256 is not None and file_sha256(path / "model.safetensors") != sha256:
        raise CheckpointError(
            f"{where}: the frozen model's weights {path / 'model.safetensors'} changed since "
            "the adapter was trained (sha256 differs); use the original frozen model"
        )
    if read_config_json(path / "config.json").get("class") == "AVIDModel":
        raise CheckpointError(f"{where}: the frozen model {path} must be a plain video DiT")
    return load_video_dit(path)
