"""Which usage predicts value: per-metric correlations and the alignment test.

Value evidence per metric (DESIGN section 4), each with a 95% CI and Benjamini-Hochberg q
across metrics:

* ARR: Spearman rho with ARR at T (raw, shown only), with account age held fixed
  (``arr_partial``), and the estimate that *counts* (``arr_evidence``): within narrow
  account-age bands (and by age rank inside them), within plan when
  prices follow plans (``[pricing] billed_on = "plan"``, or detected: plan explains at least
  80% of ARR's variance, eta^2), and with the billed metric held fixed when prices follow a
  metric. Why: when price is set by plan or by the metric, every usage metric correlates
  with ARR because big accounts buy big plans; that is circular, not value. The billed
  metric's own ARR correlation is "by construction" and never evidence.
* Retention: AUC of early usage (landmark cohort, see :mod:`analysis.dataset`), and the Cox
  hazard ratio per doubling of early usage (:mod:`analysis.survival`).
* Expansion: AUC of the level at T - 182 d, and the same among accounts of similar age
  (tenure quintiles, ``expansion_adjusted``). Why: a metric that merely accumulates with age
  (records) "predicts" any outcome that also depends on age.
* A retention or expansion claim needs ``min_events`` accounts in the smaller class.

Alignment (step 3): accounts are binned by usage quantile (5 bins, 10 from 1,000 accounts)
and a value proxy is shown per bin (retention rate, expansion rate, median ARR, relative to
the plan's median when prices follow plans). A proxy *rises* when its evidence (retention
AUC, tenure-adjusted expansion AUC, counted ARR rho) is significant after BH across all
metric x proxy tests and at least half the size worth pricing on (AUC 0.05 from chance or
rho 0.1 by default); it *falls* when significant in the other direction, or when the
hazard ratio says more usage, more churn. A metric is *aligned* when a proxy rises and none
falls; *undetermined* (None) when no proxy has enough data. Why the size floor: with
thousands of accounts a trivial association left over from imperfect adjustment is
significant, and "aligned" must not rest on it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import stats, survival
from analysis.catalog import Metric
from analysis.dataset import Dataset
from analysis.params import AnalysisSettings
from analysis.stats import Estimate
from analysis.survival import HazardRatio

PLAN_SET_ETA2 = 0.8  # plan explains this share of ARR variance: prices follow plans


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
    trend: Estimate  # the proxy's evidence (AUC - 0.5, or the counted ARR rho), BH q

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
class Pricing:
    """What sets ARR today, as configured or detected, and what that means for evidence."""

    billed_on: str  # "plan", "flat", a metric name, or "" when not configured
    plan_eta2: float | None  # share of ARR variance explained by plan
    within_plan: bool  # ARR evidence is measured within plan
    detected: bool  # within plan because the data says so, not the configuration

    @property
    def basis(self) -> str:
        parts = ["tenure"]
        if self.within_plan:
            parts.insert(0, "plan")
        if self.billed_on not in ("", "plan", "flat"):
            parts.insert(0, self.billed_on)
        return " and ".join(parts) + " held fixed"

    @property
    def note(self) -> str:
        if self.detected:
            return (f"prices follow plans (detected: plan explains {self.plan_eta2:.0%} of ARR; "
                    'set [pricing] billed_on to say so): ARR evidence is measured within plan')
        if self.within_plan:
            return "prices follow plans ([pricing] billed_on): ARR evidence is within plan"
        if self.billed_on not in ("", "plan", "flat"):
            return (f"prices follow {self.billed_on} ([pricing] billed_on): its ARR correlation "
                    "is by construction; other metrics' ARR evidence holds it fixed")
        return ""


@dataclass(frozen=True)
class MetricCorrelation:
    metric: Metric
    arr: Estimate
    arr_partial: Estimate
    retention: Estimate
    expansion: Estimate
    alignment: Alignment
    arr_evidence: Estimate  # the ARR correlation that counts (see the module docstring)
    expansion_adjusted: Estimate  # expansion AUC among accounts of similar age
    survival: HazardRatio
    by_construction: bool = False  # the billed metric: its ARR correlation is circular

    def harmful(self, alpha: float) -> list[str]:
        """Outcomes significantly worse with more usage: warning signs, never price or gate."""
        signs = []
        if self.retention.significant(alpha) and (self.retention.value or 0.5) < 0.5:
            signs.append(f"more churn (retention AUC {self.retention.value:.2f})")
        elif self.survival.harmful(alpha):
            signs.append(f"more churn (hazard ratio {self.survival.hazard_ratio:.2f} per "
                         "doubling)")
        if (self.expansion_adjusted.significant(alpha)
                and (self.expansion_adjusted.value or 0.5) < 0.5):
            signs.append(f"less expansion (AUC {self.expansion_adjusted.value:.2f} with "
                         "tenure fixed)")
        return signs

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
    pricing: Pricing
    n_early_churned: int  # left out of the retention cohort: churned inside the early window
    n_survival: int

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
                "arr_evidence_rho": m.arr_evidence.value, "arr_evidence_q":
                    m.arr_evidence.p_adjusted,
                "retention_auc": m.retention.value, "retention_q": m.retention.p_adjusted,
                "hazard_ratio": m.survival.hazard_ratio, "hazard_q": m.survival.q,
                "expansion_auc": m.expansion.value, "expansion_q": m.expansion.p_adjusted,
                "expansion_adjusted_auc": m.expansion_adjusted.value,
                "aligned": m.alignment.aligned,
            })
        return pd.DataFrame(rows).set_index("metric")


def _bins_for(n: int) -> int:
    return 10 if n >= 1000 else 5


def plan_eta2(arr: pd.Series, plan: pd.Series) -> float | None:
    """Share of ARR's variance explained by plan (eta squared); None without variation."""
    total = float(((arr - arr.mean()) ** 2).sum())
    if len(arr) < 2 or total == 0:
        return None
    within = float(((arr - arr.groupby(plan).transform("mean")) ** 2).sum())
    return 1 - within / total


def pricing_of(ds: Dataset, billed_on: str) -> Pricing:
    active = ds.active
    eta2 = plan_eta2(active["arr"], active["plan"].fillna(""))
    detected = billed_on == "" and eta2 is not None and eta2 >= PLAN_SET_ETA2
    within = billed_on == "plan" or detected or (
        billed_on not in ("", "flat") and eta2 is not None and eta2 >= PLAN_SET_ETA2)
    return Pricing(billed_on, eta2, within, detected)


def _bins(name: str, level: pd.Series, outcome: pd.Series, binary: bool) -> ProxyTrend:
    """The descriptive per-bin table of a proxy; its trend is filled in after BH."""
    bins = (stats.quantile_bins(level.to_numpy(), _bins_for(len(level))) if len(level)
            else np.zeros(0, np.int64))
    frame = pd.DataFrame({"bin": bins, "level": level.to_numpy(),
                          "outcome": outcome.to_numpy().astype(float)})
    table = tuple(
        BinValue(int(str(b)), float(g["level"].min()), float(g["level"].max()), len(g),
                 float(g["outcome"].mean() if binary else g["outcome"].median()))
        for b, g in frame.groupby("bin")
    )
    return ProxyTrend(name, table, Estimate.insufficient(len(level), ""))


def _auc_effect(est: Estimate) -> Estimate:
    """An AUC as a signed effect around chance (AUC - 0.5), so rises and falls read alike."""
    if est.value is None:
        return est
    ci = (est.ci[0] - 0.5, est.ci[1] - 0.5) if est.ci else None
    return Estimate(est.value - 0.5, ci, est.p, est.n, est.p_adjusted, est.note)


def correlate(ds: Dataset, params: AnalysisSettings, billed_on: str = "") -> Correlation:
    """Per-metric correlation of usage with value, BH-corrected across metrics."""
    rng = np.random.default_rng(params.seed)
    active = ds.active
    retained = ds.retained
    expanded = ds.expanded
    pricing = pricing_of(ds, billed_on)
    tenure = np.log1p(active["tenure_days"].clip(lower=0).to_numpy())
    # account age held fixed twice: within narrow age bands (a step in ARR with age, such
    # as upgrades only old accounts could make, is not linear in rank) and by rank inside
    groups = pd.Series(stats.strata_by_quantile(tenure), index=active.index).astype(str)
    if pricing.within_plan:
        groups = groups + "|" + active["plan"].fillna("").astype(str)
    billed = ds.current[billed_on] if billed_on in ds.metric_names else None
    arr = active["arr"]
    arr_shown = arr
    if pricing.within_plan:  # ARR relative to the plan's median: what usage adds within plan
        plan_median = arr.groupby(active["plan"].fillna("")).transform("median")
        arr_shown = arr / plan_median.where(plan_median > 0, 1.0)
    arr_estimates = stats.spearman_many(
        [ds.current[m.name] for m in ds.metrics], arr,
        resamples=params.bootstrap_resamples, rng=rng, min_n=params.min_accounts)
    expansion_index = ds.expansion_index
    expansion_strata = stats.strata_by_quantile(
        np.log1p(ds.accounts.loc[expansion_index, "tenure_days"].clip(lower=0).to_numpy()))
    min_events = max(params.min_events, params.min_class_size)
    time = ds.survival_time
    per_metric = []
    for metric, raw in zip(ds.metrics, arr_estimates, strict=True):
        name = metric.name
        level = ds.current[name]
        partial = stats.partial_spearman(level, arr, tenure, min_n=params.min_accounts)
        if name == billed_on:
            evidence = Estimate.insufficient(len(level), "by construction: prices follow "
                                             f"{name}, so its ARR correlation is circular")
        else:
            controls = [tenure] if billed is None else [tenure, billed.to_numpy()]
            evidence = stats.partial_rank_correlation(level, arr, controls,
                                                      min_n=params.min_accounts,
                                                      groups=groups.to_numpy())
        past_level = ds.past.loc[expansion_index, name]
        retention = stats.auc(ds.early[name], retained, min_class=min_events)
        expansion = stats.auc(past_level, expanded, min_class=min_events)
        adjusted = stats.stratified_auc(past_level, expanded, expansion_strata,
                                        min_class=min_events)
        hazard = survival.cox_per_doubling(ds.survival_early[name], time,
                                           min_events=min_events)
        proxies = (_bins("retention", ds.early[name], retained, True),
                   _bins("expansion", past_level, expanded, True),
                   _bins("arr", level, arr_shown, False))
        per_metric.append((metric, raw, partial, retention, expansion, proxies, evidence,
                           adjusted, hazard))

    def adjusted_q(column: list[Estimate]) -> list[Estimate]:
        qs = stats.bh_adjust([e.p for e in column])
        return [Estimate(e.value, e.ci, e.p, e.n, q, e.note) for e, q in zip(column, qs,
                                                                             strict=True)]

    arrs = adjusted_q([row[1] for row in per_metric])
    partials = adjusted_q([row[2] for row in per_metric])
    retentions = adjusted_q([row[3] for row in per_metric])
    expansions = adjusted_q([row[4] for row in per_metric])
    evidences = adjusted_q([row[6] for row in per_metric])
    expansions_adjusted = adjusted_q([row[7] for row in per_metric])
    hazards = survival.with_q([row[8] for row in per_metric])
    # one BH family over every metric x proxy test: "aligned" must survive all of them
    flat = [effect for row in per_metric
            for effect in (_auc_effect(row[3]), _auc_effect(row[7]), row[6])]
    flat_adjusted = adjusted_q(flat)

    results = []
    for i, row in enumerate(per_metric):
        trends = tuple(ProxyTrend(p.proxy, p.bins, est) for p, est in
                       zip(row[5], flat_adjusted[3 * i: 3 * i + 3], strict=True))
        verdict = _verdict(trends, hazards[i], params)
        results.append(MetricCorrelation(row[0], arrs[i], partials[i], retentions[i],
                                         expansions[i], verdict, evidences[i],
                                         expansions_adjusted[i], hazards[i],
                                         row[0].name == billed_on))
    return Correlation(ds.windows.as_of, params.alpha, tuple(results), len(active),
                       len(ds.early), len(ds.expansion_index), pricing, ds.n_early_churned,
                       len(ds.survival_early))


def _verdict(proxies: tuple[ProxyTrend, ...], hazard: HazardRatio,
             params: AnalysisSettings) -> Alignment:
    alpha = params.alpha
    usable = [p for p in proxies if p.trend.sufficient]
    if not usable:
        return Alignment(None, proxies, "insufficient data for every value proxy")
    floor = {"retention": (params.min_auc - 0.5) / 2, "expansion": (params.min_auc - 0.5) / 2,
             "arr": params.min_rho / 2}
    rising = [p.proxy for p in usable
              if p.trend.significant(alpha) and (p.trend.value or 0) >= floor[p.proxy]]
    falling = [p.proxy for p in usable if p.trend.significant(alpha) and (p.trend.value or 0) < 0]
    if hazard.harmful(alpha) and "retention" not in falling:
        falling.append("retention (survival)")
    if falling:
        return Alignment(False, proxies, f"value falls with usage ({', '.join(falling)})")
    if rising:
        return Alignment(True, proxies, f"value rises with usage ({', '.join(rising)})")
    return Alignment(False, proxies, "no value proxy rises enough with usage")
