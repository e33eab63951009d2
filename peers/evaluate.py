"""Evaluate the peer's checkpoint (SB3's zip) over N episodes, greedy and sampled: what
``python -m agents.evaluate`` does for our learner's, for ``algo=rppo`` runs.

python -m peers.evaluate runs/.../rppo-lstm/seed0-.../checkpoint.zip --episodes 100

The env is rebuilt from the run's ``config.yaml`` beside the checkpoint. A run trained with
``algo.normalize`` (rl-zoo's ``normalize: true``) sees its observations normalised by the saved
VecNormalize statistics (``vecnormalize.pkl``), frozen, as rl-zoo's ``enjoy`` does. Rewards are
never scaled here: the returns are the env's own. Greedy is SB3's ``deterministic=True`` (the
mode of the action distribution), the setting of rl-zoo's published figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from envs import make_vector_env
from envs.evaluation import MODES, EpisodeQuota, describe, evaluation_parser
from peers.recurrent_ppo import NORMALIZE_NAME
from peers.recurrent_ppo_config import RecurrentPPOConfig
from peers.sb3_policy import small_images_as_vectors
from peers.sb3_vec_env import SB3_MISSING, SB3VecEnv

try:
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.vec_env import VecNormalize
except ImportError as exc:
    raise ImportError(SB3_MISSING) from exc

__all__ = ["evaluate"]


def evaluate(
    checkpoint: str | Path,
    episodes: int = 20,
    greedy: bool = False,
    num_envs: int = 4,
    seed: int = 12345,
    device: str = "cpu",
) -> dict[str, Any]:
    """Run the checkpoint's policy for ``episodes`` episodes (env i contributes its first
    ``(episodes + i) // num_envs``); no learning. Returns the mean and std of the raw episode
    returns and lengths, as :func:`agents.evaluate.evaluate` does."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    config = path.with_name("config.yaml")
    if not config.is_file():
        raise FileNotFoundError(
            f"{str(config)!r} is missing: the run's config (written by train.py beside its "
            "checkpoint) says which env to rebuild"
        )
    cfg = OmegaConf.load(config)
    if cfg.algo.name != "rppo":
        raise ValueError(f"{str(path)!r} is from an algo={cfg.algo.name} run: use python -m agents.evaluate")
    rcfg = RecurrentPPOConfig.from_config(cfg.algo)
    quota = EpisodeQuota(make_vector_env(cfg.env, num_envs=min(num_envs, episodes), seed=seed), episodes)
    venv = SB3VecEnv(small_images_as_vectors(quota))
    if rcfg.normalize:
        stats = path.with_name(NORMALIZE_NAME)
        if not stats.is_file():
            venv.close()
            raise FileNotFoundError(
                f"the run used algo.normalize, but {str(stats)!r} (its statistics) is missing"
            )
        venv = VecNormalize.load(str(stats), venv)
        venv.training, venv.norm_reward = False, False  # frozen statistics, raw rewards
    model = RecurrentPPO.load(path, device=device)
    venv.seed(seed)
    obs = venv.reset()
    state, starts = None, np.ones(venv.num_envs, dtype=bool)
    while not quota.filled:
        actions, state = model.predict(obs, state=state, episode_start=starts, deterministic=greedy)
        obs, _, starts, _ = venv.step(actions)
    venv.close()
    return quota.summary(greedy)


def main() -> None:
    args = evaluation_parser(__doc__).parse_args()
    for greedy in MODES[args.mode]:
        res = evaluate(args.checkpoint, args.episodes, greedy, args.num_envs, args.seed, args.device)
        print(describe(res))


if __name__ == "__main__":
    main()
