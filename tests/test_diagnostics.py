"""The KF-RTRL paper's diagnostics (benchmarks/grad_noise.py and benchmarks/copy_task.py): the
noise estimate, the copy task's data, loss and curriculum, and a tiny training run."""

import itertools
import math

import numpy as np
import pytest
import torch

from agents.cores import RHN
from agents.rules import KFRTRL, RTRL, UORO
from benchmarks.copy_task import (
    BLANK,
    IGNORE,
    MARKER,
    CopyStreams,
    Curriculum,
    bits_per_char,
    copy_sequence,
    parse_method,
    train_copy,
)
from benchmarks.grad_noise import ESTIMATORS, measure_noise, normalised_variance, per_row_carried_grads
from tests.rules.helpers import dense_layout


@pytest.fixture(autouse=True)
def one_thread():
    # tiny tensors: a second intra-op thread only waits for the busier core (see tests/rules)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- gradient noise ---------------------------------------------------------------------------


def test_normalised_variance_of_known_noise():
    """Estimates exact ± 1 in every entry: E‖ĝ − g‖² = P, ‖g‖² = 4P, so nv = 1/4."""
    exact = torch.full((10,), 2.0, dtype=torch.float64)
    noise = torch.where(torch.rand(1000, 10) < 0.5, 1.0, -1.0).double()
    assert normalised_variance(exact + noise, exact) == pytest.approx(0.25)
    assert normalised_variance(exact.expand(5, -1), exact) == 0.0


@pytest.mark.parametrize("rule_cls", [KFRTRL, UORO])
def test_per_row_carried_grads_are_each_rows_contraction(rule_cls):
    """Row b's gradient is e_bᵀ Ĝ_b with Ĝ_b the rule's estimate in the dense layout."""
    torch.manual_seed(0)
    core = RHN(3, 5, depth=2).double()
    rule = rule_cls(core)
    rstate = rule.initial_state(4)
    with torch.no_grad():
        for _ in range(4):
            rstate = rule.step(torch.randn(4, 3, dtype=torch.float64), rstate)[1]
    e = torch.randn(4, 5, dtype=torch.float64)
    got = per_row_carried_grads(rule, rstate.traces, e)
    want = torch.einsum("bs,bsp->bp", e, dense_layout(rule, rstate.traces))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_noise_is_zero_for_exact_rtrl_and_positive_for_the_estimators():
    estimators = {"exact": lambda core, gen: RTRL(core, method="dense"), **ESTIMATORS}
    nv = measure_noise(hidden=6, steps=8, draws=64, seed=0, estimators=estimators)
    assert max(nv["exact"]) < 1e-20, nv["exact"]
    assert nv["KF-RTRL"][0] < 1e-20, "KF-RTRL's first step after a reset is exact"
    assert min(nv["KF-RTRL"][2:]) > 1e-3, nv["KF-RTRL"]
    assert min(nv["UORO"]) > 1e-2, nv["UORO"]
    # UORO is the noisier one (measured at N = 6: about 5x KF-RTRL over steps 3-8)
    assert sum(nv["UORO"][2:]) > 2 * sum(nv["KF-RTRL"][2:])


def test_noise_is_deterministic_given_the_seed():
    a, b = (measure_noise(hidden=4, steps=5, draws=16, seed=3) for _ in range(2))
    assert a == b


# --- copy task: data, loss, curriculum --------------------------------------------------------


def test_copy_sequence_layout():
    inputs, targets = copy_sequence(3, torch.Generator().manual_seed(0))
    bits = inputs[:3]
    assert set(bits.tolist()) <= {0, 1}
    assert inputs[3:].tolist() == [MARKER, BLANK, BLANK, BLANK]
    assert targets.tolist() == [IGNORE] * 4 + bits.tolist()
    with pytest.raises(ValueError, match=">= 1"):
        copy_sequence(0)


def test_bits_per_char():
    targets = torch.tensor([[IGNORE, 0, 1]])
    uniform = torch.zeros(1, 3, 2)
    torch.testing.assert_close(bits_per_char(uniform, targets), torch.tensor([[0.0, 1.0, 1.0]]))
    sure = torch.tensor([[[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]]])
    assert bits_per_char(sure, targets).max() < 1e-6
    # p(target) = 1/4 costs 2 bits
    quarter = torch.tensor([[[0.0, 0.0], [0.0, math.log(3)], [0.0, 0.0]]])
    assert bits_per_char(quarter, targets)[0, 1].item() == pytest.approx(2.0)


def test_streams_concatenate_whole_sequences_and_keep_their_length():
    streams = CopyStreams(batch=3, generator=torch.Generator().manual_seed(0))
    chunks = [streams.next_chunk(4, length=2) for _ in range(3)]  # 12 steps: sequences of 5
    chunks += [streams.next_chunk(4, length=4) for _ in range(6)]
    cat = {f: torch.cat([getattr(c, f) for c in chunks]) for f in chunks[0]._fields}  # (36, 3)
    for b in range(3):
        starts = cat["starts"][:, b].nonzero().flatten().tolist()
        assert starts[:4] == [0, 5, 10, 15], "T = 2 until the sequence under way at step 12 ends"
        assert starts[4] == 24, "then T = 4 (9 steps)"
        assert cat["ends"][:-1, b].tolist() == cat["starts"][1:, b].tolist()
        for s, e in itertools.pairwise(starts):
            length = (e - s - 1) // 2
            inputs, targets = cat["inputs"][s:e, b], cat["targets"][s:e, b]
            assert cat["lengths"][s:e, b].tolist() == [length] * (e - s)
            assert inputs[length] == MARKER
            assert targets[length + 1 :].tolist() == inputs[:length].tolist()


def test_curriculum_raises_t_below_the_threshold_only():
    cur = Curriculum(threshold=0.15, window=10)
    for _ in range(9):
        assert not cur.record(1, 0.1)
    assert cur.record(1, 0.1) and cur.length == 2
    assert not cur.record(1, 0.0), "a sequence of the old T does not count"
    assert len(cur.recent) == 0
    for _ in range(30):
        assert not cur.record(2, 0.2)
    assert cur.length == 2
    # the window slides: 10 good sequences after the bad ones raise T
    results = [cur.record(2, 0.05) for _ in range(10)]
    assert results == [False] * 3 + [True] + [False] * 6  # mean 0.2 − 0.015 j < 0.15 from j = 4
    assert cur.length == 3


def test_parse_method_names_the_choices():
    assert parse_method("kfrtrl-rhn") == ("kfrtrl", "rhn")
    with pytest.raises(ValueError, match=r"kfrtrl.*tbptt.*elstm"):
        parse_method("bptt-rhn")


def test_train_copy_is_deterministic_and_learns_the_first_length():
    """KF-RTRL on a 16-unit RHN gets below 0.15 bits/char at T = 1 (measured: T = 2 at step 152
    of 800, still 2 at 800); a wrong target alignment would stay near chance (1 bit)."""
    kwargs = dict(hidden=16, chunk=4, batch=8, lr=1e-2, window=20, seed=0, log_every=40)
    runs = [train_copy("kfrtrl-rhn", 120, **kwargs) for _ in range(2)]
    assert runs[0].history == runs[1].history
    assert runs[0].steps == 120 and [h[:2] for h in runs[0].history] == [
        (0, 1),
        (40, 1),
        (80, 1),
        (120, 1),
        (120, 1),
    ]
    assert train_copy("kfrtrl-rhn", 300, **kwargs).max_length >= 2


def test_chain_signal_measures_the_context_left_in_the_core():
    """benchmarks/chain_signal.py: the two contexts' outputs differ after a short chain and the
    difference shrinks with the length (an RTU's state decays); a core that forgets within L
    steps (eLSTM at the paper's forget-gate bias 0, forget gate ~0.5) keeps ~nothing of it at
    L = 16, and at the default bias 2 (forget gate ~0.88) it keeps a part."""
    from benchmarks.chain_signal import chain_signal

    short, long = (chain_signal(length, seed=0) for length in (4, 64))
    assert short["|dh|"] > 0.5 and short["ratio"] > 3 * long["ratio"] > 0
    assert 0 < long["units"] < short["units"] <= short["of"]
    paper = chain_signal(16, seed=0, overrides=["core=elstm", "core.kwargs.forget_bias=0.0"])
    assert paper["ratio"] < 1e-3
    assert chain_signal(16, seed=0, overrides=["core=elstm"])["ratio"] > 0.05


def test_chain_signal_readout_scores_a_held_out_linear_classifier():
    """The readout column: a linear classifier answers from an RTU's state after a short chain,
    also with random actions fed back to the core, and scores chance on features without the
    label (held out: fitting alone would separate 384 points in 64 dimensions)."""
    from benchmarks.chain_signal import chain_signal, readout_accuracy

    assert chain_signal(4, seed=0, actions="random")["readout"] == 1.0
    rng = np.random.default_rng(0)
    assert abs(readout_accuracy(rng.normal(size=(512, 64)), rng.random(512) > 0.5) - 0.5) < 0.15
    with pytest.raises(ValueError, match="zero or random"):
        chain_signal(4, seed=0, actions="greedy")


def test_chain_signal_reads_a_trained_runs_checkpoint(tmp_path):
    """--checkpoint measures a trained algo=stream run: after 2,000 steps of MemoryChain 4 its
    policy head answers right, where the untrained one does not (seed 0: it answers the opposite
    of the context); runs of another algo or env are refused."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from benchmarks.chain_signal import chain_signal
    from benchmarks.common import CONFIGS
    from jobs import train

    over = ["algo=stream", "env=memory_chain", "env.memory_length=4", "total_steps=2000", "progress=false"]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("config", overrides=over)
    train(cfg, run_dir=tmp_path / "run")
    trained = chain_signal(64, seed=0, checkpoint=tmp_path / "run" / "checkpoint.pt")
    assert trained["L"] == 4 and trained["readout"] == 1.0 and trained["answer"] >= 0.9
    assert chain_signal(4, seed=0)["answer"] < 0.9
    OmegaConf.save(
        OmegaConf.create({"algo": {"name": "rtrl"}, "env": {"name": "recall"}}), tmp_path / "config.yaml"
    )
    with pytest.raises(ValueError, match="not an algo=stream run"):
        chain_signal(4, seed=0, checkpoint=tmp_path / "checkpoint.pt")
