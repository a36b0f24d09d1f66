"""World-model fidelity as a user sees it (issue 14, item 1): several models, same clips.

For each held-out episode (``--split`` of ``--data``, and of ``--fresh`` when given) every
model gets the first real frames as context and replays the episode's real actions open
loop for ``--horizon`` steps (``freeaction_gym.evaluation.replay``). At steps 1/5/10/20/40:
state-probe errors (hand cm, gripper, object cm; the probe's error on the real frames is
the floor), sharpness ratios (moving region, whole frame), blockiness, SSIM, MS-SSIM, PSNR
and the copy-the-context baseline, with 95% CIs over episodes, plus ms per imagined frame.
Short clips (context + 4 actions) add PSNR/SSIM vs copy and the action sensitivity
(moving-region PSNR lost when the actions are shuffled across clips).

Sampling and the action chunk default to an env preset (``--preset``): the settings a user
of that environment gets. ``--sampling`` overrides them (``key=value`` for every model,
``name:key=value`` for one).

Models that take visual action prompts (``model.prompt`` of the DiT) get every frame's
skeleton (``freeaction_gym.evaluation.prompt_source``): ``--prompts true`` draws the
episodes' stored keypoints, ``--prompts proprio`` integrates them from each clip's first
robot state under its actions with a proprio model (``--proprio``, default
``<model dir>/proprio``), as the ``vap`` env does. The data must store keypoints and state.

    python experiments/world_model_fidelity.py --models old=bundled:metaworld_default \\
        --data data/metaworld_v2 --probe runs/probe_v2 --out outputs/fidelity
    python experiments/world_model_fidelity.py --models old=bundled:metaworld_default \\
        new=runs/wm_v2/model --sampling new:num_steps=3 --update-doc docs/RESULTS.md
    python experiments/world_model_fidelity.py --quick   # seconds (few clips, short probe)

Outputs in ``--out``: metrics.json (summaries), per_clip.json (every episode's / clip's
value, for paired comparisons across runs: same seed, same clips), results.md (tables),
``strip_<data>.png`` (real vs each model at steps 0/1/5/10/20/40). ``--update-doc FILE``
replaces the block between ``<!-- world-model-fidelity:begin/end -->`` there, linking the
strips in ``--out`` (use ``--out docs/figures/world_model_fidelity`` to keep them in the repo).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when OpenMP starts

import json  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Literal  # noqa: E402

import numpy as np  # noqa: E402

from freeaction_gym.assets import resolve_model_path  # noqa: E402
from freeaction_gym.envs.config import load_preset  # noqa: E402
from freeaction_gym.evaluation.cell_format import format_half_width as fmt  # noqa: E402
from freeaction_gym.evaluation.figures import frames_at_steps, save_strip  # noqa: E402
from freeaction_gym.evaluation.prompt_source import PromptSource, clip_prompts  # noqa: E402
from freeaction_gym.evaluation.replay import (  # noqa: E402
    evaluate_replay,
    load_replay_set,
    short_clip_scores,
    summarize_short,
)
from freeaction_gym.evaluation.rollout import Clips, collect_clips  # noqa: E402
from freeaction_gym.evaluation.study import merge  # noqa: E402
from freeaction_gym.prompts.proprio import ProprioModel  # noqa: E402
from freeaction_gym.rewards.state_probe import StateProbe  # noqa: E402
from freeaction_gym.training.train_probe import TrainProbeArgs, train_probe  # noqa: E402
from freeaction_gym.utils.args import parse_args, parse_assignments  # noqa: E402
from freeaction_gym.utils.markdown import update_block  # noqa: E402
from freeaction_gym.utils.threads import configure_threads  # noqa: E402
from freeaction_gym.world_model import load_world_model  # noqa: E402

SHORT_ACTIONS = 4  # the "1 + 4" clips of issue 14


@dataclass
class Args:
    """Fidelity metrics of world models on held-out episodes (probe, sharpness, blocks)."""

    models: list[str] = field(default_factory=lambda: ["old=bundled:metaworld_default"])
    """Models as name=path (a WorldModel directory or bundled:<name>); names label rows."""
    data: str = "data/metaworld_v2"
    """Dataset root with per-frame state (``freeaction data metaworld``)."""
    fresh: str | None = None
    """Optional second root whose --split holds layouts no split of --data uses."""
    split: Literal["train", "val", "test"] = "test"
    """Held-out split to replay."""
    probe: str = "runs/probe_v2"
    """State probe directory; trained on --data when it does not exist."""
    probe_minutes: float = 8.0
    """Training budget of a missing probe (wall minutes)."""
    episodes: int = 40
    """Episodes replayed (a fixed seeded subset of the split)."""
    short_clips: int = 64
    """Short clips (context + 4 actions) for the copy / action-sensitivity table."""
    horizon: int = 40
    """Imagined steps per replay (capped by the episodes' length)."""
    steps: list[int] = field(default_factory=lambda: [1, 5, 10, 20, 40])
    """Scored steps (k-th imagined frame after the last context frame)."""
    strip_steps: list[int] = field(default_factory=lambda: [0, 1, 5, 10, 20, 40])
    """Columns of the strip figure (0 = the last context frame)."""
    strip_episodes: int = 3
    """Episodes shown in the strip figure (spread over the replayed ones)."""
    preset: str = "FreeActionMetaWorld-v0"
    """Env preset whose sampling settings and action chunk are the defaults."""
    sampling: list[str] | None = None
    """SamplingConfig overrides, key=value for all models or name:key=value for one
    (e.g. num_steps=3 guidance.mode=none new:scheduler=ddpm)."""
    chunk: int | None = None
    """Frames per denoiser call (default: the preset's action_chunk)."""
    prompts: PromptSource = "true"
    """Visual action prompts of the models that take them: true = drawn from the episodes'
    stored keypoints, proprio = integrated from each clip's first robot state by --proprio."""
    proprio: str | None = None
    """Proprio model directory of --prompts proprio (default: each prompt model's
    <model dir>/proprio)."""
    seed: int = 0
    """Noise seed; episode i always draws from generator (seed, i)."""
    batch: int = 8
    """Episodes per denoiser batch (ms/frame is measured at this batch)."""
    out: str = "outputs/world_model_fidelity"
    """Output directory."""
    update_doc: str | None = None
    """Markdown file whose world-model-fidelity block gets the tables."""
    threads: int | None = None
    """Torch intra-op threads (FREEACTION_THREADS overrides)."""
    quick: bool = False
    """Smoke mode: 3 episodes, 4 short clips, a 20-step probe if missing (seconds)."""


def git(*cmd: str) -> str:
    try:
        return subprocess.run(["git", *cmd], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""


def model_specs(items: list[str]) -> dict[str, str]:
    """``["old=bundled:x", "runs/y"]`` -> ``{"old": "bundled:x", "y": "runs/y"}``."""
    specs = {}
    for item in items:
        name, sep, path = item.partition("=")
        name, path = (name, path) if sep else (Path(item).name, item)
        if name in specs:
            sys.exit(f"--models: the name {name!r} is used twice")
        specs[name] = path
    return specs


def fit_preset(name: str, world, sampling: dict) -> dict:
    """The preset's sampling dict without its scheduler and step count when the model
    cannot use that scheduler (an EDM model under a DDPM-family preset): the model's own
    default sampler then applies (``WorldModel.default_sampling``)."""
    try:
        from freeaction_gym.diffusion.schedule import EDM_SCHEDULERS
    except ImportError:  # a tree without EDM models
        return sampling
    edm = getattr(world.diffusion, "parameterization", "ddpm") == "edm"
    if edm != (sampling.get("scheduler", "ddim") in EDM_SCHEDULERS):
        print(f"[fidelity] {name}: the preset's scheduler does not fit this model; its default")
        return {k: v for k, v in sampling.items() if k not in ("scheduler", "num_steps")}
    return sampling


def sampling_overrides(items: list[str] | None, worlds: dict, preset: dict) -> dict:
    """Per model: the preset's sampling dict (:func:`fit_preset`) merged with the global
    then the model's own ``--sampling`` assignments."""
    shared, own = [], {n: [] for n in worlds}
    for item in items or []:
        key, _, value = item.partition("=")
        name, sep, option = key.partition(":")
        if not sep:
            shared.append(item)
        elif name in own:
            own[name].append(f"{option}={value}")
        else:
            sys.exit(f"--sampling {item}: no model named {name!r} (models: {list(worlds)})")
    return {
        n: merge(fit_preset(n, w, merge(preset.get("sampling", {}), parse_assignments(shared))),
                 parse_assignments(own[n]))
        for n, w in worlds.items()
    }  # fmt: skip


def proprio_models(
    source: str, directory: str | None, specs: dict[str, str], worlds: dict
) -> dict[str, tuple[Path, ProprioModel]]:
    """Per prompt model under ``--prompts proprio``: its proprio model directory
    (``--proprio`` or ``<model dir>/proprio``) and the model, each directory loaded once."""
    if source != "proprio":
        return {}
    loaded, out = {}, {}
    for name, world in worlds.items():
        if not world.takes_prompts:
            continue
        path = Path(directory) if directory else resolve_model_path(specs[name]) / "proprio"
        if path not in loaded:
            try:
                loaded[path] = ProprioModel.from_pretrained(path)
            except FileNotFoundError as err:
                sys.exit(f"--prompts proprio: model {name!r} needs a proprio model ({err})")
        out[name] = (path, loaded[path])
    return out


def model_prompts(
    root: str, split: str, clips: Clips, worlds: dict, source: str, proprio: dict
) -> dict[str, np.ndarray | None]:
    """Per model: uint8 (N, F, H, W, 3) prompts of ``clips`` if it takes them
    (:func:`clip_prompts`; drawn once per proprio model), else None. Exits naming the model
    when ``root`` cannot give them."""
    out, drawn = {}, {}
    for name, world in worlds.items():
        if not world.takes_prompts:
            out[name] = None
            continue
        path, model = proprio.get(name, (None, None))
        if path not in drawn:
            try:
                drawn[path] = clip_prompts(root, split, clips, source, model)
            except ValueError as err:
                sys.exit(
                    f"[fidelity] model {name!r} takes visual action prompts ({source}), which "
                    f"{root} cannot give: {err}"
                )
        out[name] = drawn[path]
    return out


def rounded(values: np.ndarray) -> list[float]:
    """Per-clip values for per_clip.json, to 5 significant digits (NaN kept)."""
    return [float(f"{v:.5g}") for v in np.asarray(values, np.float64)]


STEP_COLUMNS = {  # metric -> (header, digits); copy columns follow their metric
    "hand_cm": ("hand (cm)", 1),
    "gripper": ("gripper", 3),
    "object_cm": ("object (cm)", 1),
    "sharpness_moving": ("sharpness moving", 2),
    "sharpness_whole": ("sharpness whole", 2),
    "blockiness": ("blockiness", 2),
    "ssim": ("SSIM", 3),
    "copy_ssim": ("copy SSIM", 3),
    "ms_ssim": ("MS-SSIM", 3),
    "psnr": ("PSNR (dB)", 2),
    "copy_psnr": ("copy PSNR", 2),
}
SHORT_COLUMNS = {
    "psnr": ("PSNR (dB)", 2),
    "psnr - copy": ("PSNR - copy", 2),
    "ssim": ("SSIM", 3),
    "ssim - copy": ("SSIM - copy", 3),
    "ms_ssim": ("MS-SSIM", 3),
    "ms_ssim - copy": ("MS-SSIM - copy", 3),
    "moving_psnr": ("moving PSNR", 2),
    "action sensitivity": ("action sensitivity (dB)", 2),
}


PROBE = ("hand_cm", "gripper", "object_cm")


def replay_table(results: dict, steps: list[int]) -> str:
    """Rows: (model, step) plus the probe floor and real-frame blockiness per step."""
    head = ["model", "step", *(h for h, _ in STEP_COLUMNS.values())]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    any_res = next(iter(results.values()))["replay"]
    for k in steps:
        real_row = {
            f: fmt(any_res[f"floor_{f}"][k], STEP_COLUMNS[f][1])
            for f in PROBE
            if f"floor_{f}" in any_res
        }
        real_row |= {"sharpness_moving": "1", "sharpness_whole": "1", "ssim": "1", "ms_ssim": "1"}
        real_row["blockiness"] = fmt(any_res["blockiness_real"][k], 2)
        cells = [real_row.get(m, "-") for m in STEP_COLUMNS]
        lines.append(f"| *real frames (probe floor)* | {k} | " + " | ".join(cells) + " |")
        for name, res in results.items():
            rep = res["replay"]
            cells = [fmt(rep[m][k], d) if m in rep else "-" for m, (_, d) in STEP_COLUMNS.items()]
            lines.append(f"| {name} | {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headline_table(results: dict, floor: dict, steps: list[int], horizon: int) -> str:
    """One row per model: the quantities issue 14's targets name, at step 10 and the last
    scored step (gripper error as a multiple of the probe's floor on all real test frames)."""
    keys = list(dict.fromkeys(k for k in (10, max(steps)) if k in steps))
    head = ["model", "ms/frame", "1+4 SSIM - copy", "1+4 PSNR - copy", "action sensitivity",
            f"rollout SSIM - copy (1..{horizon})"]  # fmt: skip
    head += [f"gripper / floor @{k}" for k in keys] + [f"sharpness moving @{k}" for k in keys]
    head += [f"blockiness @{k}" for k in keys]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    g_floor = floor.get("gripper", {}).get("mean", float("nan"))
    for name, res in results.items():
        rep, short = res["replay"], res["short"]
        cells = [f"{res['ms_per_frame']:.1f}", fmt(short["ssim - copy"], 3),
                 fmt(short["psnr - copy"], 2), fmt(short["action sensitivity"], 2),
                 fmt(rep["ssim_rollout - copy"][horizon], 3)]  # fmt: skip
        cells += [
            f"{rep['gripper'][k]['mean'] / g_floor:.1f}x" if "gripper" in rep else "-" for k in keys
        ]
        cells += [fmt(rep["sharpness_moving"][k], 2) for k in keys]
        cells += [fmt(rep["blockiness"][k], 2) for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def short_table(results: dict) -> str:
    head = ["model", *(h for h, _ in SHORT_COLUMNS.values()), "copy PSNR", "copy SSIM", "ms/frame"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, res in results.items():
        s = res["short"]
        cells = [fmt(s[m], d) for m, (_, d) in SHORT_COLUMNS.items()]
        cells += [fmt(s["copy_psnr"], 2), fmt(s["copy_ssim"], 3), f"{res['ms_per_frame']:.1f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the evaluation; ``argv``: the options (default ``sys.argv[1:]``), so other
    scripts (experiments/prompt_study.py) can call it in their process."""
    args = parse_args(Args, argv)
    if args.quick:
        args.episodes, args.short_clips, args.strip_episodes = 3, 4, 2
    for name in ("episodes", "short_clips", "strip_episodes"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    threads = configure_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    # -- models and their sampling settings ------------------------------------------------
    specs = model_specs(args.models)
    worlds = {name: load_world_model(path) for name, path in specs.items()}
    preset = load_preset(args.preset)
    chunk = args.chunk or int(preset.get("action_chunk", 1))
    overrides = sampling_overrides(args.sampling, worlds, preset)
    max_n = max(w.num_context for w in worlds.values())
    proprio = proprio_models(args.prompts, args.proprio, specs, worlds)
    prompt_of = {  # per model: where its prompts come from (None: it takes none)
        n: None if not w.takes_prompts else f"proprio {proprio[n][0]}" if n in proprio
        else args.prompts
        for n, w in worlds.items()
    }  # fmt: skip

    # -- held-out clips of every data root, and the prompt models' prompts of them ----------
    roots = {"test": args.data} | ({"fresh": args.fresh} if args.fresh else {})
    held_out = {}
    for label, root in roots.items():
        shortest = min(collect_clips(root, args.split, None, None).frames.shape[1], 10_000)
        horizon = min(args.horizon, shortest - max_n)
        steps = [k for k in args.steps if k <= horizon]
        if horizon < args.horizon:
            print(f"[fidelity] {root}: episodes allow {horizon} steps; scoring steps {steps}")
        replay_set = load_replay_set(root, args.split, max_n, horizon, args.episodes, args.seed)
        short = collect_clips(root, args.split, max_n + SHORT_ACTIONS, args.short_clips, 0)
        prompts = {  # per clip set: {model: uint8 (N, F, H, W, 3) prompts, or None}
            kind: model_prompts(root, args.split, clips, worlds, args.prompts, proprio)
            for kind, clips in (("replay", replay_set.clips), ("short", short))
        }
        held_out[label] = (horizon, steps, replay_set, short, prompts)

    # -- state probe (trained on the real train split when missing) --------------------------
    probe_dir = Path(args.probe)
    if not (probe_dir / "config.json").is_file():
        print(f"[fidelity] no probe at {probe_dir}: training one on {args.data}")
        steps = 20 if args.quick else 100_000
        train_probe(
            TrainProbeArgs(
                data=args.data, out=str(probe_dir), max_minutes=args.probe_minutes, steps=steps,
                eval_every=min(500, steps), threads=threads,
            )
        )  # fmt: skip
    probe = StateProbe.from_pretrained(probe_dir)
    probe_meta = json.loads((probe_dir / "config.json").read_text())

    # -- replay every data root ------------------------------------------------------------
    datasets, md = {}, []
    for label, root in roots.items():
        horizon, steps, replay_set, short, prompts = held_out[label]
        results = {}
        for name, world in worlds.items():
            sampling = lambda k, w=world, o=overrides[name]: w.default_sampling(k, **o)  # noqa: E731
            print(f"[fidelity] {label}: {name} ({len(replay_set.clips)} episodes x {horizon})")
            own_set = replace(replay_set, prompts=prompts["replay"][name])
            rep = evaluate_replay(
                world, own_set, sampling, probe, steps, chunk, args.seed, args.batch
            )
            sh = short_clip_scores(
                world, short, max_n, sampling, chunk, args.seed, args.batch,
                prompts=prompts["short"][name],
            )  # fmt: skip
            results[name] = {
                "replay": rep.summary,
                "short": summarize_short(sh),
                "ms_per_frame": rep.ms_per_frame,
                "per_episode": {
                    m: {k: rounded(v) for k, v in by_step.items()}
                    for m, by_step in rep.scores.items()
                },
                "per_short_clip": {m: rounded(v) for m, v in sh.items()},
                "imagined": rep.imagined,
            }
        # strip: real + every model for a few episodes spread over the replayed ones
        strip_steps = [k for k in args.strip_steps if k <= horizon]
        picks = np.unique(np.linspace(0, len(replay_set.clips) - 1, args.strip_episodes).round())
        real = frames_at_steps(replay_set.clips.frames, max_n, strip_steps)
        rows = []
        for i in picks.astype(int):
            rows.append((f"real\n{replay_set.clips.episodes[i][:-4]}", real[i]))
            for name, world in worlds.items():
                video = results[name]["imagined"]
                rows.append((name, frames_at_steps(video, world.num_context, strip_steps)[i]))
        for res in results.values():
            del res["imagined"]  # (N, F, H, W, 3) uint8: not for metrics.json
        strip = save_strip(out / f"strip_{label}.png", rows, strip_steps, gap_every=1 + len(worlds))
        datasets[label] = {
            "root": str(Path(root).resolve()),
            "episodes": replay_set.clips.episodes,
            "horizon": horizon,
            "steps": steps,
            "short_clips": len(short),
            "strip": strip.name,
            "models": results,
        }
        md += [
            f"#### {label}: `{root}` ({args.split} split), {len(replay_set.clips)} episodes, "
            f"open-loop replay of the real actions",
            "",
            headline_table(results, probe_meta.get("floor", {}), steps, horizon),
            "",
            replay_table(results, steps),
            "",
            f"Short clips: {max_n} context frame(s) + {SHORT_ACTIONS} actions, {len(short)} clips",
            "",
            short_table(results),
            "",
            f"![real vs imagined]({strip.name})",
            "",
        ]

    # -- outputs -----------------------------------------------------------------------------
    notes = {n: "" if p is None else f", prompts `{p}`" for n, p in prompt_of.items()}
    script = "experiments/world_model_fidelity.py"
    command = shlex.join(["python", *sys.argv] if argv is None else ["python", script, *argv])
    floor = probe_meta.get("floor", {})
    floor_txt = ", ".join(
        f"{m} {floor[m]['mean']:.3g}" for m in ("hand_cm", "gripper", "object_cm") if m in floor
    )
    head = [
        f"Command: `{command}` at commit `{git('rev-parse', '--short', 'HEAD').strip()}`; "
        f"{(time.time() - t_start) / 60:.1f} min, {threads} threads.  ",
        "Models: " + ", ".join(
            f"`{n}` = `{specs[n]}` (context {w.num_context}, sampling "
            f"`{json.dumps(overrides[n], separators=(',', ':'))}`{notes[n]})"
            for n, w in worlds.items()
        ) + f"; chunk {chunk}.  ",
        f"Cells: mean ± 95% CI half-width over episodes (clips). Step k = k-th imagined frame "
        f"after the last real context frame. Probe `{probe_dir}` (floor on all real "
        f"{probe_meta.get('data', '')} test frames: {floor_txt}). Sharpness = Sobel gradient "
        "energy imagined / real (moving region = dilated union of real and imagined change "
        "from the context frame); blockiness = mean step across 8x8 patch boundaries / inside "
        "(1 = none); copy = the last context frame repeated; rollout SSIM = mean over every "
        "imagined step; ms/frame at batch "
        f"{args.batch} on a shared CPU.",
        "",
    ]  # fmt: skip
    text = "\n".join(head + md)
    (out / "results.md").write_text(text + "\n")
    metrics = {
        "command": command,
        "git_commit": git("rev-parse", "HEAD").strip() or None,
        "args": asdict(args),
        "threads": threads,
        "chunk": chunk,
        "models": {
            n: {
                "path": specs[n],
                "num_context": w.num_context,
                "sampling": overrides[n],
                "prompts": prompt_of[n],
            }
            for n, w in worlds.items()
        },
        "probe": {"dir": str(probe_dir.resolve()), "floor": floor},
        "datasets": datasets,
        "minutes": (time.time() - t_start) / 60,
    }
    per_clip = {
        label: {
            n: {k: r.pop(k) for k in ("per_episode", "per_short_clip")}
            for n, r in d["models"].items()
        }
        for label, d in datasets.items()
    }
    (out / "per_clip.json").write_text(json.dumps(per_clip) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float) + "\n")
    if args.update_doc:
        # the strips stay where --out put them; link them from the document's folder
        rel = os.path.relpath(out.resolve(), Path(args.update_doc).resolve().parent)
        update_block(
            args.update_doc, "world-model-fidelity", text.replace("](strip_", f"]({rel}/strip_")
        )
    print(text)


if __name__ == "__main__":
    main()
