"""rl-zoo's tuned RecurrentPPO the zoo's own way, to set beside its published figures and our rppo-zoo row.

The NoVel suite runs the peer through our env factory (velocities dropped, SB3VecEnv), which
tests/peers/test_recurrent_ppo.py proves bit-identical to SB3's own ``make_vec_env`` with the
same observation. This script takes away that last difference too: the base env from
``make_vec_env`` with the velocities *zeroed* (shape kept), as the zoo's ``MaskVelocityWrapper``
does, and the preset of ``configs/algo/rppo_zoo.yaml`` (the zoo's ``ppo_lstm.yml``), with
VecNormalize where the zoo sets ``normalize``. Each seed trains for the zoo's budget, then its
greedy policy (``deterministic=True``, the zoo's measure) plays ``--episodes`` episodes from
evaluation seed ``--eval-seed``, with VecNormalize's statistics frozen. The table gives the
training return (the last 100 episodes, under the exploring policy) and the greedy one.

Usage (one seed of PendulumNoVel takes ~15 min on one core):
    python -m benchmarks.zoo_reference PendulumNoVel-v1 --seeds 0 1 2
    python -m benchmarks.zoo_reference CartPoleNoVel-v1 --seeds 0 --steps 20000
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/rules.py

import gymnasium
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from benchmarks.common import CONFIGS, format_table, header
from envs.masked import POSITIONS
from peers.recurrent_ppo_config import RecurrentPPOConfig

try:
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecEnv, VecNormalize
except ImportError as exc:
    from peers.sb3_vec_env import SB3_MISSING

    raise ImportError(SB3_MISSING) from exc

# The zoo's budgets (its benchmark.md; MountainCar's published 91.5 is at 300k).
BUDGETS = {"CartPoleNoVel-v1": 100_000, "PendulumNoVel-v1": 100_000, "MountainCarContinuousNoVel-v0": 300_000}


class ZeroVelocities(gymnasium.ObservationWrapper):
    """The base observation with every entry but ``keep`` set to 0 (the zoo's MaskVelocityWrapper)."""

    def __init__(self, env: gymnasium.Env, keep: tuple[int, ...]) -> None:
        super().__init__(env)
        self._zeroed = np.setdiff1d(np.arange(env.observation_space.shape[0]), keep)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        observation = np.array(observation, copy=True)
        observation[self._zeroed] = 0.0
        return observation


def preset(env_id: str) -> RecurrentPPOConfig:
    """configs/algo/rppo_zoo.yaml's preset for ``env_id``, resolved."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("config", overrides=["env=novel", f"env.id={env_id}", "algo=rppo_zoo"])
    OmegaConf.resolve(cfg)
    return RecurrentPPOConfig.from_config(cfg.algo)


def zoo_envs(env_id: str, n_envs: int, seed: int) -> VecEnv:
    base_id, keep = POSITIONS[env_id]
    return make_vec_env(
        base_id, n_envs=n_envs, seed=seed, wrapper_class=ZeroVelocities, wrapper_kwargs={"keep": keep}
    )


def greedy_return(model: RecurrentPPO, env_id: str, episodes: int, seed: int) -> float:
    """Mean raw return of ``episodes`` greedy episodes on one env (Monitor's returns are raw)."""
    env = zoo_envs(env_id, 1, seed)
    if isinstance(model.get_env(), VecNormalize):
        env = VecNormalize(env, training=False, norm_reward=False)
        env.obs_rms = model.get_env().obs_rms
    returns: list[float] = []
    obs, state, start = env.reset(), None, np.ones(1, dtype=bool)
    while len(returns) < episodes:
        action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
        obs, _, start, infos = env.step(action)
        if start[0]:
            returns.append(float(infos[0]["episode"]["r"]))
    env.close()
    return float(np.mean(returns))


def run(env_id: str, seed: int, steps: int, episodes: int, eval_seed: int) -> list[str]:
    rcfg = preset(env_id)
    env = zoo_envs(env_id, rcfg.n_envs, seed)
    if rcfg.normalize:  # the zoo's normalize: true
        env = VecNormalize(env, norm_obs=True, norm_reward=True, gamma=rcfg.gamma)
    # seed= seeds torch and numpy before the policy is built
    model = RecurrentPPO("MlpLstmPolicy", env, seed=seed, device="cpu", **rcfg.model_kwargs())
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    finished = [ep["r"] for ep in model.ep_info_buffer]  # none yet in a short MountainCar run
    training = float(np.mean(finished)) if finished else float("nan")
    greedy = greedy_return(model, env_id, episodes, eval_seed)
    env.close()
    return [
        env_id,
        str(seed),
        f"{model.num_timesteps:,}",
        f"{training:.1f}",
        f"{greedy:.1f}",
        f"{model.num_timesteps / seconds:.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("env_id", choices=sorted(BUDGETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=None, help="default: the zoo's budget for the env")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--eval-seed", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = args.steps or BUDGETS[args.env_id]
    print(header(f"rl-zoo's RecurrentPPO preset on SB3's make_vec_env, velocities zeroed, {steps:,} steps"))
    rows = []
    for seed in args.seeds:  # a row as each seed ends: one takes minutes
        rows.append(run(args.env_id, seed, steps, args.episodes, args.eval_seed))
        print(f"seed {seed}: training {rows[-1][3]}, greedy {rows[-1][4]}", flush=True)
    cols = ["env", "seed", "steps", "training (last 100 ep.)", f"greedy ({args.episodes} ep.)", "steps/s"]
    print(format_table(cols, rows))


if __name__ == "__main__":
    main()
