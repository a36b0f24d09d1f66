"""Visual action prompts in imagination: the env option ``conditioning: vap`` (seed 004).

An imagined env receives actions, not poses. :class:`PromptTracker` keeps, for N envs, the
state of the learned proprioceptive model (:mod:`freeaction_gym.prompts.proprio`) integrated
open loop from each episode's initial robot state, and the prompt images of the context
frames. Each step it integrates the chunk's K actions, draws the arm's skeleton after each
(:func:`~freeaction_gym.prompts.skeleton.render_prompts`) and returns the prompt video of
the model's whole input, context frames then predicted frames, which
:class:`~freeaction_gym.envs.core.ImaginationCore` passes to ``WorldModel.predict``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from freeaction_gym.assets import resolve_asset_path
from freeaction_gym.data.metaworld_gen import CAMERA_PRESETS
from freeaction_gym.prompts.camera import PinholeCamera
from freeaction_gym.prompts.proprio import ProprioModel, ProprioState
from freeaction_gym.prompts.skeleton import render_prompts


class PromptTracker:
    """Integrated robot poses and rolling context prompts of N envs.

    ``camera``: the dataset camera at the model's frame size; ``num_context`` n: context
    frames of the model."""

    def __init__(
        self, proprio: ProprioModel, camera: PinholeCamera, num_envs: int, num_context: int
    ) -> None:
        self.proprio, self.camera, self.n_ctx = proprio, camera, num_context
        p, k = proprio.config.pose_dim, proprio.config.num_keypoints
        self.pose = torch.zeros(num_envs, p)  # state columns, then keypoints (m)
        self.velocity = torch.zeros(num_envs, p)  # the last pose change
        self.mocap = torch.zeros(num_envs, 3)  # MetaWorld's mocap target (m)
        self.context = np.zeros((num_envs, num_context, camera.height, camera.width, 3), np.uint8)
        self.num_keypoints = k

    @property
    def state(self) -> np.ndarray:
        """float32 (N, 7): the integrated robot state per ``metaworld_gen.STATE_NAMES``."""
        return ProprioState(self.pose, self.velocity, self.mocap).state.numpy().copy()

    @torch.inference_mode()
    def reset(self, i: int, state: np.ndarray, keypoints: np.ndarray) -> None:
        """Start env ``i`` from an arm at rest: state (7,), keypoints (K, 3) world m."""
        s = self.proprio.initial_state(
            torch.as_tensor(np.asarray(state, np.float32))[None],
            torch.as_tensor(np.asarray(keypoints, np.float32))[None],
        )
        self.pose[i], self.velocity[i], self.mocap[i] = s.pose[0], s.velocity[0], s.mocap[0]
        first = render_prompts(np.asarray(keypoints)[None], self.camera)  # (1, H, W, 3)
        self.context[i] = first  # the context frames all show the reset pose

    @torch.inference_mode()
    def step(self, actions: torch.Tensor, active: np.ndarray) -> np.ndarray:
        """Integrate actions (N, K, A) (model units = the dataset's) and return the prompt
        video uint8 (N, n + K, H, W, 3) of the context and the K predicted frames. Only the
        ``active`` (N,) envs advance; the others keep their pose and context prompts."""
        n, k = actions.shape[:2]
        s = ProprioState(self.pose, self.velocity, self.mocap)
        keypoints = []
        for j in range(k):
            s = self.proprio.step(s, actions[:, j].float())
            keypoints.append(s.keypoints)  # (N, K_p, 3)
        kp = torch.stack(keypoints, 1).numpy()  # (N, K, K_p, 3)
        new = render_prompts(kp.reshape(n * k, self.num_keypoints, 3), self.camera)
        video = np.concatenate([self.context, new.reshape(n, k, *new.shape[1:])], axis=1)
        keep = torch.from_numpy(active)
        self.pose[keep], self.velocity[keep], self.mocap[keep] = (
            s.pose[keep],
            s.velocity[keep],
            s.mocap[keep],
        )
        self.context[active] = video[active, -self.n_ctx :]
        return video  # (N, n + K, H, W, 3)


def preset_camera(name: str, height: int, width: int) -> PinholeCamera:
    """The camera preset ``name`` (``metaworld_gen.CAMERA_PRESETS``) rendering frames of
    ``height`` x ``width`` pixels."""
    return PinholeCamera.from_free_camera(CAMERA_PRESETS[name], width, height)


def proprio_dir(cfg, model_dir: Path | None) -> Path:
    """The proprio model directory of ``conditioning: vap`` (``proprio_model`` or the world
    model directory's ``proprio/``); ``FileNotFoundError`` saying how to get one."""
    if cfg.proprio_model:
        return resolve_asset_path(cfg.proprio_model)
    if model_dir is not None and (model_dir / "proprio").is_dir():
        return model_dir / "proprio"
    raise FileNotFoundError(
        "env option conditioning='vap' needs a proprioceptive model: pass "
        "proprio_model=<directory> (train one with `freeaction train-proprio --data DATA "
        f"--out DIR`) or put it in the world model directory as proprio/ (looked in {model_dir})"
    )
