"""Success read from a predicted state: MetaWorld's own rules on a state probe's output.

A learned success head can take shortcuts (a hand at the goal marker reads as push success,
because in expert data hand and puck arrive together). :class:`StateSuccess` instead runs a
state probe (:class:`~freeaction_gym.rewards.state_probe.StateProbe`: hand xyz, gripper,
object xyz in m from one frame) on each new frame and applies MetaWorld v3's success rule
of the env's task against the scene's goal position (``_target_pos``):

    success = || p - goal_pos ||_2 <= threshold,     p = hand + TCP_OFFSET  or  object

Rules (metaworld 3.1.1, ``metaworld/envs/``):

* ``reach-v3`` (``sawyer_reach_v3.py``, ``evaluate_state``): ``reach_dist <= 0.05`` with
  ``reach_dist = ||tcp_center - _target_pos||`` (``compute_reward``); ``tcp_center`` is the
  midpoint of the finger end-effector sites, which sits :data:`TCP_OFFSET` from the hand
  position of the observation (``obs[:3]``, what the probe predicts; constant: the gripper
  does not rotate).
* ``push-v3`` (``sawyer_push_v3.py``): ``target_to_obj <= TARGET_RADIUS`` (0.05) with
  ``target_to_obj = ||obs[4:7] - _target_pos||``.
* ``pick-place-v3`` (``sawyer_pick_place_v3.py``): ``obj_to_target <= 0.07`` with
  ``obj_to_target = ||obs[4:7] - _target_pos||``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from freeaction_gym.data.metaworld_env import HAND, OBJECT, STATE_NAMES

TCP_OFFSET = (0.0, 0.0, -0.045)
"""``tcp_center - obs[:3]`` in MetaWorld v3 (m), measured: -0.045 m in z to 0.3 mm."""


@dataclass(frozen=True)
class SuccessRule:
    """``||point - goal_pos|| <= threshold``."""

    point: Literal["tcp", "object"]
    """``tcp``: the hand position plus :data:`TCP_OFFSET`; ``object``: the object position."""
    threshold: float
    """Meters."""


METAWORLD_SUCCESS_RULES: dict[str, SuccessRule] = {
    "reach-v3": SuccessRule("tcp", 0.05),
    "push-v3": SuccessRule("object", 0.05),
    "pick-place-v3": SuccessRule("object", 0.07),
}
"""MetaWorld v3's success rules (sources in the module docstring)."""


def rule_success(
    states: Tensor, goal_pos: Tensor, tasks: list[str], task_ids: Tensor
) -> tuple[Tensor, Tensor]:
    """``states`` (B, 7) per STATE_NAMES (m), ``goal_pos`` (B, 3) m, ``task_ids`` long (B,)
    into ``tasks`` -> (success bool (B,), distance float32 (B,) m of the rule's point to the
    goal). A NaN goal position (no goal) gives False."""
    rules = [METAWORLD_SUCCESS_RULES[t] for t in tasks]
    use_tcp = torch.tensor([r.point == "tcp" for r in rules])[task_ids]  # (B,)
    threshold = torch.tensor([r.threshold for r in rules], dtype=torch.float32)[task_ids]
    tcp = states[:, HAND].float() + torch.tensor(TCP_OFFSET)  # (B, 3)
    point = torch.where(use_tcp[:, None], tcp, states[:, OBJECT].float())  # (B, 3)
    distance = torch.linalg.vector_norm(point - goal_pos.float(), dim=1)  # (B,)
    return distance <= threshold, distance


class StateSuccess:
    """Success from predicted states by :func:`rule_success`: states given, or read off the
    frames ``(B, H, W, 3)`` uint8 by a state probe (None: states must be given). ``tasks``
    are the env's task names (``task_ids`` index them), each must have a rule in
    :data:`METAWORLD_SUCCESS_RULES`."""

    def __init__(self, probe: torch.nn.Module | None, tasks: list[str]) -> None:
        names = tuple(getattr(getattr(probe, "config", None), "names", ()))
        if probe is not None and names != STATE_NAMES:
            raise ValueError(f"success='state' needs a probe of {STATE_NAMES}, got {names}")
        unknown = [t for t in tasks if t not in METAWORLD_SUCCESS_RULES]
        if unknown or not tasks:
            raise ValueError(
                f"success='state' has no success rule for task(s) {unknown or tasks}; rules "
                f"exist for {sorted(METAWORLD_SUCCESS_RULES)}"
            )
        self.probe = probe.eval() if probe is not None else None
        self.tasks = list(tasks)

    @torch.inference_mode()
    def __call__(
        self, frames: Tensor, goal_pos: Tensor, task_ids: Tensor, states: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """-> (success bool (B,), the states float32 (B, 7) judged: ``states`` if given,
        else the probe's reading of ``frames``)."""
        if states is None:
            if self.probe is None:
                raise ValueError("StateSuccess without a probe needs the states")
            states = self.probe(frames)
        states = states.float()  # (B, 7) m
        success, _ = rule_success(states, goal_pos, self.tasks, task_ids)
        return success, states
