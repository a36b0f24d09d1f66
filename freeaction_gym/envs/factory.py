"""Build the pieces an environment needs from an :class:`EnvConfig`: the world model,
the reset bank, the reward function and, from them, the env core. Heavy imports happen
here, at ``gym.make`` time."""

from __future__ import annotations

import os

from freeaction_gym.assets import resolve_asset_path, resolve_model_path
from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.envs.config import EnvConfig, make_env_config
from freeaction_gym.utils.threads import configure_threads

IRASIM_HELP = (
    "{env_id} runs a released IRASim checkpoint, which you must download yourself. Provide\n"
    "  model=<path to the .pt, e.g. {dataset}/checkpoints/frame_ada/0300000.pt>,\n"
    "  vae=<local diffusers SDXL VAE directory>, reset_bank=<.npz of initial frames>\n"
    "as gym.make('{env_id}', model=..., vae=..., reset_bank=...) keyword arguments, or set\n"
    "  FREEACTION_{tag}_CHECKPOINT, FREEACTION_{tag}_VAE, FREEACTION_{tag}_BANK.\n"
    "See README.md, section 'Bringing IRASim checkpoints'."
)


def fill_from_environment(cfg: EnvConfig, env_id: str) -> EnvConfig:
    """IRASim ids: take missing paths from FREEACTION_<TAG>_{CHECKPOINT,VAE,BANK}."""
    if cfg.model_format != "irasim":
        return cfg
    tag = cfg.irasim_dataset.upper()
    cfg.model = (
        cfg.model
        if cfg.model not in ("", None)
        else os.environ.get(f"FREEACTION_{tag}_CHECKPOINT", "")
    )
    cfg.vae = cfg.vae or os.environ.get(f"FREEACTION_{tag}_VAE")
    cfg.reset_bank = cfg.reset_bank or os.environ.get(f"FREEACTION_{tag}_BANK")
    missing = [  # paths or bundled:<name>/<path> (resolved as the MetaWorld ids resolve them)
        name
        for name, value in (("model", cfg.model), ("vae", cfg.vae), ("reset_bank", cfg.reset_bank))
        if not value or not resolve_asset_path(value).exists()
    ]
    if missing:
        raise FileNotFoundError(
            f"missing or nonexistent: {missing}.\n"
            + IRASIM_HELP.format(env_id=env_id, tag=tag, dataset=cfg.irasim_dataset)
        )
    return cfg


def load_world_model(cfg: EnvConfig):
    from freeaction_gym.world_model.loading import load_world_model as load

    if cfg.model_format == "irasim":
        return load(cfg.model, cfg.vae, irasim=True)
    return load(cfg.model, irasim=False)


def load_bank(cfg: EnvConfig) -> ResetBank | None:
    if cfg.reset_bank:
        return ResetBank.load(resolve_asset_path(cfg.reset_bank))
    if cfg.model_format == "world_model":
        default = resolve_model_path(cfg.model) / "reset_bank.npz"
        if default.is_file():
            return ResetBank.load(default)
    return None


def load_reward(cfg: EnvConfig, bank: ResetBank | None):
    """(reward function, task names)."""
    from freeaction_gym.rewards import GoalLatentReward, LearnedReward, ZeroReward

    tasks = bank.tasks if bank is not None else []
    if cfg.reward in ("none", "state"):  # state: the core adds MetaWorld's reward
        return ZeroReward(), tasks
    if cfg.reward == "goal_latent":
        return GoalLatentReward(success_distance=cfg.goal_success_distance), tasks
    from freeaction_gym.rewards.learned import RewardHead

    head_dir = resolve_asset_path(cfg.reward_head) if cfg.reward_head else None
    if head_dir is None and cfg.model_format == "world_model":
        head_dir = resolve_model_path(cfg.model) / "reward_head"
    if head_dir is None or not head_dir.is_dir():
        raise FileNotFoundError(
            f"reward='learned' needs a reward head directory (looked for {head_dir}); train one "
            "with `freeaction train-reward`, or use reward='goal_latent' / reward='none'"
        )
    head = RewardHead.from_pretrained(head_dir)
    return LearnedReward(head), list(head.config.tasks)


def uses_state(cfg: EnvConfig) -> bool:
    """Whether success (and reward) come from a predicted state."""
    return cfg.success == "state" or cfg.reward == "state"


def load_proprio(cfg: EnvConfig, world, bank: ResetBank | None):
    """The proprioceptive model of ``conditioning: vap``, ``state_source: proprio`` or
    ``proprio_obs`` (None otherwise), loaded after the checks that need only the world model
    and the bank (so a model without a prompt input is named before a missing proprio
    model)."""
    from freeaction_gym.envs.validation import check_conditioning, proprio_reason

    if proprio_reason(cfg) is None:
        return None
    from freeaction_gym.envs.prompting import proprio_dir
    from freeaction_gym.prompts.proprio import ProprioModel

    check_conditioning(cfg, world, bank)
    model_dir = resolve_model_path(cfg.model) if cfg.model_format == "world_model" else None
    return ProprioModel.from_pretrained(proprio_dir(cfg, model_dir))


DEFAULT_STATE_PROBE = "bundled:metaworld_default/state_probe"


def load_state_success(cfg: EnvConfig, bank: ResetBank | None, tasks: list[str]):
    """``success: state`` / ``reward: state``: (the
    :class:`~freeaction_gym.rewards.state_success.StateSuccess` - with the state probe for
    ``state_source: probe`` - and the bank with ``goal_pos``); ``(None, bank)`` otherwise.
    Errors name the option: a bank with neither goal positions nor layouts, a task without a
    MetaWorld success (or, for ``reward: state``, reward) rule."""
    if not uses_state(cfg):
        return None, bank
    from freeaction_gym.rewards.state_probe import StateProbe
    from freeaction_gym.rewards.state_reward import STATE_REWARD_TASKS
    from freeaction_gym.rewards.state_success import StateSuccess

    option = "success='state'" if cfg.success == "state" else "reward='state'"
    if bank is not None:
        try:
            bank = bank.with_goal_pos()
        except ValueError as err:
            raise ValueError(f"env option {option}: {err}") from err
    if cfg.reward == "state":
        starts = [cfg.task] if cfg.task is not None else tasks
        unknown = sorted(set(starts) - set(STATE_REWARD_TASKS))
        if unknown or not starts:
            raise ValueError(
                f"env option reward='state' has MetaWorld's reward only for "
                f"{list(STATE_REWARD_TASKS)}; this env starts from {unknown or starts}: pass "
                "task=... or use reward='learned'"
            )
    probe = None
    if cfg.state_source == "probe":
        path = resolve_asset_path(cfg.state_probe or DEFAULT_STATE_PROBE)
        probe = StateProbe.from_pretrained(path)
    return StateSuccess(probe, tasks), bank


def build(cfg: EnvConfig, env_id: str = "VideoWorldModelEnv"):
    """(world model, reset bank, reward function, task names) for ``cfg``."""
    configure_threads()
    cfg = fill_from_environment(cfg, env_id)
    world = load_world_model(cfg)
    if cfg.compile:
        import torch

        world.dit = torch.compile(world.dit, dynamic=False)
    bank = load_bank(cfg)
    reward_fn, tasks = load_reward(cfg, bank)
    return world, bank, reward_fn, tasks


def build_core(
    preset: str | None,
    env_id: str,
    num_envs: int,
    components: tuple | None = None,
    options: dict | None = None,
):
    """The :class:`~freeaction_gym.envs.core.ImaginationCore` of ``num_envs`` envs for a preset
    + option overrides (``components``: already built ``(world, bank, reward_fn, tasks)`` to
    share one model between envs). Every option is validated here, at make time."""
    from freeaction_gym.envs.core import ImaginationCore
    from freeaction_gym.envs.validation import check_num_envs

    num_envs = check_num_envs(num_envs)
    cfg = make_env_config(preset, **(options or {}))
    world, bank, reward_fn, tasks = components or build(cfg, env_id)
    proprio = load_proprio(cfg, world, bank)
    state_success, bank = load_state_success(cfg, bank, tasks)
    return ImaginationCore(world, cfg, bank, reward_fn, tasks, num_envs, proprio, state_success)
