"""Environment configuration: a typed dataclass, filled from the presets
``freeaction_gym/envs_config/<id>.yaml`` (package data) and ``gym.make`` keyword arguments,
validated at make time with errors that name the option.

Every field is checked against its annotation
(:func:`~freeaction_gym.envs.validation.check_fields`): ``bool`` options take
``True``/``False`` only (not ``"no"``), integer options whole numbers only (not ``2.5`` or
``"2"``), float options finite numbers, ``Literal`` options one of their names. Checks that
need the loaded model (action chunk vs the model's window, sampler steps vs its schedule,
action dimension) run when the environment builds its core
(:func:`freeaction_gym.envs.validation.check_against_model`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from freeaction_gym.envs.validation import (
    check_action_bound,
    check_fields,
    check_sampling,
    check_support,
)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "envs_config"


@dataclass
class EnvConfig:
    """Options of :class:`~freeaction_gym.envs.env.VideoWorldModelEnv`."""

    model: str = "bundled:metaworld_default"
    """A WorldModel directory, ``bundled:<name>``, or (``model_format: irasim``) an IRASim
    ``.pt`` checkpoint."""
    model_format: Literal["world_model", "irasim"] = "world_model"
    vae: str | None = None
    """IRASim only: a local diffusers VAE directory (the SDXL VAE IRASim was trained with)."""
    irasim_dataset: Literal["rt1", "bridge", "languagetable"] = "rt1"
    reset_bank: str | None = None
    """``.npz`` reset bank (frames to start from), a path or ``bundled:<name>/<file>`` (e.g.
    ``bundled:metaworld_default/reset_bank.npz``). Default: the model directory's
    ``reset_bank.npz``."""
    task: str | None = None
    """Only start from reset-bank entries of this task (e.g. ``push-v3``)."""
    action_chunk: int = 1
    """Actions per env step (the model generates that many frames per step; at most the
    model's window, ``num_frames - num_context_frames``)."""
    max_episode_steps: int = 50
    """Steps until ``truncated``; ``gym.make(id, max_episode_steps=N)`` sets it too."""
    observation: Literal["rgb", "latent"] = "rgb"
    frame_stack: int = 1
    """RGB observations stack the last ``frame_stack`` frames on the channel axis
    (``observation: latent`` takes 1 only)."""
    proprio_obs: bool = False
    """Observations become a dict: ``image`` (the RGB observation above) and ``proprio``
    float32 (4,), the robot's hand xyz (m, world frame) and gripper opening (MetaWorld's
    normalised 0-1 finger distance), as a real robot's joint encoders would report it. In
    imagination it is the learned proprioceptive model (``proprio_model``) integrated over
    the actions from the reset-bank entry's robot state (as ``state_source: proprio``); the
    real counterpart reads the simulator. Needs ``observation: rgb``."""
    action_scale: list[float] | None = None
    """model_action = action_offset + action_scale * env_action (default identity)."""
    action_offset: list[float] | None = None
    out_of_range: Literal["clip", "error"] = "clip"
    """Actions outside the action box (``action_bound``): clipped (default) or rejected."""
    action_bound: list[float] | None = None
    """The agent's action box Box(-b, b), b (A,) in (0, 1] per action dimension (None:
    Box(-1, 1)). E.g. ``[0.4, 0.4, 0.4, 1.0]`` keeps MetaWorld hand motions near the
    scripted data's speed (mean |a| 0.3), where the world model tracks the arm; SB3 agents
    then act inside it in the real simulator too (their policy maps into this box)."""
    sampling: dict[str, Any] = field(default_factory=dict)
    """SamplingConfig overrides: scheduler, num_steps, guidance{...}, truncation{...}, norm{...}.
    Ranges: ``num_steps >= 1``; ``guidance.lam`` in [0, 10], ``guidance.scale`` in [1, 20],
    ``guidance.cutoff`` in [0, 1]; ``0 < truncation.tau_min <= truncation.tau_max``,
    ``truncation.fixed_tau > 0``, ``truncation.mu_act > 0`` (omit it: the model's statistics);
    ``rho`` in (0, 100], ``0 < sigma_min < sigma_max`` (``edm``)."""
    reward: Literal["learned", "goal_latent", "state", "none"] = "learned"
    """``learned``: the reward head (``reward_head``); ``goal_latent``: latent distance to
    the goal frame; ``state``: MetaWorld's own reward of the task
    (:mod:`~freeaction_gym.rewards.state_reward`, reach-v3) on the predicted state
    (``state_source``), counted ``sim_steps_per_action`` times as the real env sums it over
    its simulator steps; its success is MetaWorld's rule on that state (as ``success:
    state``); ``none``: 0."""
    reward_head: str | None = None
    """Learned reward head directory, a path or ``bundled:<name>/<dir>`` (e.g.
    ``bundled:metaworld_default/reward_head``). Default: the model directory's
    ``reward_head/``."""
    goal_success_distance: float = 0.01
    success: Literal["reward", "state"] = "reward"
    """Where ``success``/``is_success`` come from. ``reward``: the reward function's own
    (the learned head's success logit, or the goal-latent distance). ``state``: MetaWorld
    v3's success rule of the task (:mod:`~freeaction_gym.rewards.state_success`: hand or
    object within 5 / 5 / 7 cm of the goal for reach / push / pick-place) on the state a
    probe (``state_probe``) reads off each new frame, against the scene's goal position
    (the reset bank's ``goal_pos``, computed from its layouts when absent; with
    ``reset(options={"initial_frame": ...})`` pass ``goal_pos`` too); the reward is
    unchanged and ``info["predicted_state"]`` (N, 7) holds the probe's reading."""
    state_source: Literal["probe", "proprio"] = "probe"
    """Where ``success: state`` / ``reward: state`` read the robot state. ``probe``: a state
    probe (``state_probe``) on each imagined frame. ``proprio``: the learned proprioceptive
    model (``proprio_model``) integrated open loop over the actions from the reset-bank
    entry's robot state (with ``reset(options={"initial_frame": ...})`` pass
    ``initial_state`` and ``initial_keypoints``); it does not look at the frames, and
    tracks the hand far closer than a probe on imagined frames can (docs/RESULTS.md)."""
    sim_steps_per_action: int = 4
    """``reward: state``: simulator steps one action stands for in the model's data (the
    MetaWorld datasets' ``action_repeat``)."""
    state_probe: str | None = None
    """``success: state``: a StateProbe directory (``freeaction train-probe``) or
    ``bundled:<name>/<dir>``; default ``bundled:metaworld_default/state_probe``."""
    terminate_on_success: bool = True
    support: dict[str, Any] | None = None
    """Halt imagined episodes that leave the data's support (MOReL-style): ``{"low": [A],
    "high": [A], "penalty": 0.0}`` bounds on the dead-reckoned displacement (the running
    sum of env actions since reset, env units). When a step leaves the box the episode ends
    (``terminated``, ``info["out_of_support"]``) and ``penalty`` (reward units, finite,
    >= 0) is subtracted from its reward: there the world model extrapolates and its reward
    cannot be trusted. None: off."""
    conditioning: Literal["action", "vap"] = "action"
    """What the model is told of the agent's actions. ``action``: the actions (adaLN).
    ``vap``: visual action prompts too (seed 004; :mod:`~freeaction_gym.envs.prompting`):
    the env integrates a learned proprioceptive model (``proprio_model``) from the reset
    bank's initial robot state, draws the arm's skeleton for every frame it predicts and
    passes it to a prompt-conditioned model; ``info["robot_state"]`` (7,) is the integrated
    state after the step (hand xyz m, gripper opening, object xyz m). ``vap`` needs a model
    with a prompt input, ``action`` one without."""
    proprio_model: str | None = None
    """``vap`` / ``state_source: proprio``: a ProprioModel directory (``freeaction
    train-proprio``) or ``bundled:<name>/<dir>`` (e.g. ``bundled:metaworld_vap/proprio``);
    default: the world model directory's ``proprio/``."""
    prompt_camera: str = "workspace"
    """``vap``: the camera preset (``metaworld_gen.CAMERA_PRESETS``) prompts are drawn
    through; the model's training data must have been rendered through it."""
    render_fps: int = 10
    compile: bool = False
    """``torch.compile`` the denoiser (CPU: ~1.1x the eager speed after a one-off compile
    of tens of seconds at the first step; docs/BENCHMARKS.md)."""
    timing_in_info: bool = False
    """Add ``step_time_ms``/``model_time_ms``/``decode_time_ms`` to ``info``. Off by default
    because wall-clock times make infos differ between identically seeded runs; the last
    step's timing is always in ``env.unwrapped.timing``."""

    def __post_init__(self) -> None:
        check_fields(self, "env option")
        for name in (
            "action_chunk",
            "max_episode_steps",
            "frame_stack",
            "render_fps",
            "sim_steps_per_action",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"env option {name} must be >= 1, got {getattr(self, name)}")
        if self.goal_success_distance < 0:
            raise ValueError(
                f"env option goal_success_distance must be >= 0, got {self.goal_success_distance}"
            )
        if self.observation == "latent" and self.frame_stack != 1:
            raise ValueError(
                f"env option frame_stack={self.frame_stack} stacks RGB frames; "
                "observation='latent' is one latent frame (C, h, w) and is not stacked: use "
                "frame_stack=1 with observation='latent', or observation='rgb'"
            )
        if self.proprio_obs and self.observation != "rgb":
            raise ValueError(
                f"env option proprio_obs needs observation='rgb', got {self.observation!r}"
            )
        if self.model_format == "world_model" and not self.model:
            raise ValueError("env option model is empty; give a model directory or bundled:<name>")
        self.sampling = check_sampling(self.sampling)
        check_action_bound(self.action_bound)
        if self.support is not None:
            self.support = check_support(self.support)


def _gym_make_local(name: str, depth: int = 3):
    """(found, value) of local ``name`` in a calling ``gymnasium.make`` frame (searched up to
    ``depth`` frames above the caller of this helper's caller)."""
    frame = sys._getframe(2)
    for _ in range(depth):
        frame = frame.f_back
        if frame is None:
            return False, None
        code, module = frame.f_code, frame.f_globals.get("__name__")
        if code.co_name == "make" and module == "gymnasium.envs.registration":
            return True, frame.f_locals.get(name)
    return False, None


def gym_make_time_limit(depth: int = 3) -> int | None:
    """``N`` of a calling ``gymnasium.make(id, max_episode_steps=N)``, else None.

    Gymnasium keeps that argument for its ``TimeLimit`` wrapper and does not pass it to the
    env, so the env's own limit (40 in the presets) would still end episodes and a step past
    N would not raise. The env reads N from the ``make`` frame that is constructing it, so
    ``max_episode_steps`` has one meaning in ``gym.make``, ``gym.make_vec`` and the option
    (imagined and real envs alike)."""
    _, n = _gym_make_local("max_episode_steps", depth)
    return None if n is None or n == -1 else n


RENDER_MODES = ("rgb_array",)
"""Render modes of every env of this package: ``render()`` returns the frame uint8 (H, W, 3)."""


def check_render_mode(render_mode: str | None) -> None:
    """``ValueError`` naming the supported modes unless ``render_mode`` is None or one of
    :data:`RENDER_MODES`. Also catches ``gym.make(id, render_mode="human")``: Gymnasium
    would pass ``rgb_array`` and wrap the env in its pygame ``HumanRendering`` window
    (read from the ``make`` frame, as :func:`gym_make_time_limit` reads its argument)."""
    found, requested = _gym_make_local("render_mode")
    if found and requested is not None:
        render_mode = requested
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(
            f"render_mode={render_mode!r} is not supported; supported render modes: "
            f"{list(RENDER_MODES)} (or None). These envs open no window: make them with "
            "render_mode='rgb_array' and show the frames render() returns yourself"
        )


def make_env_config(preset: str | None = None, **kwargs: Any) -> EnvConfig:
    """Preset YAML (by env id or path) + keyword overrides -> :class:`EnvConfig`.
    Unknown keys raise ``ValueError`` naming them and listing the allowed options."""
    values: dict[str, Any] = {}
    if preset is not None:
        values.update(load_preset(preset))
    for key, value in kwargs.items():  # nested dicts (sampling) merge key by key
        values[key] = _merge(values.get(key), value)
    allowed = {f.name for f in fields(EnvConfig)}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"unknown env option(s) {unknown}; allowed: {sorted(allowed)}")
    return EnvConfig(**values)


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = _merge(base.get(k), v)
        return out
    return override


def preset_path(name_or_path: str) -> Path:
    """A registered id's preset (``CONFIG_DIR/<id>.yaml``) or a YAML path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise FileNotFoundError(
            f"env preset {name_or_path!r} not found ({path}); presets: {known}, or a YAML path"
        )
    return path


def load_preset(name_or_path: str) -> dict[str, Any]:
    path = preset_path(name_or_path)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a preset must be a mapping of env options")
    allowed = {f.name for f in fields(EnvConfig)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    return data
