"""Dense reward from a predicted state: MetaWorld v3's own reward functions (metaworld 3.1.1,
reward version ``v2``, the default) on the 7-D robot state (hand xyz, gripper, object xyz;
:data:`~freeaction_gym.data.metaworld_env.STATE_NAMES`), the episode's first state and the
action's gripper effort.

* ``reach-v3`` (``sawyer_reach_v3.py``): ``10 * tolerance(||tcp - goal||, (0, 0.05),
  margin=||HAND_INIT - goal||)``.
* ``push-v3`` (``sawyer_push_v3.py``): ``2 * grasp`` (the base class's
  ``_gripper_caging_reward`` in its high-density form), plus ``1 + 2 * grasp + 5 *
  in_place`` while the tcp is within 2 cm of the puck with the gripper open; 10 within 5 cm
  of the goal.
* ``pick-place-v3`` (``sawyer_pick_place_v3.py``): ``hamacher(grasp, in_place)`` (its own
  caging reward), plus ``1 + 5 * in_place`` while the tcp holds the object lifted 1 cm above
  its start; 10 within 5 cm of the goal.

``tcp`` is the hand plus :data:`~freeaction_gym.rewards.state_success.TCP_OFFSET`. The
caging terms need the finger pads' y, which the state does not hold: each pad sits at the
hand's y plus an offset linear in the gripper opening (:data:`PAD_Y`, fitted on the real
simulator: within 2.2 mm over random actions). ``tolerance`` is MetaWorld's ``long_tail``
one: 1 inside the bounds, ``1 / ((d s)^2 + 1)`` outside, d the distance to the nearest bound
over the margin and ``s = sqrt(1 / 0.1 - 1)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from freeaction_gym.data.metaworld_env import GRIPPER, HAND, OBJECT
from freeaction_gym.rewards.state_success import TCP_OFFSET

VALUE_AT_MARGIN = 0.1
"""MetaWorld's ``tolerance`` default: the value one margin outside the bounds."""
TARGET_RADIUS = 0.05
"""m: the ``_TARGET_RADIUS`` / ``TARGET_RADIUS`` of all three tasks."""
REACH_RADIUS = TARGET_RADIUS
REACH_HAND_INIT = (0.0, 0.6, 0.2)
"""m: reach-v3's ``init_config["hand_init_pos"]`` (the reward's margin runs from it)."""
PAD_Y = {"left": (-0.00165, 0.04851), "right": (0.00443, -0.05155)}
"""m: a finger pad's y minus the hand's y = ``c0 + c1 * gripper`` (least squares over 540
random-action steps of push, pick-place and reach; max error 2.2 mm)."""
OBJ_RADIUS = 0.015
"""m: the object radius both tasks' caging reward uses."""
PAD_SUCCESS = 0.05
XZ_SUCCESS = 0.005
"""m: caging bounds (``pad_success_thresh``, ``xz_thresh``) of both tasks."""
STATE_REWARD_TASKS = ("reach-v3", "push-v3", "pick-place-v3")
"""Tasks :func:`state_reward` has MetaWorld's reward for."""


def long_tail_tolerance(
    x: Tensor, upper: float, margin: Tensor | float, lower: float = 0.0
) -> Tensor:
    """MetaWorld's ``tolerance(x, bounds=(lower, upper), margin, sigmoid="long_tail")``: 1
    inside the bounds, else ``1 / ((d s)^2 + 1)`` with d the distance to the nearer bound over
    the margin; a zero margin gives 0 outside the bounds."""
    margin = torch.as_tensor(margin, dtype=x.dtype).expand_as(x)
    scale = math.sqrt(1.0 / VALUE_AT_MARGIN - 1.0)
    gap = torch.where(x < lower, lower - x, (x - upper).clamp(min=0.0))
    d = gap / margin.clamp(min=torch.finfo(x.dtype).tiny)
    outside = torch.where(margin > 0, 1.0 / ((d * scale) ** 2 + 1.0), torch.zeros_like(x))
    return torch.where((x >= lower) & (x <= upper), torch.ones_like(x), outside)


def hamacher(a: Tensor, b: Tensor) -> Tensor:
    """MetaWorld's ``hamacher_product``: ``a b / (a + b - a b)``, 0 where both are 0."""
    den = a + b - a * b
    return torch.where(den > 0, a * b / den.clamp(min=torch.finfo(a.dtype).tiny), 0.0 * den)


def pad_y(states: Tensor) -> tuple[Tensor, Tensor]:
    """The (left, right) finger pads' y (m), each (B,), of ``states`` (B, 7)."""
    g, y = states[:, GRIPPER], states[:, 1]
    (l0, l1), (r0, r1) = PAD_Y["left"], PAD_Y["right"]
    return y + l0 + l1 * g, y + r0 + r1 * g


def _tcp(states: Tensor) -> Tensor:
    return states[:, HAND] + torch.tensor(TCP_OFFSET, dtype=states.dtype)


def _xz_caging(states: Tensor, init: Tensor) -> Tensor:
    """The tcp's caging of the object in the x-z plane (both tasks alike)."""
    xz = [0, 2]
    obj, obj0 = states[:, OBJECT], init[:, OBJECT]
    margin = torch.linalg.vector_norm(obj0[:, xz] - _tcp(init)[:, xz], dim=1) - XZ_SUCCESS
    dist = torch.linalg.vector_norm(_tcp(states)[:, xz] - obj[:, xz], dim=1)
    return long_tail_tolerance(dist, XZ_SUCCESS, margin.clamp(min=0.0))


def _grasp(y_caging: Tensor, states: Tensor, init: Tensor, effort: Tensor) -> Tensor:
    """``(hamacher(caging, gripping) + caging) / 2``, gripping the clipped gripper effort
    once caging exceeds 0.97 (the high-density form both tasks use)."""
    caging = hamacher(y_caging, _xz_caging(states, init))
    closed = effort.clamp(0.0, 1.0)
    gripping = torch.where(caging > 0.97, closed, torch.zeros_like(closed))
    return (hamacher(caging, gripping) + caging) / 2


def push_grasp(states: Tensor, init: Tensor, effort: Tensor) -> Tensor:
    """The base class's ``_gripper_caging_reward(obj_radius=0.015, pad_success_thresh=0.05,
    xz_thresh=0.005, high_density=True)``: pads caging the puck in y (margins from its start)."""
    obj_y, obj0_y = states[:, 5], init[:, 5]
    caging = []
    for pad in pad_y(states):
        margin = ((pad - obj0_y).abs() - PAD_SUCCESS).abs()
        caging.append(long_tail_tolerance((pad - obj_y).abs(), PAD_SUCCESS, margin, OBJ_RADIUS))
    return _grasp(hamacher(*caging), states, init, effort)


def pick_place_grasp(states: Tensor, init: Tensor, effort: Tensor) -> Tensor:
    """pick-place-v3's own ``_gripper_caging_reward``: signed pad-to-object gaps, margins from
    the pads' initial y."""
    obj_y = states[:, 5]
    left, right = pad_y(states)
    left0, right0 = pad_y(init)
    right_c = long_tail_tolerance(
        obj_y - right, PAD_SUCCESS, ((obj_y - right0).abs() - PAD_SUCCESS).abs(), OBJ_RADIUS
    )
    left_c = long_tail_tolerance(
        left - obj_y, PAD_SUCCESS, ((obj_y - left0).abs() - PAD_SUCCESS).abs(), OBJ_RADIUS
    )
    return _grasp(hamacher(left_c, right_c), states, init, effort)


def reach_reward(states: Tensor, goal_pos: Tensor) -> Tensor:
    """reach-v3's reward of one simulator step: ``states`` (B, 7) m, ``goal_pos`` (B, 3) m ->
    (B,) in [0, 10]."""
    goal = goal_pos.to(states.dtype)
    distance = torch.linalg.vector_norm(_tcp(states) - goal, dim=1)
    hand0 = torch.tensor(REACH_HAND_INIT, dtype=states.dtype)
    margin = torch.linalg.vector_norm(hand0 - goal, dim=1)
    return 10.0 * long_tail_tolerance(distance, REACH_RADIUS, margin)


def _object_terms(states: Tensor, goal_pos: Tensor, init: Tensor):
    obj = states[:, OBJECT]
    goal = goal_pos.to(states.dtype)
    to_goal = torch.linalg.vector_norm(obj - goal, dim=1)
    margin = torch.linalg.vector_norm(init[:, OBJECT] - goal, dim=1)
    in_place = long_tail_tolerance(to_goal, TARGET_RADIUS, margin)
    near = torch.linalg.vector_norm(obj - _tcp(states), dim=1) < 0.02
    opened = states[:, GRIPPER] > 0
    return to_goal, in_place, near & opened


def push_reward(states: Tensor, goal_pos: Tensor, init: Tensor, effort: Tensor) -> Tensor:
    """push-v3's reward of one simulator step (module docstring): ``states``/``init`` (B, 7)
    m, ``goal_pos`` (B, 3) m, ``effort`` (B,) the action's gripper value -> (B,)."""
    to_goal, in_place, touching = _object_terms(states, goal_pos, init)
    reward = 2 * push_grasp(states, init, effort)
    reward = torch.where(touching, 1.0 + 2 * reward + 5.0 * in_place, reward)
    return torch.where(to_goal < TARGET_RADIUS, torch.full_like(reward, 10.0), reward)


def pick_place_reward(states: Tensor, goal_pos: Tensor, init: Tensor, effort: Tensor) -> Tensor:
    """pick-place-v3's reward of one simulator step (arguments as :func:`push_reward`)."""
    to_goal, in_place, touching = _object_terms(states, goal_pos, init)
    reward = hamacher(pick_place_grasp(states, init, effort), in_place)
    lifted = states[:, 6] - 0.01 > init[:, 6]
    reward = torch.where(touching & lifted, reward + 1.0 + 5.0 * in_place, reward)
    return torch.where(to_goal < TARGET_RADIUS, torch.full_like(reward, 10.0), reward)


def state_reward(
    states: Tensor,
    goal_pos: Tensor,
    tasks: list[str],
    task_ids: Tensor,
    init: Tensor | None = None,
    effort: Tensor | None = None,
) -> Tensor:
    """MetaWorld's reward of one simulator step at ``states`` (B, 7) m, ``goal_pos`` (B, 3)
    m, ``task_ids`` long (B,) into ``tasks``; push and pick-place also need the episode's
    first state ``init`` (B, 7) m and the action's gripper ``effort`` (B,) -> float32 (B,);
    a NaN goal position gives 0. Only the tasks ``task_ids`` use must have a rule."""
    task_ids = torch.as_tensor(task_ids, dtype=torch.long)
    used = sorted({tasks[int(i)] for i in torch.unique(task_ids)})
    unknown = [t for t in used if t not in STATE_REWARD_TASKS]
    if unknown:
        raise ValueError(
            f"reward='state' has no reward rule for task(s) {unknown}; rules exist for "
            f"{list(STATE_REWARD_TASKS)}"
        )
    states = states.double()
    reward = torch.zeros(states.shape[0], dtype=torch.float64)
    for name in used:
        ids = torch.tensor([k for k, t in enumerate(tasks) if t == name])
        rows = torch.isin(task_ids, ids)  # (B,) bool, no per-env Python loop
        if name == "reach-v3":
            r = reach_reward(states[rows], goal_pos[rows])
        else:
            if init is None or effort is None:
                raise ValueError(f"reward='state' for {name} needs the initial state and effort")
            fn = push_reward if name == "push-v3" else pick_place_reward
            r = fn(states[rows], goal_pos[rows], init[rows].double(), effort[rows].double())
        reward[rows] = r
    return torch.nan_to_num(reward, nan=0.0).float()
