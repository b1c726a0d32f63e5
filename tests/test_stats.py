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


@pytest.mark.filterwarnings("ignore:The design matrix is rank-deficient")
@pytest.mark.parametrize("case", ["plain", "control_fixed_by_group", "repeated_control",
                                  "single_account_groups"])
def test_partial_rank_correlation_within_groups_matches_ols_on_the_full_design(
        rng: np.random.Generator, case: str) -> None:
    """Residuals of ranks on [1, ranked controls, one indicator per group but the first] by
    statsmodels, and the t test on n - 2 - (rank of that design - 1) degrees of freedom:
    also when a control adds nothing to the groups or to another control."""
    n = 300
    groups = rng.integers(0, 6, n)
    tenure = rng.uniform(30, 700, n)
    cases: dict[str, list[np.ndarray]] = {
        "plain": [tenure], "control_fixed_by_group": [tenure, groups * 10.0],
        "repeated_control": [tenure, np.log(tenure)], "single_account_groups": [tenure]}
    controls = cases[case]
    if case == "single_account_groups":
        groups[:3] = [10, 11, 12]
    x = rng.normal(size=n) + groups + tenure / 100
    y = 0.3 * x + groups + rng.normal(size=n)
    ours = stats.partial_rank_correlation(x, y, controls, min_n=30, groups=groups)
    dummies = (groups[:, None] == np.unique(groups)[None, 1:]).astype(float)
    design = np.column_stack([np.ones(n)] + [sps.rankdata(c) for c in controls] + [dummies])
    rx = sm.OLS(sps.rankdata(x), design).fit().resid
    ry = sm.OLS(sps.rankdata(y), design).fit().resid
    ref = np.corrcoef(rx, ry)[0, 1]
    dof = n - 2 - (np.linalg.matrix_rank(design) - 1)
    assert dof == n - 2 - len(np.unique(groups))  # one control counts (log: the same ranks)
    assert ours.value == pytest.approx(ref, abs=1e-10)
    t = ref * np.sqrt(dof / (1 - ref**2))
    assert ours.p == pytest.approx(2 * sps.t.sf(abs(t), dof), rel=1e-8)


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


def _delong_by_pairs(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """AUC and DeLong's variance from every positive-negative pair (ties count half)."""
    wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return float(wins.mean()), (np.var(wins.mean(axis=1), ddof=1) / len(pos)
                                + np.var(wins.mean(axis=0), ddof=1) / len(neg))


def test_stratified_auc_matches_delong_from_pairs_stratum_by_stratum(
        rng: np.random.Generator) -> None:
    """Tied scores, strata of every size, and strata that lack a second positive or
    negative (left out): the pair-weighted mean of the strata's AUCs, and its DeLong CI."""
    strata = np.concatenate([rng.integers(0, 40, 1500), [40, 40, 40, 41, 41, 42]])
    positive = rng.random(len(strata)) < 0.1 + strata / 60
    positive[-6:] = [True, False, False, True, True, False]  # 40 and 42: one positive
    score = rng.poisson(3 + (strata % 7) + positive, len(strata)).astype(float)
    ours = stats.stratified_auc(score, positive, strata.astype(str), min_class=20)
    aucs, variances, weights = [], [], []
    for s in np.unique(strata):
        pos, neg = score[(strata == s) & positive], score[(strata == s) & ~positive]
        if len(pos) >= 2 and len(neg) >= 2:
            a, v = _delong_by_pairs(pos, neg)
            aucs.append(a)
            variances.append(v)
            weights.append(len(pos) * len(neg))
    assert 30 < len(weights) < 42
    w = np.array(weights, float)
    value = float(w @ aucs / w.sum())
    se = math.sqrt(float(w**2 @ variances)) / w.sum()
    assert ours.value == pytest.approx(value, abs=1e-12)
    assert ours.ci == pytest.approx((value - 1.959964 * se, value + 1.959964 * se), abs=1e-12)
    assert ours.p == pytest.approx(2 * sps.norm.sf(abs(value - 0.5) / se), rel=1e-9)


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


@pytest.mark.parametrize("rows", [3, 150])
def test_subsets_are_the_picks_of_rng_choice(rows: int) -> None:
    """Called per row and segment (3 rows) or replayed at once (150 rows), the members are
    those rng.choice picks, the generator ends in the same state: seeded p-values stay. The
    large segment is one numpy draws for a shuffle from the tail, not Floyd's algorithm."""
    sizes = np.array([5, 12000, 30, 1, 200])
    picks = np.array([2, 700, 0, 1, 100])
    ours_rng, ref_rng = np.random.default_rng(3), np.random.default_rng(3)
    ours = stats._subsets(ours_rng, sizes, picks, rows)
    bounds = np.cumsum(picks)[:-1]
    offsets = np.cumsum(sizes) - sizes
    for row in ours:
        for segment, size, k, offset in zip(np.split(row, bounds), sizes, picks, offsets,
                                            strict=True):
            expected = ref_rng.choice(size, k, replace=False, shuffle=False)
            assert sorted(segment - offset) == sorted(expected)
    assert ours_rng.random() == ref_rng.random()


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
