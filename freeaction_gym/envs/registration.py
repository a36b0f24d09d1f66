"""Registered environment ids (string entry points: importing stays cheap)."""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

ENTRY = "freeaction_gym.envs.env:VideoWorldModelEnv"
VECTOR_ENTRY = "freeaction_gym.envs.vector:VideoWorldModelVectorEnv"
REAL_ENTRY = "freeaction_gym.envs.real_metaworld:RealMetaWorldEnv"

# id -> preset file freeaction_gym/envs_config/<id>.yaml (package data)
ENV_IDS: tuple[str, ...] = (
    "FreeActionMetaWorld-v0",
    "FreeActionMetaWorldReach-v0",
    "FreeActionMetaWorldPush-v0",
    "FreeActionMetaWorldPickPlace-v0",
    "FreeActionMetaWorldVAP-v0",
    "FreeActionMetaWorldV2-v0",
    "FreeActionRT1-v0",
    "FreeActionBridge-v0",
    "FreeActionLanguageTable-v0",
)

# The real MetaWorld counterparts: id -> the imagined preset they mirror (task, episode
# length, reset bank), so a policy moves between imagination and reality unchanged.
REAL_COUNTERPARTS: dict[str, str] = {
    "FreeActionRealMetaWorld-v0": "FreeActionMetaWorld-v0",
    "FreeActionRealMetaWorldReach-v0": "FreeActionMetaWorldReach-v0",
    "FreeActionRealMetaWorldPush-v0": "FreeActionMetaWorldPush-v0",
    "FreeActionRealMetaWorldPickPlace-v0": "FreeActionMetaWorldPickPlace-v0",
    "FreeActionRealMetaWorldVAP-v0": "FreeActionMetaWorldVAP-v0",
    "FreeActionRealMetaWorldV2-v0": "FreeActionMetaWorldV2-v0",
}
REAL_ENV_IDS: tuple[str, ...] = tuple(REAL_COUNTERPARTS)


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
    for env_id, imagined in REAL_COUNTERPARTS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=REAL_ENTRY, kwargs={"mirror": imagined})
