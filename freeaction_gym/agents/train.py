"""Train a stable-baselines3 PPO, SAC or DrQ agent on a FreeAction env (imagined or real).

    python -m agents.train --env FreeActionMetaWorldReach-v0 --algo ppo \\
        --out runs/agents/reach_ppo [--timesteps N] [--num-envs K] \\
        [--env-kwargs model=<dir> sampling.num_steps=4] [--hyperparams FILE] [--hp n_steps=64]

The imagined env steps all ``K`` envs with one batched world-model call
(:func:`freeaction_gym.envs.vector.make_sb3_vec_env`); ``--eval-env
FreeActionRealMetaWorldReach-v0`` evaluates a policy trained in imagination in the real
simulator while it trains. Training envs start from train layouts and evaluation envs
from the held-out test layouts (``--layouts train``, ``--eval-layouts test``, the defaults;
:mod:`freeaction_gym.envs.layouts`), the two checked to share no scene.

Writes into ``--out``: ``final_model.zip``, ``best_model.zip`` (best evaluation),
``checkpoints/``, ``eval/evaluations.npz``, ``videos/*.mp4``, ``logs/`` (TensorBoard
events + progress.csv), ``train_config.json`` and the reset bank made for the training
env (``train_layouts.npz``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from freeaction_gym.agents.config import ALGOS, load_hyperparams, parse_assignments
from freeaction_gym.utils.args import make_output_dir, require_at_least, require_path
from freeaction_gym.utils.errors import UserError, cli_main


@dataclass
class TrainArgs:
    """Command-line arguments of ``python -m agents.train``."""

    env: str = "FreeActionMetaWorldReach-v0"
    """A registered id: imagined (``FreeActionMetaWorld*``) or real
    (``FreeActionRealMetaWorld*``)."""
    algo: Literal["ppo", "sac", "drq"] = "ppo"
    """``drq``: SAC with random-shift augmentation and a critic-trained encoder
    (:mod:`freeaction_gym.agents.drq`)."""
    timesteps: int | None = None
    """Environment steps to train for (default: the hyperparameters' ``n_timesteps``)."""
    num_envs: int | None = None
    """Parallel envs (default: the hyperparameters' ``n_envs``)."""
    out: str | None = None
    """Output directory (default ``runs/agents/<env>_<algo>_s<seed>``)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Env options (``gym.make`` keywords) over the hyperparameters' ``env_kwargs``."""
    hyperparams: str | None = None
    """A YAML file with ``ppo:``/``sac:``/``drq:`` sections (default
    ``freeaction_gym/agents/hyperparams/<env>.yaml``)."""
    hp: dict[str, Any] = field(default_factory=dict)
    """Hyperparameter overrides (``n_steps=64``, ``policy_kwargs.net_arch=[64]``)."""
    seed: int = 0
    eval_env: str | None = None
    """Evaluate on this id instead (e.g. the real counterpart of an imagined id)."""
    eval_env_kwargs: dict[str, Any] | None = None
    """Options of the eval env (default: ``env_kwargs`` when it is the training id)."""
    eval_freq: int = 10_000
    """Evaluate every this many environment steps (0: never)."""
    eval_episodes: int = 5
    checkpoint_freq: int = 50_000
    """Save a checkpoint every this many environment steps (0: never)."""
    video_freq: int = 50_000
    """Record an evaluation episode every this many steps and at the end (0: never)."""
    progress: bool = True
    device: str = "auto"
    verbose: int = 1
    init_from: str | None = None
    """Continue training this saved model (``.zip``, same algorithm) instead of fresh
    weights: same network, a fresh learning-rate schedule over ``timesteps`` (the Dyna
    loop's agent from one iteration to the next)."""
    layouts: Literal["train", "test"] = "train"
    """Scenes the training env starts from (MetaWorld ids, :mod:`freeaction_gym.envs.
    layouts`): ``train`` - a bank of train layouts (``layout_data``'s train split, else the
    train MT1 seed's 50 layouts per task rendered from the simulator; a ``reset_bank`` env
    option as given), checked to share no scene with the env's own held-out bank; ``test``
    - the env's own bank (the held-out test layouts evaluations start from)."""
    layout_data: str | None = None
    """A dataset root whose train (``layouts``) / test (``eval_layouts``) split gives the
    scenes; None: rendered train layouts / the env's own bank."""
    eval_layouts: Literal["train", "test"] = "test"
    """Scenes the evaluation env (``--eval-env``, videos) starts from."""
    resume_every: int = 1000
    """Snapshot the run (model, replay buffer, seconds) into ``out/resume/`` every this many
    environment steps (:mod:`freeaction_gym.agents.resume`; 0: never)."""
    resume: bool = False
    """Continue an interrupted run in ``out`` from its ``resume/`` snapshot (the remaining
    steps of ``timesteps``); without a snapshot, start fresh."""
    prefill: list[str] = field(default_factory=list)
    """Off-policy algorithms: recorded episodes (``.npz`` in the dataset format, or
    directories of them) whose transitions fill the replay buffer before training
    (:mod:`freeaction_gym.agents.prefill`; e.g. real experience next to imagined). The buffer grows
    to
    hold them and ``timesteps`` more; a resumed run's snapshot already holds them."""


def _image_wrap(vec):
    """Channel-first view of image observations (what SB3 does to the training env)."""
    from stable_baselines3.common.preprocessing import (
        is_image_space,
        is_image_space_channels_first,
    )
    from stable_baselines3.common.vec_env import VecTransposeImage

    space = vec.observation_space
    if is_image_space(space) and not is_image_space_channels_first(space):
        return VecTransposeImage(vec)
    return vec


def check_args(args: TrainArgs) -> None:
    """Reject bad numbers and missing inputs with a :class:`UserError` (or the loaders'
    ``FileNotFoundError``) naming the option, before anything is written."""
    require_at_least(1, timesteps=args.timesteps, num_envs=args.num_envs,
                     eval_episodes=args.eval_episodes)  # fmt: skip
    require_at_least(0, eval_freq=args.eval_freq, checkpoint_freq=args.checkpoint_freq,
                     video_freq=args.video_freq, resume_every=args.resume_every)  # fmt: skip
    if args.hyperparams is not None:
        require_path(args.hyperparams, "--hyperparams", "file")
    if args.init_from:
        require_path(args.init_from, "--init-from", "file")
    if args.layout_data is not None:
        from freeaction_gym.data.episodes import read_meta

        read_meta(args.layout_data)  # names the root when it is no dataset


@contextlib.contextmanager
def env_option_errors(env_id: str):
    """A ``ValueError`` of the env's option checks (``--env-kwargs``, the hyperparameters'
    ``env_kwargs``) is the user's: a :class:`UserError` naming the env (one CLI line)."""
    try:
        yield
    except ValueError as err:
        if isinstance(err, UserError):
            raise
        raise UserError(f"--env {env_id} (with --env-kwargs): {err}") from err


def train(args: TrainArgs) -> dict[str, Any]:
    """Train, save and return a summary (paths, steps, seconds)."""
    check_args(args)
    from freeaction_gym.utils.threads import configure_threads

    configure_threads()
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.callbacks import CallbackList, EvalCallback
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import VecNormalize

    from freeaction_gym.agents.callbacks import TqdmCallback, VideoRecorderCallback
    from freeaction_gym.agents.envs import make_vec_env
    from freeaction_gym.agents.policies import policy_kwargs_from_config

    # -- settings --------------------------------------------------------------------------
    hp = load_hyperparams(args.env, args.algo, args.hyperparams, args.hp)
    n_envs = args.num_envs or hp.n_envs
    total = args.timesteps or hp.n_timesteps
    if n_envs < 1 or total < 1:
        raise UserError(f"{hp.source}: n_envs ({n_envs}) and n_timesteps ({total}) must be >= 1")
    prefill_paths = _prefill_paths(args)  # checked to exist before --out is made
    out = make_output_dir(args.out or f"runs/agents/{args.env}_{args.algo}_s{args.seed}")
    env_kwargs = {**hp.env_kwargs, **args.env_kwargs}
    eval_id = args.eval_env or args.env
    eval_kwargs = args.eval_env_kwargs
    if eval_kwargs is None:
        eval_kwargs = env_kwargs if eval_id == args.env else {}

    # -- scenes: train layouts for training, held-out test layouts for evaluation ------------
    from freeaction_gym.envs.layouts import check_disjoint, layout_env_kwargs

    with env_option_errors(args.env):  # make_env_config checks every option here
        train_layouts = layout_env_kwargs(
            args.env, env_kwargs, args.layouts, out / f"{args.layouts}_layouts.npz",
            args.layout_data,
        )  # fmt: skip
    env_kwargs = train_layouts.env_kwargs
    layouts = {"train_env": train_layouts.record}
    if args.eval_freq > 0 or args.video_freq > 0:
        eval_layouts = layout_env_kwargs(
            eval_id,
            eval_kwargs,
            args.eval_layouts,
            out / f"eval_{args.eval_layouts}_layouts.npz",
            args.layout_data,
        )
        eval_kwargs = eval_layouts.env_kwargs
        layouts["eval_env"] = eval_layouts.record
        if (args.layouts, args.eval_layouts) == ("train", "test") and None not in (
            train_layouts.bank,
            eval_layouts.bank,
        ):
            check_disjoint(train_layouts.bank, eval_layouts.bank, "training", "evaluation")

    # -- envs ------------------------------------------------------------------------------
    with env_option_errors(args.env):
        train_vec = make_vec_env(
            args.env, n_envs, args.seed, env_kwargs, frame_stack=hp.frame_stack
        )
    if hp.normalize_reward:
        gamma = float(hp.algo_kwargs.get("gamma", 0.99))
        train_vec = VecNormalize(train_vec, norm_obs=False, norm_reward=True, gamma=gamma)
    train_env = _image_wrap(train_vec)
    eval_vec = None
    if args.eval_freq > 0 or args.video_freq > 0:
        eval_vec = make_vec_env(eval_id, 1, args.seed + 10_000, eval_kwargs, hp.frame_stack)
        if hp.normalize_reward:  # same wrapper structure as training (SB3 syncs them); raw
            eval_vec = VecNormalize(eval_vec, False, norm_obs=False, norm_reward=False)

    # -- model -----------------------------------------------------------------------------
    from freeaction_gym.agents.resume import ResumeCallback, StepCheckpointCallback, resume_state

    snapshot = resume_state(out) if args.resume else None
    if snapshot is not None and not snapshot["files"]:
        raise UserError(
            f"{out} holds a finished run (its snapshot was dropped at {snapshot['steps']} "
            "steps): nothing to resume; train into a new --out"
        )
    if snapshot is not None and args.init_from:
        raise UserError("--resume continues the run's own snapshot; drop --init-from")
    algo_cls = {"ppo": PPO, "sac": SAC, "drq": SAC}[args.algo]
    policy, algo_kwargs = hp.policy, hp.algo_kwargs
    if args.algo == "drq":
        from freeaction_gym.agents.drq import drq_sac_kwargs

        policy, algo_kwargs = drq_sac_kwargs(hp, train_env.observation_space)
    if prefill_paths:  # room for them and every step of the run
        from freeaction_gym.agents.prefill import count_transitions

        need = count_transitions(prefill_paths) + total + n_envs
        size = max(need, algo_kwargs.get("buffer_size", 1_000_000))
        algo_kwargs = {**algo_kwargs, "buffer_size": size}
    try:
        if args.init_from or snapshot is not None:
            model = algo_cls.load(
                args.init_from or out / "resume" / "model.zip",
                env=train_env,
                device=args.device,
                verbose=args.verbose,
                **algo_kwargs,
            )
            model.set_random_seed(args.seed)
            if snapshot is not None:
                _restore(model, out / "resume", snapshot, train_vec)
        else:
            model = algo_cls(
                policy,
                train_env,
                policy_kwargs=policy_kwargs_from_config(hp.policy_kwargs),
                seed=args.seed,
                device=args.device,
                verbose=args.verbose,
                **algo_kwargs,
            )
    except TypeError as e:
        raise UserError(f"bad {args.algo} hyperparameters from {hp.source}: {e}") from e
    prefilled = 0
    if prefill_paths:
        from freeaction_gym.agents.prefill import prefill, used_paths

        if snapshot is None:
            prefilled = prefill(model.replay_buffer, prefill_paths, model.action_space)
        else:  # the snapshot's buffer already holds them
            prefilled = count_transitions(used_paths(prefill_paths, model.replay_buffer.n_envs))
    formats = ["csv", "tensorboard"] + (["stdout"] if args.verbose else [])
    model.set_logger(configure(str(out / "logs"), formats))

    # -- callbacks -------------------------------------------------------------------------
    callbacks = []
    if args.progress:
        callbacks.append(TqdmCallback())
    if args.checkpoint_freq > 0:
        callbacks.append(
            StepCheckpointCallback(args.checkpoint_freq, out / "checkpoints", args.algo)
        )
    resume_cb = None
    if args.resume_every > 0:
        before = snapshot or {}
        resume_cb = ResumeCallback(
            out, args.resume_every, before.get("seconds", 0.0), before.get("history")
        )
        callbacks.append(resume_cb)
    if args.eval_freq > 0:
        callbacks.append(
            EvalCallback(
                _image_wrap(eval_vec),
                n_eval_episodes=args.eval_episodes,
                eval_freq=max(1, args.eval_freq // n_envs),
                best_model_save_path=str(out),
                log_path=str(out / "eval"),
                deterministic=True,
                verbose=args.verbose,
            )
        )
    if args.video_freq > 0:
        fps = int((getattr(eval_vec, "metadata", None) or {}).get("render_fps", 10))
        callbacks.append(
            VideoRecorderCallback(eval_vec, out / "videos", args.video_freq, fps, args.algo)
        )

    # -- train -----------------------------------------------------------------------------
    t0 = time.perf_counter()
    done_before = 0 if snapshot is None else int(snapshot["steps"])
    if total > done_before:
        model.learn(
            total - done_before,
            callback=CallbackList(callbacks),
            tb_log_name=args.algo,
            reset_num_timesteps=snapshot is None,
        )
    seconds = time.perf_counter() - t0 + (0.0 if snapshot is None else snapshot["seconds"])
    model.save(out / "final_model.zip")
    summary = {
        "env": args.env,
        "algo": args.algo,
        "timesteps": int(model.num_timesteps),
        "num_envs": n_envs,
        "seconds": seconds,
        "final_model": str(out / "final_model.zip"),
        "hyperparams_file": hp.source,
        "layouts": layouts,
        "resumed_at": None if snapshot is None else int(snapshot["steps"]),
    }
    if prefill_paths:
        summary["prefill_transitions"] = prefilled
    if resume_cb is not None:
        summary["seconds_history"] = resume_cb.finish(int(model.num_timesteps), seconds)
    if hasattr(model, "replay_buffer") and model.replay_buffer is not None:
        # transitions held at the end (a continued off-policy agent starts with an empty one)
        summary["replay_transitions"] = int(model.replay_buffer.size() * n_envs)
    config = {
        "args": asdict(args),
        "hyperparams": {
            **asdict(hp),
            "algo_kwargs": {k: repr(v) for k, v in hp.algo_kwargs.items()},
        },
        "summary": summary,
    }
    (out / "train_config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
    train_env.close()
    if eval_vec is not None:
        eval_vec.close()
    return summary


def _prefill_paths(args: TrainArgs) -> list[Path]:
    """The ``--prefill`` episode files (checked to exist; off-policy algos only)."""
    if not args.prefill:
        return []
    if args.algo == "ppo":
        raise UserError("--prefill fills a replay buffer: use an off-policy algo (sac, drq)")
    from freeaction_gym.agents.prefill import episode_paths

    return episode_paths(args.prefill)


def _restore(model, snap_dir: Path, snapshot: dict[str, Any], train_vec) -> None:
    """The replay buffer and ``VecNormalize`` statistics of a snapshot, into a loaded model."""
    from freeaction_gym.agents.resume import load_buffer

    if "buffer.npz" in snapshot["files"]:
        load_buffer(model.replay_buffer, snap_dir / "buffer.npz")
    if "vecnormalize.pkl" in snapshot["files"]:
        from stable_baselines3.common.vec_env import VecNormalize

        saved = VecNormalize.load(str(snap_dir / "vecnormalize.pkl"), train_vec.venv)
        train_vec.obs_rms, train_vec.ret_rms = saved.obs_rms, saved.ret_rms


def parse_args(argv: list[str] | None = None) -> TrainArgs:
    d = TrainArgs()
    p = argparse.ArgumentParser(prog="python -m agents.train", description=__doc__.split("\n")[0])
    p.add_argument("--env", default=d.env, help="registered env id")
    p.add_argument("--algo", default=d.algo, choices=ALGOS)
    p.add_argument("--timesteps", type=int, default=None, help="environment steps")
    p.add_argument("--num-envs", type=int, default=None, help="parallel envs")
    p.add_argument("--out", default=None, help="output directory")
    p.add_argument("--env-kwargs", nargs="*", default=[], metavar="K=V", help="env options")
    p.add_argument("--hyperparams", default=None, help="hyperparameter YAML file")
    p.add_argument("--hp", nargs="*", default=[], metavar="K=V", help="hyperparameter overrides")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--eval-env", default=None, help="evaluate on this id (e.g. the real one)")
    p.add_argument("--eval-env-kwargs", nargs="*", default=None, metavar="K=V")
    p.add_argument("--eval-freq", type=int, default=d.eval_freq, help="env steps; 0 = never")
    p.add_argument("--eval-episodes", type=int, default=d.eval_episodes)
    p.add_argument("--checkpoint-freq", type=int, default=d.checkpoint_freq, help="0 = never")
    p.add_argument("--video-freq", type=int, default=d.video_freq, help="0 = never")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--device", default=d.device)
    p.add_argument("--verbose", type=int, default=d.verbose)
    p.add_argument("--init-from", default=None, help="continue training this saved .zip")
    p.add_argument(
        "--layouts",
        default=d.layouts,
        choices=["train", "test"],
        help="scenes of the training env: train layouts or the env's own (test) bank",
    )
    p.add_argument("--layout-data", default=None, help="dataset root giving the layouts")
    p.add_argument("--eval-layouts", default=d.eval_layouts, choices=["train", "test"])
    p.add_argument("--resume", action="store_true", help="continue from out/resume/")
    p.add_argument("--resume-every", type=int, default=d.resume_every, help="0 = never")
    p.add_argument(
        "--prefill",
        nargs="*",
        default=[],
        metavar="EPISODES",
        help="recorded episodes (.npz or directories) to fill the replay buffer with first",
    )
    a = p.parse_args(argv)
    return TrainArgs(
        env=a.env,
        algo=a.algo,
        timesteps=a.timesteps,
        num_envs=a.num_envs,
        out=a.out,
        env_kwargs=parse_assignments(a.env_kwargs),
        hyperparams=a.hyperparams,
        hp=parse_assignments(a.hp),
        seed=a.seed,
        eval_env=a.eval_env,
        eval_env_kwargs=None if a.eval_env_kwargs is None else parse_assignments(a.eval_env_kwargs),
        eval_freq=a.eval_freq,
        eval_episodes=a.eval_episodes,
        checkpoint_freq=a.checkpoint_freq,
        video_freq=a.video_freq,
        progress=not a.no_progress,
        device=a.device,
        verbose=a.verbose,
        init_from=a.init_from,
        layouts=a.layouts,
        layout_data=a.layout_data,
        eval_layouts=a.eval_layouts,
        resume=a.resume,
        resume_every=a.resume_every,
        prefill=a.prefill,
    )


@cli_main
def main(argv: list[str]) -> int:
    summary = train(parse_args(argv))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
