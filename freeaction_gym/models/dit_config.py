"""Architecture options of :class:`~freeaction_gym.models.dit.VideoDiT` (saved as
``config.json`` beside every checkpoint)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal


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
