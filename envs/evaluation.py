"""What an evaluation of a trained policy counts and prints, for our learner's checkpoints
(agents/evaluate.py) and the peer's (peers/evaluate.py) alike.

The episodes: a fixed quota from each sub-env, not the first N to finish.

With B envs in parallel, the first N episodes to finish are biased toward short ones (in CartPole,
the failures). SB3's ``evaluate_policy`` avoids that by asking env i for ``(N + i) // B`` episodes;
:class:`EpisodeQuota` does the same for any of our vector envs, under our learner or the peer.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv, VectorWrapper

__all__ = ["MODES", "EpisodeQuota", "describe", "evaluation_parser"]

MODES = {"both": (True, False), "greedy": (True,), "sampled": (False,)}  # --mode: greedy or not


class EpisodeQuota(VectorWrapper):
    """Keeps the raw return and length of the first ``(episodes + i) // num_envs`` episodes that
    sub-env i finishes (from ``info["episode"]``, which :func:`envs.make_vector_env` reports);
    later ones are ignored. ``filled`` says when every sub-env has given its share."""

    def __init__(self, env: VectorEnv, episodes: int) -> None:
        if episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {episodes}")
        super().__init__(env)
        n = env.num_envs
        self.quota = [(episodes + i) // n for i in range(n)]
        self.returns: list[list[float]] = [[] for _ in range(n)]
        self.lengths: list[list[int]] = [[] for _ in range(n)]

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        if "episode" in info:
            episode = info["episode"]
            for i in np.flatnonzero(info["_episode"]):
                if len(self.returns[i]) < self.quota[i]:
                    self.returns[i].append(float(episode["r"][i]))
                    self.lengths[i].append(int(episode["l"][i]))
        return obs, reward, terminated, truncated, info

    @property
    def filled(self) -> bool:
        return all(len(r) >= q for r, q in zip(self.returns, self.quota, strict=True))

    def summary(self, greedy: bool) -> dict[str, Any]:
        """Mean and std of the kept returns, mean length: what ``describe`` prints."""
        returns = np.concatenate([np.asarray(r, dtype=float) for r in self.returns])
        lengths = np.concatenate([np.asarray(n, dtype=float) for n in self.lengths])
        return {
            "episodes": len(returns),
            "greedy": greedy,
            "return_mean": float(returns.mean()),
            "return_std": float(returns.std()),
            "length_mean": float(lengths.mean()),
        }


def describe(result: dict[str, Any]) -> str:
    """One line for an evaluation's summary."""
    return (
        f"{'greedy ' if result['greedy'] else 'sampled'}: return {result['return_mean']:.3f} ± "
        f"{result['return_std']:.3f}, length {result['length_mean']:.1f} over {result['episodes']} episodes"
    )


def evaluation_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments both evaluation commands take: checkpoint, --episodes, --num-envs, --seed,
    --device and --mode (``MODES``)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mode", choices=list(MODES), default="both")
    return parser
