"""The streaming learner: stream AC(λ) (Elsayed, Vasan & Mahmood 2024) with a recurrent core.

Read top to bottom: act, step, TD error, trace update, bounded step; one transition at a time, no
rollout buffer and no replay. With a value network V_w and a policy network π_θ, each on top of its
own recurrent core whose state h_t depends on every past input (docs/algorithms.md §8):

    δ_t   = r_{t+1} + γ (1 − term_{t+1}) V(h_{t+1}) − V(h_t)
    z_w   ← γλ z_w + ∇_w V(h_t)
    z_θ   ← γλ z_θ + ∇_θ [log π(a_t | h_t) + τ · sign(δ_t) · H(π(· | h_t))]
    w     ← w + (α / max(m_w, 1)) δ_t z_w,   m_w = α κ_critic max(|δ_t|, 1) ‖z_w‖₁   (ObGD)
    θ     ← θ + (α / max(m_θ, 1)) δ_t z_θ,   m_θ = α κ_actor  max(|δ_t|, 1) ‖z_θ‖₁

For a core's parameters, ∇V(h_t) = (∂V/∂h_t) dh_t/dθ, where dh_t/dθ is the sensitivity the gradient
rule carries forward: exact for ``rule=rtrl`` (eLSTM, RTU), KF-RTRL's unbiased estimate for RHN,
and only the last step's part for ``rule=tbptt`` (TBPTT with span 1, the baseline). The rule's
``step`` adds it inside ``backward``: this file never touches a sensitivity. The rule carries
credit through the state; the eligibility trace carries it through the return. V(h_{t+1}) is the
critic core's next step from h_t with the weights of step t (no gradient); after the update the
next step starts from h_t again with the new weights (online RTRL's usual approximation).

Episodes. ``episode_start`` means "this observation begins an episode": the core state, the rule's
sensitivities and the eligibility traces of that environment restart there. A termination
bootstraps nothing; a truncation bootstraps V of the episode's final observation (the one a
NEXT_STEP env returns on the ending step, or ``info["final_obs"]`` under SAME_STEP). Under NEXT_STEP
autoreset the step after an episode's end only resets the env and its action is ignored: it is
masked (no δ, no gradient, no statistics), as ``pending_reset``/``valid`` do in agents/learner.py.

Several environments (``num_envs`` = B > 1) are B independent streams: each keeps its own core
state, sensitivities and eligibility traces (memory B × |θ|), and one ObGD step per transition
combines them as the mean of the per-stream δ_b z_b, with the bound taken on that combined step
(agents/obgd.py: d = Σ_b ω_b δ_b z_b, M = α κ Σ_b ω_b max(|δ_b|, 1) ‖z_b‖₁, ω_b = 1/(streams
taking part)); at B = 1 it is the paper's step exactly. Per-stream gradients take one backward
pass per stream and step.

Anchor settings (configs/algo/stream.yaml): γ 0.99, λ 0.8, α 1, κ 3 (actor) and 2 (critic),
τ 0.01, running observation normalisation and reward scaling (agents/normalization.py). As in the
paper, the feed-forward layers get a sparse initialisation (90% zeros per output unit, the rest
uniform ±1/sqrt(fan_in), biases zero) and LayerNorm (no affine parameters) before each hidden
activation, scoped to what is feed-forward here: the MLP encoders' layers and the two heads get
the sparse initialisation, the MLP encoders' hidden layers the LayerNorm; image and one-hot
encoders and the recurrent cores keep their own initialisation.

``collect()`` runs ``rollout_len`` streaming steps per environment, learning at every one, and
``update()`` turns their statistics into the metrics train.py logs: the same two calls as the
rollout learner, so train.py's loop, logging, checkpoints and signals serve both.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from torch import Tensor, nn

from agents.checkpoint import load_rule_state, restore_rng_state, rng_state, rule_state_dict
from agents.encoders import MLPEncoder
from agents.episodes import record_episodes
from agents.normalization import RewardScaler, RunningMeanStd
from agents.obgd import ObGD
from agents.observations import Observation, map_obs, obs_to_tensor, replace_rows
from agents.policy import ActorCritic
from agents.registry import make_rule
from agents.rules import Rule

__all__ = ["StreamConfig", "StreamLearner", "StreamStep", "make_stream_networks", "sparse_init_"]

COUNTERS = ("global_step", "updates", "skipped_updates")  # a checkpoint's counters, as the rollout learner's


@dataclass
class StreamConfig:
    """Hyperparameters of stream AC(λ) (the Hydra ``algo`` group of ``algo=stream``)."""

    rule: str = "rtrl"  # the core's gradient: rtrl (eLSTM, RTU) | kfrtrl (RHN) | tbptt (span 1)
    rollout_len: int = 32  # streaming steps per env between two log points; every step learns
    gamma: float = 0.99
    trace_lambda: float = 0.8  # λ of the eligibility traces (``lambda`` is a Python keyword)
    lr: float = 1.0  # α, ObGD's step size before the bound
    kappa_actor: float = 3.0  # κ of the policy's ObGD bound
    kappa_critic: float = 2.0  # κ of the value's ObGD bound
    ent_coef: float = 0.01  # τ, entropy weight inside the policy trace (times sign(δ))
    obs_norm: bool = True  # running mean/std of flat float observations (others pass through)
    reward_scale: bool = True  # rewards / std of the discounted return
    sparsity: float = 0.9  # zeros per output unit in the sparse init of MLP encoders and heads; 0: off
    layer_norm: bool = True  # LayerNorm (no affine) before each MLP-encoder activation
    head_norm: bool = False  # LayerNorm (no affine) of the core's output, before both heads

    def __post_init__(self) -> None:
        if self.rule not in ("rtrl", "kfrtrl", "tbptt", "uoro"):
            raise ValueError(f"algo.rule must be rtrl, kfrtrl, tbptt or uoro, got {self.rule!r}")
        if self.rollout_len < 1:
            raise ValueError(f"rollout_len must be >= 1, got {self.rollout_len}")
        if not 0 <= self.sparsity < 1:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")


class StreamStep(NamedTuple):
    """Statistics of one streaming step over the streams that took part (0-d tensors)."""

    td_error: Tensor  # mean |δ|
    value_loss: Tensor  # mean δ²/2, the TD loss the critic's semi-gradient descends
    entropy: Tensor
    value: Tensor  # mean V(h_t)
    step_size_critic: Tensor  # ObGD's α / max(M, 1)
    step_size_actor: Tensor
    bounded_critic: Tensor  # 1 where the bound shrank the step
    bounded_actor: Tensor
    trace_norm_critic: Tensor  # mean ‖z_w‖₁
    trace_norm_actor: Tensor


# --- networks -----------------------------------------------------------------------------------
def sparse_init_(weight: Tensor, sparsity: float) -> Tensor:
    """Elsayed et al.'s sparse initialisation of a (fan_out, fan_in) weight, in place: uniform
    ±1/sqrt(fan_in), then ceil(sparsity · fan_in) entries of each row zeroed, at most fan_in − 1
    (a row of zeros would feed LayerNorm a constant, whose gradient is 1/sqrt(ε))."""
    fan_out, fan_in = weight.shape
    zeros = min(math.ceil(sparsity * fan_in), fan_in - 1)
    with torch.no_grad():
        weight.uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        order = torch.rand(fan_out, fan_in).argsort(1)[:, :zeros]
        weight.scatter_(1, order.to(weight.device), 0.0)
    return weight


def _stream_init(net: ActorCritic, sparsity: float, layer_norm: bool, head_norm: bool) -> None:
    """Sparse init of the MLP encoders' and the heads' linear layers; LayerNorm before each MLP
    activation and, with ``head_norm``, on the core's output before the heads. LayerNorm has no
    parameters here, so the state dict keeps ActorCritic's keys."""
    if head_norm:
        net.head_norm = nn.LayerNorm(net.actor.in_features, elementwise_affine=False)
    linears = [net.actor, net.critic]
    for enc in (m for m in net.modules() if isinstance(m, MLPEncoder)):
        layers = list(enc.net)
        for i, layer in enumerate(layers):
            if isinstance(layer, nn.Linear):
                linears.append(layer)
                if layer_norm:
                    enc.net[i + 1] = nn.Sequential(
                        nn.LayerNorm(layer.out_features, elementwise_affine=False), layers[i + 1]
                    )
    for layer in linears if sparsity > 0 else ():
        sparse_init_(layer.weight, sparsity)
        nn.init.zeros_(layer.bias)


def make_stream_networks(
    core: Mapping[str, Any],
    policy: Mapping[str, Any],
    obs_space: spaces.Space,
    action_space: spaces.Space,
    cfg: StreamConfig,
) -> tuple[ActorCritic, ActorCritic]:
    """The policy network (its actor head acts) and the value network (its critic head predicts),
    separate as in the paper, each with its own encoder and core, from the Hydra groups."""
    nets = tuple(ActorCritic.from_config(core, policy, obs_space, action_space) for _ in range(2))
    for net in nets:
        _stream_init(net, cfg.sparsity, cfg.layer_norm, cfg.head_norm)
    return nets[0], nets[1]


def _trained(net: ActorCritic, unused_head: str) -> list[nn.Parameter]:
    """The network's parameters but for the head it does not use (and log_std for the critic)."""
    skip = (f"{unused_head}.", "log_std") if unused_head == "actor" else (f"{unused_head}.",)
    return [p for n, p in net.named_parameters() if not n.startswith(skip)]


# --- the learner ----------------------------------------------------------------------------------
class StreamLearner:
    """Stream AC(λ) over a vector env; the cores trained through ``cfg.rule``.

    Args:
        agent: the policy network (encoder, core, heads; its actor head acts).
        critic: the value network (its critic head predicts V).
        envs: a gymnasium VectorEnv (NEXT_STEP or SAME_STEP autoreset); B = ``envs.num_envs`` streams.
        cfg: the hyperparameters.
        device: where the networks live.
    """

    def __init__(
        self,
        agent: ActorCritic,
        critic: ActorCritic,
        envs: VectorEnv,
        cfg: StreamConfig,
        device: torch.device,
    ) -> None:
        self.agent, self.critic, self.envs, self.cfg, self.device = agent, critic, envs, cfg, device
        self.num_envs = b = envs.num_envs
        self.dtype = next(agent.parameters()).dtype
        mode = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self.next_step_autoreset = AutoresetMode(mode) == AutoresetMode.NEXT_STEP
        self.rule_actor: Rule = make_rule(cfg.rule, agent.core)
        self.rule_critic: Rule = make_rule(cfg.rule, critic.core)
        self.actor_params = _trained(agent, "critic")
        self.critic_params = _trained(critic, "actor")
        trace = {"gamma": cfg.gamma, "trace_lambda": cfg.trace_lambda, "num_streams": b}
        self.opt_actor = ObGD(self.actor_params, lr=cfg.lr, kappa=cfg.kappa_actor, **trace)
        self.opt_critic = ObGD(self.critic_params, lr=cfg.lr, kappa=cfg.kappa_critic, **trace)
        space = envs.single_observation_space
        flat_float = isinstance(space, spaces.Box) and len(space.shape) == 1 and space.dtype != np.uint8
        self.obs_stats = RunningMeanStd(space.shape, device) if cfg.obs_norm and flat_float else None
        self.reward_scaler = RewardScaler(b, cfg.gamma, device) if cfg.reward_scale else None
        self.global_step = 0  # environment steps, summed over envs
        self.updates = 0  # collect/update pairs (train.py's unit of logging and checkpointing)
        self.skipped_updates = 0  # streams left out of a step because something was not finite
        self.episode_returns: deque[float] = deque(maxlen=100)
        self.episode_lengths: deque[int] = deque(maxlen=100)
        self.rs_actor = self.rule_actor.initial_state(b)
        self.rs_critic = self.rule_critic.initial_state(b)
        self.last_delta = torch.zeros(b, dtype=self.dtype, device=device)  # δ of the last step
        self.reset_envs(seed=None)

    def reset_envs(self, seed: int | None) -> None:
        """Start every environment afresh; states, sensitivities and traces restart on step one."""
        obs, _ = self.envs.reset(seed=seed)
        self.obs = self._observe(obs)
        b = self.num_envs
        self.episode_start = torch.ones(b, dtype=torch.bool, device=self.device)
        self.pending_reset = np.zeros(b, dtype=bool)  # host: it picks the streams to differentiate
        space = self.envs.single_action_space
        shape, dtype = space.shape or (), np.float32 if isinstance(space, spaces.Box) else np.int64
        self.prev_action = obs_to_tensor(np.zeros((b, *shape), dtype), self.device)
        self.prev_reward = torch.zeros(b, dtype=self.dtype, device=self.device)
        if self.reward_scaler is not None:
            self.reward_scaler.returns.zero_()

    def _observe(self, obs: Any, update: bool = True) -> Observation:
        """A raw observation batch as a tensor, normalised by (and, if ``update``, added to) the
        running statistics."""
        obs = obs_to_tensor(obs, self.device)
        if self.obs_stats is None:  # float observations in the networks' dtype (float64 in tests)
            return map_obs(lambda x: x.to(self.dtype) if x.is_floating_point() else x, obs)
        if update:
            self.obs_stats.update(obs)
        return self.obs_stats.normalize(obs.to(self.dtype))

    # --- collect: rollout_len streaming steps, learning at each ---------------------------------
    def collect(self) -> dict[str, list[Tensor]]:
        stats: dict[str, list[Tensor]] = {}
        for _ in range(self.cfg.rollout_len):
            for key, value in self.step()._asdict().items():
                stats.setdefault(key, []).append(value)
        return stats

    def step(self) -> StreamStep:
        """One transition in every stream: act, step, TD error, trace update, bounded step."""
        cfg, b = self.cfg, self.num_envs
        start, valid_host = self.episode_start, ~self.pending_reset
        valid = torch.as_tensor(valid_host, device=self.device)
        # --- act: h_t with the rules' carried sensitivities attached, π(·|h_t) and V(h_t)
        self.rs_actor = self.rule_actor.reset(self.rs_actor, start)
        self.rs_critic = self.rule_critic.reset(self.rs_critic, start)
        out, rs_actor = self.rule_actor.step(self._core_input(self.agent, start), self.rs_actor)
        dist = self.agent.heads(out)[0]
        out, rs_critic = self.rule_critic.step(self._core_input(self.critic, start), self.rs_critic)
        value = self.critic.heads(out)[1]
        with torch.no_grad():
            action = dist.sample()
        # --- step the environments
        env_action = action.cpu().numpy()  # sync point: the envs step on the host
        if isinstance(self.envs.single_action_space, spaces.Box):
            env_action = np.clip(
                env_action, self.envs.single_action_space.low, self.envs.single_action_space.high
            )
        next_obs, reward, term, trunc, info = self.envs.step(env_action)
        record_episodes(info, self.num_envs, self.episode_returns, self.episode_lengths)
        term_t = torch.as_tensor(np.asarray(term, bool), device=self.device)
        ended_host = np.asarray(term, bool) | np.asarray(trunc, bool)
        ended = torch.as_tensor(ended_host, device=self.device)
        reward_t = torch.as_tensor(np.asarray(reward), device=self.device).to(self.dtype)
        if self.reward_scaler is not None:
            reward_t = self.reward_scaler(reward_t, ended, valid)
        next_obs_t = self._observe(next_obs)
        # --- TD error: δ = r + γ (1 − term) V(h_{t+1}) − V(h_t), with the weights of step t
        with torch.no_grad():
            boot_obs, final = next_obs_t, None
            cut = ended_host & ~np.asarray(term, bool)
            if not self.next_step_autoreset and cut.any():  # SAME_STEP: the final obs is in info
                final = info.get("final_obs")
                if final is not None:
                    rows = np.nonzero(cut & np.asarray(info.get("_final_obs", cut), bool))[0]
                    boot_obs = self._observe(replace_rows(next_obs, final, rows), update=False)
            not_start = torch.zeros(b, dtype=torch.bool, device=self.device)
            x = self.critic.core_input(boot_obs, action, reward_t, not_start)
            next_value = self.critic.heads(self.critic.core(x, rs_critic.state)[0])[1]
            if cut.any() and final is None and not self.next_step_autoreset:
                # no final observation reported (procgen): V(h_t) is the nearest estimate
                next_value = torch.where(torch.as_tensor(cut, device=self.device), value, next_value)
            bootstrap = torch.where(term_t, 0.0, next_value)
            delta = torch.where(valid, reward_t + cfg.gamma * bootstrap - value, 0.0).detach()
        # --- trace update and bounded step, per stream
        grads = self._stream_gradients(value, dist, action, delta, valid_host)
        keep = (~start).to(self.dtype)  # traces restart at an episode's first step
        weight = valid.to(self.dtype) / max(1, int(valid_host.sum()))
        n_critic = sum(p.numel() for p in self.critic_params)
        critic_step = self.opt_critic.step(delta, grads[:, :n_critic], keep, weight)
        actor_step = self.opt_actor.step(delta, grads[:, n_critic:], keep, weight)
        dropped = int(critic_step.dropped) + int(actor_step.dropped)
        self.skipped_updates += dropped
        self.rs_actor = self.rule_actor.reset_nonfinite(rs_actor, check_traces=dropped > 0)
        self.rs_critic = self.rule_critic.reset_nonfinite(rs_critic, check_traces=dropped > 0)
        self.last_delta = delta
        # --- episode bookkeeping (as agents/learner.py's collect)
        if self.next_step_autoreset:
            self.episode_start = torch.as_tensor(self.pending_reset, device=self.device)
            self.pending_reset = ended_host
        else:
            self.episode_start = ended
        self.obs, self.prev_action, self.prev_reward = next_obs_t, action, reward_t
        self.global_step += b
        n = valid.sum().clamp_min(1)
        mean = lambda v: torch.where(valid, v.detach(), 0.0).sum() / n  # noqa: E731
        return StreamStep(
            td_error=mean(delta.abs()),
            value_loss=mean(delta * delta / 2),
            entropy=mean(dist.entropy()),
            value=mean(value),
            step_size_critic=critic_step.step_size,
            step_size_actor=actor_step.step_size,
            bounded_critic=(critic_step.bound > 1).to(self.dtype),
            bounded_actor=(actor_step.bound > 1).to(self.dtype),
            trace_norm_critic=critic_step.trace_norm,
            trace_norm_actor=actor_step.trace_norm,
        )

    def _core_input(self, net: ActorCritic, start: Tensor) -> Tensor:
        return net.core_input(self.obs, self.prev_action, self.prev_reward, start)

    def _stream_gradients(
        self, value: Tensor, dist: Any, action: Tensor, delta: Tensor, valid: np.ndarray
    ) -> Tensor:
        """Per stream b, the gradient of V(h_t)[b] w.r.t. the critic's parameters and of
        [log π(a_t|h_t) + τ sign(δ_t) H(π(·|h_t))][b] w.r.t. the actor's, flattened: (B, |w| + |θ|),
        critic's first. The two networks share nothing, so one backward pass per stream gives
        both; each includes the rule's carried term (the full history for RTRL)."""
        objective = value + dist.log_prob(action) + self.cfg.ent_coef * torch.sign(delta) * dist.entropy()
        params = self.critic_params + self.actor_params
        grads = value.new_zeros(self.num_envs, sum(p.numel() for p in params))
        rows = np.flatnonzero(valid)
        for i, row in enumerate(rows):
            per_param = torch.autograd.grad(
                objective[row], params, retain_graph=i < len(rows) - 1, materialize_grads=True
            )
            torch.cat([g.reshape(-1) for g in per_param], out=grads[row])
        return grads

    # --- update: the metrics of the steps just taken (the learning happened in collect) ---------
    def update(self, stats: Mapping[str, list[Tensor]]) -> dict[str, float]:
        self.updates += 1
        out = {k: float(torch.stack(v).float().mean()) for k, v in stats.items()}  # one sync each
        out["learning_rate"] = self.cfg.lr
        out["ent_coef"] = self.cfg.ent_coef
        out["skipped_updates"] = float(self.skipped_updates)
        if self.reward_scaler is not None:
            out["reward_std"] = float(self.reward_scaler.stats.var.sqrt())
        return out

    # --- checkpointing --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Weights, ObGD state (eligibility traces), rule states (core state and sensitivities),
        normalisation statistics, counters and RNG: everything needed to continue."""
        rule_state = {"actor": rule_state_dict(self.rs_actor), "critic": rule_state_dict(self.rs_critic)}
        normalization = {}
        if self.obs_stats is not None:
            normalization["obs"] = self.obs_stats.state_dict()
        if self.reward_scaler is not None:
            normalization["reward"] = self.reward_scaler.state_dict()
        return {
            "agent": self.agent.state_dict(),
            "critic": self.critic.state_dict(),
            "optimizer": {"actor": self.opt_actor.state_dict(), "critic": self.opt_critic.state_dict()},
            "rule_state": rule_state,
            "normalization": normalization,
            "counters": {key: getattr(self, key) for key in COUNTERS},
            "rng": rng_state(self.device),
        }

    def load_state_dict(self, sd: Mapping[str, Any]) -> None:
        self.agent.load_state_dict(sd["agent"])
        self.critic.load_state_dict(sd["critic"])
        for name, opt in (("actor", self.opt_actor), ("critic", self.opt_critic)):
            opt.load_state_dict(sd["optimizer"][name])
            for z in opt.traces():
                if z.shape[0] != self.num_envs:
                    raise ValueError(
                        f"the checkpoint's eligibility traces are for {z.shape[0]} streams and this "
                        f"run has num_envs={self.num_envs}: resume with the same num_envs"
                    )
        self.rs_actor = load_rule_state(sd["rule_state"]["actor"], self.device)
        self.rs_critic = load_rule_state(sd["rule_state"]["critic"], self.device)
        norm = sd.get("normalization", {})
        if self.obs_stats is not None and "obs" in norm:
            self.obs_stats.load_state_dict(norm["obs"])
        if self.reward_scaler is not None and "reward" in norm:
            self.reward_scaler.load_state_dict(norm["reward"])
        for key in COUNTERS:
            setattr(self, key, int(sd["counters"][key]))
        restore_rng_state(sd["rng"], self.device)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], envs: VectorEnv, device: torch.device) -> StreamLearner:
        """From train.py's config (``algo``, ``core``, ``policy`` groups) and its envs."""
        stream_cfg = StreamConfig(**{k: v for k, v in cfg["algo"].items() if k != "name"})
        space, actions = envs.single_observation_space, envs.single_action_space
        agent, critic = make_stream_networks(cfg["core"], cfg["policy"], space, actions, stream_cfg)
        return cls(agent.to(device), critic.to(device), envs, stream_cfg, device)
