"""The floor benchmark (benchmarks/floor.py): its FLOP count against a hand count on a tiny agent."""

from __future__ import annotations

import torch

from benchmarks.common import build_learner
from benchmarks.floor import ADAM_FLOPS_PER_PARAM, count_iteration, replay_seconds

B, M, H, N, CUES, GROUPS, EPOCHS = 4, 3, 5, 8, 3, 2, 2


def tiny(rule: str = "rtrl"):
    learner, _ = build_learner(
        [
            f"algo={rule}",
            f"num_envs={B}",
            f"algo.rollout_len={M}",
            f"algo.num_minibatches={GROUPS}",
            f"algo.num_epochs={EPOCHS}",
            f"core.hidden_size={N}",
            f"policy.mlp_hidden=[{H}]",
            f"env.num_cues={CUES}",
        ]
    )
    return learner


def test_flop_count_matches_a_hand_count() -> None:
    learner = tiny()
    obs, actions = CUES + 2, CUES  # recall: [cue one-hot, is_query, is_delay]; name a cue
    d = H + actions + 2  # core input: encoder, previous action one-hot, previous reward, start flag
    # one env step of eLSTM's forward: encoder, F and Z, the readout W_o [x; c], actor and critic
    step = 2 * (obs * H + 2 * d * N + (d + N) * N + N * actions + N)
    count = count_iteration(learner)
    assert count.flops["act"] == (M + 1) * B * step  # M steps and the bootstrap value's step
    assert count.flops["fwd"] == EPOCHS * M * B * step  # every minibatch, every epoch
    # the trace advance: (b, N, M) @ (b, M, d) for F and for Z, once per minibatch
    assert count.flops["trace"] == 2 * 2 * B * N * M * d
    n_params = sum(p.numel() for p in learner.agent.parameters())
    assert count.flops["opt"] == EPOCHS * GROUPS * ADAM_FLOPS_PER_PARAM * n_params
    assert count.flops["bwd"] > count.flops["fwd"]  # backward: the input and weight gradients


def test_counting_leaves_the_learner_as_it_was() -> None:
    learner = tiny()
    before = {k: v.clone() for k, v in learner.agent.state_dict().items()}
    traces = {k: v.clone() for k, v in learner.rstate.traces.items()}
    count_iteration(learner)
    assert all(torch.equal(before[k], v) for k, v in learner.agent.state_dict().items())
    assert all(torch.equal(traces[k], v) for k, v in learner.rstate.traces.items())
    assert learner.global_step == 0


def test_tbptt_has_no_trace_flops_and_the_replay_runs() -> None:
    count = count_iteration(tiny("tbptt"))
    assert count.flops["trace"] == 0
    assert replay_seconds(count.calls, torch.device("cpu"), repeats=1) > 0
