"""The recommendation: a scorecard per metric, a primary value metric, features to gate.

Scorecard points: aligned with value 2, easy to understand 1, hard to game 1, plus the
share of accounts whose level grew over the expansion lookback ("scales", 0..1).
The primary metric is the best-scoring priceable metric (seat, usage, record,
transaction, revenue share) that is aligned, not confounded by tenure and has a value
signal large enough to matter; ties go to the stronger evidence (mean of the partial ARR
rho and 2 x (AUC - 0.5) of each outcome that is significant). Feature-like metrics whose
usage significantly predicts expansion or retention, with an AUC large enough to matter,
are recommended for gating to higher tiers.

"Large enough to matter" (``min_rho``, default 0.2, and ``min_auc``, default 0.6, in the
analysis settings): with thousands of accounts a rank correlation of 0.1 is significant,
yet usage that explains so little of what accounts pay is no basis for a price.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from analysis.catalog import GATEABLE, PRICEABLE
from analysis.correlate import Correlation, MetricCorrelation
from analysis.dataset import Dataset
from analysis.params import AnalysisSettings


@dataclass(frozen=True)
class Score:
    metric: str
    category: str
    aligned: bool | None
    easy_to_understand: bool
    scales: float | None
    hard_to_game: bool
    points: float
    evidence: float
    caveats: tuple[str, ...]
    role: str  # "primary", "gate" or ""


@dataclass(frozen=True)
class Recommendation:
    as_of: dt.date
    primary: str | None
    gate: tuple[str, ...]
    scorecard: tuple[Score, ...]
    text: str

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([s.__dict__ for s in self.scorecard]).set_index("metric")


def _scales(ds: Dataset, metric: str) -> float | None:
    index = ds.expansion_index
    if len(index) == 0:
        return None
    return float((ds.current.loc[index, metric] > ds.past.loc[index, metric]).mean())


def _evidence(m: MetricCorrelation, alpha: float) -> float:
    parts = []
    if m.arr_partial.significant(alpha) and m.arr_partial.value is not None:
        parts.append(m.arr_partial.value)
    for est in (m.retention, m.expansion):
        if est.significant(alpha) and est.value is not None:
            parts.append(2 * (est.value - 0.5))
    return sum(parts) / len(parts) if parts else 0.0


def _strong_aucs(m: MetricCorrelation, params: AnalysisSettings) -> list[str]:
    """Outcomes whose AUC is significant and at least ``min_auc``."""
    return [what for est, what in ((m.retention, "retention"), (m.expansion, "expansion"))
            if est.significant(params.alpha) and (est.value or 0) >= params.min_auc]


def _strong_signals(m: MetricCorrelation, params: AnalysisSettings) -> list[str]:
    """Value signals that are significant and large enough to price on."""
    strong = _strong_aucs(m, params)
    partial = m.arr_partial
    if partial.significant(params.alpha) and (partial.value or 0) >= params.min_rho:
        strong.append("ARR")
    return strong


def _caveats(m: MetricCorrelation, params: AnalysisSettings) -> list[str]:
    alpha, min_accounts = params.alpha, params.min_accounts
    notes = []
    if m.alignment.aligned and not _strong_signals(m, params):
        notes.append(f"weak: no value signal reaches ARR rho {params.min_rho:g} with tenure "
                     f"fixed or AUC {params.min_auc:g}")
    if m.confounded_by_tenure(alpha):
        partial = m.arr_partial.value
        notes.append(f"confounded by tenure: ARR rho {m.arr.value:.2f} falls to "
                     + (f"{partial:.2f}" if partial is not None else "nothing")
                     + " with account age held fixed")
    for est, what in ((m.retention, "retention"), (m.expansion, "expansion"),
                      (m.arr, "ARR")):
        if not est.sufficient:
            notes.append(f"{what}: {est.note}")
        elif est.n < 3 * min_accounts:
            notes.append(f"small sample for {what} (n={est.n})")
    for proxy in m.alignment.proxies:
        if proxy.trend.significant(alpha) and (proxy.trend.value or 0) > 0 and not proxy.monotonic:
            notes.append(f"not monotonic: {proxy.proxy} rises with usage, but unevenly across bins")
    return notes


def _phrase(m: MetricCorrelation, alpha: float) -> str:
    bits = []
    if m.retention.significant(alpha) and (m.retention.value or 0) > 0.5:
        bits.append(f"retain more (AUC {m.retention.value:.2f})")
    if m.expansion.significant(alpha) and (m.expansion.value or 0) > 0.5:
        bits.append(f"expand more (AUC {m.expansion.value:.2f})")
    if m.arr.significant(alpha) and (m.arr.value or 0) > 0:
        partial = m.arr_partial.value
        bits.append(f"pay more (ARR rho {m.arr.value:.2f}"
                    + (f", {partial:.2f} with tenure fixed)" if partial is not None else ")"))
    return "accounts that use more " + " and ".join(bits) if bits else "no clear value signal"


def recommend(ds: Dataset, corr: Correlation, params: AnalysisSettings) -> Recommendation:
    alpha = corr.alpha
    scored = []
    for m in corr.metrics:
        metric = m.metric
        scales = _scales(ds, metric.name)
        points = (2.0 * bool(m.alignment.aligned) + metric.is_easy_to_understand
                  + metric.is_hard_to_game + (scales or 0.0))
        scored.append((m, scales, points, _evidence(m, alpha),
                       _caveats(m, params)))

    candidates = [row for row in scored
                  if row[0].metric.category in PRICEABLE and row[0].alignment.aligned
                  and not row[0].confounded_by_tenure(alpha) and _strong_signals(row[0], params)]
    primary = max(candidates, key=lambda r: (r[2], r[3]), default=None)
    gates = [row for row in scored if row[0].metric.category in GATEABLE
             and row[0].alignment.aligned and _strong_aucs(row[0], params)]
    gates.sort(key=lambda r: -r[3])

    scorecard = tuple(
        Score(m.metric.name, m.metric.category, m.alignment.aligned,
              m.metric.is_easy_to_understand, scales, m.metric.is_hard_to_game,
              round(points, 2), round(evidence, 3), tuple(caveats),
              "primary" if primary is not None and m is primary[0]
              else "gate" if any(m is g[0] for g in gates) else "")
        for m, scales, points, evidence, caveats in scored
    )
    lines = []
    if primary is not None:
        m = primary[0]
        lines.append(f"Price per {m.metric.singular} ({m.metric.name}): {_phrase(m, alpha)}.")
    else:
        lines.append("No usage metric is aligned with value strongly enough to price on; "
                     "keep the current model and collect more data.")
    if gates:
        names = ", ".join(g[0].metric.name for g in gates)
        lines.append(f"Gate {names} to higher tiers: " + "; ".join(
            f"{g[0].metric.name}: {_phrase(g[0], alpha)}" for g in gates) + ".")
    for score in scorecard:
        # without a primary metric, the aligned ones' caveats say why none was chosen
        explains = score.role or (primary is None and score.aligned)
        if explains and score.caveats:
            lines.append(f"Caveats for {score.metric}: {'; '.join(score.caveats)}.")
    return Recommendation(corr.as_of, primary[0].metric.name if primary else None,
                          tuple(g[0].metric.name for g in gates), scorecard, " ".join(lines))
