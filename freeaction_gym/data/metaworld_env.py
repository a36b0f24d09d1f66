"""MetaWorld v3 envs frozen to one layout, and the robot state the dataset stores per frame.

``make_metaworld_env`` builds a task's env on layout ``i`` of ``MT1(task, seed)`` with its
:class:`~freeaction_gym.data.metaworld_render.SceneRenderer` (``set_layout`` freezes an env
to a layout, the one way every caller does it); ``robot_state`` reads the state
(:data:`STATE_NAMES`) and arm keypoints (:data:`KEYPOINT_BODIES`) of the simulation;
``goal_positions`` the target (``_target_pos``) of layouts, as the env sets it at reset.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from freeaction_gym.data.metaworld_render import SceneRenderer, headless_gl_defaults

STATE_NAMES = ("hand_x", "hand_y", "hand_z", "gripper", "obj_x", "obj_y", "obj_z")
"""Columns of the per-frame ``state`` array: hand xyz (m), gripper opening (MetaWorld's
normalised finger distance, ~0 closed .. 1 open) and the first object's xyz (m)."""
HAND, GRIPPER, OBJECT = slice(0, 3), 3, slice(4, 7)
"""Columns of :data:`STATE_NAMES`: hand xyz, gripper opening, object xyz."""
KEYPOINT_BODIES = ("right_l1", "right_l3", "right_l5", "right_hand", "hand", "rightpad", "leftpad")
"""MuJoCo bodies whose world positions are stored per frame as ``keypoints`` (shoulder,
elbow, forearm, wrist, hand, both finger pads): the arm's skeleton."""


@lru_cache(maxsize=16)
def _mt1_tasks(task: str, seed: int) -> tuple[Any, ...]:
    """The 50 fixed layouts of ``MT1(task, seed)`` (building them takes ~1 s: cached)."""
    import metaworld

    return tuple(metaworld.MT1(task, seed=seed).train_tasks)


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
    env = metaworld.env_dict.ALL_V3_ENVIRONMENTS[task]()
    set_layout(env, task, seed, layout)
    return env, SceneRenderer(env, camera, resolution, depth, depth_clip_m)


def set_layout(env: Any, task: str, seed: int, layout: int) -> None:
    """Freeze ``env`` (a MetaWorld v3 env of ``task``) to layout ``layout`` of
    ``MT1(task, seed)`` (taken modulo the 50 layouts); it takes effect at the next reset."""
    layouts = _mt1_tasks(task, seed)
    env.set_task(layouts[layout % len(layouts)])


def goal_positions(tasks, layout_seeds, layouts) -> np.ndarray:
    """float32 (N, 3): the target position (m, world frame; MetaWorld's ``_target_pos``, the
    goal marker) of each scene ``(tasks[i], layout_seeds[i], layouts[i])``, read from a
    freshly reset env frozen to that layout - the scene :func:`make_metaworld_env` and the
    real env start from. Builds one env per task (no renderer)."""
    import metaworld

    envs: dict[str, Any] = {}
    out = np.zeros((len(tasks), 3), np.float32)
    try:
        for i, (task, seed, layout) in enumerate(zip(tasks, layout_seeds, layouts, strict=True)):
            task = str(task)
            if task not in envs:
                if task not in metaworld.env_dict.ALL_V3_ENVIRONMENTS:
                    raise ValueError(f"{task!r} is not a MetaWorld v3 task")
                envs[task] = metaworld.env_dict.ALL_V3_ENVIRONMENTS[task]()
            set_layout(envs[task], task, int(seed), int(layout))
            envs[task].reset()
            out[i] = envs[task]._target_pos
    finally:
        for env in envs.values():
            env.close()
    return out


def robot_state(env: Any, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(state (7,) float32, keypoints (len(KEYPOINT_BODIES), 3) float32)`` of the current
    simulation: ``state`` per :data:`STATE_NAMES` (from the observation), keypoints in meters
    (world frame, from MuJoCo's body positions)."""
    data = env.unwrapped.data
    keypoints = np.stack([data.body(name).xpos for name in KEYPOINT_BODIES])
    return np.asarray(obs[:7], np.float32), keypoints.astype(np.float32)
