"""Which usage predicts value: per-metric correlations and the alignment test.

Alignment (DESIGN section 4, step 3): accounts are binned by usage quantile (5 bins, 10
from 1,000 accounts) and a value proxy is computed per bin: retention rate (early
usage), expansion rate (usage at T - 182 d) and median ARR (usage at T). The ARR trend is
tested with account age held fixed (partial Spearman of bin and ARR on log tenure), so a
metric that merely accumulates with age is not called aligned. A metric is
*aligned* when at least one proxy rises significantly with usage after Benjamini-Hochberg
correction across all metric x proxy trends, and none falls significantly. It is
*undetermined* (None) when
no proxy has enough data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import stats
from analysis.catalog import Metric
from analysis.dataset import Dataset
from analysis.params import AnalysisSettings
from analysis.stats import Estimate


@dataclass(frozen=True)
class BinValue:
    bin: int
    lo: float
    hi: float
    n: int
    value: float


@dataclass(frozen=True)
class ProxyTrend:
    proxy: str  # "retention", "expansion" or "arr"
    bins: tuple[BinValue, ...]
    trend: Estimate  # r of bin vs outcome

    @property
    def monotonic(self) -> bool:
        """No bin is followed by a bin lower by more than a quarter of the overall range.

        Exact monotonicity is too strict with 10 noisy bins; this still flags an inverted U
        while letting a noisy step function pass.
        """
        values = np.array([b.value for b in self.bins], float)
        if len(values) < 3 or np.ptp(values) == 0:
            return True
        later_min = np.minimum.accumulate(values[::-1])[::-1]
        return bool((values - later_min).max() <= 0.25 * np.ptp(values))


@dataclass(frozen=True)
class Alignment:
    aligned: bool | None
    proxies: tuple[ProxyTrend, ...]
    reason: str


@dataclass(frozen=True)
class MetricCorrelation:
    metric: Metric
    arr: Estimate
    arr_partial: Estimate
    retention: Estimate
    expansion: Estimate
    alignment: Alignment

    def confounded_by_tenure(self, alpha: float) -> bool:
        """Correlated with ARR only because both grow with account age."""
        if not self.arr.significant(alpha) or self.arr.value is None or self.arr.value <= 0:
            return False
        partial = self.arr_partial.value
        return (partial is None or not self.arr_partial.significant(alpha)
                or abs(partial) < 0.5 * abs(self.arr.value))


@dataclass(frozen=True)
class Correlation:
    as_of: dt.date
    alpha: float
    metrics: tuple[MetricCorrelation, ...]
    n_active: int
    n_retention: int
    n_expansion: int

    def get(self, name: str) -> MetricCorrelation:
        return next(m for m in self.metrics if m.metric.name == name)

    @property
    def summary(self) -> pd.DataFrame:
        rows = []
        for m in self.metrics:
            rows.append({
                "metric": m.metric.name,
                "arr_rho": m.arr.value, "arr_rho_lo": m.arr.ci[0] if m.arr.ci else None,
                "arr_rho_hi": m.arr.ci[1] if m.arr.ci else None, "arr_q": m.arr.p_adjusted,
                "arr_partial_rho": m.arr_partial.value, "arr_partial_q": m.arr_partial.p_adjusted,
                "retention_auc": m.retention.value, "retention_q": m.retention.p_adjusted,
                "expansion_auc": m.expansion.value, "expansion_q": m.expansion.p_adjusted,
                "aligned": m.alignment.aligned,
            })
        return pd.DataFrame(rows).set_index("metric")


def _bins_for(n: int) -> int:
    return 10 if n >= 1000 else 5


def _proxy(name: str, level: pd.Series, outcome: pd.Series, binary: bool,
           params: AnalysisSettings, tenure: np.ndarray | None = None) -> ProxyTrend:
    n = len(level)
    if n < params.min_accounts:
        return ProxyTrend(name, (), Estimate.insufficient(
            n, f"insufficient data: {n} accounts, need {params.min_accounts}"))
    if binary and min(int(outcome.sum()), int((~outcome).sum())) < params.min_class_size:
        return ProxyTrend(name, (), Estimate.insufficient(
            n, f"insufficient data: fewer than {params.min_class_size} accounts in a class"))
    bins = stats.quantile_bins(level.to_numpy(), _bins_for(n))
    frame = pd.DataFrame({"bin": bins, "level": level.to_numpy(),
                          "outcome": outcome.to_numpy().astype(float)})
    grouped = frame.groupby("bin")
    table = tuple(
        BinValue(int(str(b)), float(g["level"].min()), float(g["level"].max()), len(g),
                 float(g["outcome"].mean() if binary else g["outcome"].median()))
        for b, g in grouped
    )
    if len(table) < 2:
        return ProxyTrend(name, table, Estimate.insufficient(n, "insufficient data: every "
                                                             "account has the same usage"))
    if binary:
        r, p = stats.linear_trend(frame["bin"].to_numpy(), frame["outcome"].to_numpy())
    else:
        assert tenure is not None
        trend = stats.partial_spearman(frame["bin"], frame["outcome"], tenure, min_n=3)
        r = trend.value if trend.value is not None else 0.0
        p = trend.p if trend.p is not None else 1.0
    return ProxyTrend(name, table, Estimate(r, None, p, n))


def correlate(ds: Dataset, params: AnalysisSettings) -> Correlation:
    """Per-metric correlation of usage with value, BH-corrected across metrics."""
    rng = np.random.default_rng(params.seed)
    active = ds.active
    retained = ds.retained
    expanded = ds.expanded
    tenure = np.log1p(active["tenure_days"].clip(lower=0).to_numpy())
    arr_estimates = stats.spearman_many(
        [ds.current[m.name] for m in ds.metrics], active["arr"],
        resamples=params.bootstrap_resamples, rng=rng, min_n=params.min_accounts)
    expansion_index = ds.expansion_index
    per_metric = []
    for metric, arr in zip(ds.metrics, arr_estimates, strict=True):
        name = metric.name
        level = ds.current[name]
        partial = stats.partial_spearman(level, active["arr"], tenure, min_n=params.min_accounts)
        retention = stats.auc(ds.early[name], retained, min_class=params.min_class_size)
        expansion = stats.auc(ds.past.loc[expansion_index, name], expanded,
                              min_class=params.min_class_size)
        proxies = (
            _proxy("retention", ds.early[name], retained, True, params),
            _proxy("expansion", ds.past.loc[expansion_index, name], expanded, True, params),
            _proxy("arr", level, active["arr"], False, params, tenure),
        )
        per_metric.append((metric, arr, partial, retention, expansion, proxies))

    def adjusted(column: list[Estimate]) -> list[Estimate]:
        qs = stats.bh_adjust([e.p for e in column])
        return [Estimate(e.value, e.ci, e.p, e.n, q, e.note) for e, q in zip(column, qs,
                                                                             strict=True)]

    arrs = adjusted([row[1] for row in per_metric])
    partials = adjusted([row[2] for row in per_metric])
    retentions = adjusted([row[3] for row in per_metric])
    expansions = adjusted([row[4] for row in per_metric])
    # one BH family over every metric x proxy trend: "aligned" must survive all of them
    flat = [proxy for row in per_metric for proxy in row[5]]
    flat_adjusted = adjusted([p.trend for p in flat])
    trends = [ProxyTrend(p.proxy, p.bins, est) for p, est in zip(flat, flat_adjusted, strict=True)]

    results = []
    for i, row in enumerate(per_metric):
        verdict = _verdict(tuple(trends[3 * i: 3 * i + 3]), params.alpha)
        results.append(MetricCorrelation(row[0], arrs[i], partials[i], retentions[i],
                                         expansions[i], verdict))
    return Correlation(ds.windows.as_of, params.alpha, tuple(results), len(active),
                       len(ds.early), len(ds.expansion_index))


def _verdict(proxies: tuple[ProxyTrend, ...], alpha: float) -> Alignment:
    usable = [p for p in proxies if p.trend.sufficient]
    if not usable:
        return Alignment(None, proxies, "insufficient data for every value proxy")
    rising = [p.proxy for p in usable if p.trend.significant(alpha) and (p.trend.value or 0) > 0]
    falling = [p.proxy for p in usable if p.trend.significant(alpha) and (p.trend.value or 0) < 0]
    if falling:
        return Alignment(False, proxies, f"value falls with usage ({', '.join(falling)})")
    if rising:
        return Alignment(True, proxies, f"value rises with usage ({', '.join(rising)})")
    return Alignment(False, proxies, "no value proxy rises significantly with usage")
