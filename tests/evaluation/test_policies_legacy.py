"""Models saved before ``agents`` moved into ``freeaction_gym.agents`` pickle their classes
as ``agents.<module>.<Class>``; :func:`load_model` resolves those names to the new modules."""

from __future__ import annotations

import pickle


def test_old_agent_class_paths_resolve_to_the_moved_modules():
    from freeaction_gym.agents.drq import DrQPolicy, RandomShiftReplayBuffer
    from freeaction_gym.evaluation.policies import alias_legacy_agent_modules

    alias_legacy_agent_modules()
    # protocol-0 GLOBAL opcodes: what an old zip's cloudpickled class reference holds
    assert pickle.loads(b"cagents.drq\nDrQPolicy\n.") is DrQPolicy
    assert pickle.loads(b"cagents.drq\nRandomShiftReplayBuffer\n.") is RandomShiftReplayBuffer
