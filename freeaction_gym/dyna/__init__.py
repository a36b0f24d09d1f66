"""Dyna: learn from the agent's own real experience (issue 16).

``freeaction dyna --config configs/dyna/reach.yaml`` alternates, per iteration: (a) collect
real MetaWorld episodes with the current policy plus exploration noise into the loop's
dataset (:mod:`~freeaction_gym.dyna.collect`, :mod:`~freeaction_gym.dyna.dataset`); (b)
fine-tune the world model from its last weights on base + collected data
(:mod:`~freeaction_gym.dyna.finetune`); (c) refit the learned reward/success head
(:mod:`~freeaction_gym.dyna.reward`); (d) train the agent in imagination from the reset
states it visited (:mod:`~freeaction_gym.dyna.agent`; SB3 side: ``freeaction_gym/agents/dyna.py``);
(e)
evaluate the policy in the real simulator and, on the same scenes, in imagination
(:mod:`~freeaction_gym.dyna.evaluate`). :mod:`~freeaction_gym.dyna.loop` runs the stages,
:mod:`~freeaction_gym.dyna.state` makes them resumable, :mod:`~freeaction_gym.dyna.report`
writes ``metrics.jsonl`` and the plot; the config is :mod:`~freeaction_gym.dyna.config`.
"""

from freeaction_gym.dyna.config import DynaConfig, load_dyna_config

__all__ = ["DynaConfig", "load_dyna_config"]
