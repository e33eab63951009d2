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

from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from agents.checkpoint import load_checkpoint
from agents.learner import Learner, LearnerConfig
from agents.policy import ActorCritic
from agents.rules import TBPTT
from agents.stream import StreamConfig, make_stream_networks
from envs import make_vector_env
from envs.evaluation import MODES, EpisodeQuota, describe, evaluation_parser

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
    """Run the checkpoint's policy for ``episodes`` episodes; no learning.

    Env i of the ``num_envs`` contributes its first ``(episodes + i) // num_envs`` episodes
    (:class:`envs.evaluation.EpisodeQuota`: the first N to finish would favour short ones).
    Returns the mean and std of the raw episode returns and lengths. With ``video_dir``, one
    environment runs with ``render_mode="rgb_array"`` under gymnasium's vector RecordVideo.
    """
    payload = load_checkpoint(checkpoint, map_location=device)
    cfg = OmegaConf.create(payload["config"])
    render = video_dir is not None
    envs = make_vector_env(
        cfg.env,
        num_envs=1 if render else min(num_envs, episodes),
        seed=seed,
        **({"render_mode": "rgb_array"} if render else {}),
    )
    if render:
        from gymnasium.wrappers.vector import RecordVideo

        envs = RecordVideo(envs, str(video_dir), episode_trigger=lambda _: True)
    quota = EpisodeQuota(envs, episodes)
    runner = evaluation_runner(payload, cfg, quota, torch.device(device))
    while not quota.filled:
        runner.act(greedy=greedy)
    quota.close()
    return quota.summary(greedy)


def evaluation_runner(
    payload: dict[str, Any], cfg: Any, envs: Any, device: torch.device, rollout_len: int = 32
) -> Learner:
    """A learner that only acts (``act()``): the checkpoint's policy network and, if it was trained
    with them, its observation statistics (frozen). Its ``collect()`` holds the episode-boundary
    logic; TBPTT carries no traces."""
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    saved = payload.get("normalization", {}).get("obs")
    if cfg.algo.name == "stream":
        stream_cfg = StreamConfig(**{k: v for k, v in cfg.algo.items() if k != "name"})
        agent = make_stream_networks(cfg.core, cfg.policy, obs_space, action_space, stream_cfg)[0]
        if saved is not None:
            saved = {"": saved}  # the streaming learner keeps one set, for a flat float Box
    else:
        # .get: configs saved before the key have none
        agent = ActorCritic.from_config(
            cfg.core, cfg.policy, obs_space, action_space, log_std_min=cfg.algo.get("log_std_min")
        )
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
    parser = evaluation_parser(__doc__)
    parser.add_argument("--video", default=None, help="folder for videos (greedy policy only)")
    args = parser.parse_args()
    for greedy in MODES[args.mode]:
        video = args.video if greedy else None
        res = evaluate(args.checkpoint, args.episodes, greedy, args.num_envs, args.seed, video, args.device)
        print(describe(res))


if __name__ == "__main__":
    main()
