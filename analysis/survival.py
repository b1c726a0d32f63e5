"""Retention as time to churn: Kaplan-Meier curves by usage band and Cox hazard ratios.

Beside the fixed-window retention AUC, survival analysis uses every account and every churn
event known at the as-of date T (DESIGN section 4):

* Cohort: accounts signed up at least E days before T and still active at signup + E (the
  landmark), so that the early-usage level is measured over a full window for everyone
  (see :mod:`analysis.dataset` for why churn inside the window must not count).
* Time scale: tenure in days since signup; an account active at T is censored at its tenure
  at T; everyone enters at E (delayed entry), so no one is at risk before the landmark.
* Cox proportional hazards per metric on log2(1 + early level): the hazard ratio is per
  doubling of usage, a scale on which seats, API calls and records compare. HR < 1 means
  more usage, less churn. 95% Wald CI, Efron ties; concordance says how well the level
  orders churn times (0.5 = chance). Why Cox beside the AUC: it uses accounts too young for
  the fixed horizon and the timing of churn, not just whether it happened.
* Kaplan-Meier curves per usage band (below / at or above the activation cutoff when there
  is one, else tertiles of early usage), with Greenwood 95% intervals.
* A claim needs at least ``min_events`` churn events and as many accounts that did not churn.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.exceptions import ConvergenceError

from analysis import stats


@dataclass(frozen=True)
class HazardRatio:
    """Cox hazard ratio of churn per doubling of early usage, or why there is none."""

    hazard_ratio: float | None
    ci: tuple[float, float] | None
    p: float | None
    q: float | None
    n: int
    events: int
    concordance: float | None
    note: str = ""

    @property
    def sufficient(self) -> bool:
        return self.hazard_ratio is not None

    def significant(self, alpha: float) -> bool:
        return self.q is not None and self.q < alpha

    def protective(self, alpha: float) -> bool:
        """More usage, significantly less churn."""
        return self.significant(alpha) and (self.hazard_ratio or 1.0) < 1

    def harmful(self, alpha: float) -> bool:
        """More usage, significantly more churn: a warning sign, never a price or a gate."""
        return self.significant(alpha) and (self.hazard_ratio or 1.0) > 1


@dataclass(frozen=True)
class KaplanMeierBand:
    """Kaplan-Meier retention of the accounts whose early level is in [lo, hi]."""

    label: str
    lo: float
    hi: float
    n: int
    events: int
    times: tuple[float, ...]  # tenure in days
    survival: tuple[float, ...]
    ci_lower: tuple[float, ...]
    ci_upper: tuple[float, ...]

    def survival_at(self, days: float) -> float:
        """Share still active at ``days`` of tenure (step function)."""
        index = int(np.searchsorted(self.times, days, side="right")) - 1
        return self.survival[index] if index >= 0 else 1.0


def cox_per_doubling(level: pd.Series, time: pd.DataFrame, *, min_events: int) -> HazardRatio:
    """Cox model of churn on log2(1 + level); ``time`` has tenure, churned and entry."""
    n = len(level)
    events = int(time["churned"].sum())
    smaller = min(events, n - events)
    if smaller < min_events:
        return HazardRatio(None, None, None, None, n, events, None,
                           f"insufficient data: {events} churn events among {n} accounts, "
                           f"need {min_events} churned and {min_events} not")
    x = np.log2(1 + level.clip(lower=0).to_numpy(float))
    if np.ptp(x) == 0:
        return HazardRatio(None, None, None, None, n, events, None,
                           "insufficient data: every account has the same early usage")
    frame = pd.DataFrame({"log2_usage": x, "tenure": time["tenure"].to_numpy(float),
                          "churned": time["churned"].to_numpy(bool),
                          "entry": time["entry"].to_numpy(float)})
    fitter = CoxPHFitter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitter.fit(frame, duration_col="tenure", event_col="churned", entry_col="entry")
    except ConvergenceError:
        return HazardRatio(None, None, None, None, n, events, None,
                           "insufficient data: the Cox model did not converge")
    row = fitter.summary.loc["log2_usage"]
    coef, se = float(row["coef"]), float(row["se(coef)"])
    return HazardRatio(math.exp(coef), (math.exp(coef - 1.959964 * se),
                                        math.exp(coef + 1.959964 * se)),
                       float(row["p"]), None, n, events, float(fitter.concordance_index_))


def with_q(ratios: list[HazardRatio]) -> list[HazardRatio]:
    """The same hazard ratios with Benjamini-Hochberg q across them (one per metric)."""
    qs = stats.bh_adjust([h.p for h in ratios])
    return [HazardRatio(h.hazard_ratio, h.ci, h.p, q, h.n, h.events, h.concordance, h.note)
            for h, q in zip(ratios, qs, strict=True)]


def kaplan_meier(level: pd.Series, time: pd.DataFrame, cutoff: float | None
                 ) -> tuple[KaplanMeierBand, ...]:
    """Retention curves by usage band: below/above ``cutoff``, else early-usage tertiles."""
    x = level.to_numpy(float)
    if len(x) == 0:
        return ()
    if cutoff is not None:
        bands = np.where(x >= cutoff, 2, 1)
        labels = {1: f"below {cutoff:g}", 2: f"{cutoff:g} or more"}
    else:
        bands = stats.quantile_bins(x, 3)
        labels = {1: "lowest third", 2: "middle third", 3: "highest third"}
    out = []
    for band in np.unique(bands):
        inside = bands == band
        t = time[inside]
        fitter = KaplanMeierFitter()
        fitter.fit(t["tenure"], t["churned"], entry=t["entry"])
        table = fitter.survival_function_
        interval = fitter.confidence_interval_survival_function_
        out.append(KaplanMeierBand(
            labels[int(band)], float(x[inside].min()), float(x[inside].max()),
            int(inside.sum()), int(t["churned"].sum()),
            tuple(float(v) for v in table.index),
            tuple(float(v) for v in table.iloc[:, 0]),
            tuple(float(v) for v in interval.iloc[:, 0]),
            tuple(float(v) for v in interval.iloc[:, 1])))
    return tuple(out)
