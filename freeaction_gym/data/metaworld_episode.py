"""One MetaWorld episode: roll a policy out in a layout's env and render every frame.

A recorded action is held for ``action_repeat`` simulator steps (MetaWorld moves <= 1 cm
per step, sub-pixel at 64x64); the frame after the last repeat is recorded, the reward is
summed over the repeats and success is their maximum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from freeaction_gym.data.metaworld_config import MetaWorldDataConfig, episode_seed
from freeaction_gym.data.metaworld_env import _mt1_tasks, make_metaworld_env, robot_state
from freeaction_gym.data.metaworld_policies import ExplorationPolicy, RandomWalkPolicy
from freeaction_gym.data.metaworld_render import SceneRenderer

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
        goal_pos = np.asarray(env._target_pos, np.float32)  # (3,) the goal marker, m
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
        "goal_pos": goal_pos,  # (3,) m, MetaWorld's _target_pos of the layout
    }
    if cfg.depth:
        out["depth"] = np.stack(depths).astype(np.float16)  # (T+1, H, W) m
    return out
