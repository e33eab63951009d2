"""One training run over K processes (``torchrun``): data-parallel learners, one per rank.

    torchrun --standalone --nproc_per_node=K train.py num_envs=B ...            # one machine
    torchrun --nnodes=2 --nproc_per_node=K --rdzv_backend=c10d \\
        --rdzv_endpoint=HOST:29500 --rdzv_id=JOB train.py num_envs=B ...           # every node

Distribution wraps the learner and does not fork it. :class:`DataParallel` is this process's
place in the run; in one process (no ``WORLD_SIZE`` > 1 in the environment) it is the identity
and torch.distributed is never touched, so a single-process run is bit for bit what it was.

What each rank does
    * Steps ``B / K`` of the B environments (K must divide ``num_envs``). Rank r's envs are seeded
      ``seed + r·B/K``: vector envs seed sub-env i with ``seed + i``, so they get exactly the seeds
      envs ``[r·B/K, (r+1)·B/K)`` get in a one-process run (SyncVectorEnv, AsyncVectorEnv, the ALE's
      vectoriser). The recall task draws all its rows from one generator, so there rank r's
      episodes are simply a different stream.
    * Starts from rank 0's parameters (broadcast) and samples actions from its own torch seed.
    * Keeps its rule state (core state and traces) to itself: it is per environment.

The update is the one-process update over all B environments, exactly
    Every loss term is a mean over the valid steps of the minibatch, L_r = S_r / c_r on rank r,
    and one process's loss is Σ_r S_r / C with C = Σ_r c_r. So the gradients are not plainly
    averaged: each rank's gradient (carried RTRL/KF/UORO term included: the rule adds it to
    ``.grad`` inside ``backward()``) is weighted by its count, ``∇ = Σ_r c_r ∇L_r / C``, with c_r
    riding in the same all-reduce as the gradients. Advantages are normalised with the mean and
    std of the whole minibatch across ranks. Both hooks run between ``backward()`` and gradient
    clipping, so the clip, the finiteness check and the optimiser step see the same global
    gradient on every rank, and the parameters stay identical without being re-broadcast. In
    float64, one A2C update on 2 ranks × 8 envs equals one on 1 rank × 16 envs to ~1e-15
    (tests/test_distributed.py).

PPO minibatches
    Each rank permutes its own B/K environments and cuts them into the same number of
    minibatches; minibatch j of the run is the union of every rank's j-th part (B / num_minibatches
    environments, B / (K · num_minibatches) from each rank). All ranks step together: one
    all-reduce per minibatch step, the same number of optimiser steps per update. K · num_minibatches
    must not exceed B, else a rank would have fewer environments than minibatches (an error says so).

Why an explicit all-reduce, not DistributedDataParallel
    DDP attaches its reducer to ``module.__call__``: it expects one forward through the wrapped
    module per backward. The learner's loss is built from separate calls (encoder, the rule's
    unroll, which reaches the core's parameters through ``torch.func.functional_call`` and a custom
    autograd node for the carried term, then the heads), PPO runs several forward/backward passes
    per update, and exactness needs each rank's gradient weighted by its valid-step count, which
    DDP's equal-weight average does not give (a communication hook could, on top of
    ``find_unused_parameters`` and ``no_sync`` bookkeeping). One flat all-reduce per optimiser step
    is a few lines, sees exactly what ``backward()`` left in ``.grad``, and costs one collective.
    DDP's one advantage, overlapping gradient buckets with the backward pass, does not arise here:
    its default 25 MB bucket holds these models' whole gradient (45k parameters for the recall
    agent, 2.15M for the Atari one), so it too would reduce once, after the backward. Measured
    on the 2-core CPU with gloo, 2 ranks: one flat all-reduce takes 1.5 ms (recall) and 9.4 ms
    (Atari); ``python -m benchmarks.scaling`` prints its share of the update.

Logging and checkpoints
    Rank 0 alone writes TensorBoard, the config, checkpoints and the summary. Once per update one
    small all-reduce sums the stop flags (SIGINT/SIGTERM on any rank stops every rank after the
    same update), the episode statistics (pooled over every rank's last 100 episodes) and the
    update's metrics (averaged). ``global_step`` counts every rank's steps: K × each rank's.
    A checkpoint holds rank 0's learner state plus every rank's rule state and RNG under
    ``"ranks"``; it resumes with the same K only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from agents.learner import Learner

__all__ = ["DataParallel", "GatheredLog", "normalize_across"]


@dataclass
class GatheredLog:
    """One update's log over all ranks."""

    stop_signal: int | None  # the signal that some rank was sent (the highest number), else None
    episodes: int  # finished episodes the means are over (each rank keeps its last 100)
    ep_rew_mean: float  # mean raw return over them (nan if none)
    ep_len_mean: float
    metrics: dict[str, float]  # the update's metrics, averaged over ranks


def normalize_across(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """``agents.losses.normalize`` over the union of every rank's masked entries.

    Two-pass moments (sum and count, then the sum of squared deviations), all-reduced, so the
    result equals normalising the gathered minibatch in one process.
    """
    sums = torch.stack([torch.where(mask, x, 0).sum(), mask.sum().to(x.dtype)])
    dist.all_reduce(sums)
    count = sums[1].clamp_min(1)
    mean = sums[0] / count
    sq = torch.where(mask, (x - mean) ** 2, 0).sum()
    dist.all_reduce(sq)
    return (x - mean) / ((sq / count).sqrt() + eps)


class DataParallel:
    """This process's rank in a data-parallel run (the identity when ``world_size`` is 1).

    Build it with :meth:`from_env` at the entry, call :meth:`attach` on the learner, and
    :meth:`close` at the end. Attributes: ``rank``, ``world_size``, ``local_rank`` (the GPU
    index on this node), ``device`` (``cuda:local_rank`` for a CUDA run).
    """

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0, device: Any = "cpu"):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.device = torch.device(device)
        self._params: list[Tensor] = []

    @classmethod
    def from_env(cls, device: torch.device) -> DataParallel:
        """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
        ``MASTER_ADDR``/``PORT``): nccl for a CUDA device, each rank on GPU ``LOCAL_RANK``;
        gloo on CPU. Without torchrun (or with one process) nothing is initialised."""
        if not cls.launched():
            return cls(device=device)
        world_size = int(os.environ["WORLD_SIZE"])
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            if local_rank >= torch.cuda.device_count():
                raise ValueError(
                    f"LOCAL_RANK {local_rank} but this node has {torch.cuda.device_count()} CUDA "
                    "device(s): start at most that many processes per node (--nproc_per_node)"
                )
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            # torch.distributed.nn's functions default to ``group=group.WORLD``, bound when it is
            # first imported (a first optimiser imports it, through torch._dynamo). Imported after
            # init, they hold the group (gloo's threads, NCCL's communicators) past
            # destroy_process_group; gloo's threads then die at interpreter exit, which now and
            # then aborts the rank (SIGABRT after a clean run). The alias is needed: a plain
            # ``import torch.distributed.nn`` would make ``torch`` a local name of this function.
            import torch.distributed.nn as _bind_world_defaults_before_init  # noqa: F401

            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(rank, world_size, local_rank, device)

    @staticmethod
    def launched() -> bool:
        """Whether this process is one of several (torchrun set ``WORLD_SIZE`` > 1)."""
        return int(os.environ.get("WORLD_SIZE", "1")) > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes logs, config, checkpoints and the summary."""
        return self.rank == 0

    def close(self) -> None:
        """Leave the process group (after a last barrier, so no rank leaves one still in use)."""
        if self.world_size > 1 and dist.is_initialized():
            # nccl: name this rank's GPU, or it guesses (and warns)
            dist.barrier(device_ids=[self.device.index] if self.device.type == "cuda" else None)
            dist.destroy_process_group()

    # --- environments and seeds ---------------------------------------------------------------
    def local_envs(self, num_envs: int) -> int:
        """This rank's share B / K of the ``num_envs`` environments."""
        if num_envs % self.world_size:
            raise ValueError(
                f"num_envs={num_envs} cannot be split over {self.world_size} processes: each rank "
                f"steps an equal share, so num_envs must be a multiple of {self.world_size} "
                f"(e.g. num_envs={self.world_size * max(1, round(num_envs / self.world_size))})"
            )
        return num_envs // self.world_size

    def env_seed(self, seed: int, num_envs: int) -> int:
        """The seed of this rank's vector env: its first sub-env's seed in a one-process run."""
        return seed + self.rank * self.local_envs(num_envs)

    def seed_rank(self, seed: int) -> None:
        """Give this rank its own torch stream for sampling (after identical initialisation)."""
        if self.world_size > 1:
            torch.manual_seed(int(np.random.SeedSequence([seed, self.rank]).generate_state(1)[0]))

    def check_minibatches(self, num_envs: int, update: str, num_minibatches: int) -> None:
        """PPO: every rank must cut its share into ``num_minibatches`` parts of at least one env."""
        local = self.local_envs(num_envs)
        if self.world_size > 1 and update == "ppo" and local < num_minibatches:
            raise ValueError(
                f"PPO over {self.world_size} processes cuts each rank's {local} envs into "
                f"num_minibatches={num_minibatches} parts: use num_envs >= "
                f"{self.world_size * num_minibatches} or algo.num_minibatches <= {local}"
            )

    # --- the learner's hooks ------------------------------------------------------------------
    def attach(self, learner: Learner) -> None:
        """Start from rank 0's parameters and make the learner's update global (gradients
        weighted by valid-step counts, advantages normalised across ranks). No-op in one process."""
        if self.world_size == 1:
            return
        if learner.obs_stats or learner.reward_scaler is not None:
            raise ValueError(
                "algo.normalize_obs / algo.normalize_reward keep running statistics of one "
                "process's envs, which the ranks do not share: train without torchrun, or turn them off"
            )
        self._params = list(learner.agent.parameters())
        with torch.no_grad():
            for p in self._params:
                dist.broadcast(p, src=0)
        learner.normalize_advantages = normalize_across
        learner.average_gradients = self.average_gradients

    def average_gradients(self, valid: Tensor) -> None:
        """``.grad`` ← Σ_r c_r ∇L_r / Σ_r c_r, c_r = valid.sum() of rank r's minibatch; one flat
        all-reduce. Every rank has gradients for the same parameters (the same graph)."""
        grads = [p.grad for p in self._params if p.grad is not None]
        count = valid.sum().to(grads[0].dtype)  # a device tensor: no host sync
        flat = torch.cat([*(g.reshape(-1) for g in grads), count.reshape(1)])
        flat[:-1] *= count
        dist.all_reduce(flat)
        flat[:-1] /= flat[-1].clamp_min(1)
        for g, part in zip(grads, flat[:-1].split([g.numel() for g in grads]), strict=True):
            g.copy_(part.view_as(g))

    # --- logging --------------------------------------------------------------------------------
    def global_step(self, learner: Learner) -> int:
        """Environment steps of the whole run: every rank steps the same number."""
        return learner.global_step * self.world_size

    def gather_log(self, learner: Learner, metrics: Mapping[str, float], signal: int | None) -> GatheredLog:
        """Stop signals, episode statistics and metrics over all ranks, in one all-reduce."""
        returns, lengths = learner.episode_returns, learner.episode_lengths
        if self.world_size == 1:
            return GatheredLog(signal, len(returns), _mean(returns), _mean(lengths), dict(metrics))
        keys = sorted(metrics)
        local = [float(signal or 0), sum(returns), len(returns), sum(lengths), *(metrics[k] for k in keys)]
        buf = torch.tensor(local, dtype=torch.float64, device=self.device)
        dist.all_reduce(buf)
        total = buf.tolist()  # one sync per update, outside the rollout
        n = int(total[2])
        ret, length = (total[1] / n, total[3] / n) if n else (float("nan"), float("nan"))
        avg = {k: v / self.world_size for k, v in zip(keys, total[4:], strict=True)}
        # a sum of signal numbers names none of them: agree on one (every rank takes this branch)
        stop = self.agree_signal(signal) if total[0] > 0 else None
        return GatheredLog(stop, n, ret, length, avg)

    def agree_signal(self, signal: int | None) -> int | None:
        """The highest signal number any rank was sent, on every rank; None if none was."""
        if self.world_size == 1:
            return signal
        buf = torch.tensor([signal or 0], device=self.device)
        dist.all_reduce(buf, op=dist.ReduceOp.MAX)
        return int(buf.item()) or None

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (a picklable object)."""
        if self.world_size == 1:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    # --- checkpoints ------------------------------------------------------------------------------
    def checkpoint(self, learner: Learner) -> dict[str, Any] | None:
        """The learner's state for a checkpoint, on rank 0 (None on the others).

        Several ranks: rank 0's state with ``counters.global_step`` the run's total, and
        ``"ranks"``: each rank's rule state and RNG state, in rank order.
        """
        sd = learner.state_dict()
        if self.world_size == 1:
            return sd
        mine = {"rule_state": _to_cpu(sd["rule_state"]), "rng": _to_cpu(sd["rng"])}
        parts: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(mine, parts, dst=0)
        if not self.is_main:
            return None
        counters = {**sd["counters"], "global_step": self.global_step(learner)}
        return {**sd, "counters": counters, "ranks": parts}

    def load(self, learner: Learner, payload: Mapping[str, Any] | None) -> None:
        """Restore this rank's part of a checkpoint (``payload`` is only needed on rank 0: it is
        broadcast, so other nodes need no copy of the file). Resuming needs the same K."""
        payload = self.broadcast(payload)
        saved = len(payload.get("ranks", [None]))
        if saved != self.world_size:
            raise ValueError(
                f"the checkpoint was written by {saved} process(es) and this run has "
                f"{self.world_size}: each rank's rule state belongs to its own environments, so "
                f"resume with the same number (torchrun --nproc_per_node... = {saved} in all)"
            )
        if self.world_size > 1:
            counters = {**payload["counters"], "global_step": payload["counters"]["global_step"] // saved}
            payload = {**payload, **payload["ranks"][self.rank], "counters": counters}
        learner.load_state_dict(dict(payload))


def _mean(xs: Sequence[float]) -> float:
    return float(np.mean(xs)) if len(xs) else float("nan")


def _to_cpu(tree: Any) -> Any:
    """Tensors of a nested dict/list moved to the CPU (gathered objects are unpickled on rank 0)."""
    if isinstance(tree, Tensor):
        return tree.cpu()
    if isinstance(tree, dict):
        return {k: _to_cpu(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_to_cpu(v) for v in tree]
    return tree
