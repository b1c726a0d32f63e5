"""Value thresholds (DESIGN section 4), found for every metric at once.

* activation ("gets it"): the early-usage level c maximising Youden's J for "early level >= c"
  against retention, on the landmarked cohort (accounts that churned inside the early window
  are left out; see :mod:`analysis.dataset`);
* expansion: the same with the level at T - 182 d against expansion; its permutation test
  shuffles outcomes only among accounts of similar age (tenure quintiles), so a level that
  merely tracks account age does not get a threshold;
* price increase: the level in the window before each MRR increase known at T, against
  comparable accounts that did not increase in the same months (AUC within month and
  account-age band, so a level that grows with age is not mistaken for a price driver when
  older accounts pay more); when it
  separates them (q below alpha and AUC at least ``min_auc``), the threshold is the median
  level before increases, with the lift in the monthly rate of increase at or above it
  (Katz 95% CI).

Why all metrics at once: a threshold is a claim, and with several metrics and three kinds
the best of many tries beats chance by luck; Benjamini-Hochberg across every metric and
kind keeps the false claims in check. Permutation p-values use at least 1,000 permutations
by default, so the decision at alpha does not flip with the seed. A claim also needs
``min_events`` accounts in the smaller outcome class.

Each metric's thresholds carry its survival picture: the Cox hazard ratio from the
correlation and Kaplan-Meier retention curves below and above the activation cutoff (or by
early-usage tertiles when there is none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from analysis import stats, survival
from analysis.correlate import Correlation
from analysis.dataset import Dataset
from analysis.params import AnalysisSettings
from analysis.stats import Cutoff, Estimate, p_text
from analysis.survival import HazardRatio, KaplanMeierBand


@dataclass(frozen=True)
class Threshold:
    kind: str
    cutoff: Cutoff | None
    reason: str
    q: float | None = None  # BH across metrics and threshold kinds


@dataclass(frozen=True)
class PriceIncrease:
    value: float | None
    n_events: int
    reason: str
    separation: Estimate | None = None  # AUC of the level, increased vs not, within month
    lift: float | None = None
    lift_ci: tuple[float, float] | None = None
    rate_above: float | None = None
    rate_below: float | None = None


@dataclass(frozen=True)
class Thresholds:
    metric: str
    activation: Threshold
    expansion: Threshold
    price_increase: PriceIncrease
    survival: HazardRatio
    survival_bands: tuple[KaplanMeierBand, ...]
    n_early_churned: int = 0  # left out of the activation cohort: churned in the early window

    @property
    def summary(self) -> pd.DataFrame:
        rows = []
        for t in (self.activation, self.expansion):
            c = t.cutoff
            rows.append({"threshold": t.kind, "value": c.value if c else None,
                         "rate_above": c.rate_above if c else None,
                         "rate_below": c.rate_below if c else None,
                         "lift": c.lift if c else None, "p_value": c.p_value if c else None,
                         "q": t.q, "n_above": c.n_above if c else None,
                         "n_below": c.n_below if c else None})
        rows.append({"threshold": "price_increase", "value": self.price_increase.value,
                     "lift": self.price_increase.lift})
        return pd.DataFrame(rows).set_index("threshold")


def _cutoff(level: pd.Series, outcome: pd.Series, params: AnalysisSettings,
            rng: np.random.Generator, strata: np.ndarray | None = None) -> Cutoff | str:
    return stats.youden_cutoff(level.to_numpy(), outcome.to_numpy(), rng=rng,
                               resamples=params.bootstrap_resamples,
                               permutations=params.permutations,
                               min_accounts=params.min_accounts,
                               min_events=max(params.min_events, params.min_class_size),
                               strata=strata)


def _price_strata(panel: pd.DataFrame, signup: pd.Series) -> NDArray[np.int64]:
    """Month and account-age band of each account-month, one number per pair: who is
    comparable with whom. Numbers, not "month|band" text: every metric's test groups the
    panel by them, and sorting 300,000 strings took 0.3 s a metric."""
    if panel.empty:
        return np.zeros(0, np.int64)
    month = pd.to_datetime(panel["month"].astype(str))
    age = (month - panel["account_id"].map(signup)).dt.days.fillna(0).clip(lower=0).to_numpy(float)
    band = stats.strata_by_quantile(np.log1p(age))
    month_code = pd.factorize(month)[0].astype(np.int64)
    return month_code * (int(band.max()) + 1) + band


def _price_test(panel: pd.DataFrame, metric: str, min_events: int,
                strata: np.ndarray) -> PriceIncrease:
    increased = panel["increased"].to_numpy(bool) if len(panel) else np.zeros(0, bool)
    events = int(increased.sum())
    if min(events, len(increased) - events) < min_events:
        return PriceIncrease(None, events, f"insufficient data: {events} MRR increases in the "
                             f"last 12 months, need {min_events}")
    level = panel[metric].to_numpy(float)
    separation = stats.stratified_auc(level, increased, strata, min_class=min_events)
    return PriceIncrease(None, events, "", separation)


def _price_claim(test: PriceIncrease, panel: pd.DataFrame, metric: str, q: float | None,
                 params: AnalysisSettings) -> PriceIncrease:
    sep = test.separation
    if sep is None or sep.value is None:
        return test
    if q is None or q >= params.alpha or sep.value < params.min_auc:
        return PriceIncrease(None, test.n_events, "none found: accounts that paid more did "
                             f"not use more {metric} than comparable accounts in the same "
                             f"months (AUC {sep.value:.2f}, q {p_text(q)}; a claim needs q "
                             f"below {params.alpha:g} and AUC {params.min_auc:g})", sep)
    increased = panel["increased"].to_numpy(bool)
    level = panel[metric].to_numpy(float)
    value = float(np.median(level[increased]))
    above = level >= value
    a, n1 = int(increased[above].sum()), int(above.sum())
    c, n0 = int(increased[~above].sum()), int((~above).sum())
    if min(a, c, n1 - a, n0 - c) == 0:
        return PriceIncrease(value, test.n_events, "", sep)
    lift = (a / n1) / (c / n0)
    se = math.sqrt(1 / a - 1 / n1 + 1 / c - 1 / n0)  # Katz log risk ratio
    return PriceIncrease(value, test.n_events, "", sep, lift,
                         (lift * math.exp(-1.959964 * se), lift * math.exp(1.959964 * se)),
                         a / n1, c / n0)


def find_all_thresholds(ds: Dataset, corr: Correlation, increases: pd.DataFrame,
                        params: AnalysisSettings) -> dict[str, Thresholds]:
    """Thresholds of every metric, BH-corrected across metrics and kinds.

    ``increases`` is the price-increase panel (:func:`analysis.features.increase_panel`)
    with one level column per metric.
    """
    rng = np.random.default_rng(params.seed)
    min_events = max(params.min_events, params.min_class_size)
    index = ds.expansion_index
    tenure_strata = stats.strata_by_quantile(
        np.log1p(ds.accounts.loc[index, "tenure_days"].clip(lower=0).to_numpy()))
    price_strata = _price_strata(increases, ds.accounts["signup_date"])
    found: dict[str, tuple[Cutoff | str, Cutoff | str, PriceIncrease]] = {}
    for metric in ds.metric_names:
        found[metric] = (_cutoff(ds.early[metric], ds.retained, params, rng),
                         _cutoff(ds.past.loc[index, metric], ds.expanded, params, rng,
                                 tenure_strata),
                         _price_test(increases, metric, min_events, price_strata))
    pvalues: list[float | None] = []
    for activation, expansion, price in found.values():
        pvalues += [c.p_value if isinstance(c, Cutoff) else None for c in (activation, expansion)]
        pvalues.append(price.separation.p if price.separation else None)
    qs = stats.bh_adjust(pvalues)
    bands = {m.metric.name: m.survival for m in corr.metrics}
    out = {}
    for i, (metric, (activation, expansion, price)) in enumerate(found.items()):
        act = _threshold("activation", activation, qs[3 * i], params.alpha)
        out[metric] = Thresholds(
            metric, act, _threshold("expansion", expansion, qs[3 * i + 1], params.alpha),
            _price_claim(price, increases, metric, qs[3 * i + 2], params),
            bands[metric],
            survival.kaplan_meier(ds.survival_early[metric], ds.survival_time,
                                  act.cutoff.value if act.cutoff else None),
            ds.n_early_churned)
    return out


def _threshold(kind: str, found: Cutoff | str, q: float | None, alpha: float) -> Threshold:
    if isinstance(found, str):
        return Threshold(kind, None, found)
    if q is None or q >= alpha:
        return Threshold(kind, None, f"none found: the best cutoff ({found.value:g}, J "
                         f"{found.j:.2f}) does not beat chance (permutation p "
                         f"{p_text(found.p_value)}, q {p_text(q)} after Benjamini-Hochberg "
                         "across metrics and threshold kinds)", q)
    return Threshold(kind, found, "", q)

