"""The recommendation: a scorecard per metric, a primary value metric, features to gate.

Chosen by evidence, never by points (DESIGN section 4):

* Evidence of a metric = its value signals on one scale (Somers' D: rank correlation for
  ARR, 2 x (AUC - 0.5) for retention and expansion, 2 x (concordance - 0.5) for the Cox
  model), each with its 95% CI: the ARR rho that counts (within plan when prices follow
  plans, tenure held fixed), the landmarked retention AUC, the survival model (a protective
  hazard ratio; its CI on this scale assumes the same relative precision as the log hazard
  ratio) and the expansion AUC among accounts of similar age. Its strength is the largest
  signal that is significant after BH and at least the size worth pricing on (``min_rho``,
  ``min_auc``). Why: points (aligned 2 + easy 1 + ...) let a noisy metric win on a criterion
  that says nothing about value.
* The primary metric is the priceable metric (seat, usage, record, transaction, revenue
  share) that is aligned, not confounded by tenure, not a warning sign, with the strongest
  evidence. Every candidate whose strength reaches the winner's lower CI bound is a tie: the
  winner does not beat it by more than its own uncertainty, so the answer says "a tie
  between ..." and picks among them by the non-statistical criteria (easy to understand,
  hard to game, scales), which do not move week to week.
* A warning sign is a metric whose usage goes with significantly more churn (retention AUC
  below 0.5, or a hazard ratio above 1) or less expansion (tenure-adjusted): it is never
  primary or gate, and the answer names it.
* Feature-like metrics (category feature) that are aligned and whose retention or
  tenure-adjusted expansion AUC is significant and at least ``min_auc`` are recommended for
  gating to higher tiers.
* Scales = median over the expansion cohort of ln((1 + level at T) / (1 + level at T - L)):
  how much the level grows, with no growth counted as 0, not the share that grew (which
  let noisy counts beat capped seat counts).
* Scorecard points (shown, never deciding): one each for aligned, easy to understand,
  scales (median growth above 0) and hard to game.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.catalog import GATEABLE, PRICEABLE
from analysis.correlate import Correlation, MetricCorrelation
from analysis.dataset import Dataset
from analysis.params import AnalysisSettings
from analysis.stats import Estimate


@dataclass(frozen=True)
class Effect:
    """One value signal on the Somers' D scale, with its 95% CI."""

    outcome: str  # "ARR", "retention", "survival" or "expansion"
    value: float
    ci: tuple[float, float]


@dataclass(frozen=True)
class Score:
    metric: str
    category: str
    aligned: bool | None
    easy_to_understand: bool
    scales: float | None
    hard_to_game: bool
    points: float
    evidence: float  # strength: the largest qualifying effect (0 when none)
    caveats: tuple[str, ...]
    role: str  # "primary", "gate" or ""
    category_inferred: bool = False
    evidence_ci: tuple[float, float] | None = None
    warning: str = ""  # a harmful association: more churn or less expansion with more usage


@dataclass(frozen=True)
class Recommendation:
    as_of: dt.date
    primary: str | None
    gate: tuple[str, ...]
    scorecard: tuple[Score, ...]
    text: str
    tied: tuple[str, ...] = ()  # candidates the evidence cannot tell from the primary
    warnings: tuple[str, ...] = ()  # metrics associated with more churn or less expansion

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([s.__dict__ for s in self.scorecard]).set_index("metric")


def _scales(ds: Dataset, metric: str) -> float | None:
    index = ds.expansion_index
    if len(index) == 0:
        return None
    now = ds.current.loc[index, metric].clip(lower=0).to_numpy(float)
    before = ds.past.loc[index, metric].clip(lower=0).to_numpy(float)
    return float(np.median(np.log1p(now) - np.log1p(before)))


def _auc_effect(outcome: str, est: Estimate) -> Effect | None:
    if est.value is None or est.ci is None:
        return None
    return Effect(outcome, 2 * (est.value - 0.5), (2 * (est.ci[0] - 0.5), 2 * (est.ci[1] - 0.5)))


def _effects(m: MetricCorrelation, params: AnalysisSettings) -> list[Effect]:
    """Value signals that are significant and large enough to price on, strongest first."""
    out = []
    arr = m.arr_evidence
    if (arr.significant(params.alpha) and arr.value is not None and arr.ci is not None
            and arr.value >= params.min_rho):
        out.append(Effect("ARR", arr.value, arr.ci))
    floor = 2 * (params.min_auc - 0.5)
    for outcome, est in (("retention", m.retention), ("expansion", m.expansion_adjusted)):
        effect = _auc_effect(outcome, est)
        if effect is not None and est.significant(params.alpha) and effect.value >= floor:
            out.append(effect)
    h = m.survival
    if h.protective(params.alpha) and h.concordance is not None and h.p and h.hazard_ratio:
        d = 2 * (h.concordance - 0.5)
        z = abs(stats.norm.isf(h.p / 2))
        if d >= floor and z > 0:
            out.append(Effect("survival", d, (d - 1.959964 * d / z, d + 1.959964 * d / z)))
    return sorted(out, key=lambda e: -e.value)


def _gate_effects(m: MetricCorrelation, params: AnalysisSettings) -> list[Effect]:
    return [e for e in _effects(m, params) if e.outcome != "ARR"]


def _caveats(m: MetricCorrelation, params: AnalysisSettings) -> list[str]:
    alpha, min_accounts = params.alpha, params.min_accounts
    notes = []
    if m.metric.category_inferred:
        notes.append(f"category '{m.metric.category}' inferred from the name; to override: "
                     + m.metric.category_fix)
    if m.alignment.aligned and not _effects(m, params):
        notes.append(f"weak: no value signal reaches ARR rho {params.min_rho:g} (tenure "
                     f"fixed) or AUC {params.min_auc:g}")
    if m.confounded_by_tenure(alpha):
        partial = m.arr_partial.value
        notes.append(f"confounded by tenure: ARR rho {m.arr.value:.2f} falls to "
                     + (f"{partial:.2f}" if partial is not None else "nothing")
                     + " with account age held fixed")
    if m.by_construction:
        notes.append("its ARR correlation is by construction: prices follow it")
    for est, what in ((m.retention, "retention"), (m.expansion, "expansion"),
                      (m.arr_evidence, "ARR")):
        if not est.sufficient and est.note:
            notes.append(f"{what}: {est.note}")
        elif est.sufficient and est.n < 3 * min_accounts:
            notes.append(f"small sample for {what} (n={est.n})")
    for proxy in m.alignment.proxies:
        if proxy.trend.significant(alpha) and (proxy.trend.value or 0) > 0 and not proxy.monotonic:
            notes.append(f"not monotonic: {proxy.proxy} rises with usage, but unevenly across bins")
    return notes


def _phrase(m: MetricCorrelation, params: AnalysisSettings, basis: str) -> str:
    alpha = params.alpha
    bits = []
    if m.retention.significant(alpha) and (m.retention.value or 0) > 0.5:
        bits.append(f"retain more (AUC {m.retention.value:.2f})")
    if m.survival.protective(alpha):
        low, high = m.survival.ci or (0.0, 0.0)
        bits.append(f"churn less (hazard ratio {m.survival.hazard_ratio:.2f} per doubling, "
                    f"95% CI {low:.2f}-{high:.2f})")
    adjusted = m.expansion_adjusted
    if adjusted.significant(alpha) and (adjusted.value or 0) > 0.5:
        bits.append(f"expand more (AUC {adjusted.value:.2f} among accounts of similar age)")
    arr = m.arr_evidence
    if arr.significant(alpha) and (arr.value or 0) > 0:
        bits.append(f"pay more (ARR rho {arr.value:.2f}, {basis})")
    return "accounts that use more " + " and ".join(bits) if bits else "no clear value signal"


def _label(m: MetricCorrelation) -> str:
    inferred = ", category inferred" if m.metric.category_inferred else ""
    return f"{m.metric.name}{inferred}"


def recommend(ds: Dataset, corr: Correlation, params: AnalysisSettings) -> Recommendation:
    alpha = corr.alpha
    basis = corr.pricing.basis
    rows = []
    for m in corr.metrics:
        metric = m.metric
        scales = _scales(ds, metric.name)
        points = (float(bool(m.alignment.aligned)) + metric.is_easy_to_understand
                  + metric.is_hard_to_game + float((scales or 0.0) > 0))
        effects = _effects(m, params)
        rows.append((m, scales, points, effects, _caveats(m, params), m.harmful(alpha)))

    candidates = [r for r in rows
                  if r[0].metric.category in PRICEABLE and r[0].alignment.aligned
                  and not r[0].confounded_by_tenure(alpha) and r[3] and not r[5]]
    best = max(candidates, key=lambda r: r[3][0].value, default=None)
    tied = [r for r in candidates
            if best is not None and r[3][0].value >= best[3][0].ci[0]]
    # among the tied, the criteria that do not move week to week decide, then evidence
    primary = max(tied, key=lambda r: (r[2], r[1] or 0.0, r[3][0].value), default=None)
    gates = [r for r in rows if r[0].metric.category in GATEABLE
             and r[0].alignment.aligned and _gate_effects(r[0], params) and not r[5]]
    gates.sort(key=lambda r: -r[3][0].value)

    scorecard = tuple(
        Score(m.metric.name, m.metric.category, m.alignment.aligned,
              m.metric.is_easy_to_understand, scales, m.metric.is_hard_to_game,
              round(points, 2), round(effects[0].value, 3) if effects else 0.0,
              tuple(caveats),
              "primary" if primary is not None and m is primary[0]
              else "gate" if any(m is g[0] for g in gates) else "",
              m.metric.category_inferred, effects[0].ci if effects else None,
              "; ".join(harm))
        for m, scales, points, effects, caveats, harm in rows
    )
    lines = []
    others = [r for r in tied if primary is not None and r is not primary]
    if primary is not None:
        m = primary[0]
        lines.append(f"Price per {m.metric.singular} ({_label(m)}): {_phrase(m, params, basis)}.")
        if others:
            lines.append("A tie: " + ", ".join(r[0].metric.name for r in others)
                         + f" {'is' if len(others) == 1 else 'are'} within the uncertainty of "
                         f"{m.metric.name}'s evidence; {m.metric.name} is named for being "
                         "easier to understand, harder to game or growing more.")
    else:
        lines.append("No usage metric is aligned with value strongly enough to price on; "
                     "keep the current model and collect more data.")
    if gates:
        names = ", ".join(_label(g[0]) for g in gates)
        lines.append(f"Gate {names} to higher tiers: " + "; ".join(
            f"{g[0].metric.name}: {_phrase(g[0], params, basis)}" for g in gates) + ".")
    warnings = [(s.metric, s.warning) for s in scorecard if s.warning]
    for name, warning in warnings:
        lines.append(f"Warning sign: more {name} goes with {warning}; never price or gate on it.")
    if corr.pricing.note:
        lines.append(corr.pricing.note[0].upper() + corr.pricing.note[1:] + ".")
    for score in scorecard:
        # without a primary metric, the aligned ones' caveats say why none was chosen
        explains = score.role or (primary is None and score.aligned)
        if explains and score.caveats:
            lines.append(f"Caveats for {score.metric}: {'; '.join(score.caveats)}.")
    return Recommendation(corr.as_of, primary[0].metric.name if primary else None,
                          tuple(g[0].metric.name for g in gates), scorecard, " ".join(lines),
                          tuple(r[0].metric.name for r in others),
                          tuple(name for name, _ in warnings))
