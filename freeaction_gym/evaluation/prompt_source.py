"""Visual action prompts of evaluation clips: a skeleton image of the arm for every frame.

Prompt models (``WorldModel.takes_prompts``, seed 004) are conditioned on the arm's
skeleton in every frame (:func:`~freeaction_gym.prompts.skeleton.render_prompts` through
the dataset camera, :func:`~freeaction_gym.prompts.camera.dataset_camera`). Offline
evaluation draws it from one of two sources (:data:`PromptSource`):

* ``true`` - the keypoints the episodes store, drawn as the training data draws them
  (:func:`~freeaction_gym.training.data.episode_prompts`, here only the clips' windows): how
  well the model follows the robot's real motion;
* ``proprio`` - keypoints integrated open loop under the clip's actions by the learned
  proprioceptive model from the robot state of the clip's first frame, by the env's own
  :class:`~freeaction_gym.envs.prompting.PromptTracker`: what a user of the ``vap``
  environment gets. The integration starts from an arm at rest
  (:meth:`~freeaction_gym.prompts.proprio.ProprioModel.initial_state`), so frame 0 is the
  true prompt and every later frame, context frames included, is integrated.

Either is uint8 (N, F, H, W, 3) aligned with the clips' frames: ``ReplaySet.prompts`` or the
``prompts`` of :func:`~freeaction_gym.evaluation.replay.short_clip_scores`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from freeaction_gym.data.episodes import Episode, load_episode
from freeaction_gym.data.metaworld_gen import STATE_NAMES
from freeaction_gym.envs.prompting import PromptTracker
from freeaction_gym.evaluation.rollout import Clips
from freeaction_gym.prompts.camera import PinholeCamera, dataset_camera
from freeaction_gym.prompts.proprio import ProprioModel
from freeaction_gym.prompts.skeleton import render_prompts

PromptSource = Literal["true", "proprio"]
PROMPT_SOURCES: tuple[str, ...] = ("true", "proprio")


def clip_prompts(
    root: str | Path,
    split: str,
    clips: Clips,
    source: PromptSource = "true",
    proprio: ProprioModel | None = None,
) -> np.ndarray:
    """uint8 (N, F, H, W, 3) prompt of every frame of ``clips`` (windows of the ``split``
    episodes of the dataset ``root``) from ``source``; ``proprio`` is the model of the
    ``proprio`` source. ``ValueError`` naming the episode when the data cannot give them."""
    if source == "true":
        return true_prompts(root, split, clips)
    if source == "proprio":
        if proprio is None:
            raise ValueError("prompt source 'proprio' needs a ProprioModel (proprio=...)")
        return proprio_prompts(root, split, clips, proprio)
    raise ValueError(f"unknown prompt source {source!r}; use one of {PROMPT_SOURCES}")


def true_prompts(root: str | Path, split: str, clips: Clips) -> np.ndarray:
    """uint8 (N, F, H, W, 3): the stored keypoints (world m) of every clip frame drawn
    through the dataset camera."""
    episodes = _robot_episodes(root, split, clips)
    f = clips.frames.shape[1]
    keypoints = np.stack(
        [episodes[name].keypoints[s : s + f] for name, s in _windows(clips)]
    )  # (N, F, K, 3)
    video = render_prompts(keypoints.reshape(-1, *keypoints.shape[2:]), clip_camera(root, clips))
    return video.reshape(len(clips), f, *video.shape[1:])


def proprio_prompts(
    root: str | Path, split: str, clips: Clips, proprio: ProprioModel
) -> np.ndarray:
    """uint8 (N, F, H, W, 3): the arm integrated by ``proprio`` from each clip's first-frame
    state (7,) and keypoints (K, 3) (world m) under its F - 1 actions (dataset units), drawn
    through the dataset camera."""
    state, keypoints = robot_start(root, split, clips, proprio.config.num_keypoints)
    tracker = PromptTracker(proprio, clip_camera(root, clips), len(clips), num_context=1)
    for i in range(len(clips)):
        tracker.reset(i, state[i], keypoints[i])
    return tracker.step(clips.actions, np.ones(len(clips), bool))  # (N, 1 + F - 1, H, W, 3)


def robot_start(
    root: str | Path, split: str, clips: Clips, num_keypoints: int
) -> tuple[np.ndarray, np.ndarray]:
    """The robot at each clip's first frame, where a :class:`PromptTracker` starts: state
    float32 (N, 7) and keypoints float32 (N, K, 3) world m (``ValueError`` as
    :func:`clip_prompts` when the episodes store no robot state or another K)."""
    episodes = _robot_episodes(root, split, clips, num_keypoints)
    starts = _windows(clips)
    state = np.stack([episodes[name].state[s] for name, s in starts]).astype(np.float32)
    keypoints = np.stack([episodes[name].keypoints[s] for name, s in starts])
    return state, keypoints.astype(np.float32)


def _windows(clips: Clips) -> list[tuple[str, int]]:
    """(episode file name, first frame) of every clip."""
    return list(zip(clips.episodes, clips.starts, strict=True))


def clip_camera(root: str | Path, clips: Clips) -> PinholeCamera:
    """The dataset camera at the clips' frame size."""
    h, w = clips.frames.shape[2:4]
    return dataset_camera(root).resized(w, h)


def _robot_episodes(
    root: str | Path, split: str, clips: Clips, num_keypoints: int | None = None
) -> dict[str, Episode]:
    """The clips' episodes, each loaded once; ``ValueError`` naming the first that stores no
    keypoints, or (given ``num_keypoints``: the proprio source) no robot state or another
    number of keypoints."""
    out = {}
    for name in dict.fromkeys(clips.episodes):
        path = Path(root) / split / name
        ep = load_episode(path, load_depth=False, action_dim=None)
        if ep.keypoints is None or (num_keypoints is not None and ep.state is None):
            missing = "keypoints" if ep.keypoints is None else "robot state"
            raise ValueError(
                f"episode {path} stores no {missing}, which visual action prompts are drawn "
                "from: regenerate the dataset with the current generator "
                "(`freeaction data metaworld`)"
            )
        if num_keypoints is not None and (
            ep.keypoints.shape[1] != num_keypoints or ep.state.shape[1] != len(STATE_NAMES)
        ):
            raise ValueError(
                f"episode {path} stores {ep.keypoints.shape[1]} keypoints and "
                f"{ep.state.shape[1]} state columns; the proprio model takes {num_keypoints} "
                f"and {len(STATE_NAMES)}"
            )
        out[name] = ep
    return out
