"""AVID study (issue 17, seed 002): adapt a frozen action-free video model into a world
model, against the seed's baselines, at 10%, 30% and 100% of the action-labelled data.

1. **Pretrain** the action-free model if ``<out>/pretrain`` is not finished
   (``configs/avid/pretrain.yaml``: the v2 architecture, ``null_action_prob: 1``, 13
   MetaWorld tasks' video). Make its data first:

       freeaction data metaworld data/metaworld_multitask --tasks reach-v3 push-v3 \\
           pick-place-v3 button-press-topdown-v3 door-open-v3 drawer-close-v3 drawer-open-v3 \\
           pick-place-wall-v3 push-back-v3 push-wall-v3 reach-wall-v3 sweep-into-v3 \\
           window-open-v3 --train 120 --val 5 --test 5 --no-depth --random-walk-prob 0.25 \\
           --train-layout-seeds 10 --seed 17 --workers 2

2. **Train every variant at every data fraction** of ``--data`` (data/metaworld_v2's 3 tasks;
   ``data.fraction``: a fixed per-task subset of the train split, nested across fractions)
   for the same CPU time (``--budget-minutes`` of process time, all threads): the step cost
   of each variant is measured once on random batches (``costs.json``) and its run gets
   ``budget / cost`` steps. No weight access (``configs/avid/adapter.yaml``, one adapter
   network, so equal trainable parameters up to the mask channel and side input): ``avid``,
   the ablations ``no_mask`` and ``no_conditioning``, the baselines ``poe`` (product of
   experts), ``action_cfg`` (action CFG across the two models) and ``scratch`` (the adapter
   alone). Two fixes of ours for the mask saturating on the frozen model (the adapter then
   stops learning): ``avid_aux`` adds the loss on the adapter's own prediction
   (``avid.adapter_loss_weight``), ``avid_open`` starts the mask at 0.1 instead of 0.5
   (``avid.mask_init``). ``poe`` and ``action_cfg`` train their adapter exactly as
   ``scratch`` (alone), so their runs reuse the scratch run's adapter (``derived_from`` in
   ``done.json``). Weight access, upper bounds (``configs/avid/finetune.yaml``): ``finetune``
   (the whole pretrained model with its action embedding) and ``controlnet`` (the same plus
   a zero-initialised ControlNet branch, :mod:`freeaction_gym.models.controlnet`, which reads
   visual action prompts: skeletons of the episodes' stored arm keypoints, so it sees the
   true arm pose of every frame - an oracle beyond the actions; its base is not frozen, and
   a branch fed by the actions alone, as the seed's, does not exist here). Runs are
   resumable; finished ones (``done.json``) are skipped.
3. **Score** every run on the same held-out clips and noise (``--split`` of ``--data``, open
   loop from 2 real frames for ``--horizon`` steps, plain DDIM without guidance or
   truncation): PSNR and SSIM over the imagined frames, the Action Error Ratio (an
   inverse-dynamics model's error on generated frame pairs / on real ones, ``--idm``, trained
   if missing), the state probe's gripper error (``--probe``), 95% CIs over clips and paired
   differences to ``scratch`` at the same fraction; for the mask modes the mask over a
   rollout (figure) and the mean mask per diffusion step on moving vs static pixels.
4. **Report** (:mod:`freeaction_gym.evaluation.avid_study_report`): tables, the seed's claim
   checked per data fraction, figures.

    python experiments/avid_study.py --budget-minutes 20 --update-doc docs/RESULTS.md
    python experiments/avid_study.py --variants avid scratch --fractions 0.1   # a subset
    python experiments/avid_study.py --score-only          # re-score what is trained
    python experiments/avid_study.py --quick --data D --out O   # the pipeline in seconds

Outputs in ``--out``: ``pretrain/``, ``runs/<variant>_f<fraction>/`` (training runs and
their ``scores.json``), ``costs.json``, ``metrics.json`` (summaries), ``per_clip.json``,
``results.md`` and ``figures/``. ``--update-doc FILE`` replaces the block between
``<!-- avid-study:begin/end -->`` (``--doc-key``) there and copies the figures it links into
``--doc-figures`` (default ``<FILE's folder>/figures/avid_study``, committed with FILE).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when OpenMP starts

import json  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from freeaction_gym.evaluation.action_error import (  # noqa: E402
    InverseDynamicsModel,
    action_error_ratio,
    clip_action_errors,
)
from freeaction_gym.evaluation.avid_masks import (  # noqa: E402
    collect_masks,
    mask_statistics,
    save_mask_rollout,
)
from freeaction_gym.evaluation.avid_study_report import (  # noqa: E402
    figures,
    run_name,
    summarize,
    tables,
)
from freeaction_gym.evaluation.replay import (  # noqa: E402
    STEPS,
    ReplaySet,
    evaluate_replay,
    load_replay_set,
)
from freeaction_gym.evaluation.rollout import max_chunk  # noqa: E402
from freeaction_gym.rewards.state_probe import StateProbe  # noqa: E402
from freeaction_gym.training import study_runs  # noqa: E402
from freeaction_gym.training.avid import combine_trained_alone  # noqa: E402
from freeaction_gym.training.config import TrainConfig, load_config  # noqa: E402
from freeaction_gym.training.data import episode_prompts  # noqa: E402
from freeaction_gym.training.study_runs import QUICK_RUN, prompts_missing, train_run  # noqa: E402
from freeaction_gym.training.train_idm import TrainIDMArgs, train_idm  # noqa: E402
from freeaction_gym.training.train_probe import TrainProbeArgs, train_probe  # noqa: E402
from freeaction_gym.utils.args import parse_args  # noqa: E402
from freeaction_gym.utils.markdown import (  # noqa: E402
    copy_for_doc,
    doc_figures_dir,
    image_links,
    update_block,
)
from freeaction_gym.utils.threads import configure_threads  # noqa: E402
from freeaction_gym.world_model import WorldModel  # noqa: E402


@dataclass(frozen=True)
class Variant:
    base: str
    """``adapter`` (configs/avid/adapter.yaml) or ``finetune`` (configs/avid/finetune.yaml)."""
    overrides: tuple[str, ...]
    label: str


VARIANTS = {
    "avid": Variant("adapter", ("avid.mode=avid",), "AVID (mask, sees the frozen output)"),
    "avid_aux": Variant(
        "adapter",
        ("avid.mode=avid", "avid.adapter_loss_weight=1.0"),
        "AVID + loss on the adapter's own prediction (ours)",
    ),
    "avid_open": Variant(
        "adapter", ("avid.mode=avid", "avid.mask_init=0.1"), "AVID, mask initialised at 0.1"
    ),
    "no_mask": Variant("adapter", ("avid.mode=no_mask",), "No Mask (pre + adapt)"),
    "no_conditioning": Variant(
        "adapter", ("avid.mode=no_conditioning",), "No Conditioning (adapter blind to pre)"
    ),
    "poe": Variant("adapter", ("avid.mode=poe",), "product of experts"),
    "action_cfg": Variant("adapter", ("avid.mode=action_cfg",), "action CFG across models"),
    "scratch": Variant("adapter", ("avid.mode=scratch",), "from scratch, adapter size"),
    "finetune": Variant("finetune", (), "full fine-tune (weight access)"),
    "controlnet": Variant(
        "finetune", ("model.prompt=controlnet",), "ControlNet + fine-tune (oracle skeletons)"
    ),
}
LABELS = {name: v.label for name, v in VARIANTS.items()}  # the report's row names
DERIVED = ("poe", "action_cfg")
"""Train their adapter exactly as ``scratch`` (alone; the frozen model joins at sampling):
their runs reuse the same-fraction scratch run's adapter instead of training it again."""
MASK_MODES = ("avid", "no_conditioning")
# --quick: tiny networks and runs (the pretrained / fine-tuned model, the adapters, every run)
QUICK_MODEL = {
    "finetune": ("model.hidden_size=32", "model.depth=2", "model.num_heads=2"),
    "adapter": ("model.hidden_size=16", "model.depth=2", "model.num_heads=2"),
}


@dataclass
class Args:
    """AVID adapters on a frozen action-free model vs baselines at 10/30/100% of the data."""

    data: str = "data/metaworld_v2"
    """Action-labelled dataset (3 tasks) the variants train on and are scored on."""
    pretrain_data: str | None = None
    """Dataset of the action-free model (default: configs/avid/pretrain.yaml's data.root)."""
    out: str = "runs/avid"
    """Study directory (pretrain/, runs/, costs.json, results, figures/)."""
    pretrain_config: str = "configs/avid/pretrain.yaml"
    adapter_config: str = "configs/avid/adapter.yaml"
    finetune_config: str = "configs/avid/finetune.yaml"
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    """Rows to train and score (see VARIANTS)."""
    fractions: list[float] = field(default_factory=lambda: [0.1, 0.3, 1.0])
    """Shares of the train split (data.fraction)."""
    budget_minutes: float = 20.0
    """CPU minutes (process time, all threads) of training per run: steps = budget / the
    variant's measured step cost (cached in costs.json: delete it after changing the
    configs or --set)."""
    pretrain_set: list[str] = field(default_factory=list)
    """Overrides of the pretraining config (e.g. optim.steps=6000)."""
    set: list[str] = field(default_factory=list)
    """Overrides of every variant run (e.g. optim.threads=1)."""
    score_only: bool = False
    """Train nothing; score the finished runs."""
    probe: str = "checkpoints/probe_v2"
    """State probe directory (trained on --data when missing)."""
    idm: str = "runs/idm_v2"
    """Inverse-dynamics model of the Action Error Ratio (trained on --data when missing)."""
    helper_minutes: float = 8.0
    """Training budget of a missing probe or IDM (wall minutes)."""
    split: str = "test"
    """Held-out split of --data that is scored."""
    episodes: int | None = None
    """Episodes scored (a fixed seeded subset); None: all of the split."""
    horizon: int = 20
    """Imagined steps per clip (open loop, real actions)."""
    num_steps: int = 4
    """DDIM steps per prediction when scoring."""
    mask_steps: int = 10
    """DDIM steps of the mask rollouts (the mask per diffusion step)."""
    mask_clips: int = 6
    """Clips of the mask rollouts (spread over the scored ones)."""
    seed: int = 0
    """Noise seed; clip i always draws from generator (seed, i), in every run."""
    batch: int = 8
    """Clips per denoiser batch."""
    update_doc: str | None = None
    """Markdown file whose <!-- KEY:begin/end --> block gets the tables (``--doc-key``)."""
    doc_key: str = "avid-study"
    """The block's marker name: another study (e.g. on another frozen model) keeps its own
    block beside the first (give it its own ``--doc-figures`` too)."""
    doc_figures: str | None = None
    """Folder the doc's figures are copied to (None: <--update-doc's
    folder>/figures/avid_study); the block links the copies."""
    quick: bool = False
    """Smoke mode: tiny networks, a few steps per run, 3 clips (seconds)."""


# -- configs ----------------------------------------------------------------------------------


def pretrain_config(args: Args) -> TrainConfig:
    over = [f"loop.output={Path(args.out) / 'pretrain'}"]
    if args.pretrain_data:
        over.append(f"data.root={args.pretrain_data}")
    if args.quick:
        over += [*QUICK_MODEL["finetune"], *QUICK_RUN, "optim.steps=3"]
    return load_config(args.pretrain_config, [*over, *args.pretrain_set])


def variant_config(args: Args, name: str, fraction: float, steps: int, frozen: Path):
    """The training config of one run (``steps`` optimiser steps)."""
    v = VARIANTS[name]
    path = args.adapter_config if v.base == "adapter" else args.finetune_config
    link = f"avid.frozen={frozen}" if v.base == "adapter" else f"loop.init_from={frozen}"
    quick = [*QUICK_MODEL[v.base], *QUICK_RUN] if args.quick else []
    over = [
        *v.overrides, *quick, *args.set, link, f"data.root={args.data}",
        f"data.fraction={fraction}", f"optim.steps={steps}",
        f"loop.output={Path(args.out) / 'runs' / run_name(name, fraction)}",
    ]  # fmt: skip
    return load_config(path, over)


# -- equal CPU time ---------------------------------------------------------------------------


def plan_steps(args: Args, names: list[str], frozen: Path) -> dict[str, int]:
    """Steps per variant for ``--budget-minutes`` of CPU time (costs cached in costs.json)."""
    return study_runs.plan_steps(
        Path(args.out) / "costs.json", names, lambda n: variant_config(args, n, 1.0, 1, frozen),
        args.data, args.budget_minutes, measure_steps=1 if args.quick else 3,
    )  # fmt: skip


def derive_run(runs: Path, name: str, fraction: float, frozen: Path) -> None:
    """``runs/<name>_f<fraction>`` (``poe`` / ``action_cfg``) from the finished scratch run
    of that fraction: its adapter combined with the frozen model, its config with the mode
    and output changed, its ``done.json`` plus ``derived_from``. Nothing without it."""
    src, dst = runs / run_name("scratch", fraction), runs / run_name(name, fraction)
    if not (src / "done.json").is_file():
        return
    done = json.loads((src / "done.json").read_text())
    if (dst / "done.json").is_file() and json.loads((dst / "done.json").read_text()) == (
        done | {"derived_from": src.name}
    ):
        return
    world = combine_trained_alone(WorldModel.from_pretrained(src / "model"), name, frozen)
    world.save_pretrained(dst / "model")
    cfg = yaml.safe_load((src / "config.yaml").read_text())
    cfg["avid"]["mode"], cfg["loop"]["output"] = name, str(dst)
    (dst / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (dst / "done.json").write_text(json.dumps(done | {"derived_from": src.name}, indent=2) + "\n")
    print(f"[avid-study] {dst.name}: the adapter of {src.name} ({name})", flush=True)


# -- scoring ----------------------------------------------------------------------------------


def helper_models(args: Args) -> tuple[StateProbe, InverseDynamicsModel]:
    """The state probe and the IDM, each trained on --data's real frames when missing."""
    small = {"steps": 20, "eval_every": 10, "channels": [8, 8], "hidden": 16} if args.quick else {}
    if not (Path(args.probe) / "config.json").is_file():
        train_probe(TrainProbeArgs(args.data, args.probe, max_minutes=args.helper_minutes, **small))
    if not (Path(args.idm) / "config.json").is_file():
        train_idm(TrainIDMArgs(args.data, args.idm, max_minutes=args.helper_minutes, **small))
    return StateProbe.from_pretrained(args.probe), InverseDynamicsModel.from_pretrained(args.idm)


def with_prompts(replay: ReplaySet, root: str, split: str) -> ReplaySet:
    """The clips with every frame's skeleton prompt from the episodes' stored keypoints."""
    clips, f = replay.clips, replay.clips.frames.shape[1]
    paths = [Path(root) / split / name for name in dict.fromkeys(clips.episodes)]
    videos = dict(zip([p.name for p in paths], episode_prompts(root, paths), strict=True))
    prompts = np.stack(
        [videos[e][s : s + f].numpy() for e, s in zip(clips.episodes, clips.starts, strict=True)]
    )
    return ReplaySet(clips, replay.states, replay.num_context, prompts=prompts)


def score_run(world: WorldModel, replay: ReplaySet, probe, idm, args: Args, figure: Path) -> dict:
    """Per-clip scores (N,) of one model, plus mask statistics and the mask-over-a-rollout
    ``figure`` for the mask modes."""
    spec = {"scheduler": "ddim", "guidance": {"mode": "none"}, "truncation": {"mode": "none"}}
    n = world.num_context
    own = replay.for_context(n)
    steps = [k for k in STEPS if k <= own.horizon]
    sampling = lambda k: world.default_sampling(k, num_steps=args.num_steps, **spec)  # noqa: E731
    res = evaluate_replay(world, replay, sampling, probe, steps, None, args.seed, args.batch)
    h, real, actions = own.horizon, own.clips.frames, own.clips.actions
    out = {
        "psnr": res.scores["psnr_rollout"][h],
        "ssim": res.scores["ssim_rollout"][h],
        "aer": action_error_ratio(idm, res.imagined, real, actions, n),
        "idm_error": clip_action_errors(idm, res.imagined, actions=actions, num_context=n),
    }
    if "gripper" in res.scores:  # mean over the scored steps
        out["gripper"] = np.mean([res.scores["gripper"][k] for k in steps], axis=0)
    masks = None
    if getattr(world.dit.config, "mode", None) in MASK_MODES:
        pick = np.unique(np.linspace(0, len(real) - 1, args.mask_clips).round().astype(int))
        cfg = world.default_sampling(max_chunk(world), num_steps=args.mask_steps, **spec)
        trace = collect_masks(world, real[pick], actions[pick], cfg, args.seed)
        masks = {k: v.tolist() for k, v in mask_statistics(trace, real[pick]).items()}
        save_mask_rollout(figure, trace, real[pick], 0, figure.stem)
    return {"scores": {k: np.asarray(v, float).tolist() for k, v in out.items()}, "masks": masks}


def scored(run_dir: Path, key: dict, compute) -> dict:
    """``run_dir/scores.json`` when it was made with ``key``; else ``compute()`` (saved)."""
    path = run_dir / "scores.json"
    if path.is_file():
        blob = json.loads(path.read_text())
        if blob.get("key") == key:
            return blob
    blob = compute() | {"key": key}
    path.write_text(json.dumps(blob) + "\n")
    return blob


# -- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(Args, argv)
    if args.quick:
        args.pretrain_data = args.pretrain_data or args.data
        args.budget_minutes = min(args.budget_minutes, 0.002)
        args.episodes, args.horizon = args.episodes or 3, min(args.horizon, 8)
        args.num_steps, args.mask_steps, args.mask_clips = 2, 3, 2
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pre = pretrain_config(args)
    frozen = Path(pre.loop.output).resolve() / "model"
    missing = not (Path(pre.data.root) / "meta.json").is_file()
    if not args.score_only and missing and not (frozen.parent / "done.json").is_file():
        raise SystemExit(
            f"no pretraining data at {pre.data.root}: make it with the command in "
            f"{args.pretrain_config}'s header (or pass --pretrain-data)"
        )
    notes = []
    names = list(args.variants)
    if "controlnet" in names and (why := prompts_missing(args.data)):
        names.remove("controlnet")
        notes.append(f"ControlNet row skipped: {why}")
    runs = [(v, f) for v in names for f in args.fractions]

    # 1 + 2: the action-free model, then every run for the same CPU time
    if not args.score_only:
        train_run(pre)
        if "finetune" in [VARIANTS[n].base for n in names]:
            same = variant_config(args, "finetune", 1.0, 1, frozen).model == pre.model
            if not same:
                raise SystemExit(f"{args.finetune_config}'s model section must be the pretrained's")
        trained = [n for n in names if n not in DERIVED]
        if len(trained) < len(names) and "scratch" not in trained:
            trained.append("scratch")
        plan = plan_steps(args, trained, frozen)
        for v, f in [(v, f) for v in trained for f in args.fractions]:
            print(f"[avid-study] {run_name(v, f)}: {plan[v]} steps", flush=True)
            train_run(variant_config(args, v, f, plan[v], frozen))
    for v, f in runs:
        if v in DERIVED:
            derive_run(out / "runs", v, f, frozen)

    # 3: score every finished run on the same clips
    configure_threads(None if args.quick else 2)
    probe, idm = helper_models(args)
    n_max = max(1, pre.model.get("num_context_frames", 1))
    replay = load_replay_set(args.data, args.split, n_max, args.horizon, args.episodes, args.seed)
    scoring = ("data", "split", "episodes", "horizon", "num_steps", "mask_steps", "mask_clips")
    key = {k: getattr(args, k) for k in (*scoring, "seed", "probe", "idm")}
    results, prompted = {}, None
    for v, f in runs:
        run_dir = out / "runs" / run_name(v, f)
        if not (run_dir / "done.json").is_file():
            notes.append(f"{run_name(v, f)} not trained yet (no done.json): not scored")
            continue
        done = json.loads((run_dir / "done.json").read_text())
        world = WorldModel.from_pretrained(run_dir / "model")
        if world.takes_prompts and prompted is None:
            prompted = with_prompts(replay, args.data, args.split)
        data = prompted if world.takes_prompts else replay
        fig = out / "figures" / f"mask_rollout_{run_name(v, f)}.png"
        blob = scored(run_dir, key | done, partial(score_run, world, data, probe, idm, args, fig))
        results[run_name(v, f)] = blob | done | {"variant": v, "fraction": f}
    real_err = clip_action_errors(idm, replay.clips.frames, replay.clips.actions, n_max)
    notes.append(
        f"Scored on {len(replay.clips.frames)} {args.split} clips of {args.data} "
        f"({args.horizon} imagined steps from {n_max} real frames, DDIM {args.num_steps} steps, "
        f"no guidance/truncation, seed {args.seed}); the IDM's action error on the real clips: "
        f"{real_err.mean():.3f}. Mean [95% CI] over clips; differences paired per clip."
    )

    # 4: tables, figures, doc
    summary = summarize(results)
    fig_paths = figures(results, out / "figures") if results else []
    text = tables(results, summary, notes, LABELS)
    (out / "results.md").write_text(text + "\n")
    (out / "per_clip.json").write_text(json.dumps(results) + "\n")
    (out / "metrics.json").write_text(
        json.dumps({"args": asdict(args), "summary": summary, "notes": notes}, indent=2) + "\n"
    )
    if args.update_doc:  # link copies next to the doc: --out is not committed
        dest = doc_figures_dir(args.update_doc, "avid_study", args.doc_figures)
        links = image_links(args.update_doc, copy_for_doc({p.name: p for p in fig_paths}, dest))
        update_block(args.update_doc, args.doc_key, text + "\n\n" + "\n".join(links))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
