"""DrQ: SAC from pixels with random-shift augmentation (Kostrikov, Yarats & Fergus 2020),
as stable-baselines3 parts: ``--algo drq`` is SB3's ``SAC`` with

* :class:`~freeaction_gym.agents.augment.RandomShiftReplayBuffer` - every sampled observation and
next
  observation randomly shifted by up to ``pad`` pixels (optionally n-step returns);
* :class:`DrQPolicy` - one conv trunk (:class:`~freeaction_gym.agents.policies.DrQEncoder`) that
only the
  critic's loss trains; the actor reads it detached through its own Linear-LayerNorm-tanh
  projection (DrQ ties the actor's conv weights to the critic's and detaches them; SAC-AE
  and DrQ-v2 do the same). SB3's own ``share_features_extractor=True`` is the opposite (the
  actor trains the shared extractor, the critic is detached), hence this policy;
* observations with proprioception (``proprio_obs``, a Dict of ``image`` and ``proprio``):
  the encoder adds a proprio branch and the buffer shifts only the image;
* frame stacking (``frame_stack: 3``, SB3's ``VecFrameStack``: uint8 (H, W, 3k) frames,
  the newest last) and the DrQ hyperparameters in ``freeaction_gym/agents/hyperparams/*.yaml``
  (``drq:``).

K = M = 1 (one augmented copy for the target and for the Q estimate), as DrQ-v2 and RAD;
SAC's update itself is SB3's; the critic's pass for the actor's loss skips the encoder's
graph (:class:`DrQCritic`, same gradients), and the convolutions run channels-last
(:class:`~freeaction_gym.agents.policies.ChannelsLastConv2d`), together 1.6-1.7x cheaper per update.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.sac.policies import SACPolicy

from freeaction_gym.agents.augment import RandomShiftDictReplayBuffer, RandomShiftReplayBuffer
from freeaction_gym.agents.config import AgentHyperparams
from freeaction_gym.agents.policies import DrQEncoder


class DrQCritic(ContinuousCritic):
    """SB3's twin-Q critic whose encoder learns from the critic's own loss only.

    SAC calls the critic on replay actions (the critic's loss) and on the actor's
    reparameterised actions, which carry the actor's gradient (the actor's loss). For the
    second call the features are computed without a graph, DrQ's ``detach_encoder=True`` in
    its actor update: the actor's gradient is unchanged, and the critic's gradient from the
    actor's loss, which SAC zeroes before it steps the critic, is not computed - one
    backward pass through the conv trunk less per update. Input: observations (B, ...) and
    actions (B, A); output ``n_critics`` tensors (B, 1)."""

    def forward(self, obs, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        train_encoder = torch.is_grad_enabled() and not actions.requires_grad
        with torch.set_grad_enabled(train_encoder):
            features = self.extract_features(obs, self.features_extractor)  # (B, F)
        q_input = torch.cat([features, actions], dim=1)
        return tuple(q_net(q_input) for q_net in self.q_networks)


class DrQPolicy(SACPolicy):
    """SAC policy whose critic owns and trains the image encoder (see module docstring).

    The critic is a :class:`DrQCritic`. Parameters: the critic's optimizer holds the whole
    critic (conv trunk, projection, Q heads); the actor's optimizer holds the actor's
    projection and MLP, not the trunk it shares. The target critic has its own copy of
    everything (Polyak-averaged by SAC)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("features_extractor_class", DrQEncoder)
        kwargs["share_features_extractor"] = False  # sharing is done here, DrQ's way
        super().__init__(*args, **kwargs)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> DrQCritic:
        kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return DrQCritic(**kwargs).to(self.device)

    def _build(self, lr_schedule) -> None:
        self.critic = self.make_critic(features_extractor=None)
        critic_encoder = self.critic.features_extractor
        if not isinstance(critic_encoder, DrQEncoder):
            raise TypeError(
                f"DrQPolicy needs features_extractor_class=DrQEncoder (features_extractor: "
                f"drq_encoder), got {type(critic_encoder).__name__}"
            )
        actor_encoder = self.make_features_extractor()
        actor_encoder.tie_convs(critic_encoder)
        self.actor = self.make_actor(features_extractor=actor_encoder)
        lr = lr_schedule(1)
        self.critic.optimizer = self.optimizer_class(
            self.critic.parameters(), lr=lr, **self.optimizer_kwargs
        )
        actor_params = [
            p
            for name, p in self.actor.named_parameters()
            if not name.startswith("features_extractor.convs.")
        ]
        self.actor.optimizer = self.optimizer_class(actor_params, lr=lr, **self.optimizer_kwargs)
        self.critic_target = self.make_critic(features_extractor=None)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.set_training_mode(False)


POLICIES = {"DrQPolicy": DrQPolicy}


def drq_sac_kwargs(
    hp: AgentHyperparams, observation_space: spaces.Space | None = None
) -> tuple[Any, dict[str, Any]]:
    """The ``policy`` and extra ``SAC(...)`` keywords of a ``drq`` hyperparameter section:
    ``policy: DrQPolicy`` becomes the class (other names, e.g. ``CnnPolicy``, pass through:
    plain SAC on augmented samples), and the replay buffer is a
    :class:`RandomShiftReplayBuffer` (:class:`RandomShiftDictReplayBuffer` for a Dict
    ``observation_space``, the ``proprio_obs`` envs) with ``replay_buffer_kwargs``
    (``pad``, ``n_steps``) and the algorithm's ``gamma``."""
    kwargs = dict(hp.algo_kwargs)
    if "n_steps" in kwargs:
        raise ValueError(
            f"{hp.source}: drq takes n-step returns as replay_buffer_kwargs.n_steps, not n_steps"
        )
    buffer_kwargs = dict(kwargs.pop("replay_buffer_kwargs", None) or {})
    buffer_kwargs["gamma"] = float(kwargs.get("gamma", 0.99))
    is_dict = isinstance(observation_space, spaces.Dict)
    kwargs["replay_buffer_class"] = (
        RandomShiftDictReplayBuffer if is_dict else RandomShiftReplayBuffer
    )
    kwargs["replay_buffer_kwargs"] = buffer_kwargs
    return POLICIES.get(hp.policy, hp.policy), kwargs
