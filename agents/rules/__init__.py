"""Gradient rules: how the recurrent core's gradient is obtained. The learner sees only Rule."""

from agents.rules.base import Rule, RuleState
from agents.rules.kfrtrl import KFRTRL
from agents.rules.rtrl import RTRL
from agents.rules.tbptt import TBPTT
from agents.rules.uoro import UORO

__all__ = ["KFRTRL", "RTRL", "TBPTT", "UORO", "Rule", "RuleState"]
