"""MetaWorld-K (issue 16): sample efficiency at fixed budgets of real environment steps.

On each task (reach-v3, push-v3) and seed, at each budget (10k, 30k real steps):

* **dyna** - ``freeaction dyna`` (``--dyna-config``): the agent (``--algo``, DrQ by
  default) trains in the world model, which is fine-tuned on the real episodes the agent
  collects; the policy at a budget is the one of the iteration whose collected steps reach it;
* **model-free** - the same agent trained in the real simulator on the same number of
  real steps (``agents.train``, checkpoints at every evaluated budget);
* **random** and the **scripted expert** (MetaWorld's, ``--expert-sigma`` noise): references;
* **model_free_seeded** (a control, not in the default methods) - model-free whose replay
  buffer starts with the Dyna run's iteration-0 collection (the dataset generator's noisy
  scripted experts and random walks, which a Dyna agent with ``agent.real_replay`` learns
  from) and which then collects the rest of each budget itself: Dyna's lead over it is
  what the world model adds beyond those demonstrations.

Both learners start their episodes from the base dataset's *train* layouts; everything is
evaluated in the real simulator on the same held-out *test* layouts (the base's test split,
the first ``--eval-episodes`` scenes), fixed-length episodes, success at any step. Reports
success and return with bootstrap 95% intervals (episodes pooled over seeds), per-seed
means, the paired Dyna - model-free difference, training wall time, and a plot of real
success/return vs real steps (:mod:`freeaction_gym.evaluation.sample_efficiency`). Resumable:
finished runs and evaluations are skipped (the Dyna loop resumes mid-run, an interrupted
model-free run from its last snapshot, every 1,000 steps: ``agents.train --resume``).

Note: Dyna's world model and reward head start pretrained on the base dataset's offline
episodes; those are not counted as real steps (as in world-model pretraining), the
model-free agent learns from scratch.

    python experiments/metaworld_k.py --update-doc docs/RESULTS.md     # the benchmark
    python experiments/metaworld_k_cost.py                             # its CPU time
    python experiments/metaworld_k.py --quick                          # tiny, end to end
    python experiments/metaworld_k.py --report-only                    # table of what exists
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import json  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Literal  # noqa: E402

from freeaction_gym.agents.dyna import SB3DynaAgent  # noqa: E402
from freeaction_gym.agents.train import TrainArgs, train  # noqa: E402
from freeaction_gym.dyna.config import DynaConfig, load_dyna_config  # noqa: E402
from freeaction_gym.dyna.evaluate import eval_scenes  # noqa: E402
from freeaction_gym.dyna.loop import DynaLoop  # noqa: E402
from freeaction_gym.dyna.report import read_metrics, trace_table  # noqa: E402
from freeaction_gym.dyna.state import STAGES, RunState  # noqa: E402
from freeaction_gym.envs.bank import ResetBank  # noqa: E402
from freeaction_gym.envs.layouts import check_disjoint  # noqa: E402
from freeaction_gym.evaluation import sample_efficiency as se  # noqa: E402
from freeaction_gym.evaluation.policies import (  # noqa: E402
    ExpertPolicy,
    RandomPolicy,
    SB3Policy,
    load_model,
)
from freeaction_gym.evaluation.worlds import RealWorld  # noqa: E402
from freeaction_gym.utils.args import parse_args, parse_assignments  # noqa: E402
from freeaction_gym.utils.markdown import update_block  # noqa: E402
from freeaction_gym.utils.threads import configure_threads  # noqa: E402

SEEDED = "model_free_seeded"
LEARNERS = ("dyna", "model_free", SEEDED)
PROPRIO_NOTE = " seeing the hand xyz + gripper too (`proprio_obs`)"
REFERENCES = ("random", "expert")
NAMES = {"dyna": "Dyna", "model_free": "model-free", SEEDED: "model-free + generator episodes",
         "random": "random", "expert": "expert"}  # fmt: skip


@dataclass
class Args:
    """MetaWorld-K: Dyna vs the same agent model-free at fixed real-step budgets."""

    tasks: list[str] = field(default_factory=lambda: ["reach-v3", "push-v3"])
    budgets: list[int] = field(default_factory=lambda: [10_000, 30_000])
    """Real environment steps a learner may learn from (its collected transitions)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    curve_every: int = 5_000
    """Also evaluate the learners every this many real steps (the plot; 0: budgets only)."""
    methods: list[str] = field(default_factory=lambda: ["dyna", "model_free", *REFERENCES])
    """Any of dyna, model_free, random, expert and the control model_free_seeded (starts
    from the Dyna run's first collection, which it makes if missing)."""
    algo: Literal["drq", "sac", "ppo"] = "drq"
    """The agent of both learners (in imagination for Dyna, in the real simulator)."""
    proprio: bool = False
    """Both learners also observe the hand xyz and gripper (env option ``proprio_obs``: the
    simulator's in reality, the integrated proprio model's in imagination); evaluation
    worlds show them too."""
    dyna_config: str = "configs/dyna/metaworld_k.yaml"
    """Dyna settings; the script sets task, seed, output, iterations, data.base_tasks and
    agent.algo."""
    dyna_overrides: list[str] = field(default_factory=list)
    """Dyna config overrides, ``section.key=value``."""
    data: str | None = None
    """Base dataset: the learners' train layouts and the held-out test layouts (default:
    the Dyna config's data.base)."""
    hyperparams: str | None = None
    """Model-free hyperparameter YAML (default
    ``freeaction_gym/agents/hyperparams/FreeActionReal...``)."""
    hp: list[str] = field(default_factory=list)
    """Model-free hyperparameter overrides ``key=value``."""
    expert_sigma: float = 0.0
    """Gaussian action noise of the scripted expert."""
    eval_episodes: int = 20
    """Held-out scenes per task (one episode each, per seed)."""
    eval_steps: int = 40
    """Actions per evaluation episode (no early termination)."""
    eval_batch: int = 10
    """Real envs stepped in lockstep during evaluation."""
    n_boot: int = 2000
    out: str = "outputs/metaworld_k"
    progress: bool = True
    quick: bool = False
    """Tiny settings end to end (1 task, 2 seeds, budgets of 12 and 24 real steps)."""
    estimate_steps: int = 300
    """``metaworld_k_cost.py``: real (and imagined) steps of each measured run."""
    update_doc: str | None = None
    """Write the table between the ``doc_key`` markers of this markdown file."""
    doc_key: str = "metaworld-k"
    """Marker name of the block ``--update-doc`` replaces (one per benchmark arm)."""
    train: bool = True
    """``--no-train``: evaluate the learners' policies that exist (finished Dyna iterations,
    saved model-free checkpoints), e.g. while their runs go on in other processes, and train
    nothing."""
    report_only: bool = False
    """Tabulate the evaluation records already under ``--out`` (any seeds, e.g. while runs
    are still going); train and evaluate nothing."""


# -- quick settings ---------------------------------------------------------------------------
TINY_DRQ = {
    "buffer_size": 1000, "learning_starts": 6, "batch_size": 8,
    "policy_kwargs": {"features_extractor_kwargs": {"features_dim": 8, "channels": [8, 8],
                                                    "strides": [2, 2]}, "net_arch": [16]},
}  # fmt: skip
QUICK_DYNA = [
    "collect.episodes=2", "collect.steps=6", "collect.batch_size=2",
    "world_model.init=bundled:metaworld_default", "world_model.train_config=null",
    "world_model.steps=2", "world_model.max_minutes=null",
    "world_model.overrides={optim: {batch_size: 2, warmup: 1}}",
    "reward.steps=5", "reward.eval_every=5", "reward.batch_size=16", "reward.max_minutes=null",
    "agent.timesteps=24", "agent.num_envs=2", f"agent.hp={{drq: {json.dumps(TINY_DRQ)}}}",
    "agent.env_kwargs={sampling: {num_steps: 1}}",
    "eval.episodes=2", "eval.steps=6", "eval.batch_size=2", "eval.imagined=false",
]  # fmt: skip
QUICK_BASE = "{tasks: [reach-v3], train_episodes: 2, val_episodes: 1, test_episodes: 2, frames: 8}"


def apply_quick(args: Args) -> None:
    args.tasks, args.budgets, args.seeds, args.curve_every = ["reach-v3"], [12, 24], [0, 1], 0
    args.eval_episodes, args.eval_steps, args.eval_batch, args.n_boot = 2, 6, 2, 200
    args.dyna_config, args.algo, args.estimate_steps = "configs/dyna/quick.yaml", "drq", 24
    base = [f"data.base={args.out}/base_data", f"data.generate={QUICK_BASE}"]
    if args.data:
        base = ["data.generate=null"]
    args.dyna_overrides = [*base, *QUICK_DYNA, *args.dyna_overrides]
    args.hp = [f"{k}={json.dumps(v)}" for k, v in TINY_DRQ.items()] + args.hp


# -- settings ---------------------------------------------------------------------------------
def dyna_config(
    args: Args, task: str, seed: int, output: Path, check_paths: bool = True
) -> DynaConfig:
    overrides = [
        f"task={task}", f"seed={seed}", f"output={output}", f"data.base_tasks=[{task}]",
        f"agent.algo={args.algo}", f"progress={str(args.progress).lower()}",
        *(["agent.env_kwargs.proprio_obs=true"] if args.proprio else []),
        *([f"data.base={args.data}"] if args.data else []), *args.dyna_overrides,
    ]  # fmt: skip
    return load_dyna_config(args.dyna_config, overrides, check_paths)


def prepare_base(args: Args) -> str:
    """The base dataset root (generated first if the Dyna config says so)."""
    cfg = dyna_config(args, args.tasks[0], args.seeds[0], Path(args.out) / "unused")
    base = Path(cfg.data.base)
    if not (base / "meta.json").is_file():
        from freeaction_gym.data.metaworld_gen import MetaWorldDataConfig, generate_dataset

        generate_dataset(base, MetaWorldDataConfig(**cfg.data.generate), 1, args.progress)
    return str(base)


def real_id(task: str) -> str:
    """``push-v3`` -> ``FreeActionRealMetaWorldPush-v0``."""
    name = "".join(w.capitalize() for w in task.rsplit("-", 1)[0].split("-"))
    return f"FreeActionRealMetaWorld{name}-v0"


def held_out_bank(args: Args, base: str, task: str) -> Path:
    """The task's held-out scenes: the base's test split (as the Dyna loop's eval bank)."""
    path = Path(args.out) / "banks" / f"{task}_test.npz"
    if not path.is_file():
        ResetBank.from_dataset(base, "test", [task]).save(path)
    return path


# -- learners ---------------------------------------------------------------------------------
def dyna_run_dir(args: Args, task: str, seed: int) -> Path:
    return Path(args.out) / "runs" / "dyna" / task / f"s{seed}"


def dyna_run_config(args: Args, task: str, seed: int, points: list[int]) -> tuple[DynaConfig, int]:
    """The Dyna run's config (``iterations`` reaching the largest point) and its real steps
    per iteration."""
    cfg = dyna_config(args, task, seed, dyna_run_dir(args, task, seed))
    per_iteration = cfg.collect.episodes * cfg.collect.steps
    bad = [p for p in points if p % per_iteration]
    if bad:
        raise ValueError(
            f"budgets/curve points {bad} are not multiples of a Dyna iteration's real steps "
            f"(collect.episodes x collect.steps = {per_iteration})"
        )
    cfg.iterations = max(points) // per_iteration
    return cfg, per_iteration


def run_dyna(args: Args, task: str, seed: int, points: list[int]) -> tuple[list[tuple], bool]:
    """Run (or resume) the Dyna loop up to the largest point; ``(steps, policy, seconds)`` of
    the iteration that reached each point (seconds: learning stages, no evaluation) and
    whether anything was left to run."""
    cfg, per_iteration = dyna_run_config(args, task, seed, points)
    out = Path(cfg.output)
    state = RunState(out / "state.json")
    ran = not all(state.finished(i) for i in range(cfg.iterations))
    if not args.train:
        points = [p for p in points if state.finished(p // per_iteration - 1)]
        ran = False
    if ran:
        DynaLoop(cfg, SB3DynaAgent(cfg.agent, progress=cfg.progress)).run()
        state = RunState(out / "state.json")
        check_disjoint(ResetBank.load(out / "banks/collect.npz"),
                       ResetBank.load(out / "banks/eval.npz"))  # fmt: skip
    learning = [s for s in STAGES if s != "evaluate"]
    rows = []
    for p in points:
        k = p // per_iteration - 1
        seconds = sum(state.result(i, s)["seconds"] for i in range(k + 1) for s in learning)
        rows.append((p, state.result(k, "agent")["policy"], seconds))
    return rows, ran


def seconds_at(
    progress_csv: Path, steps: int, total_steps: int, total_seconds: float, history=None
) -> float:
    """Training wall time at ``steps``: the run's (steps, seconds) snapshot ``history``
    (:mod:`freeaction_gym.agents.resume`, counts the time before a resume) or else SB3's logged
    (time_elapsed, total_timesteps) rows, interpolated linearly, ending at the run's
    measured total."""
    import csv

    import numpy as np

    xs, ys = [0.0], [0.0]
    if history:
        xs += [float(s) for s, _ in history]
        ys += [float(t) for _, t in history]
    elif progress_csv.is_file():
        for row in csv.DictReader(open(progress_csv)):
            if row.get("time/total_timesteps") and row.get("time/time_elapsed"):
                xs.append(float(row["time/total_timesteps"]))
                ys.append(float(row["time/time_elapsed"]))
    xs.append(float(total_steps))
    ys.append(float(total_seconds))
    order = np.argsort(xs, kind="stable")
    return float(np.interp(steps, np.array(xs)[order], np.array(ys)[order]))


def dyna_first_collection(args: Args, task: str, seed: int, points: list[int]) -> list[Path]:
    """The Dyna run's iteration-0 episodes (the ``model_free_seeded`` control's prefill).
    A run without them collects them first (that stage only, no world-model or agent
    training; ``--methods dyna`` later continues the same run), unless ``--no-train``."""
    from freeaction_gym.dyna.dataset import LoopDataset

    run = dyna_run_dir(args, task, seed)
    if RunState(run / "state.json").result(0, "collect") is not None:
        return LoopDataset(run / "data").collected(0)
    if not args.train:
        raise FileNotFoundError(
            f"{SEEDED} starts from the Dyna run's first collection, and {run} has none: run "
            f"without --no-train (it collects only that) or --methods dyna for {task} seed "
            f"{seed} first"
        )
    cfg, _ = dyna_run_config(args, task, seed, points)
    return DynaLoop(cfg, SB3DynaAgent(cfg.agent, progress=cfg.progress)).first_collection()


def run_model_free(
    args: Args, task: str, seed: int, points: list[int], base: str, episode: int,
    method: str = "model_free", prefill: list[Path] | None = None,
):  # fmt: skip
    """Train (unless finished) the agent in the real simulator on the base's train layouts,
    checkpointing at every point; ``(steps, checkpoint, seconds)`` per point and whether it
    trained. With ``prefill`` (recorded real episodes) its replay buffer starts with them
    and they count towards every budget: it collects ``point - len(prefill steps)`` itself
    (points it cannot reach that way are skipped)."""
    from freeaction_gym.agents.config import load_hyperparams
    from freeaction_gym.agents.prefill import count_transitions, used_paths

    out = Path(args.out) / "runs" / method / task / f"s{seed}"
    if prefill:  # only what a buffer of n_envs columns takes (agents.prefill.used_paths)
        n_envs = load_hyperparams(real_id(task), args.algo, args.hyperparams,
                                  parse_assignments(args.hp)).n_envs  # fmt: skip
        taken = used_paths(prefill, n_envs)
        if len(taken) < len(prefill):
            raise ValueError(
                f"{method}: the model-free agent's n_envs={n_envs} does not divide the "
                f"{len(prefill)} prefill episodes, so its buffer would drop "
                f"{len(prefill) - len(taken)} of them and it would not start from what the "
                "Dyna agent started from; set the hyperparameters' n_envs to a divisor"
            )
    given = count_transitions(prefill) if prefill else 0
    own = {p: p - given for p in points if p > given}
    if not own:
        raise ValueError(f"{method}: every budget {points} is within the {given} prefilled steps")
    every = math.gcd(*own.values())
    ckpt = {p: out / "checkpoints" / f"{args.algo}_{n}_steps.zip" for p, n in own.items()}
    done = (out / "train_config.json").is_file() and all(c.is_file() for c in ckpt.values())
    if not args.train and not done:  # a run in progress: the checkpoints it has saved so far
        return _saved_checkpoints(out, ckpt, own), False
    if not done:
        train(
            TrainArgs(
                env=real_id(task), algo=args.algo, timesteps=max(own.values()), out=str(out),
                env_kwargs={"max_episode_steps": episode, "proprio_obs": args.proprio},
                hyperparams=args.hyperparams,
                hp=parse_assignments(args.hp), seed=seed, eval_freq=0, checkpoint_freq=every,
                video_freq=0, progress=args.progress, verbose=0, layouts="train",
                layout_data=base, resume=True, prefill=[str(p) for p in prefill or []],
            )
        )  # fmt: skip
        missing = [str(c) for c in ckpt.values() if not c.is_file()]
        if missing:
            raise RuntimeError(f"no checkpoint at {missing}: use points that are multiples of "
                               "the model-free run's n_envs")  # fmt: skip
    held_out = ResetBank.load(held_out_bank(args, base, task))
    check_disjoint(ResetBank.load(out / "train_layouts.npz"), held_out)
    summary = json.loads((out / "train_config.json").read_text())["summary"]
    if prefill and summary.get("prefill_transitions") != given:  # e.g. a run made elsewhere
        raise RuntimeError(
            f"{out} learned from {summary.get('prefill_transitions')} of the {given} prefilled "
            "steps, so its budgets would be wrong"
        )
    csv = out / "logs" / "progress.csv"
    history = summary.get("seconds_history")  # snapshots' (steps, seconds), across resumes
    rows = [
        (p, str(ckpt[p]), seconds_at(csv, n, summary["timesteps"], summary["seconds"], history))
        for p, n in own.items()
    ]
    return rows, not done


def _saved_checkpoints(out: Path, ckpt: dict[int, Path], own: dict[int, int]) -> list[tuple]:
    """``(steps, checkpoint, seconds)`` of an unfinished model-free run's saved checkpoints
    (``own``: point -> the steps the run itself collects by then), seconds from its resume
    snapshots' history (none without one)."""
    from freeaction_gym.agents.resume import resume_state

    history = (resume_state(out) or {}).get("history") or []
    rows = []
    for p, path in ckpt.items():
        if path.is_file() and history and history[-1][0] >= own[p]:
            last_steps, last_seconds = history[-1]
            seconds = seconds_at(Path("-"), own[p], int(last_steps), last_seconds, history)
            rows.append((p, str(path), seconds))
    return rows


# -- evaluation -------------------------------------------------------------------------------
def evaluate(args, world, scenes, task, method, seed, steps, make_policy, label, seconds) -> bool:
    """Evaluate and record one policy unless its record exists; True if it ran."""
    path = Path(args.out) / "evals" / task / f"{method}_s{seed}_{steps}.json"
    if path.is_file():
        return False
    t0 = time.perf_counter()
    roll = world.run(make_policy(), scenes, args.eval_steps, seed)
    se.EvalRecord(
        method, task, seed, steps, scenes.bank_index.tolist(), roll.succeeded.tolist(),
        roll.returns.astype(float).tolist(), seconds, time.perf_counter() - t0, label,
    ).save(path)  # fmt: skip
    return True


def agent_policy(args: Args, path: str):
    return lambda: SB3Policy(Path(path).name, load_model(path, args.algo))


def reference_policy(args: Args, method: str):
    if method == "random":
        return RandomPolicy
    return lambda: ExpertPolicy(args.expert_sigma, name="expert")


# -- report -----------------------------------------------------------------------------------
def recorded_base(out: Path, tasks: list[str]) -> str | None:
    """The base dataset the runs under ``out`` were trained from (a Dyna run's
    ``data.base``, else a model-free run's ``layout_data``), so ``--report-only`` names it
    whatever ``--data`` says; None without runs. Runs that disagree are an error."""
    import yaml

    found = set()
    for task in tasks:
        for cfg in (out / "runs" / "dyna" / task).glob("s*/config.yaml"):
            found.add(str(yaml.safe_load(cfg.read_text())["data"]["base"]))
        for cfg in (out / "runs" / "model_free" / task).glob("s*/train_config.json"):
            found.add(str(json.loads(cfg.read_text())["args"]["layout_data"]))
    if len(found) > 1:
        raise ValueError(f"the runs under {out} were trained on different bases: {sorted(found)}")
    return found.pop() if found else None


def loop_traces(out: Path, tasks: list[str]) -> str:
    """Per task with Dyna runs under ``out``: the loop's own per-iteration evaluation, seed
    means (:func:`~freeaction_gym.dyna.report.trace_table`), so what the agent fools (the
    video model, or a learned head crediting real frames) is in the report."""
    text = ""
    for task in tasks:
        paths = sorted((out / "runs" / "dyna" / task).glob("s*/metrics.jsonl"))
        paths = [p for p in paths if p.parent.name[1:].isdigit()]  # run_dyna's s<seed>
        runs = {int(p.parent.name[1:]): read_metrics(p) for p in paths}
        runs = {s: rows for s, rows in runs.items() if rows}
        if runs:
            text += (
                f"\n\nDyna loop on {task}, per iteration (seed means of the loop's own "
                "evaluation on the same held-out scenes; real steps = collected so far):\n\n"
                + trace_table(runs)
            )
    return text


def report(args: Args, base: str, points: list[int]) -> dict:
    out = Path(args.out)
    records = se.load_records(out / "evals")
    learned = {}  # (method, task, seed) -> training seconds up to its largest budget
    for r in records:
        if r.train_seconds is not None:
            key = (r.method, r.task, r.seed)
            learned[key] = max(learned.get(key, 0.0), r.train_seconds)
    hours = sum(learned.values()) / 3600
    seeds = ", ".join(str(s) for s in sorted({r.seed for r in records}))
    eval_hours = sum(r.eval_seconds for r in records) / 3600
    summary = se.summarize(records, args.n_boot)
    cells: dict[tuple, list] = {}
    for r in records:
        cells.setdefault((r.method, r.task, r.real_steps), []).append(r)
    diffs, control = {}, {}  # vs model-free; Dyna vs the seeded control
    for task in args.tasks:
        for p in points:
            free, seeded = cells.get(("model_free", task, p)), cells.get((SEEDED, task, p))
            for method in ("dyna", SEEDED):
                if cells.get((method, task, p)) and free:
                    diffs[se.cell_key(method, task, p)] = paired(cells[(method, task, p)], free)
            if cells.get(("dyna", task, p)) and seeded and p in args.budgets:
                control[se.cell_key("dyna", task, p)] = paired(cells[("dyna", task, p)], seeded)
    present = {r.method for r in records}
    learners = [m for m in LEARNERS if m in args.methods or m in present]
    refs = [m for m in REFERENCES if m in args.methods]
    se.plot_curves(summary, args.tasks, learners, refs, out / "metaworld_k.png", NAMES)
    command = "python experiments/metaworld_k.py " + shlex.join(sys.argv[1:])
    table = se.markdown_table(summary, diffs, args.tasks, args.budgets, learners, refs, NAMES)
    text = (
        f"Command: `{command.strip()}` ({hours:.1f} h of training and {eval_hours:.1f} h of "
        "evaluation recorded on this machine). "
        f"Agent: {args.algo}{PROPRIO_NOTE if args.proprio else ''}; seeds {seeds}; "
        f"learners start from the train layouts of `{base}`, every method is evaluated in "
        f"the real simulator on the same {args.eval_episodes} held-out test scenes per task "
        f"({args.eval_steps} actions, success at any step). Cells: mean [95% bootstrap "
        "interval over the episodes of all seeds]; Dyna vs model-free: paired difference "
        "over (seed, scene) with a 95% t-interval (bold: excludes 0). Dyna's world model "
        "and reward head were pretrained on the base dataset (not counted as real steps). "
        "Plot: `metaworld_k.png`.\n\n"
        + table
        + control_text(control)
        + loop_traces(out, args.tasks)
    )
    results = {"summary": summary, "diffs": diffs, "args": asdict(args), "points": points,
               "dyna_vs_seeded": control}  # fmt: skip
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "table.md").write_text(text + "\n")
    if args.update_doc:
        update_block(args.update_doc, args.doc_key, text)
    return results


def paired(a: list, b: list) -> dict[str, dict]:
    """``a - b`` per metric over the (seed, scene) pairs both evaluated."""
    return {m: se.paired_difference(a, b, m) for m in se.METRICS}


def control_text(control: dict[str, dict]) -> str:
    """Dyna - the seeded model-free control (``{"dyna|task|steps": {metric: paired
    difference}}``), one line per budget both reached; empty if none."""
    if not control:
        return ""
    lines = []
    for key, d in control.items():
        _, task, steps = key.split("|")
        s, r = d["success"], d["return"]
        lines.append(
            f"- {task}, {int(steps):,} real steps: success {se.difference_text(s, '+.2f')}, "
            f"return {se.difference_text(r, '+.0f')} ({s['pairs']} pairs)"
        )
    return (
        f"\n\nDyna vs {NAMES[SEEDED]} (paired over (seed, scene), 95% t-interval): what the "
        "world model adds beyond the generator's episodes both learn from (bold: the interval "
        "excludes 0).\n\n" + "\n".join(lines)
    )


# -- main -------------------------------------------------------------------------------------
def main(args: Args) -> dict:
    configure_threads()
    if args.quick:
        apply_quick(args)
    unknown = sorted(set(args.methods) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known: {sorted(NAMES)}")
    points = se.curve_points(args.budgets, args.curve_every)
    if args.report_only:
        # only names the base in the text: the runs' inputs need not be on this machine
        base = (
            recorded_base(Path(args.out), args.tasks)
            or dyna_config(args, args.tasks[0], 0, Path(args.out), check_paths=False).data.base
        )
        results = report(args, base, points)
        print((Path(args.out) / "table.md").read_text())
        return {**results, "evaluated": 0, "trained": []}
    base = prepare_base(args)
    trained, evaluated = [], 0
    for task in args.tasks:
        bank_path = held_out_bank(args, base, task)
        scenes = eval_scenes(ResetBank.load(bank_path), task, args.eval_episodes)
        world = RealWorld(args.eval_batch, reset_bank=str(bank_path), task=task, data=base,
                          proprio_obs=args.proprio)  # fmt: skip
        episode = dyna_config(args, task, 0, Path(args.out) / "unused").collect.steps
        try:
            for seed in args.seeds:
                runs = {}
                if "dyna" in args.methods:
                    runs["dyna"], ran = run_dyna(args, task, seed, points)
                    trained += [f"dyna {task} s{seed}"] if ran else []
                if "model_free" in args.methods:
                    runs["model_free"], ran = run_model_free(
                        args, task, seed, points, base, episode
                    )
                    trained += [f"model_free {task} s{seed}"] if ran else []
                if SEEDED in args.methods:
                    runs[SEEDED], ran = run_model_free(
                        args, task, seed, points, base, episode, SEEDED,
                        dyna_first_collection(args, task, seed, points),
                    )  # fmt: skip
                    trained += [f"{SEEDED} {task} s{seed}"] if ran else []
                for method, rows in runs.items():
                    for steps, path, seconds in rows:
                        policy = agent_policy(args, path)
                        ran = evaluate(args, world, scenes, task, method, seed, steps, policy,
                                       path, seconds)  # fmt: skip
                        evaluated += ran
                for method in (m for m in REFERENCES if m in args.methods):
                    evaluated += evaluate(args, world, scenes, task, method, seed, 0,
                                          reference_policy(args, method), method, None)  # fmt: skip
                report(args, base, points)
        finally:
            world.close()
    results = report(args, base, points)
    print((Path(args.out) / "table.md").read_text())
    print(f"trained: {', '.join(trained) or 'nothing (all finished)'}; {evaluated} evaluations run")
    return {**results, "evaluated": evaluated, "trained": trained}


if __name__ == "__main__":
    main(parse_args(Args))
