"""Names → cores and rules, with errors that list the valid names."""

from __future__ import annotations

from typing import Any

from agents.cores import ELSTM, ELSTMRTU, GRU, LSTM, RHN, RTU, RecurrentCore
from agents.rules import KFRTRL, RTRL, TBPTT, UORO, Rule

__all__ = ["CORES", "RULES", "make_core", "make_rule"]

CORES: dict[str, type[RecurrentCore]] = {
    "elstm": ELSTM,
    "rhn": RHN,
    "rtu": RTU,
    "elstm_rtu": ELSTMRTU,
    "lstm": LSTM,
    "gru": GRU,
}
RULES: dict[str, type[Rule]] = {"rtrl": RTRL, "kfrtrl": KFRTRL, "uoro": UORO, "tbptt": TBPTT}


def _lookup(table: dict[str, Any], kind: str, name: str) -> Any:
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(table))}")
    return table[name]


def make_core(name: str, input_size: int, hidden_size: int, **kwargs: Any) -> RecurrentCore:
    """Build a core by name, e.g. ``make_core("rhn", 64, 128, depth=2)``."""
    return _lookup(CORES, "core", name)(input_size, hidden_size, **kwargs)


def make_rule(name: str, core: RecurrentCore) -> Rule:
    """Wrap ``core`` in the named gradient rule; says which rules fit if this one cannot."""
    cls = _lookup(RULES, "algo", name)
    try:
        return cls(core)
    except TypeError as exc:
        fits = [n for n, r in RULES.items() if r is not cls and _fits(r, core)]
        raise ValueError(
            f"algo {name!r} cannot train core {type(core).__name__}: {exc}. "
            f"Rules that fit it: {', '.join(fits)}"
        ) from exc


def _fits(rule: type[Rule], core: RecurrentCore) -> bool:
    try:
        rule(core)
    except TypeError:
        return False
    return True
