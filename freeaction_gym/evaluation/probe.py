"""A state probe: a small CNN that reads the robot's state off one frame.

The probe measures what a user sees in an imagined frame: is the hand where the real hand
is, is the gripper open or closed, is the object where it should be. Trained on real
frames (:mod:`freeaction_gym.training.train_probe`), it is then applied to imagined frames
of open-loop replays; its error on *real* held-out frames is its floor, the error an
imagined frame cannot be blamed for.

State layout (``freeaction_gym.data.metaworld_gen.STATE_NAMES``): hand xyz (m), gripper
opening (MetaWorld's normalised finger distance, ~0 closed .. 1 open), object xyz (m).
:func:`probe_errors` reports the hand and object errors as euclidean distances in cm and
the gripper error in gripper units.

The probe model itself is :class:`freeaction_gym.rewards.state_probe.StateProbe` (the
imagined env reads success off it too).
"""

from __future__ import annotations

import numpy as np

from freeaction_gym.data.metaworld_env import GRIPPER, HAND, OBJECT, STATE_NAMES
from freeaction_gym.rewards.state_probe import StateProbe, predict_states

ERROR_NAMES = ("hand_cm", "gripper", "object_cm")
"""Keys of :func:`probe_errors`: hand / object euclidean error (cm), gripper abs error."""


def state_errors(pred: np.ndarray, states: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame absolute errors of predicted states (N, 7) vs true states (N, 7) in the
    ``STATE_NAMES`` layout: ``hand_cm`` and ``object_cm`` are euclidean distances of the
    xyz columns in cm, ``gripper`` the absolute gripper error; each float64 (N,)."""
    pred, states = np.asarray(pred, np.float64), np.asarray(states, np.float64)
    if pred.shape != states.shape or pred.ndim != 2 or pred.shape[1] != len(STATE_NAMES):
        raise ValueError(
            f"states must both be (N, {len(STATE_NAMES)}), got {pred.shape} and {states.shape}"
        )
    d = pred - states
    return {
        "hand_cm": 100.0 * np.linalg.norm(d[:, HAND], axis=1),
        "gripper": np.abs(d[:, GRIPPER]),
        "object_cm": 100.0 * np.linalg.norm(d[:, OBJECT], axis=1),
    }


def probe_errors(
    probe: StateProbe, frames: np.ndarray, states: np.ndarray, batch: int = 512
) -> dict[str, np.ndarray]:
    """Per-frame probe errors on uint8 frames (N, H, W, 3) with true states (N, 7):
    ``{"hand_cm", "gripper", "object_cm"}`` -> float64 (N,) (see :func:`state_errors`)."""
    if tuple(probe.config.names) != tuple(STATE_NAMES):
        raise ValueError(
            f"probe_errors needs a probe of {STATE_NAMES}, this one predicts {probe.config.names}"
        )
    if len(frames) != len(states):
        raise ValueError(f"{len(frames)} frames but {len(states)} states")
    return state_errors(predict_states(probe, frames, batch), states)
