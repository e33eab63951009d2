"""The learner: synchronous actor-critic over vectorised envs, its core trained by a gradient rule.

Read top to bottom: collect a rollout of M = ``rollout_len`` steps, compute GAE(λ), update (A2C: one
step; PPO: epochs over minibatches of whole environments), repeat. The rule's traces carry credit
across rollouts and updates: nothing is cached per step beyond the rollout, and the state and traces
are reset only per environment, when its episode ends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from torch import Tensor, nn

from agents.checkpoint import load_rule_state, restore_rng_state, rng_state, rule_state_dict
from agents.episodes import record_episodes
from agents.learner_config import LearnerConfig
from agents.losses import LossTerms, actor_critic_loss, explained_variance, gae, normalize
from agents.normalization import RewardScaler, observation_statistics
from agents.observations import Observation, map_obs, obs_to_tensor, replace_rows, stack_obs
from agents.policy import ActorCritic, greedy_action
from agents.rules import Rule, RuleState
from agents.rules.base import index_rows, scatter_rows

__all__ = ["Learner", "LearnerConfig", "Rollout"]


class Rollout(NamedTuple):
    """One rollout, time-first: every field is (M, B, ...) except next_value (B,)."""

    obs: Observation  # (M, B, ...), or {key: (M, B, ...)} for a Dict observation space
    prev_actions: Tensor
    prev_rewards: Tensor
    episode_starts: Tensor  # bool: obs[t] begins an episode (state and traces reset before t)
    actions: Tensor
    log_probs: Tensor
    values: Tensor
    rewards: Tensor
    terminated: Tensor  # bool
    ended: Tensor  # bool: terminated or truncated after step t
    valid: Tensor  # bool: False on NEXT_STEP autoreset steps, whose action the env ignored
    next_value: Tensor


class Learner:
    """Actor-critic learner, A2C or PPO update, for any gradient rule.

    Args:
        agent: the network (encoder, core, heads).
        rule: the gradient rule wrapping ``agent.core``.
        envs: a gymnasium VectorEnv (NEXT_STEP or SAME_STEP autoreset).
        cfg: the update's hyperparameters.
        device: where the network lives.
        total_steps: this learner's budget of env steps (summed over its envs), which the
            schedules of ``cfg.lr_final``, ``cfg.ent_coef_final`` and their ``*_decay_after``
            run over; required for them.
    """

    def __init__(
        self,
        agent: ActorCritic,
        rule: Rule,
        envs: VectorEnv,
        cfg: LearnerConfig,
        device: torch.device,
        total_steps: int | None = None,
    ) -> None:
        if rule.core is not agent.core:
            raise ValueError("the rule must wrap the agent's own core")
        for key in ("lr_final", "lr_decay_after", "ent_coef_final", "ent_decay_after"):
            if getattr(cfg, key) is not None and not total_steps:
                raise ValueError(f"{key} needs the learner's total_steps to schedule over")
        self.agent, self.rule, self.envs, self.cfg, self.device = agent, rule, envs, cfg, device
        self.total_steps = total_steps
        self.num_envs = envs.num_envs
        mode = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self.next_step_autoreset = AutoresetMode(mode) == AutoresetMode.NEXT_STEP
        params = list(agent.parameters())
        if cfg.optimizer == "adam":
            opt, kwargs = torch.optim.Adam, {"fused": True} if cfg.fused_optimizer else {}
        else:
            foreach = True if cfg.fused_optimizer else None  # None: torch's default for the device
            opt, kwargs = torch.optim.RMSprop, {"alpha": cfg.rms_alpha, "foreach": foreach}
        self.optimizer = opt(params, lr=cfg.lr, eps=cfg.eps, **kwargs)
        # Fused Adam takes the non-finite flag as a tensor and skips the step itself (as it does
        # for GradScaler): no host sync per minibatch. Other optimisers are skipped on the host.
        self.skips_on_device = cfg.optimizer == "adam" and cfg.fused_optimizer
        self._chunk_loss = torch.compile(self.chunk_loss, dynamic=False) if cfg.compile else self.chunk_loss
        self.global_step = 0  # environment steps, summed over envs
        self.updates = 0
        self.skipped_updates = 0
        # Data-parallel hooks (agents.distributed sets both; one process keeps these defaults):
        # advantage normalisation of a minibatch, and a call between backward and clipping that
        # combines the gradients with the other ranks', given the minibatch's valid mask (M, b).
        self.normalize_advantages: Callable[[Tensor, Tensor], Tensor] = normalize
        self.average_gradients: Callable[[Tensor], None] | None = None
        self.episode_returns: deque[float] = deque(maxlen=100)
        self.episode_lengths: deque[int] = deque(maxlen=100)
        # Normalisation (agents/normalization.py): running statistics, updated with every
        # observation the envs return unless frozen (evaluation), and saved in the checkpoint.
        space = envs.single_observation_space
        self.obs_stats = observation_statistics(space, device) if cfg.normalize_obs else {}
        self.freeze_obs_stats = False
        self.reward_scaler = RewardScaler(self.num_envs, cfg.gamma, device) if cfg.normalize_reward else None
        self.rstate = rule.initial_state(self.num_envs)
        self.reset_envs(seed=None)

    # ------------------------------------------------------------------------------------------
    def reset_envs(self, seed: int | None) -> None:
        """Start every environment afresh; their states and traces are reset on the first step."""
        obs, _ = self.envs.reset(seed=seed)
        self.obs = self._observe(obs)
        b = self.num_envs
        self.episode_start = torch.ones(b, dtype=torch.bool, device=self.device)
        self.pending_reset = torch.zeros(b, dtype=torch.bool, device=self.device)
        self.prev_action = self._to_tensor(np.zeros((b, *self._action_shape()), self._action_dtype()))
        self.prev_reward = torch.zeros(b, device=self.device)
        if self.reward_scaler is not None:  # fresh episodes: their discounted returns start at 0
            self.reward_scaler.returns.zero_()

    def _observe(self, obs: Any, update: bool = True) -> Observation:
        """A raw observation batch as a tensor, its flat float parts normalised by the running
        statistics (added to them first, if ``update`` and not frozen; non-finite rows never are)."""
        obs = self._to_tensor(obs)
        if not self.obs_stats:
            return obs
        update = update and not self.freeze_obs_stats
        parts = obs if isinstance(obs, dict) else {"": obs}
        for key, stats in self.obs_stats.items():
            if update:
                stats.update(parts[key])
            parts[key] = stats.normalize(parts[key])
        return parts if isinstance(obs, dict) else parts[""]

    def _action_shape(self) -> tuple[int, ...]:
        return self.envs.single_action_space.shape or ()

    def _action_dtype(self) -> Any:
        return np.float32 if isinstance(self.envs.single_action_space, spaces.Box) else np.int64

    def _to_tensor(self, x: Any) -> Any:  # an array -> a tensor; a dict of arrays -> of tensors
        return obs_to_tensor(x, self.device)

    # --- collect ------------------------------------------------------------------------------
    @torch.no_grad()
    def collect(self, greedy: bool = False) -> Rollout:
        """Act for M steps with the current parameters; no gradients, no traces.
        ``greedy`` takes the most likely action instead of sampling (for evaluation)."""
        m, agent = self.cfg.rollout_len, self.agent
        state = self.rstate.state.clone()
        buf: dict[str, list[Tensor]] = {k: [] for k in Rollout._fields if k != "next_value"}
        for _ in range(m):
            start = self.episode_start
            x = agent.core_input(self.obs, self.prev_action, self.prev_reward, start)
            out, state = agent.core(x, state * (~start)[:, None].to(state.dtype))
            dist, value = agent.heads(out)
            action = greedy_action(dist) if greedy else dist.sample()
            env_action = action.cpu().numpy()  # sync point: the env steps on the host
            if isinstance(self.envs.single_action_space, spaces.Box):
                space = self.envs.single_action_space
                env_action = np.clip(env_action, space.low, space.high)
            next_obs, reward, term, trunc, info = self.envs.step(env_action)
            record_episodes(info, self.num_envs, self.episode_returns, self.episode_lengths)
            reward_t = self._to_tensor(reward).float()
            term_t, trunc_t = self._to_tensor(term).bool(), self._to_tensor(trunc).bool()
            gae_reward, gae_term = reward_t, term_t
            if self.reward_scaler is not None:  # GAE's rewards only: the logged returns stay raw
                gae_reward = self.reward_scaler(reward_t, term_t | trunc_t, ~self.pending_reset)
            cut = np.asarray(trunc, bool) & ~np.asarray(term, bool)  # host arrays: no device sync
            if not self.next_step_autoreset and cut.any():
                # SAME_STEP: next_obs already begins the next episode, so a truncated episode is
                # bootstrapped here, as SB3 does: r_t + γ V(final obs), then no later bootstrap.
                cut_t = self._to_tensor(cut)
                final_value = self._final_value(info, next_obs, cut, state, action, reward_t, value)
                gae_reward = gae_reward + self.cfg.gamma * torch.where(cut_t, final_value, 0.0)
                gae_term = term_t | cut_t
            for key, val in (
                ("obs", self.obs),
                ("prev_actions", self.prev_action),
                ("prev_rewards", self.prev_reward),
                ("episode_starts", start),
                ("actions", action),
                ("log_probs", dist.log_prob(action)),
                ("values", value),
                ("rewards", gae_reward),
                ("terminated", gae_term),
                ("ended", term_t | trunc_t),
                ("valid", ~self.pending_reset),
            ):
                buf[key].append(val)
            ended = term_t | trunc_t
            if self.next_step_autoreset:
                # The step after an episode's end only resets the env: mask it, and start the
                # state afresh on the observation it returns.
                self.episode_start, self.pending_reset = self.pending_reset, ended
            else:
                self.episode_start = ended
            self.obs, self.prev_action, self.prev_reward = self._observe(next_obs), action, reward_t
            self.global_step += self.num_envs
        self.end_state = state  # the core's state after the rollout (update() recomputes it)
        start = self.episode_start
        x = agent.core_input(self.obs, self.prev_action, self.prev_reward, start)
        out, _ = agent.core(x, state * (~start)[:, None].to(state.dtype))
        next_value = agent.heads(out)[1]
        return Rollout(**{k: stack_obs(v) for k, v in buf.items()}, next_value=next_value)

    def act(self, greedy: bool = False) -> Rollout:
        """Collect M steps and carry the core's state on, with no learning (evaluation). Learning,
        update() carries it; without either, every rollout would start again from the state the
        previous one started from, wiping the memory each M steps."""
        rollout = self.collect(greedy)
        self.rstate = RuleState(self.end_state, self.rstate.traces)
        return rollout

    def _final_value(
        self,
        info: dict[str, Any],
        next_obs: Any,
        cut: np.ndarray,
        state: Tensor,
        action: Tensor,
        reward: Tensor,
        value: Tensor,
    ) -> Tensor:
        """V of each truncated episode's final observation under SAME_STEP autoreset, (B,).

        The core takes one more step from the episode's own state on ``info["final_obs"]``
        (gymnasium's SAME_STEP convention). An env that reports no final observation (procgen)
        gets V_t, the value of the last observation seen: the nearest estimate it leaves us.
        """
        final = info.get("final_obs")
        if final is None:
            return value
        rows = np.nonzero(cut & np.asarray(info.get("_final_obs", cut), bool))[0]
        obs = replace_rows(next_obs, final, rows)
        start = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        x = self.agent.core_input(self._observe(obs, update=False), action, reward, start)
        out, _ = self.agent.core(x, state)
        return self.agent.heads(out)[1]

    # --- advantage and update -----------------------------------------------------------------
    def update(self, ro: Rollout) -> dict[str, float]:
        """GAE, then the A2C step or the PPO epochs; the rule's traces advance once, after them."""
        cfg = self.cfg
        advantages, returns = gae(
            ro.rewards, ro.values, ro.next_value, ro.terminated, ro.ended, cfg.gamma, cfg.gae_lambda
        )
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        ppo = cfg.update == "ppo"
        epochs = cfg.num_epochs if ppo else 1
        groups = min(cfg.num_minibatches, self.num_envs) if ppo else 1
        stats: dict[str, list[Tensor]] = {}
        ends: list[tuple[Tensor | slice, RuleState]] = []
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        skipped: Tensor | int = 0  # steps skipped in this update (a device tensor: no sync)
        for epoch in range(epochs):
            last_epoch = epoch == epochs - 1
            # one group: all rows as a view, so that no trace is gathered or scattered
            parts = (
                [slice(None)]
                if groups == 1
                else torch.randperm(self.num_envs, device=self.device).chunk(groups)
            )
            for rows in parts:
                terms, rstate_end = self.rollout_loss(ro, rows, advantages, returns, last_epoch)
                self.optimizer.zero_grad(set_to_none=True)
                terms.loss.backward()
                if self.average_gradients is not None:
                    self.average_gradients(ro.valid[:, rows])
                grad_norm = nn.utils.clip_grad_norm_(params, cfg.max_grad_norm, foreach=True)
                nonfinite = ~torch.isfinite(grad_norm)  # never apply NaN or Inf to the weights
                if self.skips_on_device:
                    self.optimizer.found_inf = nonfinite.float()
                    self.optimizer.step()
                    skipped = skipped + nonfinite
                elif not nonfinite:  # sync point
                    self.optimizer.step()
                else:
                    skipped = skipped + 1
                if last_epoch:
                    ends.append((rows, rstate_end))
                for name, val in (*terms._asdict().items(), ("grad_norm", grad_norm)):
                    stats.setdefault(name, []).append(val.detach())
        skipped = int(skipped)  # sync point: once per update
        self.skipped_updates += skipped
        rstate = ends[0][1] if groups == 1 else scatter_rows(ends)
        self.rstate = self.rule.reset_nonfinite(rstate, check_traces=skipped > 0)
        self.updates += 1
        out = {k: float(torch.stack(v).float().mean()) for k, v in stats.items()}  # one sync each
        out["explained_variance"] = explained_variance(ro.values, returns, ro.valid)
        out["learning_rate"] = self.optimizer.param_groups[0]["lr"]
        out["ent_coef"] = self.entropy_coef()
        out["skipped_updates"] = float(self.skipped_updates)
        return out

    def learning_rate(self) -> float:
        """The step size now: ``held(lr, lr_final, lr_decay_after)``."""
        return self.held(self.cfg.lr, self.cfg.lr_final, self.cfg.lr_decay_after)

    def entropy_coef(self) -> float:
        """The entropy bonus now: ``held(ent_coef, ent_coef_final, ent_decay_after)``."""
        return self.held(self.cfg.ent_coef, self.cfg.ent_coef_final, self.cfg.ent_decay_after)

    def held(self, start: float, final: float | None, after: int | None) -> float:
        """A hyperparameter at env step t of a run of T steps: ``start``, or a decay of it.

        - ``after`` None: ``scheduled(start, final)``, linear from t = 0 (constant if final is None).
        - ``after`` = W: held until W, then linear to final (0 if None) at T:
          x_t = start + (final - start) * clip((t - W) / (T - W), 0, 1); a run of T <= W keeps start.
        """
        if after is None:
            return self.scheduled(start, final)
        if self.total_steps <= after:  # also past T: a run's last rollout may end beyond it
            return start
        final = 0.0 if final is None else final
        done = min(1.0, max(0.0, (self.global_step - after) / (self.total_steps - after)))
        return start + (final - start) * done

    def scheduled(self, start: float, final: float | None) -> float:
        """A hyperparameter now: ``start``, or linear from it to ``final`` over ``total_steps``
        (then held) when ``final`` is set."""
        if final is None:
            return start
        done = min(1.0, self.global_step / self.total_steps)
        return start + (final - start) * done

    def rollout_loss(
        self, ro: Rollout, rows: Tensor | slice, advantages: Tensor, returns: Tensor, advance: bool
    ) -> tuple[LossTerms, RuleState]:
        """The loss over environments ``rows`` of a rollout, re-run through the rule with gradients.

        Its backward gives the full-history gradient (per the rule) of that loss; the returned
        rule state is the one at the rollout's end (traces advanced only if ``advance``).
        """
        rstate = index_rows(self.rstate, rows)
        adv, valid = advantages[:, rows], ro.valid[:, rows]
        if self.cfg.norm_adv:  # eager: under torchrun this hook is a collective
            adv = self.normalize_advantages(adv, valid)
        ent_coef = torch.tensor(self.entropy_coef())
        pick = lambda t: t[:, rows]  # noqa: E731
        terms, state, records, keeps = self._chunk_loss(
            map_obs(pick, ro.obs),
            *(pick(t) for t in (ro.prev_actions, ro.prev_rewards, ro.episode_starts, ro.actions)),
            pick(ro.log_probs),
            adv,
            returns[:, rows],
            valid,
            self.rule.attach(rstate),
            ent_coef.to(self.device),
            advance,
        )
        return terms, RuleState(state.detach(), self.rule.advance(rstate.traces, records, keeps))

    def chunk_loss(
        self,
        obs: Observation,
        prev_actions: Tensor,
        prev_rewards: Tensor,
        episode_starts: Tensor,
        actions: Tensor,
        old_log_probs: Tensor,
        advantages: Tensor,
        returns: Tensor,
        valid: Tensor,
        state: Tensor,
        ent_coef: Tensor,
        record: bool,
    ) -> tuple[LossTerms, Tensor, list[Any], list[Tensor | None]]:
        """Encoder, the core over the chunk from ``state``, heads and loss: the autograd part of a
        minibatch, which ``cfg.compile`` compiles. Fields are (M, b, ...); returns the loss terms
        and the rule's ``run`` outputs (end state, records for the trace advance)."""
        m, b = episode_starts.shape
        flat = lambda t: t.flatten(0, 1)  # noqa: E731  (M, b, ...) -> (M*b, ...)
        x = self.agent.core_input(
            map_obs(flat, obs), flat(prev_actions), flat(prev_rewards), flat(episode_starts)
        ).view(m, b, -1)
        outs, state, records, keeps = self.rule.run(x, state, episode_starts, record)
        dist, value = self.agent.heads(outs)
        terms = actor_critic_loss(
            dist.log_prob(actions),
            dist.entropy(),
            value,
            old_log_probs,
            advantages,
            returns,
            valid,
            self.cfg.vf_coef,
            ent_coef,
            self.cfg.clip_coef if self.cfg.update == "ppo" else None,
        )
        return terms, state, records, keeps

    # --- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: weights, optimiser, rule state and traces, counters, RNG,
        and the normalisation statistics (``normalization``: ``obs`` by part, "" for a Box
        observation; ``reward``), which evaluation applies as training did."""
        return {
            "agent": self.agent.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rule_state": rule_state_dict(self.rstate),
            "counters": {
                "global_step": self.global_step,
                "updates": self.updates,
                "skipped_updates": self.skipped_updates,
            },
            "rng": rng_state(self.device),
            "normalization": self.normalization_state(),
        }

    def normalization_state(self) -> dict[str, Any]:
        """The normalisation statistics; empty when neither option is on."""
        out: dict[str, Any] = {}
        if self.obs_stats:
            out["obs"] = {key: stats.state_dict() for key, stats in self.obs_stats.items()}
        if self.reward_scaler is not None:
            out["reward"] = self.reward_scaler.state_dict()
        return out

    def load_normalization_state(self, saved: dict[str, Any]) -> None:
        """Restore ``normalization_state()``; the saved statistics must be those this learner keeps."""
        mine = {"obs": sorted(self.obs_stats), "reward": self.reward_scaler is not None}
        theirs = {"obs": sorted(saved.get("obs", {})), "reward": "reward" in saved}
        if mine != theirs:
            raise ValueError(
                f"the checkpoint's normalisation statistics {theirs} are not this learner's {mine}: "
                "resume with the algo.normalize_obs / algo.normalize_reward the run was trained with"
            )
        for key, stats in self.obs_stats.items():
            stats.load_state_dict(saved["obs"][key])
        if self.reward_scaler is not None:
            self.reward_scaler.load_state_dict(saved["reward"])

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.load_normalization_state(sd.get("normalization", {}))
        self.agent.load_state_dict(sd["agent"])
        self.optimizer.load_state_dict(sd["optimizer"])
        self.rstate = load_rule_state(sd["rule_state"], self.device)
        self.global_step = int(sd["counters"]["global_step"])
        self.updates = int(sd["counters"]["updates"])
        self.skipped_updates = int(sd["counters"]["skipped_updates"])
        restore_rng_state(sd["rng"], self.device)
