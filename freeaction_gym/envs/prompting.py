"""Visual action prompts in imagination: the env option ``conditioning: vap`` (seed 004).

An imagined env receives actions, not poses. :class:`ProprioTracker` keeps, for N envs, the
state of the learned proprioceptive model (:mod:`freeaction_gym.prompts.proprio`) integrated
open loop from each episode's initial robot state (also what ``state_source: proprio`` reads
success and reward from); :class:`PromptTracker` adds the prompt images of the context
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


class ProprioTracker:
    """The robot state of N imagined envs: the learned proprioceptive model integrated open
    loop over each env's actions from its episode's initial robot state."""

    def __init__(self, proprio: ProprioModel, num_envs: int) -> None:
        self.proprio = proprio
        p = proprio.config.pose_dim
        self.num_keypoints = proprio.config.num_keypoints
        self.pose = torch.zeros(num_envs, p)  # state columns, then keypoints (m)
        self.velocity = torch.zeros(num_envs, p)  # the last pose change
        self.mocap = torch.zeros(num_envs, 3)  # MetaWorld's mocap target (m)
        self.chunk_states = np.full((num_envs, 1, 7), np.nan, np.float32)
        """float32 (N, K, 7): the state after each action of the last step's chunk."""

    @property
    def state(self) -> np.ndarray:
        """float32 (N, 7): the integrated robot state per ``metaworld_gen.STATE_NAMES``."""
        return ProprioState(self.pose, self.velocity, self.mocap).state.numpy().copy()

    @torch.inference_mode()
    def reset(
        self,
        i: int,
        state: np.ndarray,
        keypoints: np.ndarray,
        previous: tuple[np.ndarray, np.ndarray] | None = None,
        mocap: np.ndarray | None = None,
    ) -> None:
        """Start env ``i`` at state (7,), keypoints (K, 3) world m: an arm at rest, or one
        moving from ``previous`` (state, keypoints one frame earlier) towards the mocap
        target ``mocap`` (3,) m (a reset-bank entry mid-episode, :meth:`ResetBank.robot`)."""

        def batch(x):
            return torch.as_tensor(np.asarray(x, np.float32))[None]

        s = self.proprio.initial_state(
            batch(state),
            batch(keypoints),
            None if previous is None else (batch(previous[0]), batch(previous[1])),
            None if mocap is None else batch(mocap),
        )
        self.pose[i], self.velocity[i], self.mocap[i] = s.pose[0], s.velocity[0], s.mocap[0]

    @torch.inference_mode()
    def step(self, actions: torch.Tensor, active: np.ndarray) -> np.ndarray:
        """Integrate actions (N, K, A) (model units = the dataset's); only the ``active``
        (N,) envs advance. Returns the keypoints after each action float32 (N, K, K_p, 3)
        (world m) and keeps the states after each in :attr:`chunk_states` (N, K, 7); those
        of inactive envs are what integrating would have given (unused)."""
        s = ProprioState(self.pose, self.velocity, self.mocap)
        keypoints, states = [], []
        for j in range(actions.shape[1]):
            s = self.proprio.step(s, actions[:, j].float())
            keypoints.append(s.keypoints)  # (N, K_p, 3)
            states.append(s.state)  # (N, 7)
        keep = torch.from_numpy(active)
        self.pose[keep], self.velocity[keep], self.mocap[keep] = (
            s.pose[keep],
            s.velocity[keep],
            s.mocap[keep],
        )
        self.chunk_states = torch.stack(states, 1).numpy().astype(np.float32)
        return torch.stack(keypoints, 1).numpy()


class PromptTracker:
    """Integrated robot poses (:attr:`robot`, a :class:`ProprioTracker`) and rolling context
    prompts of N envs.

    ``camera``: the dataset camera at the model's frame size; ``num_context`` n: context
    frames of the model."""

    def __init__(
        self, proprio: ProprioModel, camera: PinholeCamera, num_envs: int, num_context: int
    ) -> None:
        self.robot = ProprioTracker(proprio, num_envs)
        self.camera, self.n_ctx = camera, num_context
        self.num_keypoints = self.robot.num_keypoints
        self.context = np.zeros((num_envs, num_context, camera.height, camera.width, 3), np.uint8)

    @property
    def state(self) -> np.ndarray:
        """float32 (N, 7): the integrated robot state per ``metaworld_gen.STATE_NAMES``."""
        return self.robot.state

    def reset(
        self,
        i: int,
        state: np.ndarray,
        keypoints: np.ndarray,
        previous: tuple[np.ndarray, np.ndarray] | None = None,
        mocap: np.ndarray | None = None,
    ) -> None:
        """Start env ``i`` at state (7,), keypoints (K, 3) world m (``previous``, ``mocap``:
        as :meth:`ProprioTracker.reset`)."""
        self.robot.reset(i, state, keypoints, previous, mocap)
        first = render_prompts(np.asarray(keypoints)[None], self.camera)  # (1, H, W, 3)
        self.context[i] = first  # the context frames all show the reset pose

    def step(self, actions: torch.Tensor, active: np.ndarray) -> np.ndarray:
        """Integrate actions (N, K, A) (model units = the dataset's) and return the prompt
        video uint8 (N, n + K, H, W, 3) of the context and the K predicted frames. Only the
        ``active`` (N,) envs advance; the others keep their pose and context prompts."""
        n, k = actions.shape[:2]
        kp = self.robot.step(actions, active)  # (N, K, K_p, 3)
        new = render_prompts(kp.reshape(n * k, self.num_keypoints, 3), self.camera)
        video = np.concatenate([self.context, new.reshape(n, k, *new.shape[1:])], axis=1)
        self.context[active] = video[active, -self.n_ctx :]
        return video  # (N, n + K, H, W, 3)


def preset_camera(name: str, height: int, width: int) -> PinholeCamera:
    """The camera preset ``name`` (``metaworld_gen.CAMERA_PRESETS``) rendering frames of
    ``height`` x ``width`` pixels."""
    return PinholeCamera.from_free_camera(CAMERA_PRESETS[name], width, height)


DEFAULT_MODEL = "bundled:metaworld_default"
DEFAULT_PROPRIO = "bundled:metaworld_vap/proprio"
"""The default model's proprio model (``metaworld_vap`` is its fine-tune on the same data)."""


def proprio_dir(cfg, model_dir: Path | None) -> Path:
    """The proprio model directory of ``conditioning: vap`` / ``state_source: proprio`` /
    ``proprio_obs`` (``proprio_model``, else the world model directory's ``proprio/``, else
    for the bundled default model the one bundled with its VAP fine-tune, trained on the same
    data); ``FileNotFoundError`` saying how to get one."""
    if cfg.proprio_model:
        return resolve_asset_path(cfg.proprio_model)
    if model_dir is not None and (model_dir / "proprio").is_dir():
        return model_dir / "proprio"
    if cfg.model == DEFAULT_MODEL:
        return resolve_asset_path(DEFAULT_PROPRIO)
    from freeaction_gym.envs.validation import proprio_reason

    why = proprio_reason(cfg)
    raise FileNotFoundError(
        f"env option {why} needs a proprioceptive model: pass "
        "proprio_model=<directory> (train one with `freeaction train-proprio --data DATA "
        f"--out DIR`) or put it in the world model directory as proprio/ (looked in {model_dir})"
    )
