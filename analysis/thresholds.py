"""Value thresholds of one metric (DESIGN section 4).

* activation: the early-usage level that best separates retained from churned accounts;
* expansion: the level at T - 182 d that best separates accounts that expanded;
* price increase: the median level in the window before each month-over-month MRR
  increase ("the level at which accounts historically paid more").

A cutoff is reported only when its maximal Youden's J beats label permutations at the
configured alpha; otherwise the result says "none found" and why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import stats
from analysis.dataset import Dataset
from analysis.params import AnalysisSettings
from analysis.stats import Cutoff


@dataclass(frozen=True)
class Threshold:
    kind: str
    cutoff: Cutoff | None
    reason: str


@dataclass(frozen=True)
class PriceIncrease:
    value: float | None
    n_events: int
    reason: str


@dataclass(frozen=True)
class Thresholds:
    metric: str
    activation: Threshold
    expansion: Threshold
    price_increase: PriceIncrease

    @property
    def summary(self) -> pd.DataFrame:
        rows = []
        for t in (self.activation, self.expansion):
            c = t.cutoff
            rows.append({"threshold": t.kind, "value": c.value if c else None,
                         "rate_above": c.rate_above if c else None,
                         "rate_below": c.rate_below if c else None,
                         "lift": c.lift if c else None, "p_value": c.p_value if c else None,
                         "n_above": c.n_above if c else None, "n_below": c.n_below if c else None})
        rows.append({"threshold": "price_increase", "value": self.price_increase.value})
        return pd.DataFrame(rows).set_index("threshold")


def _threshold(kind: str, level: pd.Series, outcome: pd.Series, params: AnalysisSettings,
               rng: np.random.Generator) -> Threshold:
    found = stats.youden_cutoff(level.to_numpy(), outcome.to_numpy(), rng=rng,
                                resamples=params.bootstrap_resamples,
                                permutations=params.permutations,
                                min_accounts=params.min_accounts)
    if isinstance(found, str):
        return Threshold(kind, None, found)
    if found.p_value >= params.alpha:
        return Threshold(kind, None, f"none found: the best cutoff ({found.value:g}, J "
                         f"{found.j:.2f}) does not beat chance (permutation p "
                         f"{found.p_value:.2f})")
    return Threshold(kind, found, "")


def find_thresholds(ds: Dataset, metric: str, increase_levels: pd.Series,
                    params: AnalysisSettings) -> Thresholds:
    rng = np.random.default_rng(params.seed)
    activation = _threshold("activation", ds.early[metric], ds.retained, params, rng)
    expansion = _threshold("expansion", ds.past.loc[ds.expansion_index, metric], ds.expanded,
                           params, rng)
    needed = max(10, params.min_class_size)
    if len(increase_levels) < needed:
        price = PriceIncrease(None, len(increase_levels), f"insufficient data: "
                              f"{len(increase_levels)} MRR increases, need {needed}")
    else:
        price = PriceIncrease(float(increase_levels.median()), len(increase_levels), "")
    return Thresholds(metric, activation, expansion, price)
