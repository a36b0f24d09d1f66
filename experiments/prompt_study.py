"""Visual action prompts (issue 15, seed 004): action adaLN vs prompt channels vs prompt
ControlNet vs both, trained for the same CPU time from the same weights, scored in-domain
and on two tasks no run was trained on, with prompts from the true robot states and from
the learned proprio model.

1. **Data.** The runs train on ``--data`` (data/metaworld_v2: reach, push, pick-place, arm
   keypoints + state per frame, the workspace camera). The transfer experiment replays the
   test split of ``--transfer-data``: the same generator on 2 unseen tasks (their scripted
   experts exist in ``metaworld.policies``), made with data/metaworld_v2's camera,
   resolution, frames and action repeat (the study checks meta.json and, when missing,
   stops before training and prints the command for ``--data``):

       freeaction data metaworld data/metaworld_transfer --tasks drawer-open-v3 \\
           button-press-v3 --train 0 --val 0 --test 20 --frames 64 --action-repeat 4 \\
           --resolution 64 --camera workspace --random-walk-prob 0.25 --no-depth --workers 2

2. **Proprio model** (``--proprio``, actions -> arm keypoints, the ``vap`` env's) trained on
   ``--data`` when missing (``freeaction train-proprio --data data/metaworld_v2 --out
   runs/proprio --steps 4000``).
3. **Train** (``configs/prompts/study.yaml``: configs/v2/metaworld_v2_hourglass.yaml's
   recipe, checked) ``adaln`` (``model.prompt: none``), ``channels``, ``controlnet`` and
   ``both``, each warm-started from ``--init-from`` (the bundled model, world model v2, trained on
   the same 3 tasks; every prompt path starts as the identity) for ``--budget-minutes`` of
   CPU time: the step cost of each variant is measured once (``costs.json``, self-context
   imagination included) and its run gets ``budget / cost`` steps. Runs are resumable;
   finished ones (``done.json``) are skipped.
4. **Score** every run with experiments/world_model_fidelity.py (same episodes, noise and
   sampler - the env preset's - for every model; in-domain = ``--data``'s test split,
   transfer = ``--transfer-data``'s): once with prompts drawn from the stored keypoints
   (``true``) and once integrated by the proprio model from each episode's first state
   (``proprio``, what the vap env gives; the skeleton-quality experiment). Scores are
   reused while the runs and options are unchanged (``scores/<source>/key.json``).
5. **Report** (:mod:`freeaction_gym.evaluation.prompt_study_report`): PSNR / SSIM over the
   rollout, state-probe gripper error at steps 1/5/10/20/40 against the probe's floor on
   the same real frames, hand error and sharpness, 95% CIs over episodes, paired
   differences and ratios to ``adaln``, proprio - true prompts, the in-domain -> transfer
   gap, and issue 15's targets (the prompt model halves the gripper error at step 10
   in-domain; beats adaLN on the unseen tasks).

    # the three experiments (in-domain, transfer, skeleton quality) in one resumable command
    python experiments/prompt_study.py --budget-minutes 30 --update-doc docs/RESULTS.md
    python experiments/prompt_study.py --transfer-data none --prompts true   # in-domain only
    python experiments/prompt_study.py --score-only        # re-score / re-report the runs
    python experiments/prompt_study.py --quick --data D --transfer-data T --out O  # seconds

Cost at the defaults (2 cores, CPU s per training step measured once on this machine at 1
thread: adaln 2.8, channels 2.7, controlnet 3.3, both 3.3): 4 x 30 CPU minutes of training
(~550-650 steps each), the step costs ~4 CPU minutes, the prompt cache of the 1,500 train
episodes ~8 minutes once, scoring 7 model rows x 80 episodes ~20-30 minutes.

Outputs in ``--out``: ``runs/<variant>/`` (training runs), ``costs.json``,
``scores/{true,proprio}/`` (the fidelity evaluation's outputs and strips), ``metrics.json``
(summaries), ``results.md`` and ``figures/``. ``--update-doc FILE`` replaces the block
between ``<!-- prompt-study:begin/end -->`` there and copies what it shows into
``--doc-figures`` (default ``<FILE's folder>/figures/prompt_study``, committed with FILE):
the ``figures/`` plots, linked at the block's end, ``results.md`` and the in-domain strip of
the true prompts as ``strip_in-domain_true.png`` (for the hand-written text; the transfer
strip stays in ``--out``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when OpenMP starts

import json  # noqa: E402
import shlex  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import NamedTuple  # noqa: E402

import world_model_fidelity as fidelity  # noqa: E402  (experiments/, this script's folder)
import yaml  # noqa: E402

from freeaction_gym.assets import resolve_model_path  # noqa: E402
from freeaction_gym.data.episodes import read_meta  # noqa: E402
from freeaction_gym.evaluation.prompt_study_report import (  # noqa: E402
    BASELINE,
    dataset_tables,
    gap_table,
    gripper_figure,
    load_scores,
    merge_sources,
    prompt_strip,
    skeleton_table,
    summarize,
    targets,
)
from freeaction_gym.training.config import TrainConfig, load_config  # noqa: E402
from freeaction_gym.training.study_runs import (  # noqa: E402
    QUICK_RUN,
    plan_steps,
    prompts_missing,
    train_run,
)
from freeaction_gym.training.train_proprio import TrainProprioArgs, train_proprio  # noqa: E402
from freeaction_gym.utils.args import parse_args  # noqa: E402
from freeaction_gym.utils.markdown import (  # noqa: E402
    copy_for_doc,
    doc_figures_dir,
    image_links,
    update_block,
)


class Variant(NamedTuple):
    prompt: str
    """``model.prompt`` of the run."""
    label: str


VARIANTS = {
    "adaln": Variant("none", "action adaLN"),
    "channels": Variant("channels", "prompt channels"),
    "controlnet": Variant("controlnet", "prompt ControlNet"),
    "both": Variant("both", "channels + ControlNet"),
}
LABELS = {name: v.label for name, v in VARIANTS.items()}  # the report's row names
TRANSFER_TASKS = ("drawer-open-v3", "button-press-v3")
SAME_DATA = ("frames", "action_repeat", "resolution", "camera")
"""meta.json config fields the transfer data must share with the training data."""
# --quick: a tiny network (the warm-start model is trained on the fly, see main)
QUICK_MODEL = ("model.hidden_size=32", "model.depth=2", "model.num_heads=2",
               "model.stem_channels=[4,8,8]")  # fmt: skip


@dataclass
class Args:
    """Action adaLN vs visual action prompts (channels, ControlNet, both) at equal CPU time."""

    data: str = "data/metaworld_v2"
    """Dataset the variants train on; its test split is the in-domain evaluation."""
    transfer_data: str = "data/metaworld_transfer"
    """Dataset of unseen tasks whose test split is the transfer evaluation ('none': skip)."""
    out: str = "runs/prompt_study"
    """Study directory (runs/, costs.json, scores/, results, figures/)."""
    config: str = "configs/prompts/study.yaml"
    """Training config of every variant (model.prompt and optim.steps set per run)."""
    base_config: str = "configs/v2/metaworld_v2_hourglass.yaml"
    """The action model's recipe, whose model section --config must repeat."""
    init_from: str | None = None
    """Weights every run starts from (None: bundled:metaworld_default; --quick: a tiny model
    trained on --data in <out>/init)."""
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    """Rows to train and score (see VARIANTS; adaln is the baseline of the paired columns)."""
    budget_minutes: float = 30.0
    """CPU minutes (process time, all threads) of training per run: steps = budget / the
    variant's measured step cost (cached in costs.json: delete it after changing the configs
    or --set)."""
    set: list[str] = field(default_factory=list)
    """Overrides of every run (e.g. optim.threads=1)."""
    score_only: bool = False
    """Train nothing; score the finished runs."""
    proprio: str | None = None
    """Proprio model directory of the proprio prompts, trained on --data when missing
    (None: runs/proprio; --quick: <out>/proprio)."""
    proprio_steps: int = 4000
    """Optimiser steps of a missing proprio model (5 wall minutes at most)."""
    probe: str | None = None
    """State probe directory, trained on --data when missing (None: checkpoints/probe_v2;
    --quick: <out>/probe)."""
    prompts: list[str] = field(default_factory=lambda: ["true", "proprio"])
    """Prompt sources scored: true (stored keypoints) and/or proprio (integrated)."""
    episodes: int = 40
    """Test episodes replayed per dataset (a fixed seeded subset)."""
    horizon: int = 40
    """Imagined steps per replay (open loop, real actions)."""
    sampling: list[str] = field(default_factory=list)
    """Sampling overrides for every model (world_model_fidelity.py --sampling); default:
    the env preset's sampler."""
    seed: int = 0
    """Noise seed; episode i always draws from generator (seed, i), in every run."""
    batch: int = 8
    """Episodes per denoiser batch."""
    update_doc: str | None = None
    """Markdown file whose <!-- prompt-study:begin/end --> block gets the tables."""
    doc_figures: str | None = None
    """Folder the doc's figures and results.md are copied to (None: <--update-doc's
    folder>/figures/prompt_study); the block links the copies."""
    quick: bool = False
    """Smoke mode: tiny networks, a few steps per run, 3 episodes (seconds)."""


# -- configs and data --------------------------------------------------------------------------


def run_config(args: Args, name: str, steps: int, init: str | None, out: Path) -> TrainConfig:
    """The training config of one run (``steps`` optimiser steps from ``init``)."""
    quick = [*QUICK_MODEL, *QUICK_RUN] if args.quick else []
    over = [
        f"model.prompt={VARIANTS[name].prompt}", *quick, *args.set, f"data.root={args.data}",
        f"loop.init_from={init if init else 'null'}", f"optim.steps={steps}",
        f"loop.output={out}",
    ]  # fmt: skip
    return load_config(args.config, over)


def check_recipe(args: Args) -> None:
    """Exit unless --config's model section is --base-config's (prompt options aside)."""
    drop = ("prompt", "controlnet_depth")
    study, base = (
        {k: v for k, v in load_config(p).model.items() if k not in drop}
        for p in (args.config, args.base_config)
    )
    if study != base:
        diff = sorted(k for k in study.keys() | base.keys() if study.get(k) != base.get(k))
        raise SystemExit(f"{args.config}'s model section differs from {args.base_config}'s: {diff}")


def transfer_command(data: str, out: str) -> str:
    """The ``freeaction data metaworld`` command of the transfer data: the unseen tasks'
    test episodes with ``data``'s camera, resolution, frames, action repeat and share of
    random-walk episodes (meta.json)."""
    c = read_meta(data).get("config", {})
    return shlex.join([
        "freeaction", "data", "metaworld", out, "--tasks", *TRANSFER_TASKS,
        "--train", "0", "--val", "0", "--test", "20",
        "--frames", str(c.get("frames", 64)), "--action-repeat", str(c.get("action_repeat", 4)),
        "--resolution", str(c.get("resolution", 64)), "--camera", str(c.get("camera", "workspace")),
        "--random-walk-prob", f"{c.get('random_walk_prob', 0.0):g}", "--no-depth", "--workers", "2",
    ])  # fmt: skip


def check_transfer(data: str, transfer: str, prompted: bool = True) -> list[str]:
    """Exit when the transfer data is missing (naming the command), was made with another
    camera, resolution, frame count or action repeat than ``data`` or (``prompted``: prompt
    models are scored) stores no keypoints; notes on its tasks."""
    if not (Path(transfer) / "meta.json").is_file():
        raise SystemExit(
            f"no transfer data at {transfer}: make it with (1-2 CPU minutes)\n"
            f"    {transfer_command(data, transfer)}\nor pass --transfer-data none"
        )
    a, b = read_meta(data), read_meta(transfer)
    ca, cb = a.get("config", {}), b.get("config", {})
    differ = [k for k in SAME_DATA if ca.get(k) != cb.get(k)]
    differ += ["camera pose"] * (a.get("camera") != b.get("camera"))
    if differ:
        raise SystemExit(f"{transfer} was made with another {differ} than {data}")
    if prompted and (why := prompts_missing(transfer, "test")):
        raise SystemExit(f"prompt models cannot be scored on {transfer}: {why}")
    seen = sorted(set(ca.get("tasks") or []) & set(cb.get("tasks") or []))
    if seen:
        return [f"Transfer tasks {cb.get('tasks')} overlap the training tasks: {seen}."]
    return [f"Transfer: tasks {cb.get('tasks')}, none in the training data ({ca.get('tasks')})."]


# -- scoring ----------------------------------------------------------------------------------


def score(args: Args, source: str, runs: dict[str, dict], transfer: str | None, out: Path) -> Path:
    """world_model_fidelity.py on the runs ``{name: done record}`` with ``source`` prompts,
    into ``out``; skipped when ``out/key.json`` says it was made from the same runs and
    options."""
    models = [f"{n}={Path(args.out) / 'runs' / n / 'model'}" for n in runs]
    argv = [
        "--models", *models, "--data", args.data, "--split", "test", "--probe", args.probe,
        "--prompts", source, "--episodes", str(args.episodes), "--horizon", str(args.horizon),
        "--seed", str(args.seed), "--batch", str(args.batch), "--out", str(out),
    ]  # fmt: skip
    argv += ["--proprio", args.proprio] if source == "proprio" else []
    argv += ["--fresh", transfer] if transfer else []
    argv += ["--sampling", *args.sampling] if args.sampling else []
    argv += ["--quick"] if args.quick else []
    key = {"argv": argv, "runs": runs}
    if (out / "per_clip.json").is_file() and (out / "key.json").is_file():
        if json.loads((out / "key.json").read_text()) == key:
            print(f"[prompt-study] scores/{source}: up to date", flush=True)
            return out
    print(f"[prompt-study] scoring {list(runs)} with {source} prompts", flush=True)
    fidelity.main(argv)
    (out / "key.json").write_text(json.dumps(key, indent=1) + "\n")
    return out


# -- main -------------------------------------------------------------------------------------


def train_variants(args: Args, names: list[str], out: Path) -> None:
    """The proprio model if missing, then every run for the same CPU time from one start."""
    if "proprio" in args.prompts and not (Path(args.proprio) / "config.json").is_file():
        small = {"steps": 20, "hidden": 32, "depth": 2} if args.quick else {}
        train_proprio(TrainProprioArgs(data=args.data, out=args.proprio,
                                       **({"steps": args.proprio_steps} | small)))  # fmt: skip
    if args.score_only:
        return
    init = args.init_from or ("" if args.quick else "bundled:metaworld_default")
    if not init:  # --quick: a tiny action model stands in for the long run's weights
        train_run(run_config(args, BASELINE, 3, None, out / "init"))
        init = str((out / "init" / "model").resolve())
    if not (resolve_model_path(init) / "config.json").is_file():
        raise SystemExit(f"--init-from {init}: no model there (config.json)")
    plan = plan_steps(
        out / "costs.json", names, lambda n: run_config(args, n, 1, init, out / "runs" / n),
        args.data, args.budget_minutes, measure_steps=1 if args.quick else 3,
    )  # fmt: skip
    for n in names:
        print(f"[prompt-study] {n}: {plan[n]} steps", flush=True)
        train_run(run_config(args, n, plan[n], init, out / "runs" / n))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(Args, argv)
    out = Path(args.out)
    if args.quick:
        args.budget_minutes = min(args.budget_minutes, 0.002)
        args.episodes = min(args.episodes, 3)
    args.probe = args.probe or str(out / "probe" if args.quick else "checkpoints/probe_v2")
    args.proprio = args.proprio or str(out / "proprio" if args.quick else "runs/proprio")
    unknown = sorted(set(args.variants) - set(VARIANTS) | set(args.prompts) - {"true", "proprio"})
    if unknown:
        raise SystemExit(f"unknown variants / prompt sources {unknown}")
    out.mkdir(parents=True, exist_ok=True)
    check_recipe(args)
    names = list(args.variants)
    prompted = any(VARIANTS[n].prompt != "none" for n in names)
    if prompted and (why := prompts_missing(args.data)):
        raise SystemExit(f"prompt models cannot train or be scored on {args.data}: {why}")
    transfer = None if args.transfer_data.lower() in ("", "none") else args.transfer_data
    notes = check_transfer(args.data, transfer, prompted) if transfer else []

    # 1-3: the proprio model, the shared warm start, every run for the same CPU time
    train_variants(args, names, out)

    # 4: score the finished runs with both prompt sources
    runs = {}
    for n in names:
        done = out / "runs" / n / "done.json"
        if done.is_file():
            runs[n] = json.loads(done.read_text())
        else:
            notes.append(f"{n} not trained yet (no done.json): not scored")
    if not runs:
        raise SystemExit(f"no finished runs in {out / 'runs'}")
    blobs = []
    for source in args.prompts:  # adaLN takes no prompts: scored once (with true if asked)
        own = source == "true" or "true" not in args.prompts
        scored = {n: r for n, r in runs.items() if own or VARIANTS[n].prompt != "none"}
        if scored:
            d = score(args, source, scored, transfer, out / "scores" / source)
            blobs.append(load_scores(d, source))
    try:
        data = merge_sources(blobs)
    except ValueError as err:
        raise SystemExit(str(err)) from None

    # 5: tables, figures, doc
    summaries = {label: summarize(d) for label, d in data.items()}
    costs = json.loads((out / "costs.json").read_text()) if (out / "costs.json").is_file() else {}
    cost_txt = ", ".join(f"{n} {costs[n]:.2f}" for n in names if n in costs)
    starts = sorted({str(yaml.safe_load((out / "runs" / n / "config.yaml").read_text())["loop"]
                         ["init_from"]) for n in runs})  # fmt: skip
    notes.append(
        f"Each run: {args.budget_minutes:g} CPU minutes of training (CPU s/step: {cost_txt}) "
        f"from `{', '.join(starts)}` with `{args.config}`; scored by "
        f"experiments/world_model_fidelity.py ({', '.join(args.prompts)} prompts; commands in "
        f"`{out}/scores/*/results.md`), probe `{args.probe}`, proprio model `{args.proprio}`. "
        "Cells: mean ± 95% CI half-width over episodes; ratios: percentile bootstrap over "
        "episode pairs. The floor is the probe's error on the same real frames."
    )
    lines = []
    for label, d in data.items():
        lines += [*dataset_tables(label, d, summaries[label], runs, LABELS), ""]
    for extra in (skeleton_table(summaries, LABELS), gap_table(summaries, LABELS)):
        lines += [*extra, ""] if extra else []
    goals = targets(summaries, LABELS)
    lines += ["#### Targets (issue 15)", "", *goals, "", *[f"- {n}" for n in notes]]
    text = "\n".join(lines)
    figs = [gripper_figure(summaries, out / "figures" / "gripper_vs_step.png")]
    for label, d in data.items():  # the skeletons per dataset
        proprio = args.proprio if "proprio" in args.prompts else None
        figs.append(prompt_strip(d, out / "figures" / f"prompts_{label}.png", args.seed, proprio))
    (out / "results.md").write_text(text + "\n")
    (out / "metrics.json").write_text(json.dumps(
        {"args": asdict(args), "runs": runs, "summary": summaries, "notes": notes}, indent=1,
        default=float) + "\n")  # fmt: skip
    if args.update_doc:  # link copies next to the doc: --out is not committed
        dest = doc_figures_dir(args.update_doc, "prompt_study", args.doc_figures)
        copies = copy_for_doc({p.name: p for p in figs}, dest)
        strip = data.get("in-domain", {}).get("strips", {}).get("true")  # real vs every model
        extra = {"strip_in-domain_true.png": strip} if strip and strip.is_file() else {}
        copy_for_doc(extra | {"results.md": out / "results.md"}, dest)
        links = image_links(args.update_doc, copies)
        update_block(args.update_doc, "prompt-study", text + "\n\n" + "\n".join(links))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
