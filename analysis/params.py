"""Analysis parameters: the ``[analysis]`` and ``[[segments]]`` settings, with help text."""

from __future__ import annotations

import datetime as dt
from dataclasses import MISSING, dataclass, field
from typing import Any


def setting(default: Any = MISSING, *, help: str, factory: Any = MISSING) -> Any:
    """A dataclass field that carries its help text (shown in errors and the example)."""
    if factory is not MISSING:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class AnalysisSettings:
    as_of: dt.date | None = setting(None, help="fixed as-of date T; default: the latest date "
                                    "at which usage and revenue are both complete")
    window_days: int = setting(28, help="a metric's level is the mean of its snapshots in "
                              "(t - window, t]")
    early_days: int = setting(28, help="E: early-usage window after signup, for retention")
    horizon_days: int = setting(112, help="H: retained = still active at signup + E + H")
    expansion_lookback_days: int = setting(182, help="expansion compares MRR at T with "
                                          "T - this many days")
    min_accounts: int = setting(30, help="fewer accounts than this gives 'insufficient data'")
    min_class_size: int = setting(10, help="fewest accounts in each outcome class for an AUC")
    min_events: int = setting(20, help="fewest accounts in the smaller outcome class (churned "
                              "or retained, expanded or not) before a retention or expansion "
                              "claim is made")
    bootstrap_resamples: int = setting(1000, help="resamples for bootstrap confidence intervals")
    permutations: int = setting(1000, help="label permutations testing a threshold against "
                                "chance (at least 1,000, so the decision at alpha is stable)")
    alpha: float = setting(0.05, help="significance level, after Benjamini-Hochberg correction")
    min_rho: float = setting(0.2, help="smallest ARR rank correlation (tenure held fixed) "
                             "worth pricing on")
    min_auc: float = setting(0.6, help="smallest retention or expansion AUC worth pricing on "
                             "or gating")
    seed: int = setting(0, help="random seed for bootstraps and permutations (reproducible)")


@dataclass(frozen=True)
class SegmentRule:
    name: str = setting(help="label shown in reports")
    min_arr: float | None = setting(None, help="active accounts with ARR at T >= this")
    max_arr: float | None = setting(None, help="active accounts with ARR at T < this")
    churned: bool = setting(False, help="accounts with a churn date, measured over their "
                            "last window before churn")
    plans: list[str] = setting(help="only accounts on these plans (empty: any plan)",
                               factory=list)


DEFAULT_SEGMENTS = (
    SegmentRule(name="High-LTV customers (>$10k ARR)", min_arr=10_000.0),
    SegmentRule(name="Churned customers", churned=True),
)
