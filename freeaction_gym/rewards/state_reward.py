"""Dense reward from a predicted state: MetaWorld v3's own reward function where the 7-D
robot state (hand xyz, gripper, object xyz; :data:`~freeaction_gym.data.metaworld_env.
STATE_NAMES`) determines it.

``reach-v3`` (metaworld 3.1.1, ``sawyer_reach_v3.py``, ``compute_reward`` of reward version
``v2``, the default):

    r = 10 * tolerance(||tcp - goal_pos||, bounds=(0, 0.05), margin=||HAND_INIT - goal_pos||,
                       sigmoid="long_tail")

with ``tcp`` the hand plus :data:`~freeaction_gym.rewards.state_success.TCP_OFFSET` and
``HAND_INIT`` the task's fixed initial hand position. ``tolerance`` is 1 inside the bounds
and ``1 / ((d s)^2 + 1)`` outside, d the distance to the nearest bound over the margin and
``s = sqrt(1 / 0.1 - 1)``, so it is 0.1 at one margin away.

Push and pick-place rewards also score the fingers' caging of the object (the finger pads'
positions, not in the state), so they have no rule here.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from freeaction_gym.data.metaworld_env import HAND
from freeaction_gym.rewards.state_success import TCP_OFFSET

VALUE_AT_MARGIN = 0.1
"""MetaWorld's ``tolerance`` default: the value one margin outside the bounds."""
REACH_RADIUS = 0.05
"""m: reach-v3's ``_TARGET_RADIUS``."""
REACH_HAND_INIT = (0.0, 0.6, 0.2)
"""m: reach-v3's ``init_config["hand_init_pos"]`` (the reward's margin runs from it)."""
STATE_REWARD_TASKS = ("reach-v3",)
"""Tasks :func:`state_reward` has MetaWorld's reward for."""


def long_tail_tolerance(x: Tensor, upper: float, margin: Tensor) -> Tensor:
    """MetaWorld's ``tolerance(x, bounds=(0, upper), margin, sigmoid="long_tail")`` for
    x >= 0: 1 for x <= upper, else ``1 / ((d s)^2 + 1)`` with d = (x - upper) / margin; a
    zero margin gives 0 outside the bounds."""
    scale = math.sqrt(1.0 / VALUE_AT_MARGIN - 1.0)
    d = (x - upper).clamp(min=0.0) / margin.clamp(min=torch.finfo(x.dtype).tiny)
    outside = torch.where(margin > 0, 1.0 / ((d * scale) ** 2 + 1.0), torch.zeros_like(x))
    return torch.where(x <= upper, torch.ones_like(x), outside)


def reach_reward(states: Tensor, goal_pos: Tensor) -> Tensor:
    """reach-v3's reward of one simulator step: ``states`` (B, 7) m, ``goal_pos`` (B, 3) m ->
    float32 (B,) in [0, 10]."""
    tcp = states[:, HAND].float() + torch.tensor(TCP_OFFSET)
    goal = goal_pos.float()
    distance = torch.linalg.vector_norm(tcp - goal, dim=1)
    margin = torch.linalg.vector_norm(torch.tensor(REACH_HAND_INIT) - goal, dim=1)
    return 10.0 * long_tail_tolerance(distance, REACH_RADIUS, margin)


def state_reward(states: Tensor, goal_pos: Tensor, tasks: list[str], task_ids: Tensor) -> Tensor:
    """MetaWorld's reward of one simulator step at ``states`` (B, 7) m, ``goal_pos`` (B, 3)
    m, ``task_ids`` long (B,) into ``tasks`` (each in :data:`STATE_REWARD_TASKS`) -> float32
    (B,); a NaN goal position gives 0."""
    unknown = sorted(set(tasks) - set(STATE_REWARD_TASKS))
    if unknown:
        raise ValueError(
            f"reward='state' has no reward rule for task(s) {unknown}; rules exist for "
            f"{list(STATE_REWARD_TASKS)}"
        )
    reward = reach_reward(states, goal_pos)  # every known task is reach-v3
    return torch.nan_to_num(reward, nan=0.0)
