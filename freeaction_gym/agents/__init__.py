"""Reinforcement-learning agents (stable-baselines3 PPO / SAC / DrQ) for the FreeAction envs;
their command lines are ``python -m agents.train`` / ``python -m agents.evaluate``.

Modules: :mod:`~freeaction_gym.agents.config` (rl-zoo-style per-env hyperparameters in
``freeaction_gym/agents/hyperparams/<env id>.yaml``), :mod:`~freeaction_gym.agents.envs`
(SB3 VecEnvs of any registered id), :mod:`~freeaction_gym.agents.policies` (image feature
extractors), :mod:`~freeaction_gym.agents.augment` and :mod:`~freeaction_gym.agents.drq`
(DrQ: random-shift replay buffer, critic-trained encoder),
:mod:`~freeaction_gym.agents.callbacks` (progress bar, rollout videos),
:mod:`~freeaction_gym.agents.prefill` and :mod:`~freeaction_gym.agents.resume` (replay
buffers from recorded episodes, resumable runs), :mod:`~freeaction_gym.agents.train`,
:mod:`~freeaction_gym.agents.dyna` (the SB3 side of :mod:`freeaction_gym.dyna`).
"""
