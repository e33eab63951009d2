"""Shared pieces of the learner tests: small learners on the recall and CartPole tasks, and an
independent full-BPTT reference for the actor-critic loss over consecutive rollouts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from agents.learner import Learner, LearnerConfig, Rollout
from agents.losses import actor_critic_loss, gae, normalize
from agents.policy import ActorCritic
from agents.rules import KFRTRL, RTRL, TBPTT, UORO
from envs import make_vector_env

#: episodes of 4 steps (cue, 2 blanks, query), SAME_STEP autoreset, only terminations
RECALL = {"name": "recall", "delay": 2, "num_cues": 2}
#: NEXT_STEP autoreset; random actions end episodes after ~10-40 steps, at different times per row
CARTPOLE = {"name": "gym", "id": "CartPole-v1"}

RULES = {
    "rtrl": RTRL,
    "rtrl_dense": lambda core: RTRL(core, method="dense"),
    "tbptt": TBPTT,
    "kfrtrl": KFRTRL,
    "uoro": UORO,
}


def make_learner(
    env: dict = RECALL,
    core: str = "elstm",
    rule: str = "rtrl",
    num_envs: int = 3,
    seed: int = 0,
    hidden_size: int = 6,
    device: torch.device | None = None,
    total_steps: int | None = None,
    **cfg,
) -> Learner:
    """A small learner, its weights drawn from ``seed`` in the default dtype."""
    device = torch.device("cpu") if device is None else device
    torch.manual_seed(seed)
    envs = make_vector_env(env, num_envs, seed=seed)
    agent = ActorCritic(
        envs.single_observation_space,
        envs.single_action_space,
        core=core,
        hidden_size=hidden_size,
        mlp_hidden=[8],
    )
    agent.to(device)
    # lr 3e-4: the tests' numbers were set with it (LearnerConfig's default until it took the YAML's 1e-3)
    cfg = {"rollout_len": 6, "update": "a2c", "lr": 3e-4, **cfg}
    return Learner(agent, RULES[rule](agent.core), envs, LearnerConfig(**cfg), device, total_steps)


def advantages(learner: Learner, ro: Rollout) -> tuple[Tensor, Tensor]:
    cfg = learner.cfg
    return gae(ro.rewards, ro.values, ro.next_value, ro.terminated, ro.ended, cfg.gamma, cfg.gae_lambda)


def cat_rollouts(rollouts: Sequence[Rollout]) -> Rollout:
    """Rollouts joined along time (next_value: the last one's)."""
    fields = {k: torch.cat([getattr(r, k) for r in rollouts]) for k in Rollout._fields if k != "next_value"}
    return Rollout(**fields, next_value=rollouts[-1].next_value)


def bptt_loss(
    learner: Learner, rollouts: Sequence[Rollout], weights: Sequence[float], truncate: bool = False
) -> Tensor:
    """Σ_i weights[i] · loss of rollout i, by plain autograd through a loop of core steps over all
    the rollouts from a zero state: the full-BPTT reference, written without the rule. With
    ``truncate`` the state is detached at each rollout's start (the truncated-BPTT reference)."""
    agent, cfg = learner.agent, learner.cfg
    ro = cat_rollouts(rollouts)
    steps, batch = ro.rewards.shape
    state = agent.core.initial_state(batch)
    firsts = set(torch.tensor([r.rewards.shape[0] for r in rollouts]).cumsum(0).tolist())
    outs = []
    for t in range(steps):
        if truncate and t in firsts:
            state = state.detach()
        start = ro.episode_starts[t]
        x = agent.core_input(ro.obs[t], ro.prev_actions[t], ro.prev_rewards[t], start)
        out, state = agent.core(x, state * (~start).to(state.dtype)[:, None])
        outs.append(out)
    outs = torch.stack(outs)
    total, t0 = 0.0, 0
    for r, w in zip(rollouts, weights, strict=True):
        m = r.rewards.shape[0]
        span = slice(t0, t0 + m)
        t0 += m
        if w == 0:
            continue
        dist, value = agent.heads(outs[span])
        adv, ret = advantages(learner, r)
        if cfg.norm_adv:
            adv = normalize(adv, r.valid)
        clip = cfg.clip_coef if cfg.update == "ppo" else None
        terms = actor_critic_loss(
            dist.log_prob(r.actions),
            dist.entropy(),
            value,
            r.log_probs,
            adv,
            ret,
            r.valid,
            cfg.vf_coef,
            cfg.ent_coef,
            clip,
        )
        total = total + w * terms.loss
    return total


def grads_of(module: nn.Module, loss: Tensor) -> dict[str, Tensor]:
    module.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def relative_error(got: dict[str, Tensor], want: dict[str, Tensor]) -> float:
    """‖got − want‖ / ‖want‖ over all the named tensors together."""
    assert got.keys() == want.keys()
    diff = sum(((got[k] - want[k]) ** 2).sum() for k in want).sqrt()
    return float(diff / sum((want[k] ** 2).sum() for k in want).sqrt())
