"""World model v2 ablation: each technique switched on alone over the current recipe, all
trained for the same CPU time on the same data (issue 14, item 2).

1. Measure the CPU cost of one training step of every variant in this process: process
   CPU seconds (``time.process_time``, all threads; OpenMP waits passively, so waiting is
   not counted) of steps on random batches of the configured shape, best of interleaved
   rounds - a budget that does not depend on whatever else shares the machine.
2. Give the base recipe ``--base-steps`` steps and every other variant
   ``base_steps * cost(base) / cost(variant)`` steps: equal CPU time, not equal steps.
3. Train them one after another (``freeaction train`` with overrides, resumable: a finished
   run is skipped, an interrupted one resumes from its last checkpoint).

Scoring is separate (experiments/world_model_fidelity.py on the held-out test split), so
every variant is scored by the same code on the same clips.

    python experiments/ablate_world_model.py --base-steps 700              # all variants
    python experiments/ablate_world_model.py --only edm ctx2 --base-steps 700
    python experiments/ablate_world_model.py --costs-only                  # step costs
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when OpenMP starts

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from freeaction_gym.models.dit import VideoDiT  # noqa: E402
from freeaction_gym.models.presets import dit_config  # noqa: E402
from freeaction_gym.training.config import TrainConfig, load_config  # noqa: E402
from freeaction_gym.training.data import Clips  # noqa: E402
from freeaction_gym.training.self_context import SelfContext, imagine_context  # noqa: E402
from freeaction_gym.world_model.model import WorldModel  # noqa: E402

CTX2 = [
    "model.num_context_frames=2",
    "model.context_mode=channels",
    "data.clip_frames=6",
    "data.min_clip_frames=3",
]
# One technique each over configs/v2/ablation_base.yaml (issue 14's list); the second round
# switches one technique on over the first round's winner (ctx2).
VARIANTS: dict[str, list[str]] = {
    "base": [],
    "edm": ["diffusion.parameterization=edm", "loop.eval_sample_steps=3"],
    "ctxnoise": ["diffusion.context_noise_max=0.2", "model.context_noise_embed=true"],
    "ctx2": CTX2,
    "convhead": ["model.refiner_width=16", "model.refiner_depth=2"],
    "ctx2_hourglass": [*CTX2, "model.stem_channels=[16,32,64]"],
    # third round, over ctx2_hourglass: the model's own imagined frames as context
    "ctx2_hourglass_selfctx": [
        *CTX2,
        "model.stem_channels=[16,32,64]",
        "optim.self_context_prob=0.5",
        "optim.self_context_steps=3",
    ],
}


def build_world(cfg: TrainConfig, resolution: int = 64, action_dim: int = 4) -> WorldModel:
    """The variant's untrained world model (shapes as the MetaWorld pixel data gives them)."""
    model = dict(cfg.model)
    size = model.pop("size", "S")
    model.setdefault("input_size", (resolution, resolution))
    model.setdefault("in_channels", 3)
    model.setdefault("action_dim", action_dim)
    model.setdefault("num_frames", cfg.data.clip_frames)
    diffusion = cfg.diffusion
    if diffusion.target == "delta" and diffusion.delta_scale <= 0:
        diffusion.delta_scale = 3.0  # the measured value only scales targets; cost is equal
    return WorldModel(VideoDiT(dit_config(size, **model)), diffusion=diffusion)


def step_seconds(cfg: TrainConfig, steps: int = 4, warmup: int = 2) -> float:
    """CPU seconds of one optimiser step at the config's batch size and longest clip,
    including the imagined context of ``optim.self_context_*`` (mean over its draws)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    world = build_world(cfg)
    opt = torch.optim.AdamW(world.dit.parameters(), lr=1e-4)
    sc = SelfContext(cfg.optim.self_context_prob, cfg.optim.self_context_steps)
    b, f = cfg.optim.batch_size, cfg.data.clip_frames
    if sc.prob > 0:
        steps *= 4  # average over the random imagined-step counts
    total = 0.0
    for i in range(warmup + steps):
        r = sc.draw(rng)
        z = torch.rand(b, f + r, 3, 64, 64) * 2 - 1
        a = torch.randn(b, f + r - 1, 4)
        t0 = time.process_time()
        clips = imagine_context(world, Clips(z, a), r, sc.sample_steps)
        loss = world.training_loss(
            clips.latents, clips.actions, timestep_power=cfg.optim.timestep_power
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= warmup:
            total += time.process_time() - t0
    return total / steps


def measure_costs(base: str, names: list[str], rounds: int = 2) -> dict[str, float]:
    """Best-of-rounds CPU seconds per step, variants interleaved."""
    torch.set_num_threads(2)
    costs: dict[str, float] = {}
    for _ in range(rounds):
        for name in names:
            s = step_seconds(load_config(base, VARIANTS[name]))
            costs[name] = min(costs.get(name, float("inf")), s)
            print(f"[cost] {name}: {s * 1000:.0f} ms/step", flush=True)
    return costs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/v2/ablation_base.yaml", help="base recipe")
    p.add_argument("--only", nargs="+", choices=sorted(VARIANTS), help="variants to run")
    p.add_argument("--base-steps", type=int, default=700, help="training steps of 'base'")
    p.add_argument("--out", default="runs/ablate", help="one run directory per variant")
    p.add_argument("--costs-only", action="store_true", help="measure step costs and stop")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra overrides for every run (e.g. optim.threads=1 to run drivers side by side)",
    )
    args = p.parse_args(argv)
    names = args.only or list(VARIANTS)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    costs_path = out / "costs.json"
    costs = json.loads(costs_path.read_text()) if costs_path.is_file() else {}
    missing = [n for n in dict.fromkeys(["base", *names]) if n not in costs]
    if missing:
        costs |= measure_costs(args.config, missing)
        costs_path.write_text(json.dumps(costs, indent=2) + "\n")
    plan = {n: round(args.base_steps * costs["base"] / costs[n]) for n in names}
    for n in names:
        print(f"{n:10s} {costs[n] * 1000:7.0f} CPU ms/step -> {plan[n]} steps", flush=True)
    if args.costs_only:
        return 0
    plan_path = out / "plan.json"
    old = json.loads(plan_path.read_text())["steps"] if plan_path.is_file() else {}
    plan_path.write_text(json.dumps({"base_steps": args.base_steps, "steps": old | plan}) + "\n")
    for n in names:
        overrides = [*VARIANTS[n], *args.set, f"optim.steps={plan[n]}", f"loop.output={out / n}"]
        cmd = [sys.executable, "-m", "freeaction_gym.cli", "train", "--config", args.config]
        print("$", " ".join(cmd + overrides), flush=True)
        t0 = time.time()
        subprocess.run(cmd + overrides, check=True)
        print(f"[ablate] {n} done in {(time.time() - t0) / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
