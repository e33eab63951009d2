"""Vector environments for the agents: one factory over built-in and third-party tasks."""

import gymnasium

from envs.make import ENV_MAKERS, make_vector_env
from envs.memory_chain import ENV_ID as _MEMORY_CHAIN_ID
from envs.named import NamedVectorEnv
from envs.recall import ENV_ID as _RECALL_ID

__all__ = ["ENV_MAKERS", "NamedVectorEnv", "make_vector_env"]

if _RECALL_ID not in gymnasium.registry:
    gymnasium.register(
        id=_RECALL_ID,
        entry_point="envs.recall:DelayedRecallEnv",
        vector_entry_point="envs.recall:DelayedRecallVectorEnv",
    )

if _MEMORY_CHAIN_ID not in gymnasium.registry:
    gymnasium.register(
        id=_MEMORY_CHAIN_ID,
        entry_point="envs.memory_chain:MemoryChainEnv",
        vector_entry_point="envs.memory_chain:MemoryChainVectorEnv",
    )
