"""The finished episodes' returns and lengths that a learner logs, from the vector env's info."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

__all__ = ["record_episodes"]


def record_episodes(info: dict[str, Any], num_envs: int, returns: deque, lengths: deque) -> None:
    """Append the episodes that ended this step (gymnasium's ``RecordEpisodeStatistics`` puts them
    in ``info["episode"]``, with the mask ``info["_episode"]`` of the envs that ended)."""
    if "episode" not in info:
        return
    done = np.asarray(info.get("_episode", np.ones(num_envs, bool)), dtype=bool)
    returns.extend(np.asarray(info["episode"]["r"])[done].tolist())
    lengths.extend(np.asarray(info["episode"]["l"])[done].tolist())
