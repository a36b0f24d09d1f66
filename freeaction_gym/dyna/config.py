"""Typed configuration of a Dyna run (``freeaction dyna --config configs/dyna/*.yaml``).

One YAML file is one run: top-level keys (``task``, ``iterations``, ``seed``, ``output``,
``progress``) and one section per stage (``data``, ``collect``, ``world_model``, ``reward``,
``agent``, ``eval``). Unknown keys, wrong types and out-of-range values are errors that
name the option (``dyna option collect.episodes must be >= 1, got 0``), the imagined env's
options (``agent.env_kwargs``) included; paths that must already exist are checked when the
config is loaded, so a typo fails before any work.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_type_hints

import yaml

from freeaction_gym.envs.validation import check_value
from freeaction_gym.utils.args import parse_assignments
from freeaction_gym.utils.errors import UserError


@dataclass
class DataConfig:
    """Where the loop's data starts (``data:``)."""

    base: str = "data/metaworld_v2"
    """Base dataset root (``freeaction data metaworld``); read only - the loop's dataset
    links its episodes and adds the collected ones beside them."""
    base_tasks: list[str] | None = None
    """Tasks of the base dataset linked into the loop's dataset (None: all of them)."""
    base_train_episodes: int | None = None
    """At most this many base train episodes per task (the first ones; None: all). Fewer
    base episodes give the collected ones a larger share of the world model's replay."""
    generate: dict[str, Any] | None = None
    """If ``base`` holds no dataset yet, generate one there first with these
    ``MetaWorldDataConfig`` fields (e.g. a small one for the quick config); None: the base
    must exist."""


@dataclass
class CollectConfig:
    """Step (a): real episodes per iteration (``collect:``)."""

    episodes: int = 20
    """E: real MetaWorld episodes collected per iteration (train layouts of the task)."""
    steps: int = 40
    """Actions per collected episode (fixed length; no termination on success)."""
    noise_sigma: float = 0.2
    """Std of the Gaussian exploration noise added to the agent's (deterministic) actions.
    Iteration 0 without ``agent.init_policy`` uses the dataset generator's noisy
    scripted-expert / random mix instead."""
    batch_size: int = 8
    """Real envs stepped in lockstep (one batched policy call per step); also the unit
    an interrupted collection resumes from."""


@dataclass
class WorldModelConfig:
    """Step (b): fine-tune the world model on the grown dataset (``world_model:``)."""

    init: str = "bundled:metaworld_default"
    """World model directory (``freeaction train`` export or ``bundled:<name>``) the first
    iteration starts from; later iterations start from the previous iteration's weights."""
    train_config: str | None = None
    """The training YAML that made ``init`` (e.g. ``configs/v2/metaworld_v2.yaml``): its
    data/optim/diffusion settings are used. None: trainer defaults. The model section
    always comes from ``init``'s config.json so the weights load."""
    steps: int = 300
    """Fine-tuning optimiser steps per iteration (replay over base + collected train
    episodes, see :attr:`collected_share`)."""
    collected_share: float = 0.0
    """Probability that a fine-tuning clip comes from a collected episode (the rest from
    the base); 0: uniform over all episodes, so the few collected ones are rarely seen."""
    max_minutes: float | None = None
    """Also stop a fine-tune after this many minutes (after a checkpoint)."""
    ema_decay: float = 0.99
    """EMA decay of the fine-tune (the exported weights are the EMA: at the usual 0.999 a
    few hundred steps would barely move them)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Training-config sections over ``train_config``, e.g. ``{optim: {lr: 1e-4}}``."""


@dataclass
class RewardConfig:
    """Step (c): the reward/success signal of the imagined env (``reward:``)."""

    mode: Literal["refit", "keep", "state"] = "refit"
    """``refit``: retrain the learned head on the grown dataset every iteration; ``keep``:
    use ``init`` unchanged; ``state``: no head - the imagined env scores MetaWorld's own
    reward and success rule (reach-v3) on the robot state the proprio model ``proprio``
    integrates over the agent's actions (env options ``reward: state``, ``state_source:
    proprio``), which follows the hand far closer than imagined frames do; nothing is fit."""
    proprio: str = "bundled:metaworld_vap/proprio"
    """The proprio model directory (``freeaction train-proprio``) or bundle path of
    ``state`` mode, and of agents that observe the arm (``agent.env_kwargs.proprio_obs``)
    in any mode, unless ``agent.env_kwargs.proprio_model`` names another."""
    init: str | None = None
    """Reward head directory to keep, or whose architecture a refit copies. Default:
    ``<world_model.init>/reward_head`` if there is one, else the bundled head."""
    steps: int = 1000
    max_minutes: float | None = None
    batch_size: int = 64
    eval_every: int = 250
    imagined_episodes: int = 0
    """With ``refit``: also train on an imagined copy of this many train episodes (the
    newest collected first) and of the task's val/test episodes, replayed through the
    iteration's world model with the agent's sampler, real labels (0: real frames only)."""
    collected_share: float = 0.0
    """With ``refit``: probability that a training frame comes from a collected episode
    (the agent's, with their real labels) rather than the base; 0: uniform over all
    frames, where the base's experts outnumber the agent's few episodes."""


AGENT_ALGOS = ("ppo", "sac", "drq")


@dataclass
class AgentConfig:
    """Step (d): the agent trained in imagination (``agent:``)."""

    algo: Literal["ppo", "sac", "drq"] = "ppo"
    """``drq``: SAC with random-shift augmentation on stacked frames
    (``freeaction_gym/agents/drq.py``).
    Off-policy agents (``sac``, ``drq``) start every iteration with an empty replay buffer
    refilled in that iteration's imagination: the world model and reward head change each
    iteration, so older imagined transitions come from a different model (networks and the
    entropy coefficient carry over; ``learning_starts`` warm-up steps repeat)."""
    timesteps: int = 20_000
    """Imagined environment steps per iteration (the agent continues from its last
    weights)."""
    num_envs: int | None = None
    """Imagined envs (default: the hyperparameters' ``n_envs``)."""
    hyperparams: str | None = None
    """YAML with ``ppo:``/``sac:``/``drq:`` sections (default:
    ``freeaction_gym/agents/hyperparams/FreeActionMetaWorld-v0.yaml``)."""
    hp: dict[str, Any] = field(default_factory=dict)
    """Hyperparameter overrides, e.g. ``{learning_rate: 1e-4}`` for any ``algo``, and per
    algorithm under its name, e.g. ``{ppo: {n_steps: 64}, drq: {buffer_size: 10000}}``
    (used only when ``algo`` is that one, over the shared keys), so one config can carry
    settings for each and ``agent.algo=drq`` switches."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Imagined env options (e.g. ``sampling: {num_steps: 2}``); model, reward head, reset
    bank, task and support are set by the loop."""
    init_policy: str | None = None
    """An SB3 ``.zip`` to start from; it also collects iteration 0's episodes."""
    continued_learning_starts: int | None = None
    """Off-policy agents: ``learning_starts`` of an iteration that continues from a policy
    (None: the hyperparameters' value every iteration). SB3 acts uniformly at random for
    the first ``learning_starts`` steps: right for an untrained agent, a waste of imagined
    steps and updates for a trained one, whose own actions can fill the fresh buffer."""
    start_stride: int | None = None
    """Where imagined episodes start: None, the first frame of every train episode so far;
    k, every k-th frame along them (with the robot state there), MBPO's branched rollouts.
    Pair it with a short ``env_kwargs.max_episode_steps``: the agent then trains only on
    short rollouts from real states, where the model's error has not compounded (the
    evaluation's imagined episodes keep ``eval.steps`` from the first frame)."""
    real_replay: bool = False
    """Off-policy agents: every iteration's fresh replay buffer starts with the real
    transitions of every episode collected so far (the simulator's reward, what the agent
    observed there), and the imagined steps add to it: Dyna's direct learning from real
    experience beside learning in the model (MBPO's mix of real and model data). The
    base dataset's episodes are not added (they are the world model's pretraining data,
    not the agent's real steps)."""
    support: Literal["data", "hyperparams", "none"] = "data"
    """The imagined env's ``support`` guard: ``data`` re-measures the xyz displacement box
    on the grown dataset each iteration (it widens where the agent went), ``hyperparams``
    keeps the hyperparameter file's box, ``none`` switches it off."""
    support_quantile: float = 0.005

    def hp_for_algo(self) -> dict[str, Any]:
        """:attr:`hp` for :attr:`algo`: the shared keys, then the algorithm's own section."""
        shared = {k: v for k, v in self.hp.items() if k not in AGENT_ALGOS}
        return merge(shared, self.hp.get(self.algo) or {})


@dataclass
class EvalConfig:
    """Step (e): the same policy in the real simulator and in imagination (``eval:``)."""

    episodes: int = 20
    """Held-out scenes (the base test split's episodes of the task), one episode each."""
    steps: int = 40
    """Actions per evaluation episode (fixed length, success at any step)."""
    imagined: bool = True
    """Also run the policy in imagination on the same scenes (the imagined-vs-real gap)."""
    batch_size: int = 20


@dataclass
class DynaConfig:
    """A Dyna run: ``iterations`` x (collect, fine-tune world model, refit reward, train agent
    in imagination, evaluate)."""

    task: str = "reach-v3"
    """The MetaWorld task the agent learns."""
    iterations: int = 10
    """Iterations to run (raise it and rerun to extend a finished run)."""
    seed: int = 0
    output: str = "runs/dyna/reach"
    """Output directory (everything the run writes; rerunning resumes here)."""
    progress: bool = True
    """tqdm progress bars."""
    data: DataConfig = field(default_factory=DataConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def real_options(self) -> dict[str, Any]:
        """Options of the real envs the agent acts in (collection, evaluation): what the
        agent observes must match its imagined env's ``agent.env_kwargs.proprio_obs``."""
        return {"proprio_obs": bool(self.agent.env_kwargs.get("proprio_obs", False))}

    def __post_init__(self) -> None:
        _check_types(self, "")
        _at_least(self, "", {"iterations": 1})
        for name in SECTIONS:
            _check_types(getattr(self, name), f"{name}.")
        _at_least(self.data, "data.", {"base_train_episodes": 1})
        _at_least(self.collect, "collect.", {"episodes": 1, "steps": 1, "batch_size": 1})
        _at_least(self.world_model, "world_model.", {"steps": 1})
        _at_least(
            self.reward,
            "reward.",
            {"steps": 1, "batch_size": 1, "eval_every": 1, "imagined_episodes": 0},
        )
        _at_least(self.agent, "agent.", {"timesteps": 1, "num_envs": 1})
        _at_least(self.eval, "eval.", {"episodes": 1, "steps": 1, "batch_size": 1})
        if not 0.0 <= self.world_model.ema_decay < 1.0:
            raise ValueError(
                "dyna option world_model.ema_decay must be in [0, 1), got "
                f"{self.world_model.ema_decay}"
            )
        if not 0.0 <= self.reward.collected_share < 1.0:
            raise ValueError(
                "dyna option reward.collected_share must be in [0, 1), got "
                f"{self.reward.collected_share}"
            )
        if not 0.0 <= self.world_model.collected_share < 1.0:
            raise ValueError(
                "dyna option world_model.collected_share must be in [0, 1), got "
                f"{self.world_model.collected_share}"
            )
        _at_least(self.agent, "agent.", {"continued_learning_starts": 0, "start_stride": 1})
        if self.collect.noise_sigma < 0:
            raise ValueError(
                f"dyna option collect.noise_sigma must be >= 0, got {self.collect.noise_sigma}"
            )
        for algo in AGENT_ALGOS:
            section = self.agent.hp.get(algo)
            if section is not None and not isinstance(section, dict):
                raise ValueError(
                    f"dyna option agent.hp.{algo} must be a mapping of {algo} "
                    f"hyperparameters, got {section!r}"
                )
        if not 0.0 <= self.agent.support_quantile < 0.5:
            raise ValueError(
                "dyna option agent.support_quantile must be in [0, 0.5), got "
                f"{self.agent.support_quantile}"
            )
        if self.agent.real_replay and self.agent.algo == "ppo":
            raise ValueError(
                "dyna option agent.real_replay fills a replay buffer: it needs an off-policy "
                "agent.algo (sac or drq), not ppo"
            )
        if self.reward.mode == "state" and self.reward.imagined_episodes > 0:
            raise ValueError(
                "dyna option reward.imagined_episodes trains the learned head: it needs "
                "reward.mode refit, not state"
            )
        if self.reward.mode == "state":
            from freeaction_gym.rewards.state_reward import STATE_REWARD_TASKS

            if self.task not in STATE_REWARD_TASKS:
                raise ValueError(
                    f"dyna option reward.mode state scores MetaWorld's reward on the integrated "
                    f"state only for {list(STATE_REWARD_TASKS)}, not task {self.task!r}: use "
                    "reward.mode refit (the learned head)"
                )
        for name in ("world_model.max_minutes", "reward.max_minutes"):
            section, key = name.split(".")
            value = getattr(getattr(self, section), key)
            if value is not None and value <= 0:
                raise ValueError(f"dyna option {name} must be > 0 (or null), got {value}")
        check_env_kwargs(self)


def check_env_kwargs(cfg: DynaConfig) -> None:
    """``agent.env_kwargs`` as the imagined env receives them (with the options the loop
    sets: model, reward, reset bank, task), validated as ``gym.make`` validates them
    (:func:`~freeaction_gym.envs.config.make_env_config`: names, types, ranges, the sampling
    dict) without loading a model, so a typo fails when the config loads rather than at
    the agent stage, after collection, fine-tuning and the reward refit. The checks that
    need the model (e.g. ``action_chunk`` against its window) still run at the agent stage."""
    from freeaction_gym.envs.config import make_env_config

    head = None if cfg.reward.mode == "state" else "reward_head"
    options = imagined_env_kwargs(cfg, cfg.world_model.init, head, "reset_bank.npz")
    try:
        make_env_config(IMAGINED_PRESET, **options)
    except (TypeError, ValueError) as err:
        raise ValueError(f"dyna option agent.env_kwargs: {err}") from err


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "collect": CollectConfig,
    "world_model": WorldModelConfig,
    "reward": RewardConfig,
    "agent": AgentConfig,
    "eval": EvalConfig,
}


def _check_types(obj: Any, prefix: str) -> None:
    """Every non-section field of ``obj`` against its annotation (and normalised)."""
    hints = get_type_hints(type(obj))
    for f in fields(obj):
        if f.name not in SECTIONS:
            value = check_value(
                getattr(obj, f.name), hints[f.name], f"dyna option {prefix}{f.name}"
            )
            setattr(obj, f.name, value)


def _at_least(obj: Any, prefix: str, minimum: dict[str, int]) -> None:
    for name, low in minimum.items():
        value = getattr(obj, name)
        if value is not None and value < low:
            raise ValueError(f"dyna option {prefix}{name} must be >= {low}, got {value}")


def merge(base: Any, override: Any) -> Any:
    """``override`` over ``base``; mappings merge key by key, at any depth."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: merge(base.get(k), v) for k, v in override.items()}}
    return override


def config_from_dict(d: dict[str, Any]) -> DynaConfig:
    """A nested mapping -> :class:`DynaConfig`; unknown keys name their section."""
    d = dict(d or {})
    top = {f.name for f in fields(DynaConfig)}
    unknown = sorted(set(d) - top)
    if unknown:
        raise ValueError(f"unknown dyna option(s) {unknown}; allowed: {sorted(top)}")
    sections = {}
    for name, cls in SECTIONS.items():
        values = d.pop(name, None) or {}
        if not isinstance(values, dict):
            raise ValueError(f"dyna section {name} must be a mapping, got {values!r}")
        allowed = {f.name for f in fields(cls)}
        bad = sorted(set(values) - allowed)
        if bad:
            raise ValueError(
                f"unknown dyna option(s) {[f'{name}.{k}' for k in bad]}; "
                f"allowed in {name}: {sorted(allowed)}"
            )
        sections[name] = cls(**values)
    return DynaConfig(**d, **sections)


def load_dyna_config(
    path: str | Path, overrides: list[str] | None = None, check_paths: bool = True
) -> DynaConfig:
    """YAML file + ``section.key=value`` overrides -> :class:`DynaConfig`; with
    ``check_paths`` the inputs that must exist are checked (:func:`check_inputs`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dyna config not found: {path}")
    d = yaml.safe_load(path.read_text()) or {}
    if not isinstance(d, dict):
        raise UserError(f"{path}: a dyna config is a mapping of options, got {type(d).__name__}")
    try:  # a bad option in the file or an override, a missing input: the user's to fix
        cfg = config_from_dict(merge(d, parse_assignments(overrides)))
        if check_paths:
            check_inputs(cfg)
    except ValueError as err:
        raise UserError(f"{path}: {err}") from err
    return cfg


def check_inputs(cfg: DynaConfig) -> None:
    """The files a run reads exist (``FileNotFoundError`` naming the option otherwise) and
    the task is one of the base dataset's (``ValueError``)."""
    from freeaction_gym.assets import resolve_model_path

    base, tasks = Path(cfg.data.base), None
    if cfg.data.generate is None and not (base / "meta.json").is_file():
        raise FileNotFoundError(
            f"dyna option data.base={cfg.data.base}: no dataset there (no meta.json); make "
            f"one with `freeaction data metaworld {cfg.data.base}` or set data.generate"
        )
    if cfg.data.generate is not None:
        from freeaction_gym.data.metaworld_gen import MetaWorldDataConfig

        try:
            tasks = MetaWorldDataConfig(**cfg.data.generate).tasks
        except (TypeError, ValueError) as err:
            raise ValueError(f"dyna option data.generate: {err}") from err
    if (base / "meta.json").is_file():
        tasks = json.loads((base / "meta.json").read_text()).get("config", {}).get("tasks")
    if tasks is not None and cfg.task not in tasks:
        raise ValueError(
            f"dyna option task={cfg.task} is not a task of the base dataset {cfg.data.base} "
            f"(it has {tasks})"
        )
    if not (resolve_model_path(cfg.world_model.init) / "config.json").is_file():
        raise FileNotFoundError(
            f"dyna option world_model.init={cfg.world_model.init}: no world model there "
            "(config.json); give a `freeaction train` model directory or bundled:<name>"
        )
    for name, value in (
        ("world_model.train_config", cfg.world_model.train_config),
        ("agent.hyperparams", cfg.agent.hyperparams),
        ("agent.init_policy", cfg.agent.init_policy),
    ):
        if value is not None and not Path(value).is_file():
            raise FileNotFoundError(f"dyna option {name}={value}: file not found")
    if cfg.reward.init is not None and not (Path(cfg.reward.init) / "config.json").is_file():
        raise FileNotFoundError(
            f"dyna option reward.init={cfg.reward.init}: no reward head there (config.json)"
        )


def save_config(cfg: DynaConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


RESUMABLE_CHANGES = ("iterations", "progress")
"""Options a rerun may change: everything else must match the run's saved config."""


def changed_settings(saved: dict[str, Any], cfg: DynaConfig) -> list[str]:
    """Settings (``key`` or ``section.key``) in which ``cfg`` differs from the ``saved``
    config mapping, sorted; a section's nested mappings compare whole. ``saved`` is read
    as a config first, so an option added since it was saved counts at its default."""

    def flat(d: dict, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            if isinstance(v, dict) and k in SECTIONS and not prefix:
                out.update(flat(v, f"{k}."))
            else:
                out[prefix + k] = v
        return out

    old, new = flat(config_from_dict(saved).to_dict()), flat(cfg.to_dict())
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def check_same_run(saved: dict[str, Any], cfg: DynaConfig) -> None:
    """Refuse to resume a run whose settings (other than :data:`RESUMABLE_CHANGES`) differ."""
    diff = [k for k in changed_settings(saved, cfg) if k not in RESUMABLE_CHANGES]
    if diff:
        raise ValueError(
            f"{cfg.output} holds a dyna run with different settings ({', '.join(diff)}); "
            "use a new output directory or the same settings (only iterations and progress "
            "may change), or branch it (freeaction dyna --branch-from)"
        )


IMAGINED_PRESET = "FreeActionMetaWorldV2-v0"
"""The env id the agent stage trains in: the loop fine-tunes the action-path world."""


def proprio_option(cfg: DynaConfig) -> dict[str, Any]:
    """``proprio_model`` for an imagined env that integrates the robot state - for
    ``reward.mode: state`` or agents that observe it (``agent.env_kwargs.proprio_obs``):
    ``reward.proprio`` unless ``agent.env_kwargs`` names one; else nothing. A fine-tuned
    world model directory holds no proprio model of its own, so the loop must name it."""
    wanted = cfg.reward.mode == "state" or cfg.agent.env_kwargs.get("proprio_obs", False)
    if not wanted or "proprio_model" in cfg.agent.env_kwargs:
        return {}
    return {"proprio_model": cfg.reward.proprio}


def imagined_env_kwargs(
    cfg: DynaConfig, model: str | Path, reward_head: str | Path | None, reset_bank: str | Path
) -> dict[str, Any]:
    """Options of the imagined env of one iteration (``agent.env_kwargs`` first): the
    learned head's reward, or with ``reward.mode: state`` MetaWorld's on the integrated
    robot state (``reward_head`` None); the proprio model when one is needed."""
    if cfg.reward.mode == "state":
        signal = {"reward": "state", "state_source": "proprio"}
    else:
        signal = {"reward": "learned", "reward_head": str(reward_head)}
    return {
        **cfg.agent.env_kwargs,
        "model": str(model),
        **signal,
        **proprio_option(cfg),
        "reset_bank": str(reset_bank),
        "task": cfg.task,
    }
