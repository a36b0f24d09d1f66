"""Reinforcement-learning agents (stable-baselines3 PPO / SAC / DrQ) for the FreeAction envs.

Train in imagination (the world-model env) or in the real MetaWorld counterpart and evaluate
either way::

    python -m agents.train --env FreeActionMetaWorldReach-v0 --algo ppo --out runs/agents/reach
    python -m agents.evaluate --env FreeActionRealMetaWorldReach-v0 \\
        --policy runs/agents/reach/final_model.zip

Modules: :mod:`agents.config` (rl-zoo-style per-env hyperparameters in
``agents/hyperparams/<env id>.yaml``), :mod:`agents.envs` (SB3 VecEnvs of any registered
id), :mod:`agents.policies` (image feature extractors), :mod:`agents.augment` and
:mod:`agents.drq` (DrQ: random-shift replay buffer, critic-trained encoder), :mod:`agents.
callbacks` (progress bar, rollout videos), :mod:`agents.train`, :mod:`agents.evaluate`.
"""
