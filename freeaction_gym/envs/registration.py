"""Registered environment ids (string entry points: importing stays cheap)."""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

ENTRY = "freeaction_gym.envs.env:VideoWorldModelEnv"
VECTOR_ENTRY = "freeaction_gym.envs.vector:VideoWorldModelVectorEnv"

# id -> preset file in envs_config/ (same name)
ENV_IDS: tuple[str, ...] = (
    "FreeActionMetaWorld-v0",
    "FreeActionMetaWorldReach-v0",
    "FreeActionMetaWorldPush-v0",
    "FreeActionMetaWorldPickPlace-v0",
    "FreeActionRT1-v0",
    "FreeActionBridge-v0",
    "FreeActionLanguageTable-v0",
)


def register_envs() -> None:
    for env_id in ENV_IDS:
        if env_id in registry:
            continue
        register(
            id=env_id,
            entry_point=ENTRY,
            vector_entry_point=VECTOR_ENTRY,
            kwargs={"preset": env_id, "env_id": env_id},
        )
