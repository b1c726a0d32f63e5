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
  more usage, less churn. Fitted here by Newton-Raphson on Efron's partial likelihood with
  delayed entry (one covariate, vectorised: lifelines' general fitter took over a minute on
  50,000 accounts); 95% Wald CI. The tests hold it to statsmodels' PHReg. Concordance
  (Harrell's C, lifelines) says how well the level orders churn times (0.5 = chance); it is
  descriptive, so above 5,000 accounts it is computed on a fixed sample of them. Why Cox
  beside the AUC: it uses accounts too young for the fixed horizon and the timing of churn,
  not just whether it happened.
* Kaplan-Meier curves per usage band (below / at or above the activation cutoff when there
  is one, else tertiles of early usage), with Greenwood 95% intervals.
* A claim needs at least ``min_events`` churn events and as many accounts that did not churn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.utils import concordance_index
from scipy import stats as sps

from analysis import stats

CONCORDANCE_SAMPLE = 5000


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
    tenure = time["tenure"].to_numpy(float)
    churned = time["churned"].to_numpy(bool)
    fitted = _efron_newton(x, tenure, churned, time["entry"].to_numpy(float))
    if fitted is None:
        return HazardRatio(None, None, None, None, n, events, None,
                           "insufficient data: the Cox model did not converge")
    coef, se = fitted
    p = float(2 * sps.norm.sf(abs(coef / se)))
    return HazardRatio(math.exp(coef), (math.exp(coef - 1.959964 * se),
                                        math.exp(coef + 1.959964 * se)),
                       p, None, n, events, _concordance(level.index, x * coef, tenure, churned))


def _concordance(index: pd.Index, risk: np.ndarray, tenure: np.ndarray,
                 churned: np.ndarray) -> float:
    """Harrell's C of the risk score, on a fixed sample (by account id) when large."""
    chosen = np.argsort(index.astype(str).to_numpy(), kind="stable")
    if len(chosen) > CONCORDANCE_SAMPLE:
        rng = np.random.default_rng(0)
        chosen = np.sort(rng.choice(chosen, CONCORDANCE_SAMPLE, replace=False))
    return float(concordance_index(tenure[chosen], -risk[chosen], churned[chosen]))


def _efron_newton(x: np.ndarray, tenure: np.ndarray, churned: np.ndarray,
                  entry: np.ndarray) -> tuple[float, float] | None:
    """(coefficient, standard error) of a one-covariate Cox model, Efron ties, delayed entry.

    At event time t the risk set is every account with entry < t <= tenure. Its sums of
    exp(bx) x^k are suffix sums over the event times, each account's term put at the last
    event time up to its tenure and taken off at the last one up to its entry; where those
    fall is found once, so a Newton step is a few passes over the accounts.
    """
    xc = x - x.mean()
    times = np.unique(tenure[churned])
    # account i is at risk at times[t] for t below stop[i] and not below stop[n + i]
    stop = np.concatenate([np.searchsorted(times, tenure, side="right"),
                           np.searchsorted(times, entry, side="right")])
    slot = np.searchsorted(times, tenure[churned])
    ties = np.bincount(slot, minlength=len(times))
    group = np.repeat(np.arange(len(times)), ties)
    share = (np.arange(len(group)) - np.repeat(np.cumsum(ties) - ties, ties)) / ties[group]
    x_events = xc[churned]

    def moments(beta: float) -> tuple[float, float, float]:
        w = np.exp(beta * xc)
        powers = np.vstack([w, w * xc, w * xc * xc])  # (3, n)
        s = np.vstack([np.cumsum(np.bincount(stop, np.concatenate([p, -p]),
                                             len(times) + 1)[::-1])[-2::-1]
                       for p in powers])  # (3, event times)
        d = np.vstack([np.bincount(slot, weights=p, minlength=len(times))
                       for p in powers[:, churned]])
        a = s[:, group] - share * d[:, group]
        loglik = float(beta * x_events.sum() - np.log(a[0]).sum())
        score = float(x_events.sum() - (a[1] / a[0]).sum())
        info = float((a[2] / a[0] - (a[1] / a[0]) ** 2).sum())
        return loglik, score, info

    beta = 0.0
    loglik, score, info = moments(beta)
    for _ in range(100):
        if info <= 0:
            return None
        step = score / info
        while True:
            candidate = moments(beta + step)
            if candidate[0] >= loglik - 1e-12 or abs(step) < 1e-12:
                break
            step /= 2
        beta += step
        loglik, score, info = candidate
        if abs(step) < 1e-10:
            break
    else:
        return None
    if not (math.isfinite(beta) and info > 0):
        return None
    return beta, 1 / math.sqrt(info)


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
