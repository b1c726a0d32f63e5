"""Segment comparison in the shape of DESIGN section 1's canonical example.

Active segments use levels at T; churned segments use each account's last window before
churn. The insight names the metrics that separate the first value segment from the first
churned segment most, by standardized mean difference (Cohen's d with pooled SD), keeping
at most two metrics with d >= 0.5 (a "medium" effect).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pandas as pd

from analysis.dataset import Dataset
from analysis.params import setting

MIN_EFFECT = 0.5


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


@dataclass(frozen=True)
class SegmentSummary:
    name: str
    churned: bool
    n: int
    means: dict[str, float]
    mean_arr: float | None


@dataclass(frozen=True)
class Separation:
    metric: str
    description: str
    effect_size: float


@dataclass(frozen=True)
class SegmentComparison:
    as_of: dt.date
    segments: tuple[SegmentSummary, ...]
    separating: tuple[Separation, ...]
    insight: str

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame(
            [{"segment": s.name, "n": s.n, **s.means} for s in self.segments]
        ).set_index("segment")


def _members(ds: Dataset, rule: SegmentRule) -> pd.DataFrame:
    if rule.churned:
        levels = ds.before_churn
        accounts = ds.accounts.loc[levels.index]
    else:
        levels = ds.current
        accounts = ds.active
        if rule.min_arr is not None:
            levels = levels[accounts["arr"] >= rule.min_arr]
        if rule.max_arr is not None:
            levels = levels[accounts.loc[levels.index, "arr"] < rule.max_arr]
    if rule.plans:
        levels = levels[ds.accounts.loc[levels.index, "plan"].isin(rule.plans)]
    return levels


def _cohens_d(a: pd.Series, b: pd.Series) -> float:
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    pooled = math.sqrt(((len(a) - 1) * a.var() + (len(b) - 1) * b.var()) / (len(a) + len(b) - 2))
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else float("nan")


def compare_segments(ds: Dataset, rules: tuple[SegmentRule, ...] | list[SegmentRule],
                     min_accounts: int) -> SegmentComparison:
    members = [(rule, _members(ds, rule)) for rule in rules]
    summaries = tuple(
        SegmentSummary(
            rule.name, rule.churned, len(levels),
            {m: float(levels[m].mean()) if len(levels) else float("nan")
             for m in ds.metric_names},
            float(ds.accounts.loc[levels.index, "arr"].mean()) if len(levels) and not rule.churned
            else None,
        )
        for rule, levels in members
    )
    value = next(((r, lv) for r, lv in members if not r.churned), None)
    lost = next(((r, lv) for r, lv in members if r.churned), None)
    if value is None or lost is None:
        value, lost = ([*members, None, None])[:2]  # type: ignore[list-item]
    if value is None or lost is None:
        return SegmentComparison(ds.windows.as_of, summaries, (),
                                 "Configure at least two segments to compare.")
    (value_rule, value_levels), (lost_rule, lost_levels) = value, lost
    if min(len(value_levels), len(lost_levels)) < min_accounts:
        return SegmentComparison(
            ds.windows.as_of, summaries, (),
            f"Insufficient data: {value_rule.name} has {len(value_levels)} and {lost_rule.name} "
            f"{len(lost_levels)} accounts; need {min_accounts} in each to compare.")
    effects = sorted(
        (Separation(m.name, m.description or m.name.replace("_", " "),
                    _cohens_d(value_levels[m.name], lost_levels[m.name])) for m in ds.metrics),
        key=lambda s: -s.effect_size if math.isfinite(s.effect_size) else math.inf,
    )
    top = tuple(s for s in effects if math.isfinite(s.effect_size)
                and s.effect_size >= MIN_EFFECT)[:2]
    if top:
        named = " and ".join(f"{s.description} ({s.metric})" for s in top)
        insight = f"Value correlates with {named}."
    else:
        insight = (f"No metric separates {value_rule.name} from {lost_rule.name} by half a "
                   "standard deviation or more.")
    return SegmentComparison(ds.windows.as_of, summaries, top, insight)
