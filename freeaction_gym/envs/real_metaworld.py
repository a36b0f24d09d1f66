"""``RealMetaWorldEnv``: the real MetaWorld simulator behind the world model's interface.

It produces exactly the observations the world model was trained on - the dataset's camera,
resolution and orientation (rendered by the same :class:`SceneRenderer`), each Box(-1, 1)
action held for ``action_repeat`` simulator steps (reward summed, success = max over the
repeats) - and starts from the same held-out scenes as the imagined env: reset-bank entry
``j`` is layout ``bank.layout[j]`` of ``metaworld.MT1(task, seed=bank.layout_seed[j])``, and
the bank entry is drawn from ``np_random`` exactly as :class:`ImaginationCore` draws it, so
a real and an imagined env reset with the same seed start from the same scene. A policy can
therefore be trained in imagination and evaluated here (or the other way round).

Without a reset bank that names layouts (e.g. the bundled bank is absent), the task and the
layout are drawn uniformly from ``tasks`` x the 50 layouts of ``MT1(task, layout_seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np

from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.envs.config import (
    RENDER_MODES,
    check_render_mode,
    gym_make_time_limit,
    load_preset,
)
from freeaction_gym.envs.spaces import PROPRIO_DIM, action_space, validate_actions, with_proprio
from freeaction_gym.envs.validation import check_action_bound, check_fields, check_options_dict

# The bundled model's dataset (data/metaworld_default/meta.json); the world model's
# config.json does not record it, so these mirror MetaWorldDataConfig's defaults.
DATASET_DEFAULTS = {"camera": "workspace", "resolution": 64, "action_repeat": 4}
TEST_LAYOUT_SEED = 1000  # MetaWorldDataConfig.layout_seeds["test"]
# Keys of an imagined preset (freeaction_gym/envs_config/<id>.yaml) the real counterpart mirrors.
MIRRORED = (
    "model",
    "reset_bank",
    "task",
    "max_episode_steps",
    "terminate_on_success",
    "proprio_obs",
)


@dataclass
class RealEnvConfig:
    """Options of :class:`RealMetaWorldEnv` (``gym.make`` keyword arguments)."""

    mirror: str | None = None
    """An imagined env preset (id or YAML path) whose ``model``, ``reset_bank``, ``task``,
    ``max_episode_steps`` and ``terminate_on_success`` are the defaults here."""
    model: str = "bundled:metaworld_default"
    """World model directory whose ``reset_bank.npz`` (the imagined env's default bank) is
    used when ``reset_bank`` is not given; no bank there -> uniform layouts."""
    reset_bank: str | None = None
    """``.npz`` reset bank with ``layout``/``layout_seed`` (``freeaction bank``), or
    ``bundled:<name>/<file>``."""
    task: str | None = None
    """Only this MetaWorld task (e.g. ``reach-v3``); None = any task of the bank / ``tasks``."""
    tasks: list[str] = field(default_factory=lambda: ["reach-v3", "push-v3", "pick-place-v3"])
    """Tasks drawn from when there is no usable bank and ``task`` is None."""
    layout_seed: int | None = None
    """``MT1(task, seed=layout_seed)`` layouts when there is no usable bank. Default: the
    dataset's test split (1000)."""
    data: str | None = None
    """A dataset root: camera, resolution and action_repeat come from its meta.json."""
    camera: str | None = None
    """Default: the dataset's (``workspace``)."""
    resolution: int | None = None
    """Default: the dataset's (64)."""
    action_repeat: int | None = None
    """Simulator steps per action. Default: the dataset's (4)."""
    max_episode_steps: int = 40
    terminate_on_success: bool = True
    out_of_range: Literal["clip", "error"] = "clip"
    action_bound: list[float] | None = None
    """The action box Box(-b, b), b (4,) in (0, 1] (None: Box(-1, 1)); as the imagined
    env's option, e.g. for a model-free agent restricted like a Dyna one."""
    proprio_obs: bool = False
    """Observations become a dict: ``image`` uint8 (R, R, 3) and ``proprio`` float32 (4,),
    the simulator's hand xyz (m) and gripper opening (MetaWorld's observation[:4]), as the
    imagined env's option of the same name."""
    render_fps: int = 10
    action_chunk: ClassVar[int] = 1  # read by validate_actions

    def __post_init__(self) -> None:
        check_fields(self, "real env option")
        check_action_bound(self.action_bound, 4)
        if self.data is not None:
            from freeaction_gym.data.metaworld_gen import config_from_meta

            meta = config_from_meta(self.data)
            for name in DATASET_DEFAULTS:
                if getattr(self, name) is None:
                    setattr(self, name, getattr(meta, name))
            if self.layout_seed is None:
                self.layout_seed = meta.layout_seeds["test"]
        if self.layout_seed is None:
            self.layout_seed = TEST_LAYOUT_SEED
        for name, value in DATASET_DEFAULTS.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        for name in ("resolution", "action_repeat", "max_episode_steps", "render_fps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"env option {name} must be >= 1, got {getattr(self, name)}")


def make_real_env_config(mirror: str | None = None, **kwargs: Any) -> RealEnvConfig:
    """Mirrored imagined preset + keyword overrides -> :class:`RealEnvConfig`; unknown keys
    raise ``ValueError`` listing the allowed options."""
    allowed = {f.name for f in fields(RealEnvConfig)}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValueError(f"unknown real env option(s) {unknown}; allowed: {sorted(allowed)}")
    values: dict[str, Any] = {}
    if mirror is not None:
        preset = load_preset(mirror)
        values.update({k: preset[k] for k in MIRRORED if k in preset})
    values.update(kwargs)
    return RealEnvConfig(mirror=mirror, **values)


def default_bank(cfg: RealEnvConfig) -> ResetBank | None:
    """``cfg.reset_bank`` (a path or ``bundled:<name>/<file>``), else the model directory's
    ``reset_bank.npz`` if there is one."""
    from freeaction_gym.assets import resolve_asset_path, resolve_model_path

    if cfg.reset_bank:
        return ResetBank.load(resolve_asset_path(cfg.reset_bank))

    try:
        path = resolve_model_path(cfg.model) / "reset_bank.npz"
    except (FileNotFoundError, ValueError):  # bundled model not built / not shipped
        return None
    return ResetBank.load(path) if path.is_file() else None


class RealMetaWorldEnv(gym.Env):
    """One real MetaWorld episode seen through the world model's camera.

    Observation uint8 (R, R, 3) (``proprio_obs``: a dict of it, ``image``, and the hand
    xyz + gripper ``proprio`` float32 (4,)); action Box(-b, b, (4,)) (xyz mocap delta,
    gripper effort; b = ``action_bound``, default 1), held for ``action_repeat`` simulator
    steps. ``info``: ``success`` (this step), ``is_success`` (any step so far), ``task``,
    ``layout``, ``layout_seed``, ``bank_index`` (-1 without a bank). :attr:`state` is
    MetaWorld's 39-D observation (scripted experts).
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 10}

    def __init__(self, render_mode: str | None = None, **options: Any) -> None:
        limit = gym_make_time_limit()
        if limit is not None:
            options["max_episode_steps"] = limit
        check_render_mode(render_mode)
        self.config = make_real_env_config(**options)
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.config.render_fps}
        cfg = self.config
        self.bank = default_bank(cfg)
        if self.bank is not None and not self.bank.has_layouts:
            if cfg.reset_bank:
                raise ValueError(
                    f"reset bank {cfg.reset_bank} does not name MetaWorld layouts; rebuild it "
                    "with `freeaction bank --data <root> --split test --out bank.npz`"
                )
            self.bank = None  # an older bundled bank: fall back to uniform layouts
        r = int(cfg.resolution)
        if self.bank is not None and self.bank.initial.shape[1:] != (r, r, 3):
            raise ValueError(
                f"reset bank frames are {self.bank.initial.shape[1:]} but resolution={r}: the "
                "real env must render what the world model sees (pass data=<dataset root>)"
            )
        if self.bank is not None:
            self.bank.indices(cfg.task)  # fail early for a task the bank does not have
        self._tasks = [cfg.task] if cfg.task else list(cfg.tasks)
        self.action_space = action_space(cfg, 4)
        image = gym.spaces.Box(0, 255, shape=(r, r, 3), dtype=np.uint8)
        self.observation_space = with_proprio(image, cfg.proprio_obs)
        self._sims: dict[str, tuple[Any, Any]] = {}  # task -> (MetaWorld env, SceneRenderer)
        self._sim: Any = None
        self._render: Any = None
        self._obs: np.ndarray | None = None
        self.state: np.ndarray | None = None
        self.scene: dict[str, Any] = {}
        self._steps = 0
        self._any_success = False
        self._needs_reset = True

    # -- scenes --------------------------------------------------------------------------
    def _check_reset(self, options: dict | None) -> dict:
        """Validate reset options before any state (or the seed) changes."""
        options = check_options_dict(options)
        unknown = sorted(set(options) - {"bank_index", "task", "layout"})
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; known: bank_index, task, layout")
        if self.bank is not None:
            if "layout" in options:
                raise ValueError("reset option layout is only for envs without a reset bank")
            self.bank.indices(options.get("task", self.config.task))
            j = options.get("bank_index", 0)
            if isinstance(j, bool) or not isinstance(j, int | np.integer):
                raise ValueError(f"reset option bank_index must be a whole number, got {j!r}")
            if not 0 <= j < len(self.bank):
                raise ValueError(f"bank_index {j} out of range (bank has {len(self.bank)})")
            if "bank_index" in options:
                task = options.get("task")
                source = "reset option task" if task is not None else "env option task"
                self.bank.check_entry_task(int(j), task or self.config.task, source)
        elif "bank_index" in options:
            raise ValueError("reset option bank_index needs a reset bank with layouts")
        return options

    def _draw_scene(self, options: dict) -> dict[str, Any]:
        """(task, layout_seed, layout, bank_index) from ``options`` or ``np_random``."""
        rng = self.np_random
        if self.bank is not None:
            # The same draws, in the same order, as ImaginationCore.reset_env (bank entry,
            # then the generator seed), so equal seeds give equal scenes in both envs.
            idx = self.bank.indices(options.get("task", self.config.task))
            drawn = int(idx[rng.integers(len(idx))])
            rng.integers(2**63 - 1)
            j = int(options.get("bank_index", drawn))
            return {
                "task": str(self.bank.task[j]),
                "layout_seed": int(self.bank.layout_seed[j]),
                "layout": int(self.bank.layout[j]),
                "bank_index": j,
            }
        task = options.get("task") or self._tasks[int(rng.integers(len(self._tasks)))]
        layout = int(options.get("layout", rng.integers(50)))
        seed = self.config.layout_seed
        return {"task": task, "layout_seed": seed, "layout": layout, "bank_index": -1}

    def _simulator(self, task: str, layout_seed: int, layout: int):
        """The cached env of ``task`` frozen to the layout (one env + renderer per task)."""
        from freeaction_gym.data.metaworld_env import make_metaworld_env, set_layout

        cfg = self.config
        if task not in self._sims:
            self._sims[task] = make_metaworld_env(
                task, layout_seed, layout, cfg.camera, cfg.resolution, depth=False
            )
        env, render = self._sims[task]
        set_layout(env, task, layout_seed, layout)
        env.max_path_length = max(env.max_path_length, cfg.max_episode_steps * cfg.action_repeat)
        return env, render

    # -- gym API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        options = self._check_reset(options)  # before reseeding: a bad call changes nothing
        super().reset(seed=seed)
        self.scene = self._draw_scene(options)
        self._sim, self._render = self._simulator(
            self.scene["task"], self.scene["layout_seed"], self.scene["layout"]
        )
        state, _ = self._sim.reset()
        self.state = np.asarray(state, np.float64)
        self._obs = self._render()[0]
        self._steps, self._any_success, self._needs_reset = 0, False, False
        return self._observe(), dict(self.scene)

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError(
                "step() called before reset() or after the episode ended; call reset()"
            )
        a = validate_actions(action, self.config, 4, None)[0, 0]  # (4,) float32 in the box
        reward, success = 0.0, False
        for _ in range(self.config.action_repeat):
            state, r, _, _, sim_info = self._sim.step(a)
            reward += float(r)
            success |= bool(sim_info["success"])
        self.state = np.asarray(state, np.float64)
        self._obs = self._render()[0]
        self._steps += 1
        self._any_success |= success
        terminated = success and self.config.terminate_on_success
        truncated = self._steps >= self.config.max_episode_steps and not terminated
        self._needs_reset = terminated or truncated
        info = {**self.scene, "success": success, "is_success": self._any_success}
        return self._observe(), reward, terminated, truncated, info

    def _observe(self):
        """The frame, or (``proprio_obs``) the dict of the frame and hand xyz + gripper."""
        if not self.config.proprio_obs:
            return self._obs.copy()
        return {"image": self._obs.copy(), "proprio": self.state[:PROPRIO_DIM].astype(np.float32)}

    def render(self):
        if self.render_mode != "rgb_array" or self._obs is None:
            return None
        return self._obs.copy()

    def robot_state(self) -> tuple[np.ndarray, np.ndarray]:
        """``(state (7,), keypoints (K, 3))`` float32 of the current simulation, as the
        dataset stores them per frame (:func:`~freeaction_gym.data.metaworld_gen.robot_state`)."""
        if self._sim is None or self.state is None:
            raise RuntimeError("robot_state() called before reset()")
        from freeaction_gym.data.metaworld_gen import robot_state

        return robot_state(self._sim, self.state)

    def close(self) -> None:
        for env, render in self._sims.values():
            render.close()
            env.close()
        self._sims.clear()
        self._sim = self._render = None


def make_real_vec_env(
    num_envs: int = 1, seed: int | None = None, wrapper_class=None, **options: Any
):
    """A stable-baselines3 ``DummyVecEnv`` of ``num_envs`` :class:`RealMetaWorldEnv` (env
    ``i`` seeded with ``seed + i``, like :func:`freeaction_gym.envs.vector.make_sb3_vec_env`);
    ``wrapper_class`` (e.g. ``Monitor``) wraps each env."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    def make_one() -> gym.Env:
        env: gym.Env = RealMetaWorldEnv(render_mode="rgb_array", **options)
        return wrapper_class(env) if wrapper_class is not None else env

    vec = DummyVecEnv([make_one for _ in range(num_envs)])
    if seed is not None:
        vec.seed(seed)
    return vec
