"""Sampler step count vs fidelity on the VALIDATION split (used to pick the env default,
so the test split stays untouched): 1 context frame + 4 actions, DDIM with 1/2/4/10 steps,
plain sampling vs truncated noise vs truncated noise + action-scaled CFG.

    python experiments/sweep_sampler_steps.py --out outputs/sweep_sampler_steps.md
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from freeaction_gym.utils.args import parse_args

VARIANTS = {
    "plain": {"guidance": {"mode": "none"}, "truncation": {"mode": "none"}},
    "truncation": {"guidance": {"mode": "none"}},
    "truncation+CFG": {},
}


@dataclass
class Args:
    """Sweep DDIM step counts on validation clips."""

    model: str = "runs/metaworld_default/model"
    """World model directory or bundled:<name>."""
    data: str = "data/metaworld_default"
    """Dataset root (the val split is used)."""
    steps: list[int] = field(default_factory=lambda: [1, 2, 4, 10])
    """DDIM step counts."""
    clips: int = 48
    """Validation windows (fixed seed)."""
    out: str | None = None
    """Write the markdown table here."""
    quick: bool = False
    """4 clips, steps 1 and 2."""


def main() -> None:
    args = parse_args(Args)
    if args.quick:
        args.clips, args.steps = 4, [1, 2]
    from freeaction_gym.assets import resolve_model_path
    from freeaction_gym.training.data import EpisodeBank
    from freeaction_gym.training.validate import rollout_metrics
    from freeaction_gym.utils.threads import configure_threads
    from freeaction_gym.world_model import WorldModel

    configure_threads()
    world = WorldModel.from_pretrained(resolve_model_path(args.model))
    val = EpisodeBank.from_metaworld(args.data, "val", world.encode)
    z, a = val.fixed_windows(args.clips, 5, seed=7)
    lines = [
        f"Validation split, {args.clips} clips of 1 context + 4 actions, DDIM; mean over clips.",
        "",
        "| DDIM steps | sampling | PSNR | copy PSNR | SSIM | moving PSNR | copy moving | "
        "moving PSNR, shuffled actions |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in args.steps:
        for name, overrides in VARIANTS.items():
            s = world.default_sampling(4, num_steps=n, **overrides)
            m = rollout_metrics(world, z, a, s, seed=0)
            lines.append(
                f"| {n} | {name} | {m['psnr']:.2f} | {m['psnr_copy']:.2f} | {m['ssim']:.3f} | "
                f"{m['moving_psnr']:.2f} | {m['moving_psnr_copy']:.2f} | "
                f"{m['moving_psnr_shuffled']:.2f} |"
            )
            print(lines[-1], flush=True)
    md = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(md)


if __name__ == "__main__":
    main()
