"""Policy evaluation in imagination vs the real simulator (issue 6).

A family of policies of clearly different quality runs on the same held-out scenes (reset
bank entries: real first frame + MetaWorld layout) in the real simulator and in the world
model, with and without the FreeAction techniques. Does the imagined world rank the
policies like the real one?

Family: scripted experts with increasing Gaussian action noise (``--sigmas``; run closed
loop in the real simulator, their actions then replayed open loop in imagination - MetaWorld
is deterministic, so replaying them in reality reproduces the episode exactly), a uniform
random policy (the same sequence in both worlds) and any stable-baselines3 agents
(``--agents name=path.zip``, closed loop on the 64x64 frames in both worlds). Episodes
last ``--steps`` actions without early termination; success = the simulator's / the
learned head's success at any step, return = summed reward.

Reports per (policy, task) success and return with bootstrap 95% intervals, Pearson and
Spearman correlation between imagined and real over the (policy, task) points with
bootstrap intervals (scenes resampled within tasks, paired across worlds), a scatter plot,
and side-by-side videos of the episodes where the worlds disagree most.

    python experiments/policy_eval_study.py --update-doc docs/RESULTS.md
    python experiments/policy_eval_study.py --quick          # seconds
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from freeaction_gym.evaluation.agreement import agreement  # noqa: E402
from freeaction_gym.evaluation.paired_stats import bootstrap_ci  # noqa: E402
from freeaction_gym.evaluation.policies import (  # noqa: E402
    RandomPolicy,
    SB3Policy,
    expert_plans,
)
from freeaction_gym.evaluation.worlds import (  # noqa: E402
    ImaginedWorld,
    RealWorld,
    Rollouts,
    scenes_from_bank,
)
from freeaction_gym.utils.args import parse_args  # noqa: E402
from freeaction_gym.utils.markdown import update_block  # noqa: E402
from freeaction_gym.utils.threads import configure_threads  # noqa: E402
from freeaction_gym.utils.video import write_comparison  # noqa: E402

# Imagined-world sampler variants (SamplingConfig overrides over the env preset).
VARIANTS: dict[str, dict] = {
    "plain": {"guidance": {"mode": "none"}, "truncation": {"mode": "none"}},
    "truncation": {"guidance": {"mode": "none"}, "truncation": {"mode": "action_scaled"}},
    "freeaction": {
        "guidance": {"mode": "action_scaled", "lam": 1.0, "cutoff": 0.5, "negative": "negated"},
        "truncation": {"mode": "action_scaled"},
    },
}


@dataclass
class Args:
    """Imagined vs real success and return of a policy family (issue 6)."""

    preset: str = "FreeActionMetaWorld-v0"
    """Imagined env preset (model, reset bank, reward head, sampler base)."""
    model: str | None = None
    """Override the preset's world model (directory or bundled:<name>)."""
    reward_head: str | None = None
    """Override the preset's reward head directory."""
    reset_bank: str | None = None
    """Override the preset's reset bank (``.npz``; e.g. the bundled model's, when ``--model``
    is a directory without its own ``reset_bank.npz``, so both models start from the same
    scenes)."""
    success: str | None = None
    """Override the preset's imagined success signal: ``reward`` (the reward function's, e.g.
    the learned head's) or ``state`` (MetaWorld's rule on a predicted state)."""
    state_source: str | None = None
    """With ``success: state``: where the state comes from - ``probe`` (read off each
    imagined frame, the default) or ``proprio`` (the proprio model integrated over the
    actions)."""
    proprio_model: str = "bundled:metaworld_vap/proprio"
    """``state_source: proprio`` / ``--proprio``: the proprio model."""
    proprio: bool = False
    """Both worlds show the hand xyz + gripper too (env option ``proprio_obs``), for agents
    trained with them (image-only policies read the image)."""
    tasks: list[str] = field(default_factory=lambda: ["reach-v3", "push-v3"])
    per_task: int = 20
    """Scenes per task (the first N reset-bank entries of the task)."""
    steps: int = 40
    """Actions per episode."""
    sigmas: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 2.0, 4.0])
    """Action-noise levels of the scripted-expert policies."""
    agents: list[str] = field(default_factory=list)
    """Extra closed-loop policies: ``name=path/to/model.zip`` (SB3 PPO/SAC)."""
    variants: list[str] = field(default_factory=lambda: ["plain", "truncation", "freeaction"])
    """Imagined sampler variants (plain, truncation, freeaction)."""
    num_steps: int | None = None
    """DDIM steps (default: the preset's)."""
    seed: int = 0
    n_boot: int = 2000
    batch_size: int = 40
    """Imagined episodes per batched model call."""
    videos: int = 4
    """Side-by-side videos of the most disagreeing episodes (best variant)."""
    out: str = "outputs/policy_eval"
    quick: bool = False
    """Tiny run (2 scenes per task, 6 steps, two sigmas, plain variant)."""
    update_doc: str | None = None
    """Write the tables between the ``doc_key`` markers of this markdown file."""
    doc_key: str = "policy-eval"


def build_family(args: Args, real: RealWorld, scenes) -> list:
    policies: list = []
    for sigma in tqdm(args.sigmas, desc="expert plans (real)", mininterval=2):
        policies.append(expert_plans(real, scenes, sigma, args.steps, args.seed, keep_frames=True))
    policies.append(RandomPolicy())
    for spec in args.agents:
        name, sep, path = spec.partition("=")
        if not sep:
            raise ValueError(f"--agents entries are name=path.zip, got {spec!r}")
        policies.append(SB3Policy(name, path))
    return policies


def summarize_rollouts(roll: Rollouts, tasks: list[str], n_boot: int, seed: int) -> dict:
    out = {}
    for task in tasks:
        m = roll.scenes.task == task
        s, r = roll.succeeded[m].astype(float), roll.returns[m]
        out[task] = {
            "success": float(s.mean()),
            "success_ci": bootstrap_ci(s, n_resamples=n_boot, seed=seed),
            "return": float(r.mean()),
            "return_ci": bootstrap_ci(r, n_resamples=n_boot, seed=seed),
            "episodes": int(m.sum()),
        }
    return out


def scatter_plot(results: dict, variants: list[str], tasks: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(variants), figsize=(4.2 * len(variants), 8), squeeze=False)
    markers = dict(zip(tasks, "os^Dv", strict=False))
    policies = list(results["real"])
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(policies)))
    for col, variant in enumerate(variants):
        for row, (metric, label) in enumerate((("success", "success rate"), ("return", "return"))):
            ax = axes[row, col]
            for p, c in zip(policies, colors, strict=True):
                for task in tasks:
                    x = results["real"][p][task][metric]
                    y = results[variant][p][task][metric]
                    ax.scatter(
                        x,
                        y,
                        color=c,
                        marker=markers[task],
                        s=40,
                        label=f"{p} ({task})" if col == 0 and row == 0 else None,
                    )
            ag = results["agreement"][variant][metric]
            lims = [
                min(ax.get_xlim()[0], ax.get_ylim()[0]),
                max(ax.get_xlim()[1], ax.get_ylim()[1]),
            ]
            ax.plot(lims, lims, "k:", lw=0.8)
            ax.set_xlabel(f"real {label}")
            ax.set_ylabel(f"imagined {label}")
            ax.set_title(
                f"{variant}: Pearson {ag['pearson']:.2f}, Spearman {ag['spearman']:.2f}",
                fontsize=9,
            )
    fig.tight_layout()
    fig.legend(loc="center left", ncol=1, fontsize=7, bbox_to_anchor=(1.0, 0.5))
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def disagreement_videos(real: dict, imag: dict, k: int, out: Path, scale: int = 3) -> list[str]:
    """Side-by-side (real | imagined) videos of the k episodes whose success differs, the
    largest return gap first."""
    cands = []
    for name, rr in real.items():
        ri = imag[name]
        gap = np.abs(rr.returns - ri.returns) / max(1.0, float(np.abs(rr.returns).max()))
        for n in np.flatnonzero(rr.succeeded != ri.succeeded):
            cands.append((float(gap[n]) + 1.0, name, int(n)))
        for n in np.argsort(-gap)[:2]:
            cands.append((float(gap[n]), name, int(n)))
    written = []
    seen = set()
    for _, name, n in sorted(cands, reverse=True):
        if len(written) >= k or (name, n) in seen:
            continue
        seen.add((name, n))
        rr, ri = real[name], imag[name]
        if rr.frames is None or ri.frames is None:
            break
        task = rr.scenes.task[n]
        fname = (
            f"{name.replace(' ', '_').replace('=', '')}_{task}_bank{rr.scenes.bank_index[n]}"
            f"_real{int(rr.succeeded[n])}_imag{int(ri.succeeded[n])}.mp4"
        )
        write_comparison(out / fname, [rr.frames[n : n + 1], ri.frames[n : n + 1]], scale)
        written.append(fname)
    return written


def success_source(args: Args) -> str:
    """How the imagined success was read, for the table's caption."""
    if args.state_source == "proprio":
        return (
            ", success by MetaWorld's rule on the robot state the proprio model "
            f"`{args.proprio_model}` integrates over the actions (`success: state`, "
            "`state_source: proprio`)."
        )
    return ", success from the state probe (`success: state`)."


def markdown(results: dict, args: Args, command: str, minutes: float) -> str:
    tasks, variants = args.tasks, args.variants
    lines = [
        f"Command: `{command}` ({minutes:.1f} min on this machine). {args.per_task} scenes per "
        f"task (held-out reset-bank entries), {args.steps} actions per episode, no early "
        "termination; success = success at any step; 95% percentile-bootstrap intervals "
        f"({args.n_boot} resamples). Imagined: "
        + (f"the model `{args.model}`, " if args.model else "the bundled model, ")
        + (f"scenes of `{args.reset_bank}`, " if args.reset_bank else "")
        + f"{results['meta']['num_steps']} DDIM steps, the reward head "
        f"`{results['meta']['reward_head']}`"
        + (success_source(args) if args.success == "state" else "."),
        "",
        "Agreement between imagined and real over the (policy, task) points "
        f"({results['agreement'][variants[0]]['success']['points']} points; intervals resample "
        "scenes within tasks):",
        "",
        "| imagined sampler | success Pearson | success Spearman | return Pearson "
        "| return Spearman | mean abs. success gap | episode agreement |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        s, r = results["agreement"][v]["success"], results["agreement"][v]["return"]
        lines.append(
            f"| {v} | {s['pearson']:.3f} [{s['pearson_lo']:.2f}, {s['pearson_hi']:.2f}] "
            f"| {s['spearman']:.3f} [{s['spearman_lo']:.2f}, {s['spearman_hi']:.2f}] "
            f"| {r['pearson']:.3f} [{r['pearson_lo']:.2f}, {r['pearson_hi']:.2f}] "
            f"| {r['spearman']:.3f} [{r['spearman_lo']:.2f}, {r['spearman_hi']:.2f}] "
            f"| {s['mean_abs_gap']:.3f} | {s['episode_agreement']:.3f} |"
        )
    head = "| policy | task | real | " + " | ".join(variants) + " |"
    for metric, fmt, title in (
        ("success", ".2f", "Success rate per policy and task (real, then each imagined sampler):"),
        ("return", ".0f", "Return per policy and task (mean [95% CI]; dataset units):"),
    ):
        lines += ["", title, "", head, "|" + "---|" * (3 + len(variants))]
        for p in results["real"]:
            for t in tasks:
                row = []
                for w in ["real", *variants]:
                    d = results[w][p][t]
                    lo, hi = d[metric + "_ci"]
                    row.append(f"{d[metric]:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]")
                lines.append("| " + " | ".join([p, t, *row]) + " |")
    return "\n".join(lines) + "\n"


def main(args: Args) -> dict:
    configure_threads()
    if args.quick:
        args.per_task, args.steps, args.sigmas = 2, 6, [0.0, 4.0]
        args.variants, args.n_boot, args.videos = ["plain"], 200, 1
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; known: {sorted(VARIANTS)}")
    t0 = time.time()
    out = Path(args.out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    env_kwargs = {}
    if args.model:
        env_kwargs["model"] = args.model
    if args.reward_head:
        env_kwargs["reward_head"] = args.reward_head
    if args.success:
        env_kwargs["success"] = args.success
    if args.state_source:
        env_kwargs["state_source"] = args.state_source
        if args.state_source == "proprio":
            env_kwargs["proprio_model"] = args.proprio_model
    if args.proprio:
        env_kwargs |= {"proprio_obs": True, "proprio_model": args.proprio_model}
    if args.reset_bank:
        env_kwargs["reset_bank"] = args.reset_bank
    if len(args.tasks) == 1:  # a one-task model or reward head then fits a many-task bank
        env_kwargs["task"] = args.tasks[0]
    base = ImaginedWorld(args.preset, batch_size=args.batch_size, **env_kwargs)
    scenes = scenes_from_bank(base.bank, args.tasks, args.per_task)
    real = RealWorld(batch_size=20, model=base.config.model, reset_bank=base.config.reset_bank,
                     proprio_obs=args.proprio)  # fmt: skip
    family = build_family(args, real, scenes)
    names = [p.name for p in family]
    if len(set(names)) != len(names):
        raise ValueError(f"policy names must be unique, got {names}")
    rolls: dict[str, dict[str, Rollouts]] = {"real": {}}
    for p in tqdm(family, desc="real world", mininterval=2):
        recorded = getattr(p, "recorded", None)  # expert plans: their real episodes (exact)
        rolls["real"][p.name] = recorded or real.run(p, scenes, args.steps, args.seed, True)
    real.close()
    num_steps = args.num_steps or base.config.sampling.get("num_steps")
    for v in args.variants:
        sampling = {**VARIANTS[v], **({"num_steps": num_steps} if num_steps else {})}
        world = ImaginedWorld(
            args.preset, args.batch_size, base.components, **env_kwargs, sampling=sampling
        )
        rolls[v] = {}
        for p in tqdm(family, desc=f"imagined ({v})", mininterval=2):
            rolls[v][p.name] = world.run(p, scenes, args.steps, args.seed, keep_frames=True)

    results: dict = {w: {} for w in rolls}
    for w, by_policy in rolls.items():
        for name, roll in by_policy.items():
            results[w][name] = summarize_rollouts(roll, args.tasks, args.n_boot, args.seed)
    groups = scenes.task
    results["agreement"] = {}
    for v in args.variants:
        results["agreement"][v] = {
            metric: agreement(
                np.stack([fn(rolls[v][n]) for n in names]),
                np.stack([fn(rolls["real"][n]) for n in names]),
                groups,
                n_boot=args.n_boot,
                seed=args.seed,
            )
            for metric, fn in (
                ("success", lambda r: r.succeeded.astype(float)),
                ("return", lambda r: r.returns),
            )
        }
    best = max(args.variants, key=lambda v: results["agreement"][v]["success"]["episode_agreement"])
    videos = disagreement_videos(rolls["real"], rolls[best], args.videos, out / "videos")
    results["meta"] = {
        "args": asdict(args),
        "scenes": scenes.bank_index.tolist(),
        "num_steps": num_steps,
        "reward_head": base.config.reward_head or "bundled",
        "videos_variant": best,
        "videos": videos,
        "minutes": (time.time() - t0) / 60,
    }
    scatter_plot(results, args.variants, args.tasks, out / "imagined_vs_real.png")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    command = "python experiments/policy_eval_study.py " + shlex.join(sys.argv[1:])
    table = markdown(results, args, command.strip(), results["meta"]["minutes"])
    (out / "table.md").write_text(table)
    print(table)
    if args.update_doc:
        update_block(args.update_doc, args.doc_key, table)
    return results


if __name__ == "__main__":
    main(parse_args(Args))
