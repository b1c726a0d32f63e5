"""Segment comparison in the shape of DESIGN section 1's canonical example.

Active segments use levels at T; churned segments use each account's last window before
churn (known at T). The insight names at most two metrics that separate the first value
segment from the first churned segment significantly once tenure is accounted for: a
Mann-Whitney comparison within tenure quintiles (tenure at T for active accounts, at churn
for churned ones; the stratified AUC of :func:`analysis.stats.stratified_auc`, i.e. the
chance that a value account uses more than a churned account of similar age, among the
accounts whose age both segments reach), with
Benjamini-Hochberg across metrics, and an effect of at least ``min_auc``. When prices follow
plans (configured or detected, see :mod:`analysis.correlate`) the comparison is also within
plan. Why: churned accounts are younger than paying ones, so any metric that accumulates
with age (records) separated them by Cohen's d on null data; high-ARR accounts are on big
plans, which come with more seats whether or not seats bring value; and a difference of
means without a test named noise as insight.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import stats
from analysis.correlate import pricing_of
from analysis.dataset import Dataset
from analysis.params import AnalysisSettings, SegmentRule


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
    effect_size: float  # AUC within tenure bands: P(value account uses more), 0.5 = none
    q: float  # Benjamini-Hochberg across metrics


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


def compare_segments(ds: Dataset, rules: tuple[SegmentRule, ...] | list[SegmentRule],
                     params: AnalysisSettings, billed_on: str = "") -> SegmentComparison:
    min_accounts = params.min_accounts
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
    both = pd.concat([value_levels, lost_levels])
    in_value = np.r_[np.ones(len(value_levels), bool), np.zeros(len(lost_levels), bool)]
    tenure = ds.accounts.loc[both.index, "tenure_days"].clip(lower=0).to_numpy(float)
    # common support: only ages both segments reach can be compared at equal age
    lo = max(tenure[in_value].min(), tenure[~in_value].min())
    hi = min(tenure[in_value].max(), tenure[~in_value].max())
    overlap = (tenure >= lo) & (tenure <= hi)
    both, in_value, tenure = both[overlap], in_value[overlap], tenure[overlap]
    comparable = (int(in_value.sum()), int((~in_value).sum()))
    if min(comparable) < params.min_class_size:
        return SegmentComparison(
            ds.windows.as_of, summaries, (),
            f"Insufficient data: only {comparable[0]} {value_rule.name} and {comparable[1]} "
            f"{lost_rule.name} accounts are of comparable age ({lo:g} to {hi:g} days); need "
            f"{params.min_class_size} of each to tell usage from account age.")
    strata = pd.Series(stats.strata_by_quantile(np.log1p(tenure)), index=both.index).astype(str)
    if pricing_of(ds, billed_on).within_plan:
        strata = strata + "|" + ds.accounts.loc[both.index, "plan"].fillna("").astype(str)
    tests = [stats.stratified_auc(both[m.name].to_numpy(float), in_value, strata.to_numpy(),
                                  min_class=params.min_class_size) for m in ds.metrics]
    qs = stats.bh_adjust([t.p for t in tests])
    effects = sorted(
        (Separation(m.name, m.description or m.name.replace("_", " "), float(t.value), q)
         for m, t, q in zip(ds.metrics, tests, qs, strict=True)
         if t.value is not None and q is not None),
        key=lambda s: -s.effect_size)
    top = tuple(s for s in effects
                if s.q < params.alpha and s.effect_size >= params.min_auc)[:2]
    if top:
        named = " and ".join(f"{s.description} ({s.metric}; AUC {s.effect_size:.2f} with tenure "
                             f"fixed, q {stats.p_text(s.q)})" for s in top)
        insight = f"Value correlates with {named}."
    else:
        insight = (f"No metric separates {value_rule.name} from {lost_rule.name} significantly "
                   "once account age (and plan, when prices follow plans) is accounted for.")
    return SegmentComparison(ds.windows.as_of, summaries, top, insight)
