"""KF-RTRL's traces for a fixed seed, as the implementation before its terms were named (commit
433996b: a positional zip into the step record, the P D term added through a diagonal view) gave
them. Rewriting the update so that it reads like its equation must not change a number."""

from __future__ import annotations

import pytest
import torch

from agents.rules import KFRTRL
from tests.rules.helpers import make_core, make_episode

#: depth -> (‖u‖, ‖A‖, Σu, ΣA) after 24 steps in chunks of 5 with resets, from the old code
BEFORE = {
    1: (2.380997355970791e00, 2.496626486275266e00, 5.080834166924262e-01, 4.344478793601795e00),
    2: (3.590198687559219e00, 3.781655534903983e00, -5.672238188525601e00, -1.157053226058487e01),
    3: (3.943540407420734e00, 3.867538745057331e00, -4.777309617881329e00, -4.253692543919630e00),
}


@pytest.mark.parametrize("depth", sorted(BEFORE))
def test_traces_are_those_of_the_code_before_the_terms_were_named(depth):
    torch.manual_seed(0)
    core = make_core(f"rhn{depth}")
    rule = KFRTRL(core, generator=torch.Generator().manual_seed(1))
    episode = make_episode(core)  # 24 steps, resets inside and on the boundary of a chunk
    rstate = rule.initial_state(episode.batch)
    for start in range(0, 24, 5):  # the last step of each chunk takes the balanced split
        chunk = slice(start, start + 5)
        _, rstate = rule.unroll(episode.xs[chunk], rstate, episode.starts[chunk])
    u, a = rstate.traces["u"], rstate.traces["A"]
    got = [float(x) for x in (u.norm(), a.norm(), u.sum(), a.sum())]
    assert got == pytest.approx(BEFORE[depth], rel=1e-10)
