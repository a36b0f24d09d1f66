"""Command lines of the reinforcement-learning agents (stable-baselines3 PPO / SAC / DrQ) for
the FreeAction envs; the code lives in :mod:`freeaction_gym.agents`.

Train in imagination (the world-model env) or in the real MetaWorld counterpart and evaluate
either way::

    python -m agents.train --env FreeActionMetaWorldReach-v0 --algo ppo --out runs/agents/reach
    python -m agents.evaluate --env FreeActionRealMetaWorldReach-v0 \\
        --policy runs/agents/reach/final_model.zip
"""
