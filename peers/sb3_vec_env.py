"""Our gymnasium vector envs as a Stable-Baselines3 ``VecEnv``, for the RecurrentPPO peer.

SB3's semantics differ from gymnasium's in three places, and this adapter converts each:

* **Reset in the same step.** A step that ends an episode returns ``done=True`` and already the
  next episode's first observation. ``SAME_STEP`` envs (recall, procgen) do that already. For
  ``NEXT_STEP`` envs (popgym, gym, atari) the adapter resets the finished sub-envs at once with
  ``reset(options={"reset_mask": done})``, so SB3 never sees gymnasium's reset step (whose
  action the env ignores).
* **Per-env infos.** Gymnasium's dict of batched arrays (with ``_key`` masks) becomes a list of
  ``num_envs`` dicts. A finished episode adds ``infos[i]["episode"] = {"r", "l", "t"}``: the raw
  (unclipped) return and length from the factory's ``RecordEpisodeStatistics``, what SB3's
  ``Monitor`` would report, and ``infos[i]["TimeLimit.truncated"]`` (truncated, not terminated).
* **Terminal observations.** ``infos[i]["terminal_observation"]`` holds the last observation of
  the finished episode (a dict of arrays for ``Dict`` spaces), which SB3 bootstraps from on
  truncation. ``SAME_STEP`` envs give it only when they report ``final_obs``; recall and procgen
  report none, and they only terminate, so SB3 never needs one there.

Seeding follows SB3: ``seed(s)`` makes the next ``reset()`` pass ``s`` on, and sub-env i gets
``s + i`` (gymnasium's convention for an int seed, the list SB3's ``seed`` returns).

Observations pass through unchanged (dicts of batched arrays for ``Dict`` spaces, as SB3's
``VecEnv`` expects).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from gymnasium.wrappers.vector import RecordEpisodeStatistics

SB3_MISSING = 'algo=rppo needs stable-baselines3 and sb3-contrib, the sb3 extra: pip install -e ".[sb3]"'

try:
    from stable_baselines3.common.vec_env import VecEnv
    from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn
except ImportError as exc:  # the sb3 extra is optional
    raise ImportError(SB3_MISSING) from exc

__all__ = ["SB3_MISSING", "SB3VecEnv"]

# RecordEpisodeStatistics' per-env running counters (see _partial_reset).
_STATS_FIELDS = ("episode_returns", "episode_lengths", "episode_start_times", "prev_dones")


class SB3VecEnv(VecEnv):
    """An SB3 ``VecEnv`` over a gymnasium ``VectorEnv`` from :func:`envs.make_vector_env`.

    Args:
        env: a vector env with ``metadata["autoreset_mode"]`` NEXT_STEP (the default when
            unset) or SAME_STEP. NEXT_STEP envs must accept ``options={"reset_mask": mask}``
            (gymnasium's sync/async vector envs and the ALE's do).
    """

    def __init__(self, env: VectorEnv) -> None:
        self.env = env
        mode = AutoresetMode(env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))
        if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise ValueError(f"autoreset mode must be NEXT_STEP or SAME_STEP, got {mode}")
        self.next_step_autoreset = mode == AutoresetMode.NEXT_STEP
        self._stats = _episode_statistics(env)
        self._actions: np.ndarray | None = None
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    # --- the VecEnv interface -----------------------------------------------------------------
    def reset(self) -> Any:
        """Reset every sub-env (with the seed from ``seed()``, once); returns batched obs."""
        seed = self._seeds[0]  # sub-env i gets seed + i, as SB3's seed() lists
        options = self._options[0] or None  # a vector env takes one options dict for all
        obs, info = self.env.reset(seed=seed, options=options)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = _split_info(info, self.num_envs)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        """Step all sub-envs; finished ones are already reset (see the module docstring)."""
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        obs, rewards, terminated, truncated, info = self.env.step(self._actions)
        self._actions = None
        dones = np.logical_or(terminated, truncated)
        infos = _split_info(info, self.num_envs)
        for i in np.flatnonzero(dones):
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        if self.next_step_autoreset and dones.any():
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = _row(obs, i)
            obs, reset_info = self._partial_reset(dones)
            for i, row_info in enumerate(_split_info(reset_info, self.num_envs)):
                if dones[i]:
                    self.reset_infos[i] = row_info
        elif not self.next_step_autoreset and "final_obs" in info:
            final_mask = info.get("_final_obs", dones)
            for i in np.flatnonzero(final_mask):
                infos[i]["terminal_observation"] = info["final_obs"][i]
        return obs, np.asarray(rewards, dtype=np.float32), dones, infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The vector env's attribute, once per index (sub-envs are not reachable one by one)."""
        return [getattr(self.env, attr_name)] * len(list(self._get_indices(indices)))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise NotImplementedError("SB3VecEnv cannot set attributes of single sub-envs")

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        raise NotImplementedError("SB3VecEnv cannot call methods of single sub-envs")

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """False: the sub-envs are gymnasium envs, never wrapped in SB3's (gym) wrappers."""
        return [False] * len(list(self._get_indices(indices)))

    # --- partial reset ------------------------------------------------------------------------
    def _partial_reset(self, mask: np.ndarray) -> tuple[Any, dict[str, Any]]:
        """Reset the sub-envs in ``mask`` only.

        gymnasium 1.x's sync/async vector envs ``pop`` ``reset_mask`` from the options dict, so
        the ``RecordEpisodeStatistics`` above them no longer sees it and zeroes the running
        return of every sub-env. The counters of the rows not reset are put back.
        """
        saved = None if self._stats is None else {k: getattr(self._stats, k).copy() for k in _STATS_FIELDS}
        obs, info = self.env.reset(options={"reset_mask": mask.astype(bool)})
        if saved is not None:
            for key, before in saved.items():
                getattr(self._stats, key)[~mask] = before[~mask]
        return obs, info


def _episode_statistics(env: VectorEnv) -> RecordEpisodeStatistics | None:
    """The ``RecordEpisodeStatistics`` in ``env``'s wrapper chain, if any."""
    while isinstance(env, VectorWrapper):
        if isinstance(env, RecordEpisodeStatistics):
            return env
        env = env.env
    return None


def _row(obs: Any, i: int) -> Any:
    """Row i of a batched observation (a copy; dicts and tuples of arrays recursively)."""
    if isinstance(obs, Mapping):
        return {key: _row(value, i) for key, value in obs.items()}
    if isinstance(obs, tuple):
        return tuple(_row(value, i) for value in obs)
    return np.array(obs[i], copy=True)


def _split_info(info: Mapping[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """Gymnasium's vector info (batched values, ``_key`` masks) as one dict per sub-env.

    ``final_obs`` and ``final_info`` are left out: their content is reported SB3's way.
    """
    rows: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, value in info.items():
        if key.startswith("_") or key in ("final_obs", "final_info"):
            continue
        mask = np.asarray(info.get(f"_{key}", np.ones(num_envs, bool)), dtype=bool)
        parts = _split_info(value, num_envs) if isinstance(value, Mapping) else _split_value(value, num_envs)
        for i in np.flatnonzero(mask):
            rows[i][key] = parts[i]
    return rows


def _split_value(value: Any, num_envs: int) -> Sequence[Any]:
    """A batched info value as ``num_envs`` items (numpy scalars become Python numbers)."""
    if isinstance(value, np.ndarray) and value.shape[:1] == (num_envs,):
        return [v.item() if v.ndim == 0 else v for v in value]
    if isinstance(value, (list, tuple)) and len(value) == num_envs:
        return list(value)
    return [value] * num_envs  # not batched: the same for every sub-env
