"""The Dyna loop: ``iterations`` x (collect, world model, reward, agent, evaluate).

Reads top to bottom. :meth:`DynaLoop.setup` prepares the run once (the base dataset,
generated if the config asks; the loop dataset linking it; the bank of train-layout scenes
collection runs on and the bank of held-out test scenes evaluation runs on). The split is
checked: collection and imagined training start only from train scenes (the base's train
split and the collected episodes, which ran on it), evaluation only from the base's test
split, and a scene in both is an error (:func:`~freeaction_gym.envs.layouts.
check_disjoint`). Each stage
(method ``run_<stage>``) of :meth:`DynaLoop.run` starts from the newest artefacts of the
stages before it (the previous iteration's world model, reward head and policy; the
config's for iteration 0), writes into ``{output}/iter_{k:03d}/{stage}/`` and is recorded in
``state.json`` when it finishes, so a rerun skips finished stages (and the world-model
trainer resumes an interrupted fine-tune from its checkpoint). After every iteration
``metrics.jsonl`` and ``dyna.png`` are rewritten (:mod:`freeaction_gym.dyna.report`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm.auto import tqdm

from freeaction_gym.dyna import report
from freeaction_gym.dyna.agent import (
    DynaAgent,
    imagined_env_kwargs,
    start_bank,
    support_option,
)
from freeaction_gym.dyna.config import DynaConfig, check_same_run, save_config
from freeaction_gym.dyna.dataset import LoopDataset
from freeaction_gym.dyna.state import STAGES, RunState
from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.envs.layouts import check_disjoint
from freeaction_gym.evaluation.worlds import Scenes


class DynaLoop:
    """One Dyna run in ``cfg.output`` with ``agent``."""

    def __init__(self, cfg: DynaConfig, agent: DynaAgent) -> None:
        self.cfg, self.agent = cfg, agent
        self.out = Path(cfg.output)
        self.state = RunState(self.out / "state.json")
        self.collect_bank = self.out / "banks" / "collect.npz"
        self.eval_bank = self.out / "banks" / "eval.npz"

    # -- once per run ----------------------------------------------------------------------
    def setup(self) -> LoopDataset:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        saved = self.out / "config.yaml"
        if saved.is_file() and self.state.iterations:
            check_same_run(yaml.safe_load(saved.read_text()), cfg)
        save_config(cfg, saved)
        base = Path(cfg.data.base)
        if not (base / "meta.json").is_file():  # check_inputs allowed it: data.generate is set
            from freeaction_gym.data.metaworld_gen import MetaWorldDataConfig, generate_dataset

            data_cfg = MetaWorldDataConfig(**cfg.data.generate)
            generate_dataset(base, data_cfg, num_workers=1, progress=cfg.progress)
        dataset = LoopDataset.create(
            self.out / "data", base, cfg.data.base_tasks, cfg.data.base_train_episodes
        )
        if not self.collect_bank.is_file():  # before any collection: the base's train scenes
            ResetBank.from_dataset(dataset.root, "train", [cfg.task]).save(self.collect_bank)
        if not self.eval_bank.is_file():
            ResetBank.from_dataset(base, "test", [cfg.task]).save(self.eval_bank)
        from freeaction_gym.dyna.evaluate import eval_scenes

        eval_bank = ResetBank.load(self.eval_bank)
        eval_scenes(eval_bank, cfg.task, cfg.eval.episodes)
        check_disjoint(ResetBank.load(self.collect_bank), eval_bank, "collection", "evaluation")
        return dataset

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        """Run (or continue) every iteration; returns the metric rows."""
        self.dataset = self.setup()
        n = self.cfg.iterations * len(STAGES)
        done = sum(
            self.state.result(it, s) is not None
            for it in range(self.cfg.iterations)
            for s in STAGES
        )
        bar = tqdm(total=n, initial=done, desc="dyna", unit="stage", disable=not self.cfg.progress)
        for it in range(self.cfg.iterations):
            todo = [s for s in STAGES if self.state.result(it, s) is None]
            for stage in todo:
                bar.set_postfix(iteration=it, stage=stage)
                self.run_stage(it, stage)
                bar.update(1)
            if todo:
                self.write_report()
        bar.close()
        rows = report.metric_rows(self.state)
        report.write_metrics(rows, self.out / "metrics.jsonl")
        return rows

    def run_stage(self, iteration: int, stage: str) -> dict[str, Any]:
        """Run one stage and record its result (with its wall ``seconds``) in ``state.json``."""
        tqdm.write(f"[dyna] iteration {iteration}: {stage}")
        t0 = time.perf_counter()
        result = getattr(self, f"run_{stage}")(iteration)
        result["seconds"] = time.perf_counter() - t0
        self.state.record(iteration, stage, result)
        return result

    def first_collection(self) -> list[Path]:
        """Only iteration 0's collection (run unless ``state.json`` has it; nothing after
        it), e.g. for a model-free control that starts from the episodes the Dyna agent
        starts from; their ``.npz`` paths. A later :meth:`run` continues from it."""
        self.dataset = self.setup()
        if self.state.result(0, "collect") is None:
            self.run_stage(0, "collect")
        return self.dataset.collected(0)

    def write_report(self) -> None:
        rows = report.metric_rows(self.state)
        report.write_metrics(rows, self.out / "metrics.jsonl")
        if rows:
            report.plot_metrics(rows, self.out / "dyna.png")
            last = rows[-1]
            gap = f", imagined-real gap {last['gap_success']:+.2f}" if "gap_success" in last else ""
            tqdm.write(
                f"[dyna] iteration {last['iteration']}: {last['real_env_steps']} real steps, "
                f"real success {last['real_success']:.2f}, return {last['real_return']:.1f}{gap}"
            )

    # -- stages ----------------------------------------------------------------------------
    def stage_dir(self, iteration: int, stage: str) -> Path:
        return self.out / f"iter_{iteration:03d}" / stage

    def current(self, iteration: int, stage: str, key: str, default: Any) -> Any:
        """The newest ``key`` a stage produced before ``iteration`` (else ``default``)."""
        value = self.state.latest(iteration, stage, key)
        return default if value is None else value

    def acting_policy(self, iteration: int):
        """Iteration 0 without an initial policy: the dataset generator's exploration mix;
        otherwise the newest policy + Gaussian exploration noise."""
        from freeaction_gym.dyna.collect import GeneratorMix, NoisyPolicy

        path = self.current(iteration, "agent", "policy", self.cfg.agent.init_policy)
        if path is None:
            from freeaction_gym.data.metaworld_gen import config_from_meta

            return GeneratorMix(config_from_meta(self.cfg.data.base))
        return NoisyPolicy(self.agent.policy(path), self.cfg.collect.noise_sigma)

    def run_collect(self, iteration: int) -> dict:
        from freeaction_gym.dyna.collect import (
            CollectPlan,
            RecordingRealWorld,
            batch_seed,
            collect,
        )

        cfg, bank = self.cfg, ResetBank.load(self.collect_bank)
        rng = np.random.default_rng([cfg.seed, iteration, 104651])
        idx = bank.indices(cfg.task)
        n = cfg.collect.episodes
        chosen = rng.choice(idx, size=n, replace=n > len(idx)).astype(np.int64)
        scenes = Scenes(chosen, bank.task[chosen].astype(str))
        paths = [self.dataset.collected_path(cfg.task, iteration, k) for k in range(n)]
        plan = CollectPlan(scenes, paths, cfg.collect.batch_size)
        policy = self.acting_policy(iteration)
        world = RecordingRealWorld(
            cfg.collect.batch_size,
            reset_bank=str(self.collect_bank),
            task=cfg.task,
            data=cfg.data.base,
            **cfg.real_options(),
        )
        try:
            result = collect(
                plan,
                policy,
                world,
                bank,
                cfg.collect.steps,
                lambda b: batch_seed(cfg.seed, iteration, b),
                {"dyna_iteration": np.int64(iteration)},
                cfg.progress,
            )
        finally:
            world.close()
        return {**result, "policy": policy.name, "dataset": self.dataset.counts()}

    def run_world_model(self, iteration: int) -> dict:
        from freeaction_gym.dyna.finetune import finetune

        init = self.current(iteration, "world_model", "model", self.cfg.world_model.init)
        out = self.stage_dir(iteration, "world_model")
        return finetune(
            self.cfg.world_model, init, self.dataset.root, out, self.cfg.seed + iteration
        )

    def run_reward(self, iteration: int) -> dict:
        from freeaction_gym.dyna.reward import default_head, refit_reward_head

        cfg = self.cfg.reward
        if cfg.mode == "state":  # nothing to fit: the env reads the integrated robot state
            return {"reward_head": None, "proprio": cfg.proprio}
        init = Path(cfg.init) if cfg.init else default_head(self.cfg.world_model.init)
        if cfg.mode == "keep":
            return {"reward_head": str(init)}
        out = self.stage_dir(iteration, "reward")
        roots, imagined = [self.dataset.root], {}
        if cfg.imagined_episodes > 0:
            from freeaction_gym.dyna.reward import imagined_copy

            env = {
                **self.cfg.agent.env_kwargs,
                "model": self.state.result(iteration, "world_model")["model"],
                "task": self.cfg.task,
            }
            imagined = imagined_copy(
                self.dataset, self.cfg.task, cfg.imagined_episodes, env, out,
                self.cfg.seed + iteration, self.cfg.eval.steps,
            )  # fmt: skip
            roots.append(Path(imagined["out"]))
        result = refit_reward_head(cfg, init, roots, out, self.cfg.seed + iteration)
        return {**result, **({"imagined": imagined} if imagined else {})}

    def run_agent(self, iteration: int) -> dict:
        out = self.stage_dir(iteration, "agent")
        out.mkdir(parents=True, exist_ok=True)
        bank = start_bank(self.dataset.root, self.cfg.task, self.cfg.agent.start_stride)
        check_disjoint(bank, ResetBank.load(self.eval_bank), "imagined training", "evaluation")
        bank.save(out / "reset_bank.npz")
        env_kwargs = {
            **imagined_env_kwargs(
                self.cfg,
                self.state.result(iteration, "world_model")["model"],
                self.state.result(iteration, "reward")["reward_head"],
                out / "reset_bank.npz",
            ),
            **support_option(self.cfg, self.dataset.root),
        }
        init = self.current(iteration, "agent", "policy", self.cfg.agent.init_policy)
        real = self.real_episodes() if self.cfg.agent.real_replay else None
        result = self.agent.train(env_kwargs, out, init, self.cfg.seed + iteration, real)
        return {**result, "reset_bank_entries": len(bank)}

    def real_episodes(self) -> list[Path]:
        """The task's collected episodes so far, oldest first (``agent.real_replay``)."""
        from freeaction_gym.data.episodes import task_of_path

        paths = [p for p in self.dataset.collected() if task_of_path(p) == self.cfg.task]
        return sorted(paths, key=lambda p: int(p.stem.rsplit("_", 1)[1]))

    def run_evaluate(self, iteration: int) -> dict:
        from freeaction_gym.dyna.evaluate import evaluate_policy

        trained = self.state.result(iteration, "agent")
        policy = self.agent.policy(trained["policy"])
        return evaluate_policy(
            self.cfg, policy, self.eval_bank, trained["env_kwargs"], self.cfg.seed
        )
