"""The actor-critic learner: its gradients against autograd BPTT, autoreset masking, PPO's traces,
checkpoints, non-finite updates and device placement.

The gradient tests freeze θ (an optimiser that only records gradients) so that exact RTRL over
consecutive rollouts must equal full BPTT over all of them (docs/algorithms.md §2), in float64.
"""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch

from agents.checkpoint import load_checkpoint, save_checkpoint
from agents.learner import Learner, LearnerConfig
from tests.helpers_learner import (
    CARTPOLE,
    RECALL,
    bptt_loss,
    cat_rollouts,
    grads_of,
    make_learner,
    relative_error,
)

#: the relative error allowed between two computations of one exact gradient in float64
EXACT = 1e-8

#: env name -> (config, learner options). Recall: 4-step episodes, all rows in step, one ends on
#: step 3 of rollout 1 and the next spans the rollout boundary (6). CartPole (NEXT_STEP): with this
#: seed two rows end inside rollout 2 (end, masked reset step, start) and the others never do.
ENVS = {
    "recall": (RECALL, {"rollout_len": 6, "num_envs": 3, "seed": 0}),
    "cartpole": (CARTPOLE, {"rollout_len": 8, "num_envs": 4, "seed": 7}),
}

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
    ),
]


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


# gymnasium's env checker on CartPole's unbounded observation space
pytestmark = pytest.mark.filterwarnings("ignore:.*Box observation space:UserWarning")


class RecordGrads(torch.optim.Optimizer):
    """Keeps every step's gradients (by parameter name) and never moves the parameters."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.names = [n for n, _ in module.named_parameters()]
        super().__init__(list(module.parameters()), {"lr": 0.0})
        self.steps: list[dict[str, torch.Tensor]] = []

    def step(self, closure=None):
        params = self.param_groups[0]["params"]
        self.steps.append(
            {n: p.grad.clone() for n, p in zip(self.names, params, strict=True) if p.grad is not None}
        )


def frozen_learner(env: str, core: str, rule: str, **cfg) -> Learner:
    """θ frozen, no gradient clipping."""
    config, options = ENVS[env]
    cfg = {**options, "max_grad_norm": math.inf, **cfg}
    learner = make_learner(config, core, rule, **cfg)
    learner.optimizer = RecordGrads(learner.agent)
    return learner


def run_frozen(learner: Learner, rollouts: int = 2):
    """collect → update, ``rollouts`` times; returns the rollouts and each update's gradients."""
    ros = []
    for _ in range(rollouts):
        ros.append(learner.collect())
        learner.update(ros[-1])
    return ros, learner.optimizer.steps


def core_only(grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The core's gradients. The encoder's legitimately differs from full BPTT after the first
    rollout: the stem is trained by BPTT within the rollout only (policy.py)."""
    return {k: v for k, v in grads.items() if k.startswith("core.")}


def recurrent_only(grads: dict[str, torch.Tensor], learner: Learner) -> dict[str, torch.Tensor]:
    """The gradients of the parameters the state depends on (the core's readout dropped): where
    truncation shows, undiluted by gradients it cannot change."""
    return {k: v for k, v in core_only(grads).items() if k.removeprefix("core.") in learner.rule.params}


def check_rollout_boundary(ros) -> None:
    """The test preconditions: some row carries its state across the boundary, and some row's
    episode ends inside the rollouts, so that resets hit rows mid-chunk."""
    assert (~ros[1].episode_starts[0]).any(), "no row carries its state into rollout 2"
    assert cat_rollouts(ros).episode_starts[1:].any(), "no reset inside the rollouts"


# --- gradients --------------------------------------------------------------------------------

CARRYING = [
    ("recall", "elstm", "rtrl"),
    ("recall", "rtu", "rtrl"),
    ("recall", "elstm_rtu", "rtrl"),
    ("recall", "rhn", "rtrl_dense"),
    ("cartpole", "elstm", "rtrl"),
    ("cartpole", "rhn", "rtrl_dense"),
]


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize(
    ("env", "core", "rule", "norm_adv"),
    [
        *((*c, False) for c in CARRYING),
        ("recall", "elstm", "tbptt", False),
        ("recall", "elstm", "rtrl", True),
    ],
)
def test_first_rollout_gradient_is_bptt(env, core, rule, norm_adv):
    # From a fresh state everything lies inside the rollout: every rule's update must use the full
    # BPTT gradient of the A2C loss, encoder and heads included. Catches a wrong loss, mask,
    # advantage (normalisation included), row selection or input in the learner's re-run of the
    # rollout.
    learner = frozen_learner(env, core, rule, norm_adv=norm_adv)
    ros, steps = run_frozen(learner, rollouts=1)
    want = grads_of(learner.agent, bptt_loss(learner, ros, [1.0]))
    assert relative_error(steps[0], want) < EXACT


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize(("env", "core", "rule"), CARRYING)
def test_rtrl_gradient_is_full_bptt_across_rollouts(env, core, rule):
    # The central claim: with θ frozen, the second update's core gradient, computed from the
    # traces carried out of rollout 1, equals autograd BPTT through both rollouts from the fresh
    # state; so does the sum over both updates (of loss 1 + loss 2). Catches a trace not advanced
    # or advanced with the wrong resets, the carried term dropped, or the state not carried.
    learner = frozen_learner(env, core, rule)
    ros, steps = run_frozen(learner)
    check_rollout_boundary(ros)
    second = core_only(grads_of(learner.agent, bptt_loss(learner, ros, [0.0, 1.0])))
    assert relative_error(core_only(steps[1]), second) < EXACT
    both = core_only(grads_of(learner.agent, bptt_loss(learner, ros, [1.0, 1.0])))
    summed = {k: steps[0][k] + steps[1][k] for k in both}
    assert relative_error(summed, both) < EXACT


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("env", ["recall", "cartpole"])
def test_tbptt_gradient_is_truncated_across_rollouts(env):
    # TBPTT's second update is BPTT with the state cut at the rollout boundary, and, since some
    # row's dependency crosses the boundary, measurably not full BPTT (the truncation bias).
    learner = frozen_learner(env, "elstm", "tbptt")
    ros, steps = run_frozen(learner)
    check_rollout_boundary(ros)
    got = core_only(steps[1])
    cut = core_only(grads_of(learner.agent, bptt_loss(learner, ros, [0.0, 1.0], truncate=True)))
    assert relative_error(got, cut) < EXACT
    full = core_only(grads_of(learner.agent, bptt_loss(learner, ros, [0.0, 1.0])))
    assert relative_error(recurrent_only(got, learner), recurrent_only(full, learner)) > 1e-3


# --- PPO and the traces -----------------------------------------------------------------------


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize(("core", "rule"), [("elstm", "rtrl"), ("rhn", "rtrl_dense")])
def test_ppo_epochs_share_the_traces_and_advance_them_once(core, rule):
    # PPO with 3 epochs over singleton minibatches, θ frozen: every epoch sees the same carried
    # traces, so each epoch's summed gradient is the same; afterwards the rule state is exactly
    # one ``unroll(advance=True)`` over the rollout from the state before it. Catches traces
    # carried from one epoch into the next, never advanced, or scattered back to the wrong rows.
    learner = frozen_learner("recall", core, rule, update="ppo", num_epochs=3, num_minibatches=3)
    run_frozen(learner, rollouts=1)  # nonzero traces to start from
    before, agent = learner.rstate, learner.agent
    ro = learner.collect()
    learner.optimizer.steps.clear()
    learner.update(ro)
    steps = learner.optimizer.steps
    assert len(steps) == 9
    epochs = [{k: sum(s[k] for s in steps[i : i + 3]) for k in steps[0]} for i in (0, 3, 6)]
    for other in epochs[1:]:
        assert relative_error(other, epochs[0]) < EXACT
    with torch.no_grad():
        xs = torch.stack(
            [agent.core_input(*(f[t] for f in ro[:4])) for t in range(ro.rewards.shape[0])]
        )  # ro[:4] = obs, prev_actions, prev_rewards, episode_starts; xs: (M, B, D)
        _, want = learner.rule.unroll(xs, before, ro.episode_starts, advance=True)
    torch.testing.assert_close(learner.rstate.state, want.state, rtol=1e-12, atol=1e-14)
    assert learner.rstate.traces.keys() == want.traces.keys()
    for k, v in want.traces.items():
        torch.testing.assert_close(learner.rstate.traces[k], v, rtol=1e-12, atol=1e-14)
        assert not torch.allclose(before.traces[k], v)  # the comparison can tell them apart


@pytest.mark.parametrize(
    ("core", "rule"),
    [
        ("elstm", "rtrl"),
        ("rtu", "rtrl"),
        ("elstm_rtu", "rtrl"),
        ("rhn", "rtrl_dense"),
        ("rhn", "kfrtrl"),
        ("elstm", "uoro"),
    ],
)
def test_trace_memory_is_independent_of_rollout_len(core, rule):
    # What the learner carries between rollouts is per environment, not per step: the rule state
    # after a PPO update has the same shapes for M = 4 and M = 32, batch first, and is finite.
    # Catches per-step caches kept in the traces or a lost batch dimension.
    shapes = []
    for m in (4, 32):
        learner = make_learner(RECALL, core, rule, rollout_len=m, num_envs=3, update="ppo", num_minibatches=2)
        learner.update(learner.collect())
        rs = learner.rstate
        for t in (rs.state, *rs.traces.values()):
            assert t.shape[0] == 3 and torch.isfinite(torch.view_as_real(t) if t.is_complex() else t).all()
        init = learner.rule.initial_state(3)
        assert {k: v.shape for k, v in rs.traces.items()} == {k: v.shape for k, v in init.traces.items()}
        shapes.append((rs.state.shape, {k: v.shape for k, v in rs.traces.items()}))
    assert shapes[0] == shapes[1]


# --- autoreset masking ------------------------------------------------------------------------


def test_next_step_autoreset_masks_the_reset_step():
    # gymnasium's NEXT_STEP: the step after an episode's end only resets the env (its action is
    # ignored, reward 0): it must be invalid, and the state must start afresh on the step after
    # it, on the new episode's first observation. Checked over two rollouts joined, so the flags
    # also carry across the boundary.
    learner = make_learner(CARTPOLE, rollout_len=16, num_envs=3, seed=0)
    ro = cat_rollouts([learner.collect(), learner.collect()])
    ended, valid, starts = ro.ended, ro.valid, ro.episode_starts
    assert ended[:-2].any(), "precondition: an episode ends with two steps to spare"
    assert valid[0].all() and starts[0].all() and not starts[1].any()
    assert torch.equal(valid[1:], ~ended[:-1])
    assert torch.equal(starts[2:], ended[:-2])
    # the reset step itself pays nothing and ends nothing
    assert (ro.rewards[~valid] == 0).all() and not ro.ended[~valid].any()


def test_same_step_autoreset_starts_right_after_the_end():
    # SAME_STEP (recall): the ending step already returns the next episode's first observation, so
    # every step is valid and the state resets on the very next step.
    learner = make_learner(RECALL, rollout_len=6, num_envs=3)
    ro = cat_rollouts([learner.collect(), learner.collect()])
    assert ro.ended.any()
    assert ro.valid.all()
    assert ro.episode_starts[0].all()
    assert torch.equal(ro.episode_starts[1:], ro.ended[:-1])


# --- checkpoints ------------------------------------------------------------------------------


def params_of(learner: Learner) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in learner.agent.state_dict().items()}


def assert_same_tree(a, b) -> None:
    """Nested dicts/lists of tensors and numbers, equal exactly."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same_tree(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_tree(x, y)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b.to(a.device))
    else:
        assert a == b


@pytest.mark.parametrize("device", DEVICES)
def test_resume_gives_the_same_update_as_no_interruption(tmp_path, device):
    # Checkpoint between collect and update (PPO, whose minibatch order draws on torch's RNG),
    # then resume in a learner built from another seed: the update must give bit-identical
    # weights, optimiser state, rule state and counters. Catches anything the checkpoint misses
    # (Adam moments or step, traces, RNG, counters). Loaded onto the learner's device, as
    # train.py does.
    device = torch.device(device)
    opts = {"update": "ppo", "num_epochs": 2, "num_minibatches": 3, "lr": 1e-2, "device": device}
    a = make_learner(RECALL, seed=0, **opts)
    for _ in range(2):
        a.update(a.collect())
    ro = a.collect()
    # deep copies: state_dict() shares storage with the live weights and Adam moments
    saved = copy.deepcopy({k: v for k, v in a.state_dict().items() if k != "rng"})
    saved_rng = torch.get_rng_state()
    path = save_checkpoint(a.state_dict(), tmp_path / "checkpoint.pt")
    a.update(ro)

    b = make_learner(RECALL, seed=1, **opts)
    assert not all(torch.equal(v, saved["agent"][k]) for k, v in b.agent.state_dict().items())
    b.load_state_dict(load_checkpoint(path, map_location=device))
    restored = {k: v for k, v in b.state_dict().items() if k != "rng"}
    assert_same_tree(restored, saved)
    assert torch.equal(torch.get_rng_state(), saved_rng)
    b.update(ro)
    assert_same_tree(params_of(b), params_of(a))
    assert_same_tree(b.optimizer.state_dict(), a.optimizer.state_dict())
    assert_same_tree(dict(b.rstate.traces), dict(a.rstate.traces))
    assert torch.equal(b.rstate.state, a.rstate.state)
    assert (b.global_step, b.updates, b.skipped_updates) == (a.global_step, a.updates, a.skipped_updates)


def test_checkpoint_write_is_atomic(tmp_path):
    # A save that fails half-way (a lambda cannot be pickled) must leave the previous checkpoint
    # whole and no temporary file behind.
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"w": torch.arange(3)}, path)
    with pytest.raises(Exception):  # noqa: B017  (pickle's error type varies by version)
        save_checkpoint({"w": torch.zeros(1000), "bad": lambda: 0}, path)
    assert torch.equal(load_checkpoint(path)["w"], torch.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_checkpoint_load_refuses_arbitrary_objects(tmp_path):
    # weights_only loading: a pickled class instance (here a config dataclass) is refused, so a
    # checkpoint cannot run code. Catches weights_only=False.
    path = tmp_path / "checkpoint.pt"
    torch.save({"cfg": LearnerConfig()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


# --- non-finite updates -----------------------------------------------------------------------


@pytest.mark.parametrize(("update", "skips"), [("a2c", 1), ("ppo", 2)])
def test_nan_reward_skips_the_update(update, skips):
    # A NaN reward in env 1 makes its loss NaN: that step must be skipped, never applied. A2C has
    # one step (θ and Adam's state untouched); PPO with singleton minibatches skips env 1's step in
    # each of its 2 epochs and applies the others. Either way the weights and state stay finite.
    learner = make_learner(RECALL, update=update, num_epochs=2, num_minibatches=3, lr=1e-2)
    learner.update(learner.collect())  # Adam's state exists
    ro = learner.collect()
    ro.rewards[2, 1] = math.nan
    before, opt_before = params_of(learner), learner.optimizer.state_dict()
    opt_before = {k: {n: t.clone() for n, t in s.items()} for k, s in opt_before["state"].items()}
    stats = learner.update(ro)
    assert learner.skipped_updates == skips and stats["skipped_updates"] == skips
    after = params_of(learner)
    assert all(torch.isfinite(v).all() for v in after.values())
    assert torch.isfinite(learner.rstate.state).all()
    if update == "a2c":
        assert_same_tree(after, before)
        assert_same_tree(learner.optimizer.state_dict()["state"], opt_before)
    else:
        assert not all(torch.equal(after[k], before[k]) for k in before)
    # a finite rollout then updates as usual
    learner.update(learner.collect())
    assert learner.skipped_updates == skips
    assert not all(torch.equal(params_of(learner)[k], after[k]) for k in after)


@pytest.mark.parametrize(("core", "rule"), [("elstm", "rtrl"), ("rhn", "kfrtrl"), ("gru", "uoro")])
@pytest.mark.parametrize("fill", [math.inf, math.nan])
def test_overflowed_trace_skips_the_next_step_and_resets_its_row(core, rule, fill):
    # Traces are checked only after a skipped step (Rule.reset_nonfinite): an overflowed trace must make
    # the next carried gradient non-finite, so that step is skipped, and its row is then reset.
    learner = make_learner(RECALL, core=core, rule=rule)
    learner.update(learner.collect())
    name = next(iter(learner.rstate.traces))
    learner.rstate.traces[name][1].view(-1)[0] = fill
    before, others = params_of(learner), {k: v[[0, 2]].clone() for k, v in learner.rstate.traces.items()}
    learner.update(learner.collect())
    assert learner.skipped_updates == 1
    assert_same_tree(params_of(learner), before)
    for k, v in learner.rstate.traces.items():
        assert torch.isfinite(torch.view_as_real(v) if v.is_complex() else v).all(), k
        assert not v[1].any(), k  # reset
        assert v[[0, 2]].any() and not torch.equal(v[[0, 2]], others[k]), k  # advanced as usual
    assert not learner.rstate.state[1].any()
    learner.update(learner.collect())  # and training goes on
    assert learner.skipped_updates == 1
    assert not all(torch.equal(params_of(learner)[k], before[k]) for k in before)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_fused_optimizer_takes_the_same_step(optimizer):
    # algo.fused_optimizer only changes how the step is computed (one kernel / multi-tensor ops)
    plain, fused = (make_learner(optimizer=optimizer, fused_optimizer=f) for f in (False, True))
    assert fused.optimizer.defaults["fused" if optimizer == "adam" else "foreach"]
    ro = plain.collect()
    for learner in (plain, fused):
        learner.update(ro)
    after, want = params_of(fused), params_of(plain)
    for k in want:
        torch.testing.assert_close(after[k], want[k], rtol=1e-10, atol=1e-12, msg=k)


def test_entropy_coefficient_goes_linearly_to_its_final_value_over_the_budget():
    # 3 envs x 6 steps: 18 env steps per rollout, a budget of 36
    learner = make_learner(total_steps=36, ent_coef=0.05, ent_coef_final=0.01)
    seen = [learner.update(learner.collect())["ent_coef"] for _ in range(3)]
    assert seen == pytest.approx([0.03, 0.01, 0.01])  # at 18 and 36 steps, then held
    with pytest.raises(ValueError, match="needs the learner's total_steps"):
        make_learner(ent_coef_final=0.0)
    with pytest.raises(ValueError, match="ent_coef_final must be >= 0"):
        LearnerConfig(ent_coef_final=-0.1)


def test_learning_rate_goes_linearly_to_its_final_value_over_the_budget():
    learner = make_learner(total_steps=36, lr=1e-3, lr_final=1e-4)
    seen = [learner.update(learner.collect())["learning_rate"] for _ in range(3)]
    assert seen == pytest.approx([5.5e-4, 1e-4, 1e-4])
    assert learner.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="lr_final needs the learner's total_steps"):
        make_learner(lr_final=0.0)


@pytest.mark.parametrize(
    ("key", "logged", "start", "final"),
    [("lr", "learning_rate", 1e-3, 1e-4), ("ent_coef", "ent_coef", 0.05, 0.01)],
)
def test_schedule_is_held_then_goes_linearly_to_its_final_value_at_the_budget(key, logged, start, final):
    # W = 36 of a budget of 90: held through 36 steps, then linear to the final value at 90, then held
    after = {"lr": "lr_decay_after", "ent_coef": "ent_decay_after"}[key]
    learner = make_learner(total_steps=90, **{key: start, f"{key}_final": final, after: 36})
    seen = [learner.update(learner.collect())[logged] for _ in range(6)]
    step = (start - final) / 3
    assert seen == pytest.approx([start, start, start - step, start - 2 * step, final, final])
    short = make_learner(total_steps=36, **{key: start, f"{key}_final": 0.0, after: 36})  # T <= W
    assert [short.update(short.collect())[logged] for _ in range(3)] == [start] * 3
    to_zero = make_learner(total_steps=72, **{key: start, after: 36})  # final None: to 0
    assert [to_zero.update(to_zero.collect())[logged] for _ in range(4)] == pytest.approx(
        [start, start, start / 2, 0.0]
    )
    with pytest.raises(ValueError, match=f"{after} needs the learner's total_steps"):
        make_learner(**{after: 36})
    with pytest.raises(ValueError, match=f"{after} must be >= 1"):
        LearnerConfig(**{after: 0})


def assert_same_step_as_constant(scheduled: Learner, constant: Learner, other: Learner) -> None:
    """One update of ``scheduled`` on its first rollout equals ``constant``'s on the same rollout
    (float64-tight), and ``other``'s (another value) differs: the comparison can fail."""
    ro = scheduled.collect()
    constant.global_step = scheduled.global_step
    for learner in (scheduled, constant, other):
        learner.update(ro)
    after, want = params_of(scheduled), params_of(constant)
    for k in want:
        torch.testing.assert_close(after[k], want[k], rtol=1e-12, atol=1e-14, msg=k)
    assert any(not torch.equal(params_of(other)[k], want[k]) for k in want)


def test_decayed_learning_rate_takes_the_step_of_that_constant_rate():
    # 18 steps: halfway from W = 9 to T = 27, lr / 2; held until 18, the other keeps lr
    assert_same_step_as_constant(
        make_learner(total_steps=27, lr=1e-3, lr_decay_after=9),
        make_learner(lr=5e-4),
        make_learner(total_steps=27, lr=1e-3, lr_decay_after=18),
    )


def test_scheduled_entropy_takes_the_step_of_that_constant_coefficient():
    # 18 of 36 steps: the schedule is at 0.03
    assert_same_step_as_constant(
        make_learner(total_steps=36, ent_coef=0.05, ent_coef_final=0.01),
        make_learner(ent_coef=0.03),
        make_learner(ent_coef=0.05),
    )


def test_decayed_entropy_takes_the_step_of_that_constant_coefficient():
    # 18 steps: halfway from W = 9 to T = 27, ent_coef / 2; held until 18, the other keeps 0.05
    assert_same_step_as_constant(
        make_learner(total_steps=27, ent_coef=0.05, ent_decay_after=9),
        make_learner(ent_coef=0.025),
        make_learner(total_steps=27, ent_coef=0.05, ent_decay_after=18),
    )


# --- dtypes and devices -----------------------------------------------------------------------


@pytest.mark.usefixtures("float64")
def test_float64_agent_collects():
    # A float64 agent (the dtype of the gradient checks) must run as is: the encoder casts
    # observations to its own dtype, not to float32.
    learner = make_learner(RECALL)
    ro = learner.collect()
    assert ro.values.dtype == torch.float64


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("core", "rule"),
    [("elstm", "rtrl"), ("rtu", "rtrl"), ("elstm_rtu", "rtrl"), ("rhn", "kfrtrl"), ("elstm", "uoro")],
)
def test_rule_state_and_rollout_live_on_the_core_device(device, core, rule):
    # Everything the learner makes, given an explicit device, is on it, and the rule state keeps
    # the core's dtype (complex of it for RTU's traces) through collect and update. Catches a
    # tensor built on the default device or dtype.
    device = torch.device(device)
    learner = make_learner(RECALL, core, rule, device=device, update="ppo", num_minibatches=2)
    param = next(learner.agent.core.parameters())
    assert param.device.type == device.type and param.dtype == torch.float64

    def check(rstate):
        for t in (rstate.state, *rstate.traces.values()):
            assert t.device == param.device
            assert (t.real if t.is_complex() else t).dtype == param.dtype

    check(learner.rstate)
    ro = learner.collect()
    for name, t in ro._asdict().items():
        assert t.device == param.device, name
    assert ro.values.dtype == ro.log_probs.dtype == torch.float64
    learner.update(ro)
    check(learner.rstate)
    assert all(p.device == param.device for p in learner.agent.parameters())


def test_compiled_minibatch_takes_the_same_step_without_graph_breaks(monkeypatch):
    # algo.compile wraps the minibatch's forward and loss in torch.compile; dynamo's "eager"
    # backend keeps the traced ops as they are, so the step must equal the plain one, and the
    # whole chunk (encoder, core steps with the carried state, heads, loss) must be one graph.
    import functools

    import torch._dynamo

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    plain, compiled = (make_learner(update="ppo", num_envs=4, compile=c) for c in (False, True))
    ro = plain.collect()
    for learner in (plain, compiled):
        torch.manual_seed(1)  # the same minibatches
        learner.update(ro)
    after, want = params_of(compiled), params_of(plain)
    for k in want:
        torch.testing.assert_close(after[k], want[k], rtol=1e-6, atol=1e-7, msg=k)
    for k, v in plain.rstate.traces.items():
        torch.testing.assert_close(compiled.rstate.traces[k], v, rtol=1e-6, atol=1e-7, msg=k)
    assert not torch._dynamo.utils.counters["graph_break"]
    assert compiled._chunk_loss is not compiled.chunk_loss


@pytest.mark.parametrize(("env", "core"), [(RECALL, "elstm"), (CARTPOLE, "rtu")], ids=["recall", "cartpole"])
def test_acting_without_learning_carries_the_state_across_rollouts(env, core):
    """Evaluation acts (``act``) without update(), which is what carries the core's state from one
    rollout to the next when learning: the values seen over 60 steps must not depend on how the
    steps are cut into rollouts. (``collect`` alone restarted each rollout from the state the
    previous one started from, wiping the memory every M steps: agents.evaluate's bug until
    2026-12-04.)"""
    seen = {}
    for m in (1, 4, 60):
        learner = make_learner(env=env, core=core, rollout_len=m, seed=3)
        seen[m] = torch.cat([learner.act(greedy=True).values for _ in range(60 // m)])
    torch.testing.assert_close(seen[1], seen[60])
    torch.testing.assert_close(seen[4], seen[60])
    # collect alone differs: the state restarts each rollout (M = 3, across recall's 4-step episodes)
    learner = make_learner(env=env, core=core, rollout_len=3, seed=3)
    restarted = torch.cat([learner.collect(greedy=True).values for _ in range(20)])
    assert not torch.allclose(restarted, seen[60])
