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
    # Regressing on one indicator per group (the intercept, with no groups) is removing each
    # group's mean; what is left of the ranks is then regressed on what is left of the
    # controls' ranks only (Frisch-Waugh-Lovell): (n, controls) instead of (n, groups).
    labels = (np.zeros(n, np.int64) if groups is None
              else np.unique(np.asarray(groups), return_inverse=True)[1].ravel())
    members = np.bincount(labels)
    ranks = np.column_stack([stats.rankdata(np.asarray(c, float)) for c in controls]
                            + [stats.rankdata(xa), stats.rankdata(ya)])
    means = np.column_stack([np.bincount(labels, r) for r in ranks.T]) / members[:, None]
    centred = ranks - means[labels]
    left, targets = centred[:, :-2], centred[:, -2:]
    # numpy's matrix_rank and lstsq cutoff on the whole design [1, controls, indicators],
    # with its Frobenius norm for its largest singular value (at most sqrt(columns) above)
    columns = len(members) + len(controls)
    norm = math.sqrt(n + float((ranks[:, :-2] ** 2).sum()) + n - members[0])
    basis, singular, _ = np.linalg.svd(left, full_matrices=False)
    basis = basis[:, singular > norm * max(n, columns) * np.finfo(float).eps]
    k = len(members) - 1 + basis.shape[1]
    dof = n - 2 - k
    if np.ptp(xa) == 0 or np.ptp(ya) == 0 or dof < 2:
        return Estimate.insufficient(n, "insufficient data: no variation to correlate")
    residuals = targets - basis @ (basis.T @ targets)
    rx, ry = residuals.T
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


def _midranks(codes: NDArray[np.int64], values: Array) -> Array:
    """Average ranks (1-based, ties share their mean) of ``values`` within each code, for
    rows sorted by code and then value: scipy's rankdata, stratum by stratum, at once."""
    n = len(codes)
    new_code = np.ones(n, bool)
    new_code[1:] = codes[1:] != codes[:-1]
    new_run = new_code.copy()
    new_run[1:] |= values[1:] != values[:-1]
    run_start = np.flatnonzero(new_run)
    run_end = np.append(run_start[1:], n) - 1
    run = np.cumsum(new_run) - 1
    code_start = np.maximum.accumulate(np.where(new_code, np.arange(n), 0))
    return (run_start[run] + run_end[run]) / 2 - code_start + 1


def _delong(scores: Array, positive: NDArray[np.bool_], codes: NDArray[np.int64]
            ) -> tuple[Array, Array, NDArray[np.int64], NDArray[np.int64]]:
    """Per stratum (codes 0, 1, ...): AUC of its positives over its negatives, DeLong's
    variance of it, and its numbers of positives and negatives.

    One sort by stratum and score serves every stratum: thousands of month x age strata
    over a 300,000-row panel took seconds ranked one by one.
    """
    order = np.lexsort((scores, codes))
    g, s, y = codes[order], scores[order], positive[order]
    strata = int(g[-1]) + 1 if len(g) else 0
    g_pos, g_neg = g[y], g[~y]
    m = np.bincount(g_pos, minlength=strata)
    k = np.bincount(g_neg, minlength=strata)
    tz = _midranks(g, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = (np.bincount(g_pos, tz[y], strata) - m * (m + 1) / 2) / (m * k)
        v01 = (tz[y] - _midranks(g_pos, s[y])) / k[g_pos]
        v10 = 1 - (tz[~y] - _midranks(g_neg, s[~y])) / m[g_neg]
        var = _variances(g_pos, v01, m) / m + _variances(g_neg, v10, k) / k
    unranked = np.bincount(g, np.isnan(s), strata) > 0  # NaN ranks NaN, as in scipy
    value[unranked] = np.nan
    var[unranked] = np.nan
    return value, np.where(var < 0, 0.0, var), m, k


def _variances(codes: NDArray[np.int64], values: Array, counts: NDArray[np.int64]) -> Array:
    """Sample variance (ddof 1) of ``values`` per code; ``counts`` = values per code."""
    mean = np.bincount(codes, values, len(counts)) / counts
    return np.bincount(codes, (values - mean[codes]) ** 2, len(counts)) / (counts - 1)


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
    aucs, variances, pos, neg = _delong(s, y, np.unique(g, return_inverse=True)[1].ravel())
    used = (pos >= 2) & (neg >= 2)
    w = (pos * neg)[used].astype(float)
    total_w = float(w.sum())
    if total_w == 0:
        return Estimate.insufficient(len(s), "insufficient data: no stratum has both outcomes")
    value = float(w @ aucs[used]) / total_w
    se = math.sqrt(float((w * w) @ variances[used])) / total_w
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
    values, variances, *_ = _delong(s, y, np.zeros(len(s), np.int64))
    value, se = float(values[0]), math.sqrt(variances[0])
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
    # counts are whole numbers, exact in floats however summed; in-place arithmetic spares
    # the (resamples, levels) temporaries, most of the time on thousands of levels
    below_pos = np.cumsum(pos, axis=1, dtype=float)
    below_pos -= pos  # below[k] = accounts with value < unique[k]
    below_neg = np.cumsum(neg, axis=1, dtype=float)
    below_neg -= neg
    total_pos = below_pos[:, -1:] + pos[:, -1:]
    total_neg = below_neg[:, -1:] + neg[:, -1:]
    n_below = below_pos + below_neg
    enough = (n_below >= min_side) & (n_below <= total_pos + total_neg - min_side)
    with np.errstate(invalid="ignore", divide="ignore"):
        j = np.subtract(total_pos, below_pos, out=below_pos)
        j /= total_pos  # sensitivity
        j += np.divide(below_neg, total_neg, out=below_neg)  # specificity
    j -= 1
    j[~enough] = -np.inf
    best = np.argmax(j, axis=1)
    return best, j[np.arange(len(best)), best]


def _subsets(rng: np.random.Generator, sizes: NDArray[np.int64], picks: NDArray[np.int64],
             rows: int) -> NDArray[np.int64]:
    """(rows, picks.sum()) positions: per row, ``picks[s]`` distinct members of each segment s
    of ``sizes[s]`` positions (segments numbered one after another), segment by segment.

    The members are those ``rng.choice(sizes[s], picks[s], replace=False, shuffle=False)``
    picks for each row and segment in turn, however they are made, so seeded results stay.
    A call costs some 8 us, most of the work with many small segments (tenure bands); then
    the same random numbers are drawn at once and numpy's algorithm is replayed for all rows
    and segments together, one numpy step per pick, when that means fewer steps than calls.
    """
    offsets = np.cumsum(sizes) - sizes
    most = int(picks.max(initial=0))
    if most >= len(sizes) * rows:
        return np.array([np.concatenate([o + rng.choice(m, k, replace=False, shuffle=False)
                                         for m, k, o in zip(sizes, picks, offsets, strict=True)])
                         for _ in range(rows)], np.int64).reshape(rows, -1)
    # Generator.choice draws t uniform on 0..j for each j from size - k to size - 1 and runs
    # Floyd's algorithm (t joins unless already in, then j does); for a large segment and k
    # above 1/20 of it, it draws the same t in the reverse order of j for a partial
    # Fisher-Yates shuffle from the tail, which picks the same members as Floyd's.
    segment = np.repeat(np.arange(len(sizes)), picks)
    start = (np.cumsum(picks) - picks)[segment]
    step = np.arange(len(segment)) - start  # Floyd's step of each column
    j = sizes[segment] - picks[segment] + step
    reverse = ((sizes > 10000) & (picks > sizes // 20))[segment]
    drawn_as = start + np.where(reverse, picks[segment] - 1 - step, step)  # numpy's order
    t = rng.integers(0, j[drawn_as] + 1, (rows, len(j)))[:, np.argsort(drawn_as)]
    t += offsets[segment]
    j += offsets[segment]
    member = np.zeros((rows, int(sizes.sum())), bool)
    for k in range(most):
        cols = np.flatnonzero(step == k)
        chosen = t[:, cols]
        chosen = np.where(np.take_along_axis(member, chosen, 1), j[cols], chosen)
        np.put_along_axis(member, chosen, True, 1)
        t[:, cols] = chosen
    return t


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
    level_by_stratum = group[np.argsort(labels, kind="stable")]
    stratum_sizes = np.bincount(labels)
    positives = np.bincount(labels, weights=y).astype(np.int64)
    drawn_negatives = stratum_sizes - positives < positives
    drawn = np.minimum(positives, stratum_sizes - positives)
    # +1 for a drawn positive, -1 for a drawn negative; base: positives of the strata whose
    # negatives are drawn
    weights = np.repeat(np.where(drawn_negatives, -1.0, 1.0), drawn)
    base = np.bincount(level_by_stratum, weights=np.repeat(drawn_negatives, stratum_sizes),
                       minlength=u)
    exceed = 0
    batch = max(1, _BATCH_CELLS // n)
    done = 0
    while done < permutations:
        b = min(batch, permutations - done)
        picked = level_by_stratum[_subsets(rng, stratum_sizes, drawn, b)]
        pos_b = base + np.bincount((np.arange(b)[:, None] * u + picked).ravel(),
                                   weights=np.tile(weights, b), minlength=b * u).reshape(b, u)
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
