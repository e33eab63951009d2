"""Truncated BPTT: exact within its span, biased beyond it (docs/algorithms.md §7)."""

import pytest

from agents.rules import TBPTT

from .helpers import bptt_grads, make_core, make_episode, relative_errors, rule_grads

STEPS = 24
CORES = ["elstm", "rtu", "elstm_rtu", "rhn2", "lstm", "gru"]


@pytest.mark.parametrize("core_name", CORES)
def test_one_chunk_is_full_bptt(core_name):
    core = make_core(core_name)
    ep = make_episode(core, steps=STEPS)
    errors = relative_errors(rule_grads(TBPTT(core), ep, chunk=STEPS), bptt_grads(core, ep))
    assert max(errors.values()) < 1e-12, errors


@pytest.mark.parametrize("chunk", [1, 5])
@pytest.mark.parametrize("core_name", CORES)
def test_short_chunks_are_truncated_bptt_and_biased(core_name, chunk):
    core = make_core(core_name)
    ep = make_episode(core, steps=STEPS)
    got = rule_grads(TBPTT(core), ep, chunk)
    truncated = relative_errors(got, bptt_grads(core, ep, span=chunk))
    assert max(truncated.values()) < 1e-12, truncated
    # The credit from before each chunk is lost: far from the full gradient.
    biased = relative_errors(got, bptt_grads(core, ep))
    assert max(biased.values()) > 0.05, biased
