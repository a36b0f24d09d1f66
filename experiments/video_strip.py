"""A strip figure from a side-by-side comparison video: one row per column of the video.

``policy_eval_study.py --videos`` and ``dyna_frames.py`` write episodes as columns side by
side (real | imagined, each upscaled ``--scale`` x; :func:`freeaction_gym.utils.video.
comparison_grid`). This cuts such a video back into its columns, takes the frames at
``--steps`` and draws one labelled row per column with :func:`freeaction_gym.evaluation.
figures.save_strip`.

    V=outputs/policy_eval_proprio_agents/videos/Dyna_real_replay_s1_reach-v3_bank47_real1_imag0.mp4
    python experiments/video_strip.py --video $V \\
        --out docs/figures/policy_eval_v2/dyna_real_replay_reach_disagreement.png \\
        --labels real imagined --steps 0 3 6 10 20 40
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from freeaction_gym.utils.args import parse_args


@dataclass
class Args:
    """A strip of a side-by-side comparison video."""

    video: str = ""
    """Required: the mp4 (columns side by side, one episode per row of episodes)."""
    out: str = ""
    """Required: the PNG to write."""
    labels: list[str] = field(default_factory=lambda: ["real", "imagined"])
    """One per column of the video, left to right."""
    steps: list[int] = field(default_factory=lambda: [0, 3, 6, 10, 20, 40])
    """Frames (environment steps) to show."""
    scale: int = 3
    """The video's upscaling (every ``scale``-th pixel is kept)."""
    title: str | None = None


def video_columns(frames: np.ndarray, n_columns: int, scale: int) -> list[np.ndarray]:
    """uint8 (T, H*s, C*W*s, 3) -> C arrays uint8 (T, H, W, 3), the ``scale`` x upscaling
    undone by keeping every ``scale``-th pixel."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected video frames (T, H, W, 3), got {frames.shape}")
    if frames.shape[2] % (n_columns * scale) or frames.shape[1] % scale:
        raise ValueError(
            f"a {frames.shape[1]}x{frames.shape[2]} video does not split into {n_columns} "
            f"columns upscaled {scale} x"
        )
    small = frames[:, ::scale, ::scale]
    return np.split(small, n_columns, axis=2)


def main(args: Args) -> Path:
    import imageio.v3 as iio

    from freeaction_gym.evaluation.figures import save_strip

    if not args.video or not args.out:
        raise ValueError("video_strip needs a video and --out")
    frames = iio.imread(args.video)
    late = [s for s in args.steps if s >= len(frames)]
    if late:
        raise ValueError(f"steps {late} are past the video's last frame ({len(frames) - 1})")
    columns = video_columns(frames, len(args.labels), args.scale)
    rows = [(label, col[args.steps]) for label, col in zip(args.labels, columns, strict=True)]
    path = save_strip(args.out, rows, args.steps, args.title)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main(parse_args(Args))
