"""Proprioceptive dynamics: actions -> robot state and arm keypoints, for prompts in imagination.

The world-model env receives actions, not poses; to draw a visual action prompt for frame
k+1 it needs the arm's keypoints after action k. :class:`ProprioModel` predicts one
recorded action's effect (``action_repeat`` simulator steps) on the *pose* - the state
(``metaworld_gen.STATE_NAMES``: hand xyz, gripper opening, object xyz) and the keypoints
(``KEYPOINT_BODIES``, world m), 7 + 3K numbers - as a normalised delta from an MLP, and
:func:`integrate` rolls it out open loop from a reset state.

MetaWorld moves a *mocap* body by ``action * action_scale`` per simulator step, clipped to
the mocap bounds, and the hand follows it through a weld constraint. The mocap target is
therefore exact given the actions and its start (at rest the hand sits ``rest_offset`` from
it), but the hand does not sit on it: it lags while moving and cannot follow the target
everywhere in the mocap box (test split: 3.8 cm apart on average, up to 19 cm), so
"hand = mocap" is no hand model (docs/RESULTS.md). The model keeps the exact mocap target
as a hidden state and feeds its pull ``mocap_{k+1} - hand_k`` to the MLP (``use_mocap``),
with the last pose change as a velocity (``use_velocity``): the weld is a spring-damper, so
the hand's next move depends on both. Everything else (arm joints, gripper, object
contacts) is learned.

Saved as ``{dir}/model.safetensors`` + ``{dir}/config.json`` (the config carries the
normalisation and the MetaWorld constants, so loading needs no flags).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from freeaction_gym.data.metaworld_env import GRIPPER, HAND, OBJECT
from freeaction_gym.data.metaworld_gen import KEYPOINT_BODIES, STATE_NAMES
from freeaction_gym.prompts.camera import PinholeCamera
from freeaction_gym.utils.small_models import (
    load_small_model,
    save_small_model,
)


@dataclass
class ProprioConfig:
    """Architecture, inputs, MetaWorld constants and normalisation of a ProprioModel."""

    num_keypoints: int = len(KEYPOINT_BODIES)
    """K: keypoints per frame (pose = 7 state columns + 3K coordinates)."""
    hidden: int = 256
    """Width of the MLP's hidden layers."""
    depth: int = 3
    """Hidden layers."""
    use_velocity: bool = True
    """Input the last pose change (zero at rest)."""
    use_mocap: bool = True
    """Track MetaWorld's mocap target exactly and input its pull on the hand."""
    action_repeat: int = 4
    """Simulator steps per recorded action (the dataset's ``action_repeat``)."""
    action_scale: float = 0.01
    """m per simulator step per unit action (MetaWorld ``SawyerXYZEnv.action_scale``)."""
    mocap_low: tuple[float, float, float] = (-0.5, 0.4, 0.05)
    """Mocap bounds (m; MetaWorld's ``hand_low`` of reach/push/pick-place v3)."""
    mocap_high: tuple[float, float, float] = (0.5, 1.0, 0.5)
    """Upper mocap bounds (m; ``hand_high``)."""
    rest_offset: tuple[float, float, float] = (0.0045842, 0.0013883, -0.0048564)
    """hand - mocap (m) after MetaWorld's reset settles the arm at ``hand_init_pos``
    (0, 0.6, 0.2) (measured; identical in every episode of the three tasks)."""
    pose_mean: list[float] = field(default_factory=list)
    """Train-set mean of the pose columns (filled by training; empty = zeros)."""
    pose_std: list[float] = field(default_factory=list)
    """Train-set std of the pose columns (floored; empty = ones)."""
    delta_std: list[float] = field(default_factory=list)
    """Train-set std of the per-action pose change (floored; empty = ones); the network
    predicts ``delta / delta_std`` and takes velocities in these units."""
    pull_std: float = 1.0
    """Train-set std (m) of the mocap pull ``mocap_{k+1} - hand_k``."""

    def __post_init__(self) -> None:
        n = self.pose_dim
        for name in ("mocap_low", "mocap_high", "rest_offset"):
            setattr(self, name, tuple(float(v) for v in getattr(self, name)))
        for name, fill in (("pose_mean", 0.0), ("pose_std", 1.0), ("delta_std", 1.0)):
            values = [float(v) for v in getattr(self, name)] or [fill] * n
            if len(values) != n:
                raise ValueError(f"ProprioConfig.{name} needs {n} entries, got {len(values)}")
            setattr(self, name, values)
        if self.hidden < 1 or self.depth < 1 or self.action_repeat < 1:
            raise ValueError("ProprioConfig.hidden, depth and action_repeat must be >= 1")

    @property
    def pose_dim(self) -> int:
        return len(STATE_NAMES) + 3 * self.num_keypoints

    @property
    def input_dim(self) -> int:
        return self.pose_dim * (2 if self.use_velocity else 1) + 4 + (3 if self.use_mocap else 0)


@dataclass
class ProprioState:
    """What the integrator carries per environment (B = batch)."""

    pose: torch.Tensor
    """(B, P) state columns then flattened keypoints (m)."""
    velocity: torch.Tensor
    """(B, P) the last pose change (zero at rest)."""
    mocap: torch.Tensor
    """(B, 3) MetaWorld's mocap target (m)."""

    @property
    def state(self) -> torch.Tensor:
        """(B, 7) per ``STATE_NAMES``."""
        return self.pose[:, : len(STATE_NAMES)]

    @property
    def keypoints(self) -> torch.Tensor:
        """(B, K, 3) world m."""
        return self.pose[:, len(STATE_NAMES) :].reshape(len(self.pose), -1, 3)


def pose_of(state: np.ndarray | torch.Tensor, keypoints: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(..., 7) state and (..., K, 3) keypoints -> (..., 7 + 3K) float32 pose."""
    state, keypoints = (
        torch.from_numpy(np.array(x, np.float32))
        if isinstance(x, np.ndarray)
        else torch.as_tensor(x)
        for x in (state, keypoints)
    )  # numpy: copied (arrays from np.load may be read-only)
    flat = keypoints.reshape(*keypoints.shape[:-2], -1)
    return torch.cat([state, flat], -1).float()


def split_pose(pose: np.ndarray | torch.Tensor):
    """(..., 7 + 3K) pose -> ``(state (..., 7), keypoints (..., K, 3))`` (same array type)."""
    n = len(STATE_NAMES)
    return pose[..., :n], pose[..., n:].reshape(*pose.shape[:-1], -1, 3)


class ProprioModel(nn.Module):
    """(pose, velocity, mocap pull, action) -> next pose change; see the module docstring."""

    def __init__(self, config: ProprioConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ProprioConfig()
        layers: list[nn.Module] = []
        width = cfg.input_dim
        for _ in range(cfg.depth):
            layers += [nn.Linear(width, cfg.hidden), nn.SiLU()]
            width = cfg.hidden
        self.mlp = nn.Sequential(*layers, nn.Linear(width, cfg.pose_dim))
        nn.init.zeros_(self.mlp[-1].weight)  # starts as "nothing moves"
        nn.init.zeros_(self.mlp[-1].bias)
        for name in (
            "pose_mean",
            "pose_std",
            "delta_std",
            "mocap_low",
            "mocap_high",
            "rest_offset",
        ):
            self.register_buffer(name, torch.tensor(getattr(cfg, name)), persistent=False)

    def initial_state(
        self,
        state: torch.Tensor,
        keypoints: torch.Tensor,
        previous: tuple[torch.Tensor, torch.Tensor] | None = None,
        mocap: torch.Tensor | None = None,
    ) -> ProprioState:
        """The integrator state at (B, 7) state and (B, K, 3) keypoints: of an arm at rest
        (e.g. right after ``env.reset()``), or, mid-episode, moving from ``previous`` (the
        state and keypoints one frame earlier) towards MetaWorld's ``mocap`` target (B, 3) m
        (:func:`mocap_track` of the episode's actions)."""
        pose = pose_of(state, keypoints).to(self.pose_mean.device)  # (B, P)
        velocity = torch.zeros_like(pose)
        if previous is not None:
            velocity = pose - pose_of(*previous).to(pose.device)
        if mocap is None:
            mocap = pose[:, HAND] - self.rest_offset
        return ProprioState(pose, velocity, torch.as_tensor(mocap).float().to(pose.device))

    def next_mocap(self, mocap: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """MetaWorld's ``set_xyz_action`` over ``action_repeat`` steps: (B, 3), (B, 4) -> (B, 3)."""
        step = action[:, :3].clamp(-1, 1) * self.config.action_scale  # (B, 3) m
        for _ in range(self.config.action_repeat):
            mocap = torch.minimum(torch.maximum(mocap + step, self.mocap_low), self.mocap_high)
        return mocap

    def features(
        self, s: ProprioState, action: torch.Tensor, mocap_next: torch.Tensor
    ) -> torch.Tensor:
        """(B, input_dim) network input."""
        parts = [(s.pose - self.pose_mean) / self.pose_std]
        if self.config.use_velocity:
            parts.append(s.velocity / self.delta_std)
        if self.config.use_mocap:
            parts.append((mocap_next - s.pose[:, HAND]) / self.config.pull_std)
        parts.append(action.clamp(-1, 1))
        return torch.cat(parts, -1)

    def step(self, s: ProprioState, action: torch.Tensor) -> ProprioState:
        """One recorded action (B, 4) -> the next :class:`ProprioState`."""
        mocap = self.next_mocap(s.mocap, action)
        delta = self.mlp(self.features(s, action, mocap)) * self.delta_std  # (B, P) m
        return ProprioState(s.pose + delta, delta, mocap)

    forward = step

    def save_pretrained(self, directory: str | Path, extra: dict | None = None) -> Path:
        """Write ``model.safetensors`` + ``config.json`` (with ``extra`` metadata)."""
        return save_small_model(self, directory, "ProprioModel", asdict(self.config), extra)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> ProprioModel:
        """Rebuild a model saved by :meth:`save_pretrained` (CPU, eval mode)."""
        return load_small_model(
            directory,
            cls,
            ProprioConfig,
            "proprio model",
            f"freeaction train-proprio --data DATA --out {directory}",
        )


def rollout(model: ProprioModel, initial: ProprioState, actions: torch.Tensor) -> torch.Tensor:
    """Open-loop poses (B, T + 1, P) from ``initial`` and actions (B, T, 4) (differentiable:
    the trainer's multi-step loss runs through it)."""
    poses, s = [initial.pose], initial
    for k in range(actions.shape[1]):
        s = model.step(s, actions[:, k])
        poses.append(s.pose)
    return torch.stack(poses, 1)


def mocap_track(model: ProprioModel, pose: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """MetaWorld's mocap target at every frame of an episode that starts at rest: poses
    (T + 1, P) (or at least the first), actions (T, 4) -> (T + 1, 3) m."""
    s0 = model.initial_state(*split_pose(pose[:1]))
    track = [s0.mocap]
    for a in action:
        track.append(model.next_mocap(track[-1], a[None]))
    return torch.cat(track)


@torch.inference_mode()
def integrate(
    model: ProprioModel,
    state: np.ndarray | torch.Tensor,
    keypoints: np.ndarray | torch.Tensor,
    actions: np.ndarray | torch.Tensor,
) -> tuple[np.ndarray, np.ndarray]:
    """Roll ``model`` out from an arm at rest: state (B, 7), keypoints (B, K, 3) and actions
    (B, T, 4) -> ``(states (B, T + 1, 7), keypoints (B, T + 1, K, 3))`` float32 numpy, frame
    0 being the given one (the dataset's layout of an episode)."""
    actions = torch.as_tensor(actions).float()
    s0 = model.initial_state(torch.as_tensor(state), torch.as_tensor(keypoints))
    return split_pose(rollout(model, s0, actions).numpy())  # from (B, T + 1, P)


ERROR_STEPS = (1, 5, 10, 20, 40)
"""Steps at which rollouts are scored (as the world model's replay: 1, 5, 10, 20, 40)."""


def pose_errors(
    pred_states: np.ndarray,
    pred_keypoints: np.ndarray,
    true_states: np.ndarray,
    true_keypoints: np.ndarray,
    camera: PinholeCamera | None = None,
) -> dict[str, np.ndarray]:
    """Per-frame errors of predicted poses: states (E, T+1, 7), keypoints (E, T+1, K, 3) ->
    ``hand_cm``, ``object_cm`` (euclidean), ``gripper`` (abs, opening units),
    ``keypoints_cm`` (mean euclidean over K) and, given a camera, ``keypoints_px`` (mean
    image distance over K of the projected keypoints), each (E, T+1)."""
    ps, ts = np.asarray(pred_states, np.float64), np.asarray(true_states, np.float64)
    pk, tk = np.asarray(pred_keypoints, np.float64), np.asarray(true_keypoints, np.float64)
    out = {
        "hand_cm": np.linalg.norm(ps[..., HAND] - ts[..., HAND], axis=-1) * 100,
        "gripper": np.abs(ps[..., GRIPPER] - ts[..., GRIPPER]),
        "object_cm": np.linalg.norm(ps[..., OBJECT] - ts[..., OBJECT], axis=-1) * 100,
        "keypoints_cm": np.linalg.norm(pk - tk, axis=-1).mean(-1) * 100,
    }
    if camera is not None:
        (pu, _), (tu, _) = camera.project(pk), camera.project(tk)
        out["keypoints_px"] = np.linalg.norm(pu - tu, axis=-1).mean(-1)
    return out
