"""Statistics on per-account arrays: rank correlations, AUCs, trends, cutoffs.

Choices a careful analyst has to make, made once here:

* Spearman CI: percentile bootstrap over accounts. For speed on 50,000 accounts the
  resamples reuse the full-sample ranks (the bootstrap of Pearson's r on rank-transformed
  data) and all metrics share the same resamples; on continuous data this matches
  re-ranking each resample to within Monte Carlo error, and the tests hold it to
  scipy.stats.bootstrap.
* Partial Spearman: Pearson's partial correlation of ranks, with n - 2 - k degrees of
  freedom for k controls (as pingouin's ``partial_corr(method="spearman")``); ranks make
  "log account age" and account age the same control. A grouping (the plan) is held fixed by
  removing each group's mean rank as well, which is the pooled within-plan rank
  correlation: when prices follow plans, big accounts buy big plans and every usage metric
  correlates with ARR across plans; within a plan it must earn its correlation.
* Stratified AUC (accounts of similar age compared with each other, in bands of about 25
  accounts): AUCs within strata
  combined with weights n1 x n0 (the pairs each stratum compares, as van Elteren's test),
  DeLong variances combined the same way, normal p. Why: a metric that only grows with
  account age must not predict an outcome that also depends on age.
* AUC = P(score of a positive > score of a negative) + ties/2 = Mann-Whitney U / (n1 n0);
  CI from DeLong's variance (pROC's default); p-value from the Mann-Whitney test.
* Cutoffs: Youden's J over every observed level with at least ``min_side`` accounts on
  each side; "beats chance" is a permutation test of the maximal J (which corrects for
  having picked the best cutoff); the cutoff's CI is a percentile bootstrap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

Array = NDArray[np.float64]
_BATCH_CELLS = 2_000_000  # cap on resample-matrix size (cells) per bootstrap batch


@dataclass(frozen=True)
class Estimate:
    """A statistic with its uncertainty, or the reason there is no number."""

    value: float | None
    ci: tuple[float, float] | None
    p: float | None
    n: int
    p_adjusted: float | None = None
    note: str = ""

    @property
    def sufficient(self) -> bool:
        return self.value is not None

    def significant(self, alpha: float) -> bool:
        p = self.p_adjusted if self.p_adjusted is not None else self.p
        return self.value is not None and p is not None and p < alpha

    @classmethod
    def insufficient(cls, n: int, note: str) -> Estimate:
        return cls(value=None, ci=None, p=None, n=n, note=note)


def _bootstrap_rank_correlations(rx: Array, ry: Array, resamples: int,
                                 rng: np.random.Generator) -> Array:
    """Pearson r of each column of ranks ``rx`` (n, k) with ``ry`` over bootstrap resamples.

    A resample is a count per account; every sum the correlation needs is then one matrix
    product of the counts with [x, x^2, xy, y, y^2], shared by all k columns. Returns
    (resamples, k).
    """
    n, k = rx.shape
    x = rx - rx.mean(axis=0)
    y = (ry - ry.mean())[:, None]
    moments = np.hstack([x, x * x, x * y, y, y * y])  # (n, 3k + 2)
    batch = max(1, _BATCH_CELLS // n)
    out: list[Array] = []
    done = 0
    while done < resamples:
        b = min(batch, resamples - done)
        idx = rng.integers(0, n, (b, n))
        counts = np.bincount((np.arange(b)[:, None] * n + idx).ravel(),
                             minlength=b * n).reshape(b, n).astype(float)
        s = counts @ moments / n  # (b, 3k + 2): means over the resample
        sx, sxx, sxy = s[:, :k], s[:, k:2 * k], s[:, 2 * k:3 * k]
        sy, syy = s[:, 3 * k:3 * k + 1], s[:, 3 * k + 1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append((sxy - sx * sy) / np.sqrt((sxx - sx * sx) * (syy - sy * sy)))
        done += b
    return np.vstack(out)


def spearman_many(columns: Sequence[ArrayLike], y: ArrayLike, *, resamples: int,
                  rng: np.random.Generator, min_n: int) -> list[Estimate]:
    """Spearman's rho of each column with ``y``, with percentile-bootstrap 95% CIs.

    All columns share the same resamples, which is also what makes this fast.
    """
    ya = np.asarray(y, float)
    n = len(ya)
    xs = [np.asarray(x, float) for x in columns]
    if n < min_n:
        return [Estimate.insufficient(n, f"insufficient data: {n} accounts, need {min_n}")
                for _ in xs]
    usable = [i for i, x in enumerate(xs) if np.ptp(x) > 0 and np.ptp(ya) > 0]
    out = [Estimate.insufficient(n, "insufficient data: no variation to correlate") for _ in xs]
    if not usable:
        return out
    rx = np.column_stack([stats.rankdata(xs[i]) for i in usable])
    boot = _bootstrap_rank_correlations(rx, stats.rankdata(ya), resamples, rng)
    for j, i in enumerate(usable):
        result = stats.spearmanr(xs[i], ya)
        draws = boot[:, j][np.isfinite(boot[:, j])]
        lo, hi = np.percentile(draws, [2.5, 97.5])
        out[i] = Estimate(float(result.statistic), (float(lo), float(hi)),
                          float(result.pvalue), n)
    return out


def spearman(x: ArrayLike, y: ArrayLike, *, resamples: int, rng: np.random.Generator,
             min_n: int) -> Estimate:
    """Spearman's rho with a percentile-bootstrap 95% CI."""
    return spearman_many([x], y, resamples=resamples, rng=rng, min_n=min_n)[0]


def partial_spearman(x: ArrayLike, y: ArrayLike, z: ArrayLike, *, min_n: int) -> Estimate:
    """Spearman correlation of x and y with z held fixed (rank partial correlation)."""
    return partial_rank_correlation(x, y, [z], min_n=min_n)


def partial_rank_correlation(x: ArrayLike, y: ArrayLike, controls: Sequence[ArrayLike], *,
                             min_n: int, groups: ArrayLike | None = None) -> Estimate:
    """Rank correlation of x and y holding ``controls`` (ranked) and ``groups`` fixed.

    The ranks of x and y are regressed on the ranks of the controls and one indicator per
    group; the estimate is the correlation of the residuals, with a t test on
    n - 2 - (number of controls) degrees of freedom and a Fisher-z interval.
    """
    xa, ya = np.asarray(x, float), np.asarray(y, float)
    n = len(xa)
    if n < min_n:
        return Estimate.insufficient(n, f"insufficient data: {n} accounts, need {min_n}")
    design = [np.ones(n)] + [stats.rankdata(np.asarray(c, float)) for c in controls]
    if groups is not None:
        labels = np.unique(np.asarray(groups), return_inverse=True)[1]
        design += [(labels == g).astype(float) for g in range(1, labels.max() + 1)]
    basis = np.column_stack(design)
    k = np.linalg.matrix_rank(basis) - 1
    dof = n - 2 - k
    if np.ptp(xa) == 0 or np.ptp(ya) == 0 or dof < 2:
        return Estimate.insufficient(n, "insufficient data: no variation to correlate")
    residuals = []
    for v in (stats.rankdata(xa), stats.rankdata(ya)):
        coef, *_ = np.linalg.lstsq(basis, v, rcond=None)
        residuals.append(v - basis @ coef)
    rx, ry = residuals
    denom = math.sqrt(float(rx @ rx) * float(ry @ ry))
    if denom <= 1e-9 * n * n:
        return Estimate.insufficient(n, "insufficient data: usage is fully explained by "
                                        "tenure" + (" and plan" if groups is not None else ""))
    rho = float(np.clip(float(rx @ ry) / denom, -1, 1))
    t = rho * math.sqrt(dof / max(1 - rho**2, 1e-300))
    p = float(2 * stats.t.sf(abs(t), dof))
    zr, se = math.atanh(min(max(rho, -0.999999), 0.999999)), 1 / math.sqrt(max(dof - 1, 1))
    ci = (math.tanh(zr - 1.959964 * se), math.tanh(zr + 1.959964 * se))
    return Estimate(rho, ci, p, n)


def _delong(pos: Array, neg: Array) -> tuple[float, float]:
    """AUC of positives over negatives and DeLong's variance of it."""
    m, k = len(pos), len(neg)
    tx, ty = stats.rankdata(pos), stats.rankdata(neg)
    tz = stats.rankdata(np.concatenate([pos, neg]))
    value = (tz[:m].sum() - m * (m + 1) / 2) / (m * k)
    v01 = (tz[:m] - tx) / k
    v10 = 1 - (tz[m:] - ty) / m
    var = np.var(v01, ddof=1) / m + np.var(v10, ddof=1) / k
    return float(value), float(max(var, 0.0))


def stratified_auc(scores: ArrayLike, positive: ArrayLike, strata: ArrayLike, *,
                   min_class: int) -> Estimate:
    """AUC comparing accounts only within their stratum (e.g. tenure band), with a 95% CI."""
    s = np.asarray(scores, float)
    y = np.asarray(positive, bool)
    g = np.asarray(strata)
    m, k = int(y.sum()), int((~y).sum())
    if min(m, k) < min_class:
        return Estimate.insufficient(
            len(s), f"insufficient data: {m} positive and {k} negative accounts, need "
            f"{min_class} of each")
    total_w, value, var = 0.0, 0.0, 0.0
    # each stratum's rows by one stable sort, not a comparison of every row per stratum
    # (thousands of month x age strata over a 300,000-row panel took seconds)
    codes = np.unique(g, return_inverse=True)[1].ravel()
    order = np.argsort(codes, kind="stable")
    for rows in np.split(order, np.flatnonzero(np.diff(codes[order])) + 1):
        inside_s, inside_y = s[rows], y[rows]
        pos, neg = inside_s[inside_y], inside_s[~inside_y]
        if len(pos) < 2 or len(neg) < 2:
            continue
        a, v = _delong(pos, neg)
        w = float(len(pos) * len(neg))
        total_w += w
        value += w * a
        var += w * w * v
    if total_w == 0:
        return Estimate.insufficient(len(s), "insufficient data: no stratum has both outcomes")
    value /= total_w
    se = math.sqrt(var) / total_w
    p = 1.0 if se == 0 else float(2 * stats.norm.sf(abs(value - 0.5) / se))
    ci = (max(0.0, value - 1.959964 * se), min(1.0, value + 1.959964 * se))
    return Estimate(value, ci, p, len(s))


def auc(scores: ArrayLike, positive: ArrayLike, *, min_class: int) -> Estimate:
    """AUC of ``scores`` for the boolean ``positive``, with DeLong's 95% CI."""
    s = np.asarray(scores, float)
    y = np.asarray(positive, bool)
    pos, neg = s[y], s[~y]
    m, k = len(pos), len(neg)
    if min(m, k) < min_class:
        return Estimate.insufficient(
            len(s), f"insufficient data: {m} positive and {k} negative accounts, need "
            f"{min_class} of each")
    value, var = _delong(pos, neg)
    se = math.sqrt(var)
    ci = (max(0.0, value - 1.959964 * se), min(1.0, value + 1.959964 * se))
    if np.ptp(s) == 0:
        p = 1.0
    else:
        p = float(stats.mannwhitneyu(pos, neg, alternative="two-sided").pvalue)
    return Estimate(value, ci, p, len(s))


def strata_by_quantile(x: ArrayLike) -> NDArray[np.int64]:
    """Narrow quantile bands of ``x`` (e.g. log tenure) as stratum labels.

    About 25 accounts a band (5 to 50 bands): narrow enough that a metric growing with age
    hardly differs inside a band, wide enough that most bands hold both outcomes.
    """
    xa = np.asarray(x, float)
    if len(xa) == 0:
        return np.zeros(0, np.int64)
    return quantile_bins(xa, int(np.clip(len(xa) // 25, 5, 50)))


def p_text(p: float | None) -> str:
    """A p or q value for people: '< 0.001', else three significant digits below 0.1 so
    0.0498 is never printed as 0.05 (the side of alpha it falls on must show)."""
    if p is None or not math.isfinite(p):
        return "n/a"
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3g}" if p < 0.1 else f"{p:.2f}"


def bh_adjust(pvalues: list[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values; None stays None and is not counted."""
    present = [i for i, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = [None] * len(pvalues)
    if present:
        adjusted = stats.false_discovery_control([pvalues[i] for i in present])
        for i, q in zip(present, adjusted, strict=True):
            out[i] = float(q)
    return out


def quantile_bins(x: ArrayLike, bins: int) -> NDArray[np.int64]:
    """Bin number 1..bins by usage quantile; equal values always share a bin."""
    xa = np.asarray(x, float)
    ranks = stats.rankdata(xa, method="average")
    return np.clip(np.ceil(ranks * bins / len(xa)), 1, bins).astype(np.int64)


@dataclass(frozen=True)
class Cutoff:
    """The best "level >= value" rule for a binary outcome."""

    value: float
    j: float
    rate_above: float
    rate_below: float
    n_above: int
    n_below: int
    sensitivity: float
    specificity: float
    p_value: float
    ci: tuple[float, float]
    n: int

    @property
    def lift(self) -> float | None:
        return self.rate_above / self.rate_below if self.rate_below > 0 else None

    @property
    def ppv(self) -> float:
        return self.rate_above

    @property
    def npv(self) -> float:
        return 1 - self.rate_below


def _best_j(group_pos: NDArray[Any], group_neg: NDArray[Any],
            min_side: int) -> tuple[NDArray[np.int64], Array]:
    """Per row: index of the unique value whose ">= value" rule maximises J, and that J.

    ``group_pos``/``group_neg`` count positives/negatives per unique value (ascending);
    a 2-D array is a batch of such rows.
    """
    pos = np.atleast_2d(group_pos)
    neg = np.atleast_2d(group_neg)
    total_pos = pos.sum(axis=1, keepdims=True)
    total_neg = neg.sum(axis=1, keepdims=True)
    # below[k] = accounts with value < unique[k]
    below_pos = np.cumsum(pos, axis=1) - pos
    below_neg = np.cumsum(neg, axis=1) - neg
    n_below = below_pos + below_neg
    n_above = (total_pos + total_neg) - n_below
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = (total_pos - below_pos) / total_pos
        spec = below_neg / total_neg
    j = sens + spec - 1
    j = np.where((n_below >= min_side) & (n_above >= min_side), j, -np.inf)
    best = np.argmax(j, axis=1)
    return best, j[np.arange(len(best)), best]


def youden_cutoff(level: ArrayLike, positive: ArrayLike, *, rng: np.random.Generator,
                  resamples: int, permutations: int, min_accounts: int,
                  min_events: int = 1, strata: ArrayLike | None = None) -> Cutoff | str:
    """The cutoff maximising Youden's J, or the reason there is none.

    ``strata`` (e.g. tenure bands): the permutation test shuffles outcomes only within a
    stratum, so a level that tracks what the strata explain does not beat chance.
    """
    x = np.asarray(level, float)
    y = np.asarray(positive, bool)
    n = len(x)
    min_side = max(10, math.ceil(0.05 * n))
    if n < max(min_accounts, 2 * min_side):
        return f"insufficient data: {n} accounts, need {max(min_accounts, 2 * min_side)}"
    if y.all() or not y.any():
        return "insufficient data: every account has the same outcome"
    smaller = int(min(y.sum(), (~y).sum()))
    if smaller < min_events:
        return (f"insufficient data: {smaller} accounts in the smaller outcome class, need "
                f"{min_events}")
    values, group = np.unique(x, return_inverse=True)
    u = len(values)
    pos = np.bincount(group[y], minlength=u)
    neg = np.bincount(group[~y], minlength=u)
    best, best_j = _best_j(pos, neg, min_side)
    k, j = int(best[0]), float(best_j[0])
    if not math.isfinite(j) or u < 2:
        return "none found: no cutoff leaves enough accounts on both sides"

    # permutation test of the maximal J (labels shuffled, cutoff re-chosen each time);
    # within strata when given, so what the strata explain (account age) is kept. A shuffle
    # only decides which accounts of a stratum are the positive ones, so each permutation
    # draws that many of the stratum's accounts without replacement (or the negative ones,
    # when fewer, and counts the rest): the same distribution as shuffling every label, at
    # a tenth of the cost.
    labels = np.zeros(n, np.int64) if strata is None else np.unique(
        np.asarray(strata), return_inverse=True)[1]
    order = np.argsort(labels, kind="stable")
    draws: list[tuple[NDArray[np.int64], int]] = []  # (levels of a stratum, accounts drawn)
    signs: list[NDArray[np.float64]] = []  # +1 for a drawn positive, -1 for a drawn negative
    base = np.zeros(u)  # positives of the strata whose negatives are drawn
    for members in np.split(order, np.flatnonzero(np.diff(labels[order])) + 1):
        positives = int(y[members].sum())
        negatives = len(members) - positives
        drawn_negatives = negatives < positives
        draws.append((group[members], min(positives, negatives)))
        signs.append(np.full(min(positives, negatives), -1.0 if drawn_negatives else 1.0))
        if drawn_negatives:
            base += np.bincount(group[members], minlength=u)
    weights = np.concatenate(signs)
    exceed = 0
    batch = max(1, _BATCH_CELLS // u)
    done = 0
    while done < permutations:
        b = min(batch, permutations - done)
        pos_b = np.empty((b, u))
        for row in range(b):
            drawn = np.concatenate([levels[rng.choice(len(levels), k, replace=False,
                                                      shuffle=False)] for levels, k in draws])
            pos_b[row] = base + np.bincount(drawn, weights=weights, minlength=u)
        _, jb = _best_j(pos_b, (pos + neg)[None, :] - pos_b, min_side)
        exceed += int((jb >= j - 1e-12).sum())
        done += b
    p_value = (exceed + 1) / (permutations + 1)

    # bootstrap interval of the cutoff. Resampling accounts only changes how many fall in
    # each (level, outcome) cell, so a resample is one multinomial draw over the 2u cells:
    # the same distribution as drawing n accounts, at O(levels) instead of O(accounts).
    # With levels nearly all distinct the accounts are cheaper to draw (a multinomial costs
    # some 40 ns a cell, drawing and counting an account 5 ns).
    picks: list[float] = []
    cell_share = np.concatenate([pos, neg]) / n
    cell_of = group + u * (~y)  # positives' cells first, as cell_share
    by_account = 16 * u > n
    done = 0
    while done < resamples:
        b = min(max(1, _BATCH_CELLS // (2 * u)), resamples - done)
        cells = (np.stack([np.bincount(cell_of[rng.integers(0, n, n)], minlength=2 * u)
                           for _ in range(b)]) if by_account
                 else rng.multinomial(n, cell_share, size=b))
        kb, jb = _best_j(cells[:, :u], cells[:, u:], min_side)
        picks.extend(values[kb[np.isfinite(jb)]])
        done += b
    lo, hi = (np.percentile(picks, [2.5, 97.5]) if picks else (values[k], values[k]))

    above = x >= values[k]
    return Cutoff(
        value=float(values[k]), j=j,
        rate_above=float(y[above].mean()), rate_below=float(y[~above].mean()),
        n_above=int(above.sum()), n_below=int((~above).sum()),
        sensitivity=float(y[above].sum() / y.sum()),
        specificity=float((~y[~above]).sum() / (~y).sum()),
        p_value=float(p_value), ci=(float(lo), float(hi)), n=n,
    )
