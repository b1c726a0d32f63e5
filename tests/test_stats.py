"""Every statistic against an independent reference computed here (scipy, statsmodels)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from analysis import stats


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


def test_spearman_matches_scipy_and_its_bootstrap(rng: np.random.Generator) -> None:
    x = rng.normal(size=400)
    y = 0.5 * x + rng.normal(size=400)
    est = stats.spearman(x, y, resamples=2000, rng=np.random.default_rng(0), min_n=30)
    ref = sps.spearmanr(x, y)
    assert est.value == pytest.approx(ref.statistic, abs=1e-12)
    assert est.p == pytest.approx(ref.pvalue, rel=1e-9)
    boot = sps.bootstrap((x, y), lambda a, b: sps.spearmanr(a, b).statistic, paired=True,
                         vectorized=False, n_resamples=2000, method="percentile",
                         random_state=1)
    assert est.ci is not None
    assert est.ci[0] == pytest.approx(boot.confidence_interval.low, abs=0.02)
    assert est.ci[1] == pytest.approx(boot.confidence_interval.high, abs=0.02)


def test_spearman_small_sample_gives_no_number(rng: np.random.Generator) -> None:
    est = stats.spearman(rng.normal(size=10), rng.normal(size=10), resamples=10, rng=rng,
                         min_n=30)
    assert est.value is None and est.ci is None
    assert est.note == "insufficient data: 10 accounts, need 30"


def test_partial_spearman_matches_residuals_of_ranks(rng: np.random.Generator) -> None:
    tenure = rng.uniform(1, 700, 500)
    x = tenure + rng.normal(0, 50, 500)          # grows with age only
    y = 2 * tenure + rng.normal(0, 100, 500)     # so does revenue
    est = stats.partial_spearman(x, y, np.log(tenure), min_n=30)
    rx, ry, rz = (sps.rankdata(v) for v in (x, y, np.log(tenure)))
    z = sm.add_constant(rz)
    ex = sm.OLS(rx, z).fit().resid
    ey = sm.OLS(ry, z).fit().resid
    ref = np.corrcoef(ex, ey)[0, 1]
    assert est.value == pytest.approx(ref, abs=1e-10)
    t = ref * np.sqrt((500 - 3) / (1 - ref**2))
    assert est.p == pytest.approx(2 * sps.t.sf(abs(t), 497), rel=1e-8)
    assert est.value is not None
    assert abs(sps.spearmanr(x, y).statistic) > 0.8 and abs(est.value) < 0.15


def test_auc_matches_mann_whitney_and_delong_matches_bootstrap(rng: np.random.Generator) -> None:
    pos = rng.poisson(6, 300).astype(float)
    neg = rng.poisson(4, 200).astype(float)
    scores = np.concatenate([pos, neg])
    labels = np.array([True] * 300 + [False] * 200)
    est = stats.auc(scores, labels, min_class=10)
    mw = sps.mannwhitneyu(pos, neg, alternative="two-sided")
    assert est.value == pytest.approx(mw.statistic / (300 * 200), abs=1e-12)
    assert est.p == pytest.approx(mw.pvalue, rel=1e-9)

    def auc_stat(p: np.ndarray, n: np.ndarray) -> float:
        return float(sps.mannwhitneyu(p, n).statistic / (len(p) * len(n)))

    boot = sps.bootstrap((pos, neg), auc_stat, vectorized=False, n_resamples=2000,
                         method="percentile", random_state=3)
    assert est.ci is not None
    assert est.ci[0] == pytest.approx(boot.confidence_interval.low, abs=0.015)
    assert est.ci[1] == pytest.approx(boot.confidence_interval.high, abs=0.015)


def test_auc_needs_both_classes() -> None:
    est = stats.auc([1, 2, 3, 4], [True, True, True, False], min_class=10)
    assert est.value is None and "need 10 of each" in est.note


def test_benjamini_hochberg_matches_statsmodels() -> None:
    p = [0.001, 0.02, 0.03, 0.2, 0.9, None, 0.04]
    ours = stats.bh_adjust(p)
    ref = multipletests([v for v in p if v is not None], method="fdr_bh")[1]
    assert ours[5] is None
    assert [q for q in ours if q is not None] == pytest.approx(list(ref), abs=1e-12)


def test_quantile_bins_keep_ties_together() -> None:
    x = np.array([0, 0, 0, 0, 1, 2, 3, 4, 5, 6])
    bins = stats.quantile_bins(x, 5)
    assert len(set(bins[:4])) == 1
    assert list(bins) == sorted(bins)


def _brute_force_youden(x: np.ndarray, y: np.ndarray, min_side: int) -> tuple[float, float]:
    best = (-np.inf, np.nan)
    for c in np.unique(x):
        above = x >= c
        if above.sum() < min_side or (~above).sum() < min_side:
            continue
        j = (y & above).sum() / y.sum() + (~y & ~above).sum() / (~y).sum() - 1
        if j > best[0]:
            best = (j, c)
    return best


def test_youden_cutoff_matches_brute_force_and_finds_planted_step(
        rng: np.random.Generator) -> None:
    x = rng.integers(0, 15, 1000).astype(float)
    y = rng.random(1000) < np.where(x >= 7, 0.85, 0.35)
    cut = stats.youden_cutoff(x, y, rng=rng, resamples=200, permutations=100, min_accounts=30)
    assert isinstance(cut, stats.Cutoff)
    j, c = _brute_force_youden(x, y, 50)
    assert cut.value == c == 7
    assert cut.j == pytest.approx(j)
    above = x >= 7
    assert cut.rate_above == pytest.approx(y[above].mean())
    assert cut.rate_below == pytest.approx(y[~above].mean())
    assert cut.lift == pytest.approx(y[above].mean() / y[~above].mean())
    assert cut.sensitivity == pytest.approx((y & above).sum() / y.sum())
    assert cut.specificity == pytest.approx((~y & ~above).sum() / (~y).sum())
    assert cut.npv == pytest.approx(1 - y[~above].mean())
    assert cut.n_above + cut.n_below == 1000
    assert cut.p_value < 0.05 and cut.ci[0] <= 7 <= cut.ci[1]


def test_youden_cutoff_on_noise_does_not_beat_chance(rng: np.random.Generator) -> None:
    x = rng.integers(0, 15, 1000).astype(float)
    y = rng.random(1000) < 0.5
    cut = stats.youden_cutoff(x, y, rng=rng, resamples=50, permutations=200, min_accounts=30)
    assert isinstance(cut, stats.Cutoff) and cut.p_value > 0.05


def test_youden_permutations_within_strata_match_shuffling_every_label(
        rng: np.random.Generator) -> None:
    """The within-stratum permutation p-value against a brute-force reference: outcomes
    shuffled label by label inside each stratum, the best cutoff found by brute force.

    The outcome follows the stratum only and the level tracks the stratum, so the best
    cutoff looks strong overall (p near 0 when strata are ignored) but is no better than
    what shuffles within strata find."""
    stratum = rng.integers(0, 3, 600)
    x = (4 * stratum + rng.integers(0, 6, 600)).astype(float)
    y = rng.random(600) < np.array([0.2, 0.45, 0.7])[stratum]
    ours = stats.youden_cutoff(x, y, rng=rng, resamples=20, permutations=2000,
                               min_accounts=30, strata=stratum)
    ignoring = stats.youden_cutoff(x, y, rng=rng, resamples=20, permutations=200,
                                   min_accounts=30)
    assert isinstance(ours, stats.Cutoff) and isinstance(ignoring, stats.Cutoff)
    min_side = max(10, math.ceil(0.05 * 600))
    observed, _ = _brute_force_youden(x, y, min_side)
    reference = np.random.default_rng(7)
    shuffled = y.copy()
    exceed = 0
    for _ in range(1000):
        for s in range(3):
            members = np.flatnonzero(stratum == s)
            shuffled[members] = reference.permutation(y[members])
        exceed += _brute_force_youden(x, shuffled, min_side)[0] >= observed - 1e-12
    expected = (exceed + 1) / 1001
    assert 0.05 < expected < 0.95  # the scenario is a null one within strata
    # two Monte Carlo estimates of one p-value: within 4.5 standard errors
    assert abs(ours.p_value - expected) < 4.5 * math.sqrt(expected * (1 - expected)
                                                           * (1 / 2000 + 1 / 1000))
    assert ignoring.p_value < 0.01


def test_youden_interval_is_the_same_drawing_accounts_or_cells(
        rng: np.random.Generator) -> None:
    """Nearly distinct levels resample accounts, few levels draw cell counts at once: two
    ways to the same bootstrap, so the intervals agree and both hold the planted step."""
    x = rng.random(2000)
    y = rng.random(2000) < np.where(x >= 0.5, 0.8, 0.3)
    distinct = stats.youden_cutoff(x, y, rng=rng, resamples=400, permutations=50,
                                   min_accounts=30)
    few = stats.youden_cutoff(np.round(x, 2), y, rng=rng, resamples=400, permutations=50,
                              min_accounts=30)
    assert isinstance(distinct, stats.Cutoff) and isinstance(few, stats.Cutoff)
    for cut in (distinct, few):
        assert cut.ci[0] <= 0.5 <= cut.ci[1] + 0.01 and cut.ci[1] - cut.ci[0] < 0.15
    assert abs(distinct.ci[0] - few.ci[0]) < 0.05 and abs(distinct.ci[1] - few.ci[1]) < 0.05
