"""CPU time of the full MetaWorld-K benchmark (experiments/metaworld_k.py), from a short
measured run with the same settings and models.

Takes ``metaworld_k.py``'s options and measures, on its first task (CPU seconds of this
process; run it with ``FREEACTION_THREADS=1``):

1. the agent model-free in the real simulator for ``--estimate-steps`` real steps, twice:
   without updates (``learning_starts`` = all of them) and updating after the first third;
   the difference is the cost of the updates, hence of one gradient step;
2. real steps with that agent acting (the evaluation world; also collection's cost);
3. one Dyna iteration at reduced counts (2 collected episodes, 3 fine-tuning steps, 20
   reward-head steps, ``--estimate-steps`` imagined steps, 2 evaluation episodes), each
   stage timed; per-step costs of the fine-tune and the reward head from their own logs,
   an imagined transition by stepping the agent's imagined env with random actions;

then multiplies by the full benchmark's counts (:mod:`freeaction_gym.dyna.cost`): Dyna and
model-free runs of every task and seed up to the largest budget, and the evaluations.
Writes ``{out}/estimate/estimate.json`` and prints a table.

    FREEACTION_THREADS=1 python experiments/metaworld_k_cost.py [metaworld_k.py options]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import csv  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import metaworld_k as mk  # noqa: E402  (this directory, on sys.path when run as a script)
import numpy as np  # noqa: E402

from freeaction_gym.agents.config import load_hyperparams  # noqa: E402
from freeaction_gym.agents.dyna import SB3DynaAgent  # noqa: E402
from freeaction_gym.agents.envs import make_vec_env  # noqa: E402
from freeaction_gym.agents.train import TrainArgs, train  # noqa: E402
from freeaction_gym.dyna.agent import IMAGINED_PRESET  # noqa: E402
from freeaction_gym.dyna.cost import (  # noqa: E402
    AgentUpdates,
    UnitCosts,
    dyna_iteration_seconds,
    model_free_seconds,
)
from freeaction_gym.dyna.evaluate import eval_scenes  # noqa: E402
from freeaction_gym.dyna.loop import DynaLoop  # noqa: E402
from freeaction_gym.dyna.state import RunState  # noqa: E402
from freeaction_gym.envs.bank import ResetBank  # noqa: E402
from freeaction_gym.evaluation import sample_efficiency as se  # noqa: E402
from freeaction_gym.evaluation.policies import SB3Policy, load_model  # noqa: E402
from freeaction_gym.evaluation.worlds import RealWorld  # noqa: E402
from freeaction_gym.utils.args import parse_args, parse_assignments  # noqa: E402
from freeaction_gym.utils.threads import configure_threads  # noqa: E402


def cpu(fn, *args, **kwargs):
    """``(fn(...), CPU seconds, wall seconds)``."""
    c, w = time.process_time(), time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.process_time() - c, time.perf_counter() - w


def updates_of(hp) -> AgentUpdates:
    """Gradient steps per transition of an SB3 hyperparameter set (PPO: epochs over it)."""
    kw = hp.algo_kwargs
    if hp.algo == "ppo":
        per = kw.get("n_epochs", 10) / kw.get("batch_size", 64)  # minibatches per transition
        return AgentUpdates(0, float(per))
    train_freq = kw.get("train_freq", 1)
    train_freq = train_freq[0] if isinstance(train_freq, list | tuple) else train_freq
    per = kw.get("gradient_steps", 1) / (train_freq * hp.n_envs)
    return AgentUpdates(int(kw.get("learning_starts", 100)), float(per))


class TimedLoop(DynaLoop):
    """The Dyna loop recording each stage's CPU seconds (``cpu_seconds``) in its result."""

    def _timed(self, stage, it):
        result, seconds, _ = cpu(getattr(super(), f"run_{stage}"), it)
        return {**result, "cpu_seconds": seconds}

    def run_collect(self, it):
        return self._timed("collect", it)

    def run_world_model(self, it):
        return self._timed("world_model", it)

    def run_reward(self, it):
        return self._timed("reward", it)

    def run_agent(self, it):
        return self._timed("agent", it)

    def run_evaluate(self, it):
        return self._timed("evaluate", it)


def measure(args: mk.Args, base: str, task: str, out: Path) -> tuple[UnitCosts, dict]:
    n = args.estimate_steps
    episode = mk.dyna_config(args, task, 0, out / "unused").collect.steps
    notes: dict = {}

    # 1. model-free: the same run with and without updates
    hp_over = parse_assignments(args.hp)
    hp_real = load_hyperparams(mk.real_id(task), args.algo, args.hyperparams, hp_over)
    real_updates = updates_of(hp_real)
    warm = n // 3 if args.algo != "ppo" else 0
    runs = {}
    for name, starts in (("no_updates", n), ("updates", warm)):
        over = {**hp_over, "learning_starts": starts} if args.algo != "ppo" else hp_over
        runs[name] = cpu(
            train,
            TrainArgs(
                env=mk.real_id(task),
                algo=args.algo,
                timesteps=n,
                out=str(out / f"model_free_{name}"),
                env_kwargs={"max_episode_steps": episode},
                hyperparams=args.hyperparams,
                hp=over,
                seed=0,
                eval_freq=0,
                checkpoint_freq=0,
                video_freq=0,
                progress=False,
                verbose=0,
                layouts="train",
                layout_data=base,
            ),
        )
    extra = runs["updates"][1] - (runs["no_updates"][1] if args.algo != "ppo" else 0.0)
    gradient_step = max(extra, 0.0) / ((n - warm) * real_updates.per_transition)
    notes["model_free_cpu"] = {k: round(v[1], 1) for k, v in runs.items()}

    # 2. real steps with the agent acting
    bank_path = mk.held_out_bank(args, base, task)
    scenes = eval_scenes(ResetBank.load(bank_path), task, min(10, args.eval_episodes))
    steps = max(1, n // len(scenes))
    world = RealWorld(len(scenes), reset_bank=str(bank_path), task=task, data=base)
    policy = SB3Policy("agent", load_model(runs["updates"][0]["final_model"], args.algo))
    world.run(policy, scenes.subset([0]), 1, 0)  # build the envs outside the timing
    _, seconds, _ = cpu(world.run, policy, scenes, steps, 0)
    world.close()
    real_step = seconds / (len(scenes) * steps)

    # 3. one Dyna iteration at reduced counts
    cfg = mk.dyna_config(args, task, 0, out / "dyna")
    hp_img = load_hyperparams(
        IMAGINED_PRESET, cfg.agent.algo, cfg.agent.hyperparams, cfg.agent.hp_for_algo()
    )
    img_updates = updates_of(hp_img)
    warm_img = n // 3 if args.algo != "ppo" else 0
    cfg.iterations, cfg.collect.episodes, cfg.eval.episodes = 1, 2, 2
    cfg.world_model.steps, cfg.world_model.max_minutes = 3, None
    cfg.reward.steps, cfg.reward.max_minutes, cfg.reward.eval_every = 20, None, 20
    cfg.agent.timesteps = n
    if args.algo != "ppo":
        cfg.agent.hp = {
            **cfg.agent.hp,
            args.algo: {**cfg.agent.hp.get(args.algo, {}), "learning_starts": warm_img},
        }
    TimedLoop(cfg, SB3DynaAgent(cfg.agent, progress=False)).run()
    state = RunState(Path(cfg.output) / "state.json")
    stage = {s: state.result(0, s) for s in ("collect", "world_model", "reward", "agent")}
    ratio = {s: r["cpu_seconds"] / max(r["seconds"], 1e-9) for s, r in stage.items()}
    log = list(csv.DictReader(open(Path(cfg.output) / "iter_000/world_model/log.csv")))
    wm_step = float(log[-1]["sec_per_step"]) * ratio["world_model"]
    metrics = json.loads((Path(cfg.output) / "iter_000/reward/metrics.json").read_text())
    reward_step = metrics["train_minutes"] * 60 * ratio["reward"] / cfg.reward.steps

    env_kwargs = stage["agent"]["env_kwargs"]
    vec = make_vec_env(IMAGINED_PRESET, hp_img.n_envs, 0, env_kwargs, monitor=False)
    vec.reset()
    k = max(1, n // hp_img.n_envs)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (k, hp_img.n_envs, 4)).astype(np.float32)
    _, seconds, _ = cpu(lambda: [vec.step(a) for a in actions])
    vec.close()
    imagined_step = seconds / (k * hp_img.n_envs)
    agent_work = n * imagined_step + (n - warm_img) * img_updates.per_transition * gradient_step
    notes["dyna_stage_cpu"] = {s: round(r["cpu_seconds"], 1) for s, r in stage.items()}
    units = UnitCosts(
        real_step=real_step,
        gradient_step=gradient_step,
        imagined_step=imagined_step,
        world_model_step=wm_step,
        world_model_overhead=max(0.0, stage["world_model"]["cpu_seconds"] - 3 * wm_step),
        reward_step=reward_step,
        reward_overhead=max(0.0, stage["reward"]["cpu_seconds"] - 20 * reward_step),
        agent_overhead=max(0.0, stage["agent"]["cpu_seconds"] - agent_work),
    )
    notes |= {
        "real_updates": vars(real_updates),
        "imagined_updates": vars(img_updates),
        "collect_cpu_per_real_step": stage["collect"]["cpu_seconds"] / (2 * episode),
    }
    return units, notes


def totals(args: mk.Args, units: UnitCosts, notes: dict, base: str) -> dict:
    """CPU hours of the full benchmark per part."""
    task = args.tasks[0]
    points = se.curve_points(args.budgets, args.curve_every)
    cfg = mk.dyna_config(args, task, 0, Path(args.out) / "unused")
    per_iteration = cfg.collect.episodes * cfg.collect.steps
    iterations = max(points) // per_iteration
    hp_img = load_hyperparams(
        IMAGINED_PRESET, args.algo, cfg.agent.hyperparams, cfg.agent.hp_for_algo()
    )
    hp_real = load_hyperparams(
        mk.real_id(task), args.algo, args.hyperparams, parse_assignments(args.hp)
    )
    first = dyna_iteration_seconds(cfg, units, updates_of(hp_img))
    stages = dyna_iteration_seconds(cfg, units, updates_of(hp_img), continued=True)
    run_seconds = sum(first.values()) + (iterations - 1) * sum(stages.values())
    runs = len(args.tasks) * len(args.seeds)
    learners = [m for m in mk.LEARNERS if m in args.methods]
    refs = [m for m in mk.REFERENCES if m in args.methods]
    one_eval = args.eval_episodes * args.eval_steps * units.real_step
    free = runs * model_free_seconds(max(points), units, updates_of(hp_real)) / 3600
    hours = {
        "dyna": runs * run_seconds / 3600 if "dyna" in learners else 0.0,
        "model_free": free if "model_free" in learners else 0.0,
        # the control collects the budget less Dyna's first collection: at most as much
        mk.SEEDED: free if mk.SEEDED in learners else 0.0,
        "evaluation": runs * (len(learners) * len(points) + len(refs)) * one_eval / 3600,
    }
    return {
        "units_cpu_seconds": units.to_dict(),
        "dyna_iteration_cpu_seconds": stages,
        "dyna_first_iteration_cpu_seconds": first,
        "dyna_iterations_per_run": iterations,
        "runs_per_learner": runs,
        "cpu_hours": {**hours, "total": sum(hours.values())},
        "notes": notes,
        "settings": {
            "tasks": args.tasks,
            "seeds": args.seeds,
            "budgets": args.budgets,
            "points": points,
            "dyna_config": args.dyna_config,
            "base": base,
        },
    }


def main(args: mk.Args) -> dict:
    configure_threads()
    if args.quick:
        mk.apply_quick(args)
    base = mk.prepare_base(args)
    out = Path(args.out) / "estimate"
    shutil.rmtree(out, ignore_errors=True)  # a measurement: never reuse an older one
    units, notes = measure(args, base, args.tasks[0], out)
    result = totals(args, units, notes, base)
    out.mkdir(parents=True, exist_ok=True)
    (out / "estimate.json").write_text(json.dumps(result, indent=2) + "\n")
    print("unit costs (CPU s):", json.dumps({k: round(v, 4) for k, v in units.to_dict().items()}))
    print(
        "one Dyna iteration (CPU s):",
        json.dumps({k: round(v) for k, v in result["dyna_iteration_cpu_seconds"].items()}),
    )
    print(
        f"{result['dyna_iterations_per_run']} iterations x {result['runs_per_learner']} "
        "Dyna runs; the same number of model-free runs"
    )
    for part, h in result["cpu_hours"].items():
        print(f"  {part:>10}: {h:8.1f} CPU hours")
    return result


if __name__ == "__main__":
    main(parse_args(mk.Args))
