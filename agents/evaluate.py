"""Evaluate a checkpoint over N episodes, greedy and sampled, optionally recording video.

python -m agents.evaluate runs/recall/rtrl-elstm/seed0-.../checkpoint.pt --episodes 100
python -m agents.evaluate CHECKPOINT --episodes 5 --video videos/   # needs the video extra

The policy sees observations as it did in training: a checkpoint's saved observation statistics
(``algo.normalize_obs``; a streaming run's ``algo.obs_norm``) normalise them, frozen. A streaming
checkpoint's policy network is rebuilt as stream AC(λ) builds it (its LayerNorms hold no weights,
so a plain network would load the same weights and compute something else). Rewards are never
scaled here: the returns are the env's own.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from agents.checkpoint import load_checkpoint
from agents.learner import Learner, LearnerConfig
from agents.policy import ActorCritic
from agents.rules import TBPTT
from agents.stream import StreamConfig, make_stream_networks
from envs import make_vector_env

__all__ = ["evaluate", "evaluation_runner"]


def evaluate(
    checkpoint: str | Path,
    episodes: int = 20,
    greedy: bool = False,
    num_envs: int = 4,
    seed: int = 12345,
    video_dir: str | Path | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Run the checkpoint's policy until ``episodes`` episodes have finished; no learning.

    Returns the mean and std of the raw episode returns and lengths. With ``video_dir``, one
    environment runs with ``render_mode="rgb_array"`` under gymnasium's vector RecordVideo.
    """
    payload = load_checkpoint(checkpoint, map_location=device)
    cfg = OmegaConf.create(payload["config"])
    render = video_dir is not None
    envs = make_vector_env(
        cfg.env,
        num_envs=1 if render else num_envs,
        seed=seed,
        **({"render_mode": "rgb_array"} if render else {}),
    )
    if render:
        from gymnasium.wrappers.vector import RecordVideo

        envs = RecordVideo(envs, str(video_dir), episode_trigger=lambda _: True)
    runner = evaluation_runner(payload, cfg, envs, torch.device(device))
    runner.episode_returns = []  # unbounded: keep every finished episode
    runner.episode_lengths = []
    while len(runner.episode_returns) < episodes:
        runner.collect(greedy=greedy)
    envs.close()
    returns = np.asarray(runner.episode_returns[:episodes], dtype=float)
    lengths = np.asarray(runner.episode_lengths[:episodes], dtype=float)
    return {
        "episodes": episodes,
        "greedy": greedy,
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "length_mean": float(lengths.mean()),
    }


def evaluation_runner(
    payload: dict[str, Any], cfg: Any, envs: Any, device: torch.device, rollout_len: int = 32
) -> Learner:
    """A learner that only acts: the checkpoint's policy network and, if it was trained with them,
    its observation statistics (frozen). Its ``collect()`` holds the episode-boundary logic; TBPTT
    carries no traces."""
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    saved = payload.get("normalization", {}).get("obs")
    if cfg.algo.name == "stream":
        stream_cfg = StreamConfig(**{k: v for k, v in cfg.algo.items() if k != "name"})
        agent = make_stream_networks(cfg.core, cfg.policy, obs_space, action_space, stream_cfg)[0]
        if saved is not None:
            saved = {"": saved}  # the streaming learner keeps one set, for a flat float Box
    else:
        agent = ActorCritic.from_config(cfg.core, cfg.policy, obs_space, action_space)
    agent = agent.to(device)
    agent.load_state_dict(payload["agent"])
    agent.eval()
    learner_cfg = LearnerConfig(rollout_len=rollout_len, normalize_obs=saved is not None)
    runner = Learner(agent, TBPTT(agent.core), envs, learner_cfg, device)
    if saved is not None:
        runner.load_normalization_state({"obs": saved})
        runner.freeze_obs_stats = True
        runner.reset_envs(seed=None)  # the first observations again, normalised by the saved statistics
    return runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--video", default=None, help="folder for videos (greedy policy only)")
    parser.add_argument("--mode", choices=["both", "greedy", "sampled"], default="both")
    args = parser.parse_args()
    modes = {"both": [True, False], "greedy": [True], "sampled": [False]}[args.mode]
    for greedy in modes:
        res = evaluate(
            args.checkpoint,
            args.episodes,
            greedy,
            args.num_envs,
            args.seed,
            args.video if greedy else None,
            args.device,
        )
        print(
            f"{'greedy ' if greedy else 'sampled'}: return {res['return_mean']:.3f} ± "
            f"{res['return_std']:.3f}, length {res['length_mean']:.1f} over {args.episodes} episodes"
        )


if __name__ == "__main__":
    main()
