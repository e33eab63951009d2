"""GAE(λ), the masked means and the actor-critic loss, against answers known in closed form."""

import math

import pytest
import torch

from agents.losses import actor_critic_loss, gae, masked_mean, normalize


def col(*xs: float) -> torch.Tensor:
    """A one-env rollout, (M, 1), float64."""
    return torch.tensor(xs, dtype=torch.float64)[:, None]


#: GAE's semantics are checked to float32 accuracy, so that a wrong term (errors of order 0.1)
#: fails them apart from the float64 precision loss that test_gae_keeps_float64_precision flags.
SEMANTIC_ATOL = 1e-6


def flags(m: int, b: int, at: tuple[tuple[int, int], ...] = ()) -> torch.Tensor:
    out = torch.zeros(m, b, dtype=torch.bool)
    for t, row in at:
        out[t, row] = True
    return out


# --- GAE ------------------------------------------------------------------------------------


def test_gae_toy_episode_paying_only_at_the_end():
    # SB3's check: V ≡ 0.5, reward 1 on the last of 4 steps, which terminates; γ = 0.9, λ = 0.8.
    # δ = (−0.05, −0.05, −0.05, 0.5) and A_t = δ_t + 0.72 A_{t+1}. next_value = 100 must be dropped
    # (a wrong bootstrap at a termination would add 90 to A_3).
    rewards, values = col(0, 0, 0, 1), col(0.5, 0.5, 0.5, 0.5)
    term = flags(4, 1, ((3, 0),))
    adv, ret = gae(rewards, values, torch.tensor([100.0], dtype=torch.float64), term, term, 0.9, 0.8)
    torch.testing.assert_close(adv, col(0.074704, 0.1732, 0.31, 0.5), rtol=0, atol=SEMANTIC_ATOL)
    torch.testing.assert_close(ret, col(0.574704, 0.6732, 0.81, 1.0), rtol=0, atol=SEMANTIC_ATOL)


def test_gae_with_lambda_one_gives_monte_carlo_returns():
    # λ = 1 turns GAE into the discounted return minus V: with V ≡ 0 the returns are 0.9^(3−t).
    rewards, values = col(0, 0, 0, 1), col(0, 0, 0, 0)
    term = flags(4, 1, ((3, 0),))
    _, ret = gae(rewards, values, torch.zeros(1, dtype=torch.float64), term, term, 0.9, 1.0)
    torch.testing.assert_close(ret, col(0.729, 0.81, 0.9, 1.0), rtol=0, atol=SEMANTIC_ATOL)


def test_gae_bootstraps_from_next_value_at_the_last_step():
    # No episode end: A_2 = 1 + 0.5·8, then A_t = 1 + 0.5 A_{t+1} (λ = 1, V ≡ 0). Catches a
    # missing or misplaced next_value (e.g. values[-1] used instead).
    rewards, values = col(1, 1, 1), col(0, 0, 0)
    none = flags(3, 1)
    adv, _ = gae(rewards, values, torch.tensor([8.0], dtype=torch.float64), none, none, 0.5, 1.0)
    torch.testing.assert_close(adv, col(2.75, 3.5, 5.0), rtol=0, atol=0)


def test_gae_termination_truncation_and_no_end():
    # Three envs, the same rewards (1) and values (1, 2, 3, 4), next_value 5, γ = λ = 0.5, and at
    # step 1: env 0 terminates, env 1 is truncated (ended, not terminated), env 2 goes on.
    #   δ_0 = 1 + 0.5·2 − 1 = 1,  δ_2 = 1 + 0.5·4 − 3 = 0,  δ_3 = 1 + 0.5·5 − 4 = −0.5
    #   δ_1 = 1 − 2 = −1 (terminated: no bootstrap)  or  1 + 0.5·3 − 2 = 0.5 (bootstraps V_2)
    # The trace stops at the ended step: A_1 = δ_1 for envs 0 and 1; A_0 = δ_0 + 0.25 A_1 for all.
    rewards = torch.ones(4, 3, dtype=torch.float64)
    values = col(1, 2, 3, 4).expand(4, 3)
    term = flags(4, 3, ((1, 0),))
    ended = flags(4, 3, ((1, 0), (1, 1)))
    adv, ret = gae(rewards, values, torch.full((3,), 5.0, dtype=torch.float64), term, ended, 0.5, 0.5)
    want = torch.tensor(
        [
            [0.75, 1.125, 1.1171875],
            [-1.0, 0.5, 0.46875],
            [-0.125, -0.125, -0.125],
            [-0.5, -0.5, -0.5],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(adv, want, rtol=0, atol=SEMANTIC_ATOL)
    torch.testing.assert_close(ret, want + values, rtol=0, atol=SEMANTIC_ATOL)


def test_gae_matches_the_closed_form_sum():
    # A_t = Σ_k (γλ)^k δ_{t+k}, summed until the first ended step (inclusive), written as a plain
    # double loop; random flags put ends at rollout edges and back to back.
    g = torch.Generator().manual_seed(0)
    m, b, gamma, lam = 9, 5, 0.97, 0.9
    rewards = torch.randn(m, b, generator=g, dtype=torch.float64)
    values = torch.randn(m, b, generator=g, dtype=torch.float64)
    next_value = torch.randn(b, generator=g, dtype=torch.float64)
    ended = torch.rand(m, b, generator=g) < 0.3
    term = ended & (torch.rand(m, b, generator=g) < 0.5)
    assert (ended & ~term).any() and term.any()  # both kinds of end occur
    v_next = torch.cat([values[1:], next_value[None]])
    delta = rewards + gamma * v_next * (~term) - values
    want = torch.zeros(m, b, dtype=torch.float64)
    for j in range(b):
        for t in range(m):
            for k in range(t, m):
                want[t, j] += (gamma * lam) ** (k - t) * delta[k, j]
                if ended[k, j]:
                    break
    adv, ret = gae(rewards, values, next_value, term, ended, gamma, lam)
    torch.testing.assert_close(adv, want, rtol=0, atol=SEMANTIC_ATOL)
    torch.testing.assert_close(ret, want + values, rtol=0, atol=SEMANTIC_ATOL)


@pytest.mark.parametrize("reward_dtype", [torch.float64, torch.float32], ids=["f64_rewards", "f32_rewards"])
def test_gae_keeps_float64_precision(reward_dtype):
    # A float64 agent's GAE must be float64-exact: the (1 − flag) masks must not be made float32
    # (γλ·float32(1) rounds 0.72 to float32), nor the advantages allocated like float32 rewards
    # (the learner records rewards as float32 whatever the agent's dtype).
    rewards, values = col(0, 0, 0, 1).to(reward_dtype), col(0.5, 0.5, 0.5, 0.5)
    term = flags(4, 1, ((3, 0),))
    adv, _ = gae(rewards, values, torch.zeros(1, dtype=torch.float64), term, term, 0.9, 0.8)
    assert adv.dtype == torch.float64
    torch.testing.assert_close(adv, col(0.074704, 0.1732, 0.31, 0.5), rtol=0, atol=1e-15)


# --- masked means ---------------------------------------------------------------------------


def test_masked_mean_of_nothing_is_zero():
    # An all-invalid minibatch must give 0, not 0/0.
    assert masked_mean(torch.ones(3), torch.zeros(3, dtype=torch.bool)).item() == 0.0


@pytest.mark.parametrize("fill", [1e30, math.inf, math.nan])
def test_normalize_uses_only_masked_entries(fill):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64) * 3 + 2
    mask = torch.rand(6, 4, generator=g) < 0.6
    y = normalize(x.masked_fill(~mask, fill), mask)[mask]
    # zero mean, unit (population) std over the masked entries, whatever the others hold
    assert abs(y.mean().item()) < 1e-12
    assert abs(y.std(unbiased=False).item() - 1) < 1e-7
    torch.testing.assert_close(y, normalize(x[mask], torch.ones_like(x[mask], dtype=torch.bool)))


# --- actor-critic loss ----------------------------------------------------------------------


def loss_inputs(seed: int = 0, shape=(5, 3)):
    g = torch.Generator().manual_seed(seed)
    r = lambda: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    valid = torch.rand(*shape, generator=g) < 0.7
    valid[0, 0], valid[1, 0] = True, False  # both kinds present whatever the seed
    return {
        "log_prob": r() - 1,
        "entropy": r().abs(),
        "value": r(),
        "old_log_prob": r() - 1,
        "advantages": r(),
        "returns": r(),
        "valid": valid,
    }


VF, ENT = 0.5, 0.01
DIFFERENTIABLE = ("log_prob", "entropy", "value")


@pytest.mark.parametrize("fill", [1e30, math.inf, math.nan])
def test_a2c_loss_is_the_mean_over_valid_steps(fill):
    # L = −mean(A log π) + c_v ½ mean((V − R)²) − c_e mean(H), over valid entries only; the invalid
    # entries (NEXT_STEP reset steps) hold garbage that must change neither the loss nor the
    # gradient (a plain mean, or a mask applied by multiplication to inf/NaN, would leak it).
    inp = loss_inputs()
    valid = inp["valid"]
    clean = {k: v.clone().requires_grad_(k in DIFFERENTIABLE) for k, v in inp.items()}
    dirty = {
        k: (v if k == "valid" else v.masked_fill(~valid, fill)).clone().requires_grad_(k in DIFFERENTIABLE)
        for k, v in inp.items()
    }
    v = {k: t[valid] for k, t in inp.items()}
    want = -(v["advantages"] * v["log_prob"]).mean()
    want = want + VF * 0.5 * ((v["value"] - v["returns"]) ** 2).mean() - ENT * v["entropy"].mean()
    for args in (clean, dirty):
        terms = actor_critic_loss(**args, vf_coef=VF, ent_coef=ENT)
        torch.testing.assert_close(terms.loss, want, rtol=0, atol=1e-14)
        terms.loss.backward()
        n = valid.sum()
        # d/d log π = −A/n, d/dV = c_v (V − R)/n, d/dH = −c_e/n on valid entries; 0 elsewhere
        expected = {
            "log_prob": -inp["advantages"] / n,
            "value": VF * (inp["value"] - inp["returns"]) / n,
            "entropy": torch.full_like(inp["entropy"], -ENT) / n,
        }
        for k in DIFFERENTIABLE:
            torch.testing.assert_close(args[k].grad, expected[k] * valid, rtol=0, atol=1e-15)


def test_ppo_clipping_stops_the_gradient_outside_the_trust_region():
    # ε = 0.2. The clipped surrogate −min(ρA, clip(ρ)A) is flat in log π where the clip binds in
    # the advantage's favour (ρ > 1.2 with A > 0, ρ < 0.8 with A < 0) and keeps the unclipped
    # gradient −ρA where it does not (the pessimistic side) or ρ is inside 1 ± ε.
    ratio = torch.tensor([1.5, 0.5, 0.5, 1.5, 1.1, 0.9], dtype=torch.float64)
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0, 2.0, -2.0], dtype=torch.float64)
    old = torch.linspace(-2, -0.5, 6, dtype=torch.float64)
    log_prob = (old + ratio.log()).requires_grad_()
    zeros, valid = torch.zeros(6, dtype=torch.float64), torch.ones(6, dtype=torch.bool)
    terms = actor_critic_loss(log_prob, zeros, zeros, old, adv, zeros, valid, 0.0, 0.0, clip_coef=0.2)
    terms.loss.backward()
    want_grad = torch.tensor([0.0, -0.5, 0.0, 1.5, -2.2, 1.8], dtype=torch.float64) / 6
    torch.testing.assert_close(log_prob.grad, want_grad, rtol=0, atol=1e-14)
    want_loss = -(1.2 * 1 + 0.5 * 1 + 0.8 * -1 + 1.5 * -1 + 1.1 * 2 + 0.9 * -2) / 6
    torch.testing.assert_close(terms.loss, torch.tensor(want_loss, dtype=torch.float64), rtol=0, atol=1e-14)
    assert terms.clip_fraction.item() == pytest.approx(4 / 6)
    torch.testing.assert_close(terms.approx_kl, ((ratio - 1) - ratio.log()).mean(), rtol=0, atol=1e-15)


def test_ppo_at_ratio_one_is_a2c():
    # On the first epoch π = π_old, so PPO's gradient must equal A2C's (−A ∇log π), valid mask
    # included; catches a sign error or a ratio taken the wrong way round.
    inp = loss_inputs(seed=3)
    grads = []
    for clip in (None, 0.2):
        args = {k: v.clone().requires_grad_(k in DIFFERENTIABLE) for k, v in inp.items()}
        args["old_log_prob"] = inp["log_prob"].clone()
        actor_critic_loss(**args, vf_coef=VF, ent_coef=ENT, clip_coef=clip).loss.backward()
        grads.append([args[k].grad for k in DIFFERENTIABLE])
    for a2c, ppo in zip(*grads, strict=True):
        torch.testing.assert_close(ppo, a2c, rtol=0, atol=1e-15)
