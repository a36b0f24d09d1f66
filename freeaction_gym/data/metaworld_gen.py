"""MetaWorld episode generator: noisy scripted experts rendered to a small-video dataset.

Each episode is one MetaWorld v3 task in one fixed layout (``metaworld.MT1(task, seed=S)``
gives 50 layouts per seed; the splits use disjoint seeds, ``train`` S=0, ``val`` S=500,
``test`` S=1000, and episode ``i`` uses layout ``i % 50``). A recorded action is held for
``action_repeat`` simulator steps (MetaWorld moves <= 1 cm per step, sub-pixel at 64x64);
the frame after the last repeat is recorded, the reward is summed over the repeats and
success is their maximum.

Actions come from :class:`ExplorationPolicy`: the task's scripted expert plus Gaussian noise
with a per-episode sigma, uniform random actions, held random "perturbation segments" and
sometimes a non-expert gripper behaviour, so the world model sees many actions per state.

Episodes are written in the format of :mod:`freeaction_gym.data.episodes`
(``{root}/meta.json``, ``{root}/{split}/{task}_{index:05d}.npz``, ``{root}/stats.json``)
with these MetaWorld specifics: ``action`` (T, 4) in [-1, 1] is the xyz mocap delta
(x 1 cm per simulator step) and the gripper effort (+1 closes); ``depth`` float16 meters is
clipped at ``depth_clip_m``; ``layout`` indexes ``MT1(task, seed=layout_seed).train_tasks``;
extra scalars ``layout_seed``, ``noise_sigma`` and ``explore_level`` describe the episode.

Generation is deterministic given the config (a re-run writes identical arrays), writes
each file atomically and skips files that already exist, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from freeaction_gym.data.episodes import (
    FORMAT_VERSION,
    SPLITS,
    episode_path,
    write_episode,
    write_json_atomic,
)

LAYOUTS_PER_SEED = 50  # metaworld.MT1(task, seed).train_tasks
STATE_NAMES = ("hand_x", "hand_y", "hand_z", "gripper", "obj_x", "obj_y", "obj_z")
"""Columns of the per-frame ``state`` array: hand xyz (m), gripper opening (MetaWorld's
normalised finger distance, ~0 closed .. 1 open) and the first object's xyz (m)."""
KEYPOINT_BODIES = ("right_l1", "right_l3", "right_l5", "right_hand", "hand", "rightpad", "leftpad")
"""MuJoCo bodies whose world positions are stored per frame as ``keypoints`` (shoulder,
elbow, forearm, wrist, hand, both finger pads): the arm's skeleton."""
FLIPPED_CAMERAS = frozenset({"corner", "corner2", "corner3", "corner4"})  # render upside down


@dataclass(frozen=True)
class FreeCamera:
    """A MuJoCo free camera: looks at ``lookat`` (m, world frame) from ``distance`` (m);
    ``azimuth``/``elevation`` in degrees (negative elevation looks down)."""

    lookat: tuple[float, float, float]
    azimuth: float
    elevation: float
    distance: float


# "workspace": a 3/4 view from the far end of the table, framing the reachable workspace
# (hand, object and goal ranges of reach/push/pick-place) so that the gripper fingers, the
# puck and the goal marker are several pixels wide at 64x64. The MetaWorld corner cameras
# show the whole table and the robot base, leaving objects at 1-2 pixels.
CAMERA_PRESETS: dict[str, FreeCamera] = {
    "workspace": FreeCamera(lookat=(0.0, 0.72, 0.1), azimuth=205.0, elevation=-35.0, distance=1.05),
}


@dataclass
class MetaWorldDataConfig:
    """What defines a generated MetaWorld dataset (saved in ``meta.json``)."""

    tasks: list[str] = field(default_factory=lambda: ["reach-v3", "push-v3", "pick-place-v3"])
    """MetaWorld v3 task names (``metaworld.env_dict.ALL_V3_ENVIRONMENTS``)."""
    train_episodes: int = 100
    """Episodes per task in the train split."""
    val_episodes: int = 10
    """Episodes per task in the val split."""
    test_episodes: int = 20
    """Episodes per task in the test split."""
    frames: int = 64
    """Actions per episode T; T+1 frames are stored (the initial frame included)."""
    action_repeat: int = 4
    """Simulator steps each recorded action is held for."""
    resolution: int = 64
    """Square image size in pixels."""
    camera: str = "workspace"
    """A ``CAMERA_PRESETS`` name or a MetaWorld camera name (corner* are flipped upright)."""
    depth: bool = True
    """Store metric depth."""
    depth_clip_m: float = 10.0
    """Depth is clipped at this many meters (the background is ~113 m away)."""
    base_seed: int = 0
    """Root of the per-episode seeds (derived from base_seed, task, split, index)."""
    layout_seeds: dict[str, int] = field(
        default_factory=lambda: {"train": 0, "val": 500, "test": 1000}
    )
    """``metaworld.MT1(task, seed=S)`` seed per split (disjoint layouts)."""
    noise_sigma_range: tuple[float, float] = (0.05, 0.5)
    """Per-episode sigma of the Gaussian noise on expert actions (uniform in this range)."""
    random_action_prob: float = 0.15
    """Mean per-frame probability of a uniform random action instead of the noisy expert."""
    perturb_start_prob: float = 0.04
    """Mean per-frame probability of starting a perturbation segment (held random action)."""
    perturb_len_range: tuple[int, int] = (2, 6)
    """Perturbation segment length in frames, inclusive range."""
    gripper_override_prob: float = 0.2
    """Per-episode probability of a non-expert gripper (always open/closed/random toggles)."""
    gripper_toggle_prob: float = 0.15
    """Per-frame flip probability in the random-toggle gripper behaviour."""
    stop_after_success: int = -1
    """End an episode this many actions after its first success (demonstrations for a
    policy); -1 always records ``frames`` actions."""
    random_walk_prob: float = 0.0
    """Per-episode probability of a :class:`RandomWalkPolicy` episode instead of the noisy
    expert: smooth random motion that reaches where agents go, not only where experts go."""
    train_layout_seeds: int = 1
    """The train split draws layouts from this many consecutive ``MT1`` seeds (episode ``i``
    uses seed ``layout_seeds["train"] + (i // 50) % n``, layout ``i % 50``): more distinct
    scenes than one seed's 50. Must not reach the val/test seeds."""

    @classmethod
    def demonstrations(cls, **kw) -> MetaWorldDataConfig:
        """Clean scripted-expert demos (no noise, perturbations or gripper overrides), cut
        2 actions after the first success unless ``stop_after_success`` is given."""
        clean = dict(
            noise_sigma_range=(0.0, 0.0),
            random_action_prob=0.0,
            perturb_start_prob=0.0,
            gripper_override_prob=0.0,
            stop_after_success=2,
        )
        return cls(**(clean | kw))

    def __post_init__(self) -> None:
        self.noise_sigma_range = tuple(self.noise_sigma_range)  # type: ignore[assignment]
        self.perturb_len_range = tuple(self.perturb_len_range)  # type: ignore[assignment]
        for name in ("frames", "action_repeat", "resolution"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"MetaWorldDataConfig.{name} must be >= 1, got {getattr(self, name)}"
                )
        for split in SPLITS:
            if self.episodes(split) < 0:
                raise ValueError(f"{split}_episodes must be >= 0")
        if set(self.layout_seeds) != set(SPLITS):
            raise ValueError(
                f"layout_seeds needs exactly the splits {SPLITS}, got {self.layout_seeds}"
            )
        if len(set(self.layout_seeds.values())) != len(SPLITS):
            raise ValueError(f"layout_seeds must differ between splits, got {self.layout_seeds}")
        if not self.tasks:
            raise ValueError("MetaWorldDataConfig.tasks is empty")
        if self.perturb_len_range[0] < 1 or self.perturb_len_range[1] < self.perturb_len_range[0]:
            raise ValueError(f"bad perturb_len_range {self.perturb_len_range}")
        if not 0.0 <= self.random_walk_prob <= 1.0:
            raise ValueError(f"random_walk_prob must be in [0, 1], got {self.random_walk_prob}")
        if self.train_layout_seeds < 1:
            raise ValueError(f"train_layout_seeds must be >= 1, got {self.train_layout_seeds}")
        first = self.layout_seeds["train"]
        clash = [
            s
            for split, s in self.layout_seeds.items()
            if split != "train" and first <= s < first + self.train_layout_seeds
        ]
        if clash:
            raise ValueError(
                f"train_layout_seeds={self.train_layout_seeds} makes the train split use "
                f"the val/test layout seeds {clash}"
            )

    def layout_of(self, split: str, index: int) -> tuple[int, int]:
        """``(MT1 seed, layout index)`` of episode ``index`` of ``split``."""
        seed = self.layout_seeds[split]
        if split == "train":
            seed += (index // LAYOUTS_PER_SEED) % self.train_layout_seeds
        return seed, index % LAYOUTS_PER_SEED

    def episodes(self, split: str) -> int:
        return {"train": self.train_episodes, "val": self.val_episodes, "test": self.test_episodes}[
            split
        ]

    # Fields that only say how many episodes exist: a dataset may grow along them.
    COUNT_FIELDS = ("tasks", "train_episodes", "val_episodes", "test_episodes")


def episode_seed(base_seed: int, task: str, split: str, index: int) -> int:
    """Stable per-episode seed (independent of generation order and of Python's hash salt)."""
    seq = np.random.SeedSequence([base_seed, zlib.crc32(task.encode()), SPLITS.index(split), index])
    return int(seq.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


# ----------------------------------------------------------------------------- environment


@lru_cache(maxsize=16)
def _mt1_tasks(task: str, seed: int) -> tuple[Any, ...]:
    """The 50 fixed layouts of ``MT1(task, seed)`` (building them takes ~1 s: cached)."""
    import metaworld

    return tuple(metaworld.MT1(task, seed=seed).train_tasks)


class SceneRenderer:
    """Renders one MetaWorld env's current state: ``render()`` -> ``(rgb, depth)``.

    ``rgb`` uint8 (H, W, 3); ``depth`` float32 (H, W) metric meters clipped at ``depth_clip_m``
    (``None`` when ``depth=False``). Shadows, multisampling and reflections are off (7x
    faster, REFERENCE §6). Rendering first recomputes kinematics so the image shows the current
    state even right after ``reset``; it never changes the simulation. Close it when done.
    """

    def __init__(
        self, env: Any, camera: str, resolution: int, depth: bool = True, depth_clip_m: float = 10.0
    ) -> None:
        import mujoco

        self._mujoco = mujoco
        self.env = env
        self.depth_clip_m = depth_clip_m
        self.with_depth = depth
        model = env.unwrapped.model
        model.vis.quality.shadowsize = 0
        model.vis.quality.offsamples = 0
        if camera in CAMERA_PRESETS:
            pose = CAMERA_PRESETS[camera]
            cam = mujoco.MjvCamera()
            cam.type = mujoco.mjtCamera.mjCAMERA_FREE
            cam.lookat[:] = pose.lookat
            cam.azimuth, cam.elevation, cam.distance = pose.azimuth, pose.elevation, pose.distance
            self._camera: Any = cam
        else:
            names = [model.camera(i).name for i in range(model.ncam)]
            if camera not in names:
                raise ValueError(
                    f"unknown camera {camera!r}: use a preset {sorted(CAMERA_PRESETS)} "
                    f"or one of {names}"
                )
            self._camera = camera
        self._flip = camera in FLIPPED_CAMERAS
        self._renderer = mujoco.Renderer(model, resolution, resolution)

    def render(self) -> tuple[np.ndarray, np.ndarray | None]:
        r = self._renderer
        if r is None:
            raise RuntimeError("SceneRenderer.render() called after close()")
        model, data = self.env.unwrapped.model, self.env.unwrapped.data
        # MetaWorld's reset_model moves the goal site in the *model* after its last
        # mj_forward, so data.site_xpos still shows an earlier goal: the frame after reset
        # would depend on history. Recompute the position stage only (a no-op after
        # env.step). Not mj_forward: it also rewrites the solver warm start, which changed
        # the later physics (measured: actions diverged after ~9 frames).
        mj = self._mujoco
        mj.mj_kinematics(model, data)
        mj.mj_comPos(model, data)
        mj.mj_camlight(model, data)
        r.update_scene(data, camera=self._camera)
        r.scene.flags[self._mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        rgb = r.render().copy()  # (H, W, 3) uint8
        depth = None
        if self.with_depth:
            r.enable_depth_rendering()
            depth = np.minimum(r.render(), self.depth_clip_m).astype(np.float32)  # (H, W) m
            r.disable_depth_rendering()
        if self._flip:
            rgb = rgb[::-1].copy()
            depth = None if depth is None else depth[::-1].copy()
        return rgb, depth

    __call__ = render

    def close(self) -> None:
        """Free the renderer (idempotent).

        ``mujoco.Renderer.close`` frees the MuJoCo GL objects on whichever GL context is
        current, which corrupts the images of another live renderer that drew last (measured:
        wrong pixels and depth). Making our own context current first keeps others intact.
        """
        renderer, self._renderer = getattr(self, "_renderer", None), None
        if renderer is None:
            return
        gl_context = getattr(renderer, "_gl_context", None)
        if gl_context is not None:
            gl_context.make_current()
        renderer.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: GL bindings may already be gone
            pass


def headless_gl_defaults() -> None:
    """Without a display, render MuJoCo through OSMesa (``MUJOCO_GL=osmesa``,
    ``PYOPENGL_PLATFORM=osmesa``) unless the user chose a backend; must run before mujoco is
    first imported (scripts/setup.sh installs libosmesa6)."""
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "osmesa")
        os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")


def make_metaworld_env(
    task: str,
    seed: int,
    layout: int,
    camera: str = "workspace",
    resolution: int = 64,
    depth: bool = True,
    depth_clip_m: float = 10.0,
) -> tuple[Any, SceneRenderer]:
    """A MetaWorld v3 env frozen to layout ``layout`` of ``MT1(task, seed)`` and its renderer.

    The env is not reset yet. ``render_fn()`` returns ``(rgb uint8 (H,W,3), depth float32
    (H,W) m or None)`` exactly as the dataset stores them (depth is stored as float16).
    Close both when done (``render_fn.close(); env.close()``).
    """
    headless_gl_defaults()
    import metaworld

    if task not in metaworld.env_dict.ALL_V3_ENVIRONMENTS:
        raise ValueError(f"{task!r} is not a MetaWorld v3 task (see ALL_V3_ENVIRONMENTS)")
    layouts = _mt1_tasks(task, seed)
    env = metaworld.env_dict.ALL_V3_ENVIRONMENTS[task]()
    env.set_task(layouts[layout % len(layouts)])
    return env, SceneRenderer(env, camera, resolution, depth, depth_clip_m)


# ----------------------------------------------------------------------------- policy


class ExplorationPolicy:
    """Per-episode noisy scripted expert; ``policy(obs) -> (4,) float32`` in [-1, 1].

    An exploration level ``eps = u^2``, ``u ~ U(0, 1)`` (mean 1/3), is drawn per episode and
    scales all noise, so the data holds near-clean (mostly successful) and very noisy
    episodes; the same noise at every episode's mean level made push/pick-place succeed in
    only ~10% of episodes (the experts lose their phase). ``sigma = lo + (hi - lo) * eps``
    from ``noise_sigma_range``; random-action probability ``3 * random_action_prob * eps`` and
    perturbation-start probability ``3 * perturb_start_prob * eps`` (the config values are
    the dataset means; sigma averages lo + (hi - lo) / 3).

    Per frame, in order: continue a perturbation segment (a uniform random action held for
    ``perturb_len_range`` frames), start one, take a uniform random action, else
    ``clip(expert(obs)) + N(0, sigma^2)``. With ``gripper_override_prob`` the episode's gripper
    is always open, always closed or a random +-1 that flips with ``gripper_toggle_prob``.
    """

    GRIPPER_MODES = ("open", "closed", "toggle")

    def __init__(self, task: str, cfg: MetaWorldDataConfig, rng: np.random.Generator) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        self.expert = ENV_POLICY_MAP[task]()
        self.cfg, self.rng = cfg, rng
        self.level = float(rng.random()) ** 2  # eps, mean 1/3: skewed towards clean episodes
        lo, hi = cfg.noise_sigma_range
        self.sigma = lo + (hi - lo) * self.level
        self.random_action_prob = 3.0 * cfg.random_action_prob * self.level
        self.perturb_start_prob = 3.0 * cfg.perturb_start_prob * self.level
        self.gripper_mode = "expert"
        if rng.random() < cfg.gripper_override_prob:
            self.gripper_mode = self.GRIPPER_MODES[int(rng.integers(len(self.GRIPPER_MODES)))]
        self._grip = float(rng.choice([-1.0, 1.0]))
        self._held = np.zeros(4)
        self._held_left = 0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        cfg, rng = self.cfg, self.rng
        if self._held_left > 0:
            self._held_left -= 1
            action = self._held.copy()
        elif rng.random() < self.perturb_start_prob:
            lo, hi = cfg.perturb_len_range
            self._held = rng.uniform(-1.0, 1.0, 4)
            self._held_left = int(rng.integers(lo, hi + 1)) - 1
            action = self._held.copy()
        elif rng.random() < self.random_action_prob:
            action = rng.uniform(-1.0, 1.0, 4)
        else:
            with warnings.catch_warnings():  # "Constant(s) may be too high": we clip anyway
                warnings.simplefilter("ignore", UserWarning)
                expert = np.clip(self.expert.get_action(obs), -1.0, 1.0)
            action = expert + rng.normal(0.0, self.sigma, 4)
        if self.gripper_mode == "open":
            action[3] = -1.0
        elif self.gripper_mode == "closed":
            action[3] = 1.0
        elif self.gripper_mode == "toggle":
            if rng.random() < cfg.gripper_toggle_prob:
                self._grip = -self._grip
            action[3] = self._grip
        return np.clip(action, -1.0, 1.0).astype(np.float32)


class RandomWalkPolicy:
    """Per-episode smooth random motion; ``policy(obs) -> (4,) float32`` in [-1, 1].

    xyz follow an AR(1) process ``a_k = rho a_{k-1} + sqrt(1 - rho^2) s e_k``, ``e_k ~ N(0, I)``
    with a per-episode persistence ``rho ~ U(0.5, 0.95)`` and scale ``s ~ U(0.3, 1.0)`` (the
    hand drifts over the whole workspace, as an exploring agent does); the gripper is +-1 and
    flips with probability ``gripper_toggle_prob`` per frame. ``obs`` is ignored.
    """

    def __init__(self, task: str, cfg: MetaWorldDataConfig, rng: np.random.Generator) -> None:
        self.cfg, self.rng = cfg, rng
        self.rho = float(rng.uniform(0.5, 0.95))
        self.scale = float(rng.uniform(0.3, 1.0))
        self.sigma, self.level = self.scale, 1.0  # recorded like ExplorationPolicy's
        self._xyz = rng.normal(0.0, self.scale, 3)
        self._grip = float(rng.choice([-1.0, 1.0]))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        rng = self.rng
        self._xyz = self.rho * self._xyz + np.sqrt(1 - self.rho**2) * rng.normal(0, self.scale, 3)
        if rng.random() < self.cfg.gripper_toggle_prob:
            self._grip = -self._grip
        return np.clip(np.append(self._xyz, self._grip), -1.0, 1.0).astype(np.float32)


def robot_state(env: Any, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(state (7,) float32, keypoints (len(KEYPOINT_BODIES), 3) float32)`` of the current
    simulation: ``state`` per :data:`STATE_NAMES` (from the observation), keypoints in meters
    (world frame, from MuJoCo's body positions)."""
    data = env.unwrapped.data
    keypoints = np.stack([data.body(name).xpos for name in KEYPOINT_BODIES])
    return np.asarray(obs[:7], np.float32), keypoints.astype(np.float32)


# ----------------------------------------------------------------------------- episodes


def generate_episode(
    cfg: MetaWorldDataConfig,
    task: str,
    split: str,
    index: int,
    env_and_renderer: tuple[Any, SceneRenderer] | None = None,
) -> dict[str, np.ndarray]:
    """Roll out and render one episode; returns the arrays of the on-disk format.

    ``env_and_renderer`` may pass an env of ``task`` to reuse (its layout is reset here);
    the result is identical to a fresh env's.
    """
    seed = episode_seed(cfg.base_seed, task, split, index)
    rng = np.random.default_rng(seed)
    layout_seed, layout = cfg.layout_of(split, index)
    layouts = _mt1_tasks(task, layout_seed)
    if env_and_renderer is None:
        env, render = make_metaworld_env(
            task, layout_seed, layout, cfg.camera, cfg.resolution, cfg.depth, cfg.depth_clip_m
        )
        owned = True
    else:
        env, render = env_and_renderer
        env.set_task(layouts[layout])
        owned = False
    try:
        env.max_path_length = max(env.max_path_length, cfg.frames * cfg.action_repeat)
        # Drawn only when enabled, so datasets without random walks keep their old seeds.
        walk = cfg.random_walk_prob > 0 and rng.random() < cfg.random_walk_prob
        policy = (RandomWalkPolicy if walk else ExplorationPolicy)(task, cfg, rng)
        obs, _ = env.reset()
        rgbs, depths, states, keypoints = [], [], [], []
        state, kp = robot_state(env, obs)
        states.append(state)
        keypoints.append(kp)
        actions = np.zeros((cfg.frames, 4), np.float32)
        rewards = np.zeros(cfg.frames, np.float32)
        success = np.zeros(cfg.frames, bool)
        rgb, depth = render()
        rgbs.append(rgb)
        depths.append(depth)
        first_success = None
        for k in range(cfg.frames):
            actions[k] = policy(obs)
            for _ in range(cfg.action_repeat):
                obs, reward, _, _, info = env.step(actions[k])
                rewards[k] += reward
                success[k] |= bool(info["success"])
            rgb, depth = render()
            rgbs.append(rgb)
            depths.append(depth)
            state, kp = robot_state(env, obs)
            states.append(state)
            keypoints.append(kp)
            if success[k] and first_success is None:
                first_success = k
            if cfg.stop_after_success >= 0 and first_success is not None:
                if k - first_success >= cfg.stop_after_success:
                    actions, rewards, success = actions[: k + 1], rewards[: k + 1], success[: k + 1]
                    break
    finally:
        if owned:
            render.close()
            env.close()
    out = {
        "rgb": np.stack(rgbs),  # (T+1, H, W, 3) uint8
        "action": actions,  # (T, 4)
        "reward": rewards,  # (T,)
        "success": success,  # (T,)
        "layout": np.int64(layout),
        "layout_seed": np.int64(layout_seed),
        "seed": np.int64(seed),
        "noise_sigma": np.float32(policy.sigma),
        "explore_level": np.float32(policy.level),
        "task": np.str_(task),
        "random_walk": np.bool_(walk),
        "state": np.stack(states),  # (T+1, 7) per STATE_NAMES
        "keypoints": np.stack(keypoints),  # (T+1, K, 3) m, per KEYPOINT_BODIES
    }
    if cfg.depth:
        out["depth"] = np.stack(depths).astype(np.float16)  # (T+1, H, W) m
    return out


# ----------------------------------------------------------------------------- dataset


def _check_or_write_meta(root: Path, cfg: MetaWorldDataConfig) -> None:
    """Refuse to mix episodes generated with different settings in one root."""
    meta_path = root / "meta.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{meta_path} has format_version {old.get('format_version')}, "
                f"this code writes {FORMAT_VERSION}: use a new root"
            )
        new = json.loads(json.dumps(asdict(cfg)))  # tuples -> lists like the stored file
        # A field newer than the stored file counts as its default (older datasets resume).
        defaults = json.loads(json.dumps(asdict(MetaWorldDataConfig())))
        diff = [
            k
            for k in new
            if k not in cfg.COUNT_FIELDS and old["config"].get(k, defaults[k]) != new[k]
        ]
        if diff:
            raise ValueError(
                f"{meta_path} was written with different settings ({', '.join(diff)}): "
                "use a new root or the same settings"
            )
    camera = asdict(CAMERA_PRESETS[cfg.camera]) if cfg.camera in CAMERA_PRESETS else cfg.camera
    meta = {
        "format_version": FORMAT_VERSION,
        "generator": "metaworld",
        "config": asdict(cfg),
        "camera": camera,
        "splits": list(SPLITS),
    }
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(meta_path, meta)


_WORKER: dict[str, Any] = {}


def _worker_init(cfg: MetaWorldDataConfig, root: str) -> None:
    headless_gl_defaults()
    _WORKER.update(cfg=cfg, root=Path(root), envs={})


def _worker_run(job: tuple[str, str, int]) -> tuple[str, bool, float]:
    """Generate + write one episode; reuses one env per task in this process."""
    task, split, index = job
    cfg: MetaWorldDataConfig = _WORKER["cfg"]
    envs: dict[str, tuple[Any, SceneRenderer]] = _WORKER["envs"]
    t0 = time.perf_counter()
    if task not in envs:
        for env, render in envs.values():  # one MuJoCo renderer at a time (REFERENCE §6)
            render.close()
            env.close()
        envs.clear()
        envs[task] = make_metaworld_env(
            task,
            cfg.layout_of(split, index)[0],
            0,
            cfg.camera,
            cfg.resolution,
            cfg.depth,
            cfg.depth_clip_m,
        )
    arrays = generate_episode(cfg, task, split, index, envs[task])
    write_episode(episode_path(_WORKER["root"], split, task, index), arrays)
    return task, bool(arrays["success"].any()), time.perf_counter() - t0


def generate_dataset(
    root: str | os.PathLike,
    cfg: MetaWorldDataConfig,
    num_workers: int = 2,
    progress: bool = True,
    write_stats: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Generate every missing episode of ``cfg`` under ``root``; returns a summary dict
    (``generated``, ``skipped``, per-task expert ``success_rate`` of the generated episodes,
    ``seconds_per_episode``). Existing episode files are skipped (resume)."""
    import metaworld

    unknown = [t for t in cfg.tasks if t not in metaworld.env_dict.ALL_V3_ENVIRONMENTS]
    if unknown:
        raise ValueError(
            f"unknown MetaWorld v3 tasks {unknown}; see metaworld.env_dict.ALL_V3_ENVIRONMENTS"
        )
    root = Path(root)
    _check_or_write_meta(root, cfg)
    jobs = [(t, s, i) for s in SPLITS for t in cfg.tasks for i in range(cfg.episodes(s))]
    todo = [j for j in jobs if not episode_path(root, j[1], j[0], j[2]).exists()]
    log(
        f"[metaworld] {root}: {len(jobs)} episodes, {len(jobs) - len(todo)} exist, "
        f"{len(todo)} to generate with {num_workers} worker(s)"
    )
    from tqdm import tqdm

    results: list[tuple[str, bool, float]] = []
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), disable=not progress, unit="ep", dynamic_ncols=True)
    if num_workers <= 1:
        _worker_init(cfg, str(root))
        try:
            for job in todo:
                results.append(_worker_run(job))
                bar.update()
        finally:
            for env, render in _WORKER.pop("envs", {}).values():
                render.close()
                env.close()
    else:
        ctx = mp.get_context("spawn")
        # Jobs are ordered by task, so chunks keep a worker on one task (one env build).
        chunk = max(1, min(8, len(todo) // (4 * num_workers)))
        with ctx.Pool(num_workers, initializer=_worker_init, initargs=(cfg, str(root))) as pool:
            for res in pool.imap_unordered(_worker_run, todo, chunksize=chunk):
                results.append(res)
                bar.update()
    bar.close()
    elapsed = time.perf_counter() - t0
    rates = {
        t: float(np.mean([s for tt, s, _ in results if tt == t]))
        for t in cfg.tasks
        if any(tt == t for tt, _, _ in results)
    }
    summary = {
        "generated": len(results),
        "skipped": len(jobs) - len(todo),
        "seconds": elapsed,
        "seconds_per_episode": elapsed / max(1, len(results)),
        "success_rate": rates,
    }
    if write_stats and cfg.train_episodes > 0:
        from freeaction_gym.data.stats import compute_stats

        compute_stats(root, write=True)
    return summary


def main_metaworld(argv: list[str] | None = None) -> int:
    """``freeaction data metaworld ROOT [options]``: generate (or resume) a dataset."""
    d = MetaWorldDataConfig()
    p = argparse.ArgumentParser(
        prog="freeaction data metaworld", description=__doc__.split("\n")[0]
    )
    p.add_argument("root", help="output directory (meta.json, train/ val/ test/, stats.json)")
    p.add_argument("--tasks", nargs="+", default=d.tasks, help="MetaWorld v3 task names")
    p.add_argument("--train", type=int, default=d.train_episodes, help="train episodes per task")
    p.add_argument("--val", type=int, default=d.val_episodes, help="val episodes per task")
    p.add_argument("--test", type=int, default=d.test_episodes, help="test episodes per task")
    p.add_argument("--frames", type=int, default=d.frames, help="actions per episode (T+1 frames)")
    p.add_argument(
        "--action-repeat", type=int, default=d.action_repeat, help="sim steps per action"
    )
    p.add_argument("--resolution", type=int, default=d.resolution, help="image size (square)")
    p.add_argument(
        "--camera",
        default=d.camera,
        help=f"preset {sorted(CAMERA_PRESETS)} or a MetaWorld camera (corner2, ...)",
    )
    p.add_argument("--no-depth", action="store_true", help="do not store depth")
    p.add_argument(
        "--demos",
        action="store_true",
        help="clean scripted-expert demonstrations cut shortly after the first success",
    )
    p.add_argument(
        "--stop-after-success",
        type=int,
        default=None,
        help="actions kept after the first success (-1: fixed length; --demos: 2)",
    )
    p.add_argument(
        "--random-walk-prob",
        type=float,
        default=d.random_walk_prob,
        help="per-episode probability of a smooth random-walk episode instead of the expert",
    )
    p.add_argument(
        "--train-layout-seeds",
        type=int,
        default=d.train_layout_seeds,
        help="consecutive MT1 seeds the train split draws layouts from (50 layouts each)",
    )
    p.add_argument(
        "--layout-seeds",
        type=int,
        nargs=3,
        metavar=("TRAIN", "VAL", "TEST"),
        default=[d.layout_seeds[s] for s in SPLITS],
        help="MT1 layout seed per split (e.g. 0 500 3000 for a set of fresh test layouts)",
    )
    p.add_argument("--seed", type=int, default=d.base_seed, help="base seed of the episode seeds")
    p.add_argument("--workers", type=int, default=2, help="worker processes (1 = in-process)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--stats-only", action="store_true", help="only (re)compute stats.json")
    args = p.parse_args(argv)
    headless_gl_defaults()
    if args.stats_only:
        from freeaction_gym.data.stats import compute_stats

        stats = compute_stats(args.root, write=True)
        print(json.dumps({k: stats[k] for k in ("num_episodes", "per_task")}, indent=2))
        return 0
    extra = {}
    if args.stop_after_success is not None:
        extra["stop_after_success"] = args.stop_after_success
    make = MetaWorldDataConfig.demonstrations if args.demos else MetaWorldDataConfig
    cfg = make(
        **extra,
        tasks=list(args.tasks),
        train_episodes=args.train,
        val_episodes=args.val,
        test_episodes=args.test,
        frames=args.frames,
        action_repeat=args.action_repeat,
        resolution=args.resolution,
        camera=args.camera,
        depth=not args.no_depth,
        base_seed=args.seed,
        random_walk_prob=args.random_walk_prob,
        train_layout_seeds=args.train_layout_seeds,
        layout_seeds=dict(zip(SPLITS, args.layout_seeds, strict=True)),
    )
    summary = generate_dataset(
        args.root, cfg, num_workers=args.workers, progress=not args.no_progress
    )
    print(json.dumps(summary, indent=2))
    return 0


def config_from_meta(root: str | os.PathLike) -> MetaWorldDataConfig:
    """The :class:`MetaWorldDataConfig` stored in ``{root}/meta.json``."""
    meta = json.loads((Path(root) / "meta.json").read_text())
    known = {f.name for f in fields(MetaWorldDataConfig)}
    return MetaWorldDataConfig(**{k: v for k, v in meta["config"].items() if k in known})


__all__: Sequence[str] = (
    "CAMERA_PRESETS",
    "FORMAT_VERSION",
    "SPLITS",
    "KEYPOINT_BODIES",
    "STATE_NAMES",
    "ExplorationPolicy",
    "RandomWalkPolicy",
    "FreeCamera",
    "MetaWorldDataConfig",
    "SceneRenderer",
    "config_from_meta",
    "episode_path",
    "episode_seed",
    "generate_dataset",
    "generate_episode",
    "main_metaworld",
    "robot_state",
    "make_metaworld_env",
)


if __name__ == "__main__":
    raise SystemExit(main_metaworld())
