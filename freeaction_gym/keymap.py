"""The teleop key map of ``freeaction play`` (terminal and browser): keys to actions.

``w/s`` +x/-x, ``a/d`` +y/-y, ``r/f`` +z/-z, ``g`` toggles the gripper, ``space`` holds
still; each key is one env step of a unit action on its axis (action units, in [-1, 1]).
"""

from __future__ import annotations

import numpy as np

MOVES = {
    "w": (0, 1.0),
    "s": (0, -1.0),
    "a": (1, 1.0),
    "d": (1, -1.0),
    "r": (2, 1.0),
    "f": (2, -1.0),
}
KEY_HELP = (
    "keys: w/s +x/-x, a/d +y/-y, r/f +z/-z, g toggle gripper, space no motion, "
    "n new episode, q quit"
)


def key_to_action(key: str, gripper: float, dim: int = 4) -> tuple[np.ndarray | None, float]:
    """(action or None for non-motion keys, new gripper value). Actions of 4 or more
    dimensions end with the gripper; smaller ones (Language-Table's 2-D xy) have none,
    and keys of the axes they lack do not move."""
    a = np.zeros(dim, np.float32)
    has_gripper = dim >= 4
    if key == "g":
        return None, -gripper
    if key in MOVES:
        i, v = MOVES[key]
        if i >= dim - has_gripper:
            return None, gripper
        a[i] = v
    elif key != " ":
        return None, gripper
    if has_gripper:
        a[-1] = gripper
    return a, gripper
