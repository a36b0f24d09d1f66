"""IRASim-style video Diffusion Transformer.

The network knows nothing about noise schedules: it maps a noisy latent video, one diffusion
step per sample and an action trajectory to a noise prediction. Blocks alternate spatial
attention (within a frame) and temporal attention (across frames at one patch position);
actions condition the blocks through adaLN-Zero (REFERENCE §2).

Shapes: B batch, F frames, C latent channels, H x W latent grid, P = (H/p)(W/p) tokens per
frame, D hidden size, A action dimension.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from einops import rearrange
from torch import nn

from freeaction_gym.models.controlnet import PromptControlNet, check_prompts
from freeaction_gym.models.dit_config import DiTConfig
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
