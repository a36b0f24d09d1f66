"""IRASim-style video Diffusion Transformer.

The network knows nothing about noise schedules: it maps a noisy latent video, one diffusion
step per sample and an action trajectory to a noise prediction. Blocks alternate spatial
attention (within a frame) and temporal attention (across frames at one patch position);
actions condition the blocks through adaLN-Zero (REFERENCE §2).

Shapes: B batch, F frames, C latent channels, H x W latent grid, P = (H/p)(W/p) tokens per
frame, D hidden size, A action dimension.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from typing import Literal

import numpy as np
import torch
from einops import rearrange
from torch import nn

from freeaction_gym.models.controlnet import PromptControlNet, check_prompts
from freeaction_gym.models.hourglass import ConvHead, ConvStem
from freeaction_gym.models.layers import (
    DiTBlock,
    FinalLayer,
    Mlp,
    PatchEmbed,
    TimestepEmbedder,
    sincos_1d,
    sincos_2d,
)
from freeaction_gym.models.refiner import ConvRefiner


@dataclass
class DiTConfig:
    """Architecture of :class:`VideoDiT` (saved beside our checkpoints)."""

    input_size: tuple[int, int] = (32, 40)
    """Latent grid (H, W), e.g. 32x40 for RT-1's 256x320 frames under an 8x VAE."""
    patch_size: int = 2
    in_channels: int = 4
    hidden_size: int = 1152
    depth: int = 28
    """Number of blocks; even indices are spatial, odd temporal."""
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_frames: int = 16
    """Frames per clip including the clean context frame(s)."""
    action_dim: int = 7
    action_embedder: Literal["mlp", "linear2"] = "mlp"
    """``mlp``: RT-1/Bridge ``embed_state`` A->4D->D with GELU; ``linear2``: Language-Table
    ``embed_arm_state`` A->4D then ``embed_state`` 4D->D without activation."""
    conditioning: Literal["frame", "video"] = "frame"
    """Frame-Ada (per-frame adaLN in spatial blocks) or Video-Ada (one trajectory embedding)."""
    num_context_frames: int = 1
    """Leading frames given clean (IRASim: 1)."""
    # Extensions for our own models; all off reproduces the released IRASim layout.
    action_in_temporal: bool = False
    """Also add each frame's action embedding to the temporal blocks' and final layer's c."""
    action_tokens: bool = False
    """Add a (zero-initialised) projection of frame f's action embedding to its tokens."""
    cumulative_actions: bool = False
    """Feed [a_k, sum_{j<=k} a_j] to the action embedder (input 2A) instead of a_k."""
    refiner_width: int = 0
    """Hidden channels of a full-resolution conv refiner on the predicted frames
    (:class:`~freeaction_gym.models.refiner.ConvRefiner`); 0 = off (IRASim)."""
    refiner_depth: int = 4
    """Convolutions in the refiner (>= 2)."""
    context_mode: Literal["frames", "channels"] = "frames"
    """``frames``: context frames are frames of the token sequence (IRASim). ``channels``:
    they are stacked on the channels of every predicted frame before the patch embedding
    (DIAMOND / GameNGen), so n context frames cost no extra tokens and the sequence holds
    only the predicted frames."""
    stem_channels: tuple[int, ...] = ()
    """Channels per level of a conv encoder/decoder with U-Net skips around the
    transformer (:mod:`~freeaction_gym.models.hourglass`), replacing the linear patch
    embedding and unpatchify; needs ``patch_size == 2 ** len(stem_channels)``.
    () = linear patches (IRASim)."""
    context_noise_embed: bool = False
    """Embed the context frames' noise-augmentation level (a fraction in [0, 1]) into every
    block's adaLN conditioning (zero-initialised, GameNGen)."""
    extra_in_channels: int = 0
    """Channels of a side input (``forward``'s ``extra``) stacked on every sequence frame's
    channels before the patch embedding, e.g. the frozen model's prediction an AVID adapter
    sees (:mod:`~freeaction_gym.models.avid`); 0 = none."""
    prompt: Literal["none", "channels", "controlnet", "both"] = "none"
    """Visual action prompts (seed 004): ``forward(..., prompts=)`` takes a skeleton image
    per frame, (B, F, prompt_channels, H, W) on the latent grid. ``channels``: each token
    frame's prompt is stacked on its channels before the patch embedding (or conv stem);
    ``controlnet``: a zero-initialised ControlNet branch
    (:mod:`~freeaction_gym.models.controlnet`); ``both``; ``none``: no prompt input."""
    prompt_channels: int = 3
    """Channels of a prompt frame (RGB skeletons)."""
    controlnet_depth: int = 2
    """``controlnet``/``both``: the first K blocks copied into the branch (1 <= K <= depth)."""

    def __post_init__(self) -> None:
        self.input_size = tuple(self.input_size)  # type: ignore[assignment]
        self.stem_channels = tuple(int(c) for c in self.stem_channels)
        if self.stem_channels and 2 ** len(self.stem_channels) != self.patch_size:
            raise ValueError(
                f"stem_channels {self.stem_channels} has {len(self.stem_channels)} levels, "
                f"so patch_size must be {2 ** len(self.stem_channels)}, got {self.patch_size}"
            )
        h, w = self.input_size
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f"latent size {self.input_size} not divisible by patch {self.patch_size}"
            )
        if self.extra_in_channels < 0:
            raise ValueError(f"extra_in_channels must be >= 0, got {self.extra_in_channels}")
        if self.depth % 2:
            raise ValueError(f"depth must be even (spatial/temporal pairs), got {self.depth}")
        if not 1 <= self.num_context_frames < self.num_frames:
            raise ValueError(
                f"num_context_frames={self.num_context_frames} must be in [1, num_frames)"
            )
        if self.conditioning not in ("frame", "video"):
            raise ValueError(f"conditioning must be 'frame' or 'video', got {self.conditioning!r}")
        if self.action_embedder not in ("mlp", "linear2"):
            raise ValueError(
                f"action_embedder must be 'mlp' or 'linear2', got {self.action_embedder!r}"
            )
        if self.context_mode not in ("frames", "channels"):
            raise ValueError(
                f"context_mode must be 'frames' or 'channels', got {self.context_mode!r}"
            )
        if self.context_mode == "channels" and self.conditioning != "frame":
            raise ValueError("context_mode='channels' needs conditioning='frame'")
        if self.prompt not in ("none", "channels", "controlnet", "both"):
            raise ValueError(f"prompt must be none/channels/controlnet/both, got {self.prompt!r}")
        if self.prompt_controlnet and not 1 <= self.controlnet_depth <= self.depth:
            raise ValueError(f"controlnet_depth must be in [1, {self.depth}]")

    @property
    def grid(self) -> tuple[int, int]:
        return self.input_size[0] // self.patch_size, self.input_size[1] // self.patch_size

    @property
    def num_actions(self) -> int:
        return self.num_frames - 1

    @property
    def embed_channels(self) -> int:
        """Input channels of the patch embedding (C, or C (1 + n) with channel context,
        plus ``extra_in_channels``)."""
        n = self.num_context_frames if self.context_mode == "channels" else 0
        prompt = self.prompt_channels if self.prompt_stacked else 0
        return self.in_channels * (1 + n) + self.extra_in_channels + prompt

    @property
    def prompt_stacked(self) -> bool:
        """Prompts stacked on the patch embedding's input channels."""
        return self.prompt in ("channels", "both")

    @property
    def prompt_controlnet(self) -> bool:
        """Prompts read by a ControlNet branch."""
        return self.prompt in ("controlnet", "both")

    @property
    def sequence_frames(self) -> int:
        """Frames in the token sequence (all of them, or only the predicted ones)."""
        n = self.num_context_frames if self.context_mode == "channels" else 0
        return self.num_frames - n

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["stem_channels"] = list(self.stem_channels)
        return d


class VideoDiT(nn.Module):
    """Action-conditioned video DiT with a clean context frame (IRASim)."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = cfg = config
        d = cfg.hidden_size
        gh, gw = cfg.grid
        if cfg.stem_channels:
            self.stem = ConvStem(cfg.embed_channels, cfg.stem_channels, d)
        else:
            self.x_embedder = PatchEmbed(cfg.patch_size, cfg.embed_channels, d)
        self.t_embedder = TimestepEmbedder(d)
        if cfg.context_noise_embed:
            self.ctx_noise_embedder = TimestepEmbedder(d)
        a_in = cfg.action_dim * (2 if cfg.cumulative_actions else 1)
        if cfg.conditioning == "video":
            a_in *= cfg.num_actions
        if cfg.action_embedder == "mlp":
            self.embed_state = Mlp(a_in, 4 * d, d)
        else:
            self.embed_arm_state = nn.Linear(a_in, 4 * d)
            self.embed_state = nn.Linear(4 * d, d)
        self.mask_emb_fn = nn.Embedding(1, d)  # learned "null action"
        if cfg.action_tokens:
            self.action_token_proj = nn.Linear(d, d)
        # Fixed sin-cos tables stored as non-trainable parameters (checkpoint keys).
        self.pos_embed = nn.Parameter(
            torch.from_numpy(sincos_2d(d, gh, gw)).float()[None], requires_grad=False
        )  # (1, P, D)
        self.temp_embed = nn.Parameter(
            torch.from_numpy(sincos_1d(d, np.arange(cfg.sequence_frames))).float()[None],
            requires_grad=False,
        )  # (1, F, D)
        self.blocks = nn.ModuleList(
            DiTBlock(d, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth)
        )
        if not cfg.stem_channels:
            self.final_layer = FinalLayer(d, cfg.patch_size, cfg.in_channels)
        self._init_weights()
        if cfg.stem_channels:  # built after _init_weights: keeps PyTorch's conv init
            self.head = ConvHead(cfg.stem_channels, d, cfg.in_channels)
        if cfg.refiner_width > 0:  # built after _init_weights: keeps its own zero init
            self.refiner = ConvRefiner(cfg.in_channels, cfg.refiner_width, cfg.refiner_depth, d)
        if cfg.prompt_controlnet:  # built last: copies of the initialised blocks, zero in/out
            self.controlnet = PromptControlNet(
                self.blocks, cfg.controlnet_depth, cfg.patch_size, cfg.prompt_channels, d
            )

    def _init_weights(self) -> None:
        def _basic(m: nn.Module) -> None:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

        self.apply(_basic)
        if not self.config.stem_channels:
            w = self.x_embedder.proj.weight
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))
            nn.init.zeros_(self.x_embedder.proj.bias)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        nn.init.normal_(self.mask_emb_fn.weight, std=0.02)
        for block in self.blocks:  # adaLN-Zero: every block starts as the identity
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        if not self.config.stem_channels:
            nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
            nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
            nn.init.zeros_(self.final_layer.linear.weight)
            nn.init.zeros_(self.final_layer.linear.bias)
        if self.config.action_tokens:
            nn.init.zeros_(self.action_token_proj.weight)
        if self.config.context_noise_embed:  # starts as "no information": c unchanged
            nn.init.zeros_(self.ctx_noise_embedder.mlp[2].weight)

    # ----------------------------------------------------------------------------------
    def embed_actions(
        self, actions: torch.Tensor, null_action: torch.Tensor | None
    ) -> torch.Tensor:
        """Per-frame action embeddings (B, F, D) (frame-ada) or (B, D) (video-ada).

        actions (B, F-1, A); null_action (B,) bool replaces a sample's whole trajectory
        with the learned null embedding (classifier-free training and guidance)."""
        cfg = self.config
        b = actions.shape[0]
        a = actions.float()
        if cfg.cumulative_actions:
            cum = a
            if cfg.context_mode == "channels":  # sum from the last context frame on
                cum = torch.cat(
                    [
                        torch.zeros_like(a[:, : cfg.num_context_frames - 1]),
                        a[:, cfg.num_context_frames - 1 :],
                    ],
                    dim=1,
                )
            a = torch.cat([a, cum.cumsum(dim=1)], dim=-1)  # (B, F-1, 2A)
        if cfg.conditioning == "video":
            a = a.flatten(1)  # (B, (F-1) A)
        if cfg.action_embedder == "mlp":
            emb = self.embed_state(a)
        else:
            emb = self.embed_state(self.embed_arm_state(a))
        null = self.mask_emb_fn.weight[0]  # (D,)
        if cfg.conditioning == "frame":
            emb = torch.cat([null.expand(b, 1, -1), emb], dim=1)  # (B, F, D)
        if null_action is not None:
            keep = (~null_action.bool()).to(emb.dtype).view(b, *([1] * (emb.ndim - 1)))
            emb = emb * keep + null * (1 - keep)
        return emb

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(N, P, p*p*C) -> (N, C, H, W); per patch the layout is (row, col, channel)."""
        p, c = self.config.patch_size, self.config.in_channels
        gh, gw = self.config.grid
        x = x.reshape(x.shape[0], gh, gw, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, gh * p, gw * p)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        actions: torch.Tensor,
        null_action: torch.Tensor | None = None,
        context_noise: torch.Tensor | None = None,
        extra: torch.Tensor | None = None,
        prompts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the noise of every frame.

        x (B, F, C, H, W) latents with the context frame(s) clean; t (B,) diffusion steps in
        [0, 1000); actions (B, F-1, A); context_noise (B,) the context frames' augmentation
        level as a fraction in [0, 1] (``context_noise_embed`` models; None = 0); extra
        (B, F, extra_in_channels, H, W) the side input of ``extra_in_channels`` models;
        prompts (B, F, prompt_channels, H, W) every frame's visual action prompt (``prompt``
        models only, required there). Returns
        (B, F, C, H, W); the context frames' output carries no meaning (with
        ``context_mode='channels'`` it is the input context).
        """
        cfg = self.config
        b, f = x.shape[:2]
        if f > cfg.num_frames:
            raise ValueError(f"got {f} frames but the model has {cfg.num_frames} temporal slots")
        if actions.shape[1:] != (f - 1, cfg.action_dim):
            raise ValueError(
                f"actions must be (B, {f - 1}, {cfg.action_dim}) for {f} frames, "
                f"got {tuple(actions.shape)}"
            )
        if cfg.conditioning == "video" and f != cfg.num_frames:
            raise ValueError("Video-Ada conditioning needs exactly num_frames frames")
        check_prompts(cfg.prompt, cfg.prompt_channels, x.shape, prompts)
        n = cfg.num_context_frames
        a_emb = self.embed_actions(actions, null_action)
        if cfg.context_mode == "channels":
            ctx = x[:, :n].flatten(1, 2)[:, None].expand(-1, f - n, -1, -1, -1)  # (B,K,nC,H,W)
            x_seq = torch.cat([x[:, n:], ctx], dim=2)  # (B, K, (1+n) C, H, W)
            a_emb = a_emb[:, n:]  # the predicted frames' actions
        else:
            x_seq = x
        if cfg.extra_in_channels:  # the side input of the frames in the sequence
            e_shape = (b, f, cfg.extra_in_channels, *x.shape[3:])
            if extra is None or tuple(extra.shape) != e_shape:
                got = None if extra is None else tuple(extra.shape)
                raise ValueError(f"extra must be {e_shape} (extra_in_channels), got {got}")
            x_seq = torch.cat([x_seq, extra[:, f - x_seq.shape[1] :]], dim=2)  # (B, F', E', H, W)
        elif extra is not None:
            raise ValueError("extra given to a model with extra_in_channels=0")
        if prompts is not None:  # the prompts of the frames in the sequence
            prompts = prompts[:, f - x_seq.shape[1] :].to(x_seq.dtype)  # (B, F', C_p, H, W)
        if cfg.prompt_stacked:  # appended last: a warm start zero-pads these input channels
            x_seq = torch.cat([x_seq, prompts], dim=2)  # (B, F', C_embed, H, W)
        frames = rearrange(x_seq, "b f c h w -> (b f) c h w")
        if cfg.stem_channels:
            tokens, skips = self.stem(frames)
        else:
            tokens = self.x_embedder(frames)
        tokens = tokens + self.pos_embed  # (B F, P, D)
        t_emb = self.t_embedder(t)  # (B, D)
        if cfg.context_noise_embed:
            level = context_noise if context_noise is not None else torch.zeros(b)
            t_emb = t_emb + self.ctx_noise_embedder(1000.0 * level.to(t_emb.device))
        f_all, f = f, x_seq.shape[1]  # tokens now hold f frames
        p_tokens = tokens.shape[1]
        if cfg.conditioning == "frame":
            c_frame = t_emb[:, None] + a_emb  # (B, F, D)
            if cfg.action_tokens:
                proj = self.action_token_proj(a_emb)  # (B, F, D)
                tokens = tokens + rearrange(proj, "b f d -> (b f) 1 d")
        else:
            c_frame = (t_emb + a_emb)[:, None].expand(b, f, -1)  # (B, F, D)
        c_spatial = rearrange(c_frame, "b f d -> (b f) d")
        if cfg.conditioning == "video":
            c_temp = (t_emb + a_emb).repeat_interleave(p_tokens, dim=0)  # (B P, D)
            c_final = c_spatial
        elif cfg.action_in_temporal:
            c_temp = None  # per-frame adaLN inside the temporal blocks
            c_final = c_spatial
        else:  # released IRASim Frame-Ada: temporal blocks and final layer see t only
            c_temp = t_emb.repeat_interleave(p_tokens, dim=0)  # (B P, D)
            c_final = t_emb.repeat_interleave(f, dim=0)  # (B F, D)

        run = partial(self._run_block, c_spatial=c_spatial, c_temp=c_temp, c_frame=c_frame, f=f)
        control: list[torch.Tensor] = []  # ControlNet residual after block i (B F, P, D)
        if cfg.prompt_controlnet:
            prompt_frames = rearrange(prompts, "b f c h w -> (b f) c h w")
            control = self.controlnet(tokens, prompt_frames, run)
        x_tok = tokens  # (B F, P, D)
        for i, block in enumerate(self.blocks):
            x_tok = run(block, i, x_tok)
            if i < len(control):
                x_tok = x_tok + control[i]
        if cfg.stem_channels:
            out = self.head(x_tok, skips, c_final, cfg.grid)  # (B F, C, H, W)
        else:
            out = self.unpatchify(self.final_layer(x_tok, c_final))  # (B F, C, H, W)
        out = rearrange(out, "(b f) c h w -> b f c h w", b=b)
        if cfg.context_mode == "channels":
            out = torch.cat([x[:, :n], out], dim=1)  # (B, F_all, C, H, W)
        if cfg.refiner_width > 0:
            refined = self.refiner(out[:, n:], x[:, n:], x[:, n - 1], t_emb)
            out = torch.cat([out[:, :n], refined], dim=1)
        assert out.shape[1] == f_all
        return out

    def _run_block(self, block: DiTBlock, i: int, x: torch.Tensor, c_spatial, c_temp, c_frame, f):
        """Block ``i`` on tokens x (B F, P, D): spatial attention for even ``i``, temporal
        attention (frame positions added before the first) for odd ``i``."""
        if i % 2 == 0:
            return block(x, c_spatial)
        b = c_frame.shape[0]
        x = rearrange(x, "(b f) p d -> (b p) f d", b=b)
        if i == 1:
            x = x + self.temp_embed[:, :f]
        if c_temp is None:
            x = self._temporal_per_frame(block, x, c_frame, b)
        else:
            x = block(x, c_temp)
        return rearrange(x, "(b p) f d -> (b f) p d", b=b)

    @staticmethod
    def _temporal_per_frame(
        block: DiTBlock, x: torch.Tensor, c_frame: torch.Tensor, b: int
    ) -> torch.Tensor:
        """Temporal block whose adaLN differs per frame (``action_in_temporal``).

        x (B P, F, D); c_frame (B, F, D)."""
        n, f, d = x.shape
        p = n // b
        mod = block.adaLN_modulation(c_frame)  # (B, F, 6D)
        mod = mod.repeat_interleave(p, dim=0)  # (B P, F, 6D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=-1)
        h = block.norm1(x) * (1 + scale_msa) + shift_msa
        x = x + gate_msa * block.attn(h)
        h = block.norm2(x) * (1 + scale_mlp) + shift_mlp
        return x + gate_mlp * block.mlp(h)


def count_parameters(model: nn.Module) -> int:
    """All parameters including the fixed sin-cos tables (IRASim's reported count)."""
    return sum(p.numel() for p in model.parameters())
