"""The world model: codec + video DiT + diffusion parameterisation + FreeAction sampling.

``WorldModel.predict(context, actions)`` turns clean context latents and an action chunk
into the next latent frames; the environment and the experiments only talk to this class.

Parameterisations (``DiffusionConfig.target``):

* ``absolute`` - the network denoises the frames themselves (IRASim);
* ``delta`` - it denoises ``(z_k - z_ctx) * delta_scale``, the change from the last context
  frame. On static-camera robot video most of that is exactly zero, so the model spends its
  capacity on what moves (and copying the context is the zero prediction, not a local
  minimum it has to climb out of).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from freeaction_gym.assets import resolve_model_path
from freeaction_gym.diffusion.action_norm import ActionNormSpec, action_norm
from freeaction_gym.diffusion.context_noise import augment_context
from freeaction_gym.diffusion.edm import EDMNetwork, edm_loss
from freeaction_gym.diffusion.guidance import ActionCFG, guided
from freeaction_gym.diffusion.loss import diffusion_loss
from freeaction_gym.diffusion.sampler import sample_video
from freeaction_gym.diffusion.schedule import EDM_SCHEDULERS, SCHEDULERS, AsEpsilon, make_scheduler
from freeaction_gym.diffusion.truncation import NoiseTruncation
from freeaction_gym.models.autoencoder import VideoAutoencoder
from freeaction_gym.models.checkpoint import save_pretrained_dit
from freeaction_gym.models.dit import VideoDiT
from freeaction_gym.models.pretrained import load_pretrained_dit
from freeaction_gym.world_model.codec import Codec, PixelCodec, load_codec


@dataclass
class DiffusionConfig:
    """How the DiT was trained (saved with the weights)."""

    prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon"
    target: Literal["absolute", "delta"] = "absolute"
    delta_scale: float = 1.0
    """Multiplier of the frame difference in ``delta`` mode (brings motion to unit scale)."""
    null_action_prob: float = 0.1
    """Fraction of training samples whose actions are replaced by the null embedding."""
    num_train_timesteps: int = 1000
    parameterization: Literal["ddpm", "edm"] = "ddpm"
    """``ddpm``: IRASim's discrete linear-beta process (``prediction_type`` applies).
    ``edm``: EDM preconditioning (:mod:`freeaction_gym.diffusion.edm`), sampled with the
    ``edm`` Euler scheduler."""
    sigma_data: float = 0.5
    """EDM: the data's standard deviation in the space the network denoises."""
    sigma_loc: float = -0.4
    """EDM: mean of ln(sigma) in training."""
    sigma_scale: float = 1.2
    """EDM: standard deviation of ln(sigma) in training."""
    context_noise_max: float = 0.0
    """Context-frame noise augmentation in training: level ~ U(0, this) in latent units
    (0 = off). The network is told the level if its ``context_noise_embed`` is on."""

    def __post_init__(self) -> None:
        if self.parameterization not in ("ddpm", "edm"):
            raise ValueError(
                f"parameterization must be 'ddpm' or 'edm', got {self.parameterization!r}"
            )
        if self.sigma_data <= 0 or self.sigma_scale <= 0 or self.context_noise_max < 0:
            raise ValueError("sigma_data and sigma_scale must be > 0, context_noise_max >= 0")
        if self.target not in ("absolute", "delta"):
            raise ValueError(f"target must be 'absolute' or 'delta', got {self.target!r}")
        if self.prediction_type not in ("epsilon", "sample", "v_prediction"):
            raise ValueError(f"unknown prediction_type {self.prediction_type!r}")


@dataclass
class SamplingConfig:
    """Inference settings; every FreeAction technique is switchable here."""

    scheduler: Literal["ddim", "ddpm", "pndm", "dpmsolver++", "edm"] = "ddim"
    num_steps: int = 10
    guidance: ActionCFG = field(default_factory=ActionCFG)
    truncation: NoiseTruncation = field(default_factory=NoiseTruncation)
    norm: ActionNormSpec = field(default_factory=ActionNormSpec)
    batch_cfg: bool = True
    """Guidance's positive and negative passes as one 2B batch (False: two calls)."""
    sigma_min: float = 0.002
    """``edm`` only: the last nonzero noise level of the Karras schedule, 0 < sigma_min <
    sigma_max."""
    sigma_max: float = 5.0
    """``edm`` only: the initial noise level."""
    rho: float = 7.0
    """``edm`` only: the Karras schedule's curvature, in (0, 100] (EDM uses 7; 1 is a
    linear ramp of sigma)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.rho <= 100.0:  # also NaN
            raise ValueError(
                f"rho must be in (0, 100] (the Karras schedule's curvature; EDM uses 7), "
                f"got {self.rho}"
            )
        if not 0.0 < self.sigma_min < self.sigma_max:
            raise ValueError(
                "edm noise levels need 0 < sigma_min < sigma_max, got "
                f"sigma_min={self.sigma_min}, sigma_max={self.sigma_max}"
            )

    @classmethod
    def from_dict(cls, d: dict) -> SamplingConfig:
        d = dict(d)
        known = {"scheduler", "num_steps", "guidance", "truncation", "norm", "batch_cfg"}
        known |= {"sigma_min", "sigma_max", "rho"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown sampling options {sorted(unknown)}; known: {sorted(known)}")
        return cls(
            scheduler=d.get("scheduler", "ddim"),
            num_steps=int(d.get("num_steps", 10)),
            guidance=ActionCFG(**d.get("guidance", {})),
            truncation=NoiseTruncation(**d.get("truncation", {})),
            norm=ActionNormSpec(**d.get("norm", {})),
            batch_cfg=bool(d.get("batch_cfg", True)),
            **{k: float(d[k]) for k in ("sigma_min", "sigma_max", "rho") if k in d},
        )

    def to_dict(self) -> dict:
        return asdict(self)


def lookup_mu_act(stats: dict, spec: ActionNormSpec, chunk: int) -> float | None:
    """``mu_act`` of ``spec`` at ``chunk`` from dataset statistics
    (``stats["mu_act"][kind][space][str(chunk)]``), or None if absent/NaN."""
    try:
        v = float(stats["mu_act"][spec.kind][spec.space][str(chunk)])
    except (KeyError, TypeError, ValueError):
        return None
    return None if v != v else v


class WorldModel(nn.Module):
    """Action-conditioned video generator over a frame codec."""

    def __init__(
        self,
        dit: VideoDiT,
        codec: Codec | None = None,
        diffusion: DiffusionConfig | None = None,
        stats: dict | None = None,
    ) -> None:
        super().__init__()
        self.dit = dit
        self.codec = codec if codec is not None else PixelCodec()
        self.diffusion = diffusion or DiffusionConfig()
        self.stats = stats or {}
        self._schedulers: dict[str, object] = {}

    # -- spaces --------------------------------------------------------------------------
    @property
    def num_context(self) -> int:
        return self.dit.config.num_context_frames

    @property
    def action_dim(self) -> int:
        return self.dit.config.action_dim

    def to_model_space(self, frames: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Predicted-frame latents (B, K, ...) -> what the network denoises."""
        if self.diffusion.target == "delta":
            return (frames - context[:, -1:]) * self.diffusion.delta_scale
        return frames

    def from_model_space(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if self.diffusion.target == "delta":
            return x / self.diffusion.delta_scale + context[:, -1:]
        return x

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """uint8 (B, F, H, W, 3) -> latents (B, F, C, h, w)."""
        return self.codec.encode(video)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents (B, F, C, h, w) -> uint8 (B, F, H, W, 3)."""
        return self.codec.to_uint8(self.codec.decode(latents))

    @property
    def takes_prompts(self) -> bool:
        """The network has a visual-action-prompt input (``DiTConfig.prompt``)."""
        return self.dit.config.prompt != "none"

    def prompt_input(self, prompts: torch.Tensor) -> torch.Tensor:
        """Visual action prompts as the network takes them: uint8 (B, F, H, W, 3) or float
        (B, F, 3, H, W) in [-1, 1] (the pixels' range) -> float (B, F, 3, h, w) on the
        latent grid (area-averaged when the codec downsamples)."""
        p = VideoAutoencoder.to_float(prompts)  # (B, F, 3, H, W)
        grid = tuple(self.dit.config.input_size)
        if tuple(p.shape[-2:]) != grid:
            p = F.interpolate(p.flatten(0, 1), size=grid, mode="area").unflatten(0, p.shape[:2])
        return p

    # -- training ------------------------------------------------------------------------
    def training_loss(
        self,
        latents: torch.Tensor,
        actions: torch.Tensor,
        generator: torch.Generator | None = None,
        weights: torch.Tensor | None = None,
        timestep_power: float = 1.0,
        prompts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """latents (B, F, C, h, w) clean clip; actions (B, F-1, A); prompts: the clip's
        visual action prompts (:meth:`prompt_input`; prompt models only); see
        :func:`~freeaction_gym.diffusion.loss.diffusion_loss` for ``timestep_power``."""
        n, cfg = self.num_context, self.diffusion
        ctx = latents[:, :n]
        extra = {}
        if prompts is not None:  # to the network as a model kwarg, like context_noise
            extra["prompts"] = self.prompt_input(prompts).to(latents)
        if cfg.context_noise_max > 0:  # the delta is taken from the context the model sees
            ctx, extra["context_noise"] = augment_context(ctx, cfg.context_noise_max, generator)
        x = torch.cat([ctx, self.to_model_space(latents[:, n:], ctx)], dim=1)
        null = None
        if cfg.null_action_prob > 0:
            u = torch.rand(latents.shape[0], generator=generator, device=latents.device)
            null = u < cfg.null_action_prob
        common = dict(num_context=n, null_action=null, generator=generator, weights=weights)
        if cfg.parameterization == "edm":
            edm = dict(sigma_data=cfg.sigma_data, loc=cfg.sigma_loc, scale=cfg.sigma_scale)
            return edm_loss(self.dit, x, actions, **common, **edm, **extra)
        ddpm = dict(
            num_train_timesteps=cfg.num_train_timesteps,
            prediction_type=cfg.prediction_type,
            timestep_power=timestep_power,
        )
        return diffusion_loss(self.dit, x, actions, **common, **ddpm, **extra)

    # -- sampling ------------------------------------------------------------------------
    def _eps_only(self, name: str) -> bool:
        """PNDM takes epsilon only: other parameterisations are converted (AsEpsilon)."""
        return name == "pndm" and self.diffusion.prediction_type != "epsilon"

    def scheduler(self, name: str, sampling: SamplingConfig | None = None):
        """The (cached) scheduler ``name``; ``edm`` takes its sigmas from ``sampling``."""
        if name not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {name!r}; choose one of {SCHEDULERS}")
        edm_model = self.diffusion.parameterization == "edm"
        if (name in EDM_SCHEDULERS) != edm_model:
            fits = EDM_SCHEDULERS if edm_model else tuple(set(SCHEDULERS) - set(EDM_SCHEDULERS))
            raise ValueError(
                f"scheduler {name!r} does not fit this model (parameterization "
                f"{self.diffusion.parameterization!r}); use one of {sorted(fits)}"
            )
        s = sampling or SamplingConfig()
        key = (name, s.sigma_min, s.sigma_max, s.rho) if name in EDM_SCHEDULERS else name
        if key not in self._schedulers:
            pred = "epsilon" if self._eps_only(name) else self.diffusion.prediction_type
            self._schedulers[key] = make_scheduler(
                name,
                self.diffusion.num_train_timesteps,
                pred,
                sigma_min=s.sigma_min,
                sigma_max=s.sigma_max,
                sigma_data=self.diffusion.sigma_data,
                rho=s.rho,
            )
        return self._schedulers[key]

    def action_norm(self, chunk: torch.Tensor, spec: ActionNormSpec) -> torch.Tensor:
        """||a|| (B,) of action chunks (B, K, A) under ``spec`` with the dataset stats."""
        return action_norm(chunk, spec, self.stats.get("action_mean"), self.stats.get("action_std"))

    def mu_act(self, spec: ActionNormSpec, chunk: int) -> float | None:
        return lookup_mu_act(self.stats, spec, chunk)

    def default_sampling(self, chunk: int, **overrides) -> SamplingConfig:
        """:class:`SamplingConfig` with ``mu_act`` filled from the dataset statistics; EDM
        models default to 3 Euler steps of the ``edm`` scheduler."""
        if self.diffusion.parameterization == "edm":
            overrides = {"scheduler": "edm", "num_steps": 3} | overrides
        cfg = SamplingConfig.from_dict(overrides) if overrides else SamplingConfig()
        mu = self.mu_act(cfg.norm, chunk)
        if mu is not None and cfg.truncation.mu_act == 0.0:
            t = cfg.truncation
            cfg.truncation = NoiseTruncation(t.mode, t.tau_min, t.tau_max, t.fixed_tau, float(mu))
        return cfg

    @torch.inference_mode()
    def predict(
        self,
        context: torch.Tensor,
        actions: torch.Tensor,
        sampling: SamplingConfig | None = None,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        action_norm: torch.Tensor | None = None,
        prompts: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Generate the frames that follow ``context``.

        context (B, n, C, h, w) clean latents; actions (B, n + K - 1, A) in model units (the
        last K are the new chunk). ``noise`` (B, K, C, h, w): the initial noise, already
        truncated by the caller (who then also passes the ``action_norm`` (B,) it drew it
        with, so nothing is recomputed); otherwise it is drawn here from ``generator``.
        ``prompts``: the visual action prompts of all n + K frames (:meth:`prompt_input`),
        required by and only accepted by prompt models; every sampler step and both
        guidance conditions see them unchanged.
        Returns latents (B, K, C, h, w) and per-sample info: ``action_norm``,
        ``guidance_weight`` (the weight of the first step) and, when drawn here, ``tau``.
        """
        b, n = context.shape[:2]
        k = actions.shape[1] - n + 1
        if not bool(torch.isfinite(actions).all()):  # before ||a|| and tau turn it into noise
            bad = (~torch.isfinite(actions)).flatten(1).any(dim=1).nonzero().flatten().tolist()
            raise ValueError(
                f"actions must be finite: samples {bad} of {actions.shape[0]} hold NaN/inf "
                f"(actions {tuple(actions.shape)}, model units)"
            )
        if k < 1:
            raise ValueError(
                f"need at least {n} actions for {n} context frames, got {actions.shape[1]}"
            )
        sampling = sampling or self.default_sampling(k)
        model_kwargs = {}
        if prompts is not None:
            model_kwargs["prompts"] = self.prompt_input(prompts).to(context)
        norm = action_norm
        if norm is None:
            norm = self.action_norm(actions[:, n - 1 :], sampling.norm)
        info: dict[str, torch.Tensor] = {"action_norm": norm}
        if noise is None:
            noise, info["tau"] = sampling.truncation.sample(
                (b, k, *context.shape[2:]), norm, generator
            )
        scheduler = self.scheduler(sampling.scheduler, sampling)
        denoiser = self.dit
        if self.diffusion.parameterization == "edm":
            denoiser = EDMNetwork(self.dit)
        elif self._eps_only(sampling.scheduler):
            denoiser = AsEpsilon(self.dit, self.diffusion.prediction_type, len(scheduler.betas))
        denoiser = guided(denoiser, sampling.guidance, norm, scheduler, sampling.batch_cfg)
        x = sample_video(
            denoiser,
            context,
            actions,
            noise.to(context),
            scheduler,
            sampling.num_steps,
            generator,
            model_kwargs=model_kwargs,
        )
        info["guidance_weight"] = sampling.guidance.weight(
            norm, 0, max(1, len(scheduler.timesteps))
        )
        latents = self.from_model_space(x, context)
        if isinstance(self.codec, PixelCodec):  # keep autoregressive contexts in the image range
            latents = latents.clamp(-1.0, 1.0)
        return latents, info

    # -- persistence ---------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        codec = "pixel" if isinstance(self.codec, PixelCodec) else "autoencoder"
        if codec == "autoencoder":
            self.codec.save_pretrained(directory / "vae")
        extra = {"diffusion": asdict(self.diffusion), "codec": codec, "stats": self.stats}
        return save_pretrained_dit(self.dit, directory, extra)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> WorldModel:
        """Rebuild a model saved by :meth:`save_pretrained` (no flags needed). ``directory``:
        a path, ``bundled:<name>`` (e.g. ``bundled:metaworld_default``, from any working
        directory) or ``bundled:<name>/<path>`` (resolved as the env's ``model`` option)."""
        directory = resolve_model_path(directory)
        dit = load_pretrained_dit(directory)
        meta = json.loads((directory / "config.json").read_text())
        codec = load_codec(meta.get("codec", "pixel"), directory / "vae")
        diffusion = DiffusionConfig(**meta.get("diffusion", {}))
        return cls(dit, codec, diffusion, meta.get("stats", {})).eval()
