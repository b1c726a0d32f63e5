"""Issue 8: no confident claim the data does not support.

Survival numbers against statsmodels, rank statistics against OLS, null data without
claims, planted truths with prices set by plan, and answers at an as-of date equal to those
of a database truncated at that date.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sqlalchemy import Engine
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.duration.survfunc import SurvfuncRight

from analysis import features, stats, survival
from analysis.catalog import Metric, infer_category
from analysis.customer import describe_customer
from analysis.dataset import load_dataset
from analysis.db import ensure_schema
from analysis.imports import import_csv
from analysis.params import AnalysisSettings
from analysis.sources import imported
from bot.cli import main
from bot.config import ConfigError, parse_settings
from tests import planted


def _ask(url: str, config: Path, text: str, capsys: pytest.CaptureFixture[str],
         as_of: dt.date | None = None) -> Any:
    capsys.readouterr()
    extra = ["--as-of", as_of.isoformat()] if as_of else []
    assert main(["ask", text, "--format", "json", "--config", str(config),
                 "--database-url", url, *extra]) == 0
    return json.loads(capsys.readouterr().out)


def _load(url: str, files: planted.PlantedFiles) -> None:
    for kind in ("accounts", "usage", "revenue"):
        assert main(["import", kind, str(getattr(files, kind)), "--database-url", url]) == 0


def _survival_sample(seed: int, n: int = 400) -> tuple[pd.Series, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    level = pd.Series(rng.gamma(2.0, 3.0, n))
    hazard = 0.004 * (1 + level) ** -0.5  # HR per doubling of (1 + level): 2 ** -0.5
    tenure = 28 + rng.exponential(1 / hazard)
    censor = rng.uniform(40, 700, n)
    time = pd.DataFrame({"tenure": np.minimum(tenure, censor).round(),
                         "churned": tenure <= censor, "entry": 28.0})
    time["tenure"] = time["tenure"].clip(lower=29)
    return level, time


def test_cox_hazard_ratio_matches_statsmodels_phreg() -> None:
    level, time = _survival_sample(1)
    ours = survival.cox_per_doubling(level, time, min_events=20)
    x = np.log2(1 + level.to_numpy())[:, None]
    ref = PHReg(time["tenure"].to_numpy(), x, status=time["churned"].astype(int).to_numpy(),
                entry=time["entry"].to_numpy(), ties="efron").fit()
    assert ours.hazard_ratio == pytest.approx(np.exp(ref.params[0]), rel=1e-4)
    low, high = np.exp(ref.conf_int()[0])
    assert ours.ci == pytest.approx((low, high), rel=1e-3)
    assert ours.p == pytest.approx(ref.pvalues[0], rel=1e-2)
    assert (ours.hazard_ratio or 1) < 1 and ours.events == int(time["churned"].sum())
    assert 0.5 < (ours.concordance or 0) < 1


def test_cox_needs_min_events() -> None:
    level, time = _survival_sample(2, n=60)
    time["churned"] = False
    time.loc[:9, "churned"] = True
    few = survival.cox_per_doubling(level, time, min_events=20)
    assert few.hazard_ratio is None and few.note.startswith("insufficient data: 10 churn events")


def test_kaplan_meier_bands_match_statsmodels() -> None:
    level, time = _survival_sample(3)
    bands = survival.kaplan_meier(level, time, cutoff=6.0)
    assert [b.label for b in bands] == ["below 6", "6 or more"]
    for band, inside in zip(bands, (level < 6, level >= 6), strict=True):
        t = time[inside.to_numpy()]
        ref = SurvfuncRight(t["tenure"].to_numpy(), t["churned"].astype(int).to_numpy(),
                            entry=t["entry"].to_numpy())
        for day in (60.0, 150.0, 300.0):
            k = np.searchsorted(ref.surv_times, day, side="right") - 1
            expected = ref.surv_prob[k] if k >= 0 else 1.0
            assert band.survival_at(day) == pytest.approx(expected, abs=1e-9)
        assert band.n == int(inside.sum())
    tertiles = survival.kaplan_meier(level, time, cutoff=None)
    assert [b.label for b in tertiles] == ["lowest third", "middle third", "highest third"]


def test_within_plan_rank_correlation_matches_ols_on_ranks() -> None:
    rng = np.random.default_rng(4)
    n = 300
    plan = rng.choice(["a", "b", "c"], n)
    tenure = rng.uniform(30, 700, n)
    x = rng.normal(size=n) + (plan == "c") * 3
    y = 0.3 * x + (plan == "c") * 5 + rng.normal(size=n)
    ours = stats.partial_rank_correlation(x, y, [tenure], min_n=30, groups=plan)
    ranks = pd.DataFrame({"x": stats.stats.rankdata(x), "y": stats.stats.rankdata(y),
                          "t": stats.stats.rankdata(tenure), "plan": plan})
    design = sm.add_constant(pd.get_dummies(ranks[["t", "plan"]], drop_first=True,
                                            dtype=float))
    rx = sm.OLS(ranks["x"], design).fit().resid
    ry = sm.OLS(ranks["y"], design).fit().resid
    fit = sm.OLS(ry, sm.add_constant(rx)).fit()
    assert ours.value == pytest.approx(np.corrcoef(rx, ry)[0, 1], abs=1e-9)
    # the partial correlation's t test has n - 2 - (controls) degrees of freedom
    dof = n - 2 - 3
    t = fit.tvalues.iloc[1] * np.sqrt(dof / fit.df_resid)
    assert ours.p == pytest.approx(2 * stats.stats.t.sf(abs(t), dof), rel=1e-6)


def test_price_strata_group_account_months_by_month_and_age_band() -> None:
    """Two account-months share a stratum exactly when they share the month and the age
    band (the bands as :func:`stats.strata_by_quantile` draws them)."""
    from analysis.thresholds import _price_strata

    rng = np.random.default_rng(9)
    signup = pd.Series(pd.to_datetime("2024-01-01") + pd.to_timedelta(
        rng.integers(0, 600, 300), unit="D"), index=[f"a{i}" for i in range(300)])
    months = [dt.date(2025, m, 1) for m in (3, 1, 2, 12)]  # not in order
    panel = pd.DataFrame({"account_id": rng.choice(signup.index, 2000),
                          "month": [months[i] for i in rng.integers(0, 4, 2000)]})
    ours = _price_strata(panel, signup)
    age = (pd.to_datetime(panel["month"].astype(str))
           - panel["account_id"].map(signup)).dt.days.clip(lower=0).to_numpy(float)
    pairs = list(zip(panel["month"], stats.strata_by_quantile(np.log1p(age)), strict=True))
    same_ours = ours[:, None] == ours[None, :]
    same_pairs = np.array([[a == b for b in pairs] for a in pairs])
    assert (same_ours == same_pairs).all()
    assert len(set(pairs)) > 20  # several bands in each month


def test_stratified_auc_is_the_pair_weighted_mean_of_stratum_aucs() -> None:
    rng = np.random.default_rng(5)
    strata = rng.integers(0, 3, 600)
    positive = rng.random(600) < 0.2 + 0.2 * strata  # outcome depends on the stratum only
    score = strata + rng.normal(size=600)  # as does the score
    ours = stats.stratified_auc(score, positive, strata, min_class=20)
    aucs, weights = [], []
    for s in range(3):
        inside = strata == s
        pos, neg = score[inside & positive], score[inside & ~positive]
        u = stats.stats.mannwhitneyu(pos, neg).statistic
        aucs.append(u / (len(pos) * len(neg)))
        weights.append(len(pos) * len(neg))
    assert ours.value == pytest.approx(np.average(aucs, weights=weights), abs=1e-12)
    assert ours.p is not None and ours.p > 0.01  # no association within strata
    pooled = stats.auc(score, positive, min_class=20)
    assert (pooled.value or 0) > 0.6 and (pooled.p or 1) < 1e-6  # what pooling would claim


def test_p_values_never_round_across_alpha() -> None:
    assert stats.p_text(0.0498) == "0.0498"
    assert stats.p_text(0.0004) == "< 0.001"
    assert stats.p_text(0.23) == "0.23"


@pytest.mark.parametrize(("name", "category"), [
    ("active_users", "seat"), ("team_members", "seat"), ("integrations", "feature"),
    ("sso_enabled", "feature"), ("contacts", "record"), ("projects", "record"),
    ("api_calls", "usage"), ("messages", "usage"), ("orders", "transaction"),
    ("add_competitor", "usage"),
])
def test_categories_are_inferred_from_names(name: str, category: str) -> None:
    assert infer_category(name) == category
    metric = Metric(name)
    assert metric.category == category and metric.category_inferred
    assert f'name = "{name}"' in metric.category_fix
    assert not Metric(name, category="flat").category_inferred


def test_billed_on_must_name_a_catalog_metric() -> None:
    raw = {"metrics": [{"name": "seats", "category": "seat"}],
           "pricing": {"billed_on": "seat"}}
    with pytest.raises(ConfigError, match=r"pricing.billed_on: unknown metric 'seat' "
                                          r"\(did you mean 'seats'\?\)"):
        parse_settings(raw, "config.toml")
    raw["pricing"] = {"billed_on": "seats"}
    assert parse_settings(raw).pricing.billed_on == "seats"
    assert parse_settings({"pricing": {"billed_on": "plan"}}).pricing.billed_on == "plan"


def _claims(url: str, config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    corr = _ask(url, config, "correlate", capsys)
    rec = _ask(url, config, "recommend", capsys)
    segments = _ask(url, config, "segments", capsys)
    thresholds = {m["metric"]: _ask(url, config, f"thresholds {m['metric']}", capsys)
                  for m in corr["metrics"]}
    return {"corr": {m["metric"]: m for m in corr["metrics"]}, "pricing": corr["pricing"],
            "rec": rec, "separating": [s["metric"] for s in segments["separating"]],
            "thresholds": {m: [k for k in ("activation", "expansion", "price_increase")
                               if t[k] is not None] for m, t in thresholds.items()},
            "raw": thresholds}


def test_null_data_priced_by_plan_makes_no_claims(database_url: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    files = planted.generate_priced_by_plan(tmp_path, n=1000, seed=11, planted=False)
    _load(database_url, files)
    c = _claims(database_url, files.config, capsys)
    assert c["pricing"]["within_plan"] and not c["pricing"]["detected"]
    assert [m for m, row in c["corr"].items() if row["aligned"]] == []
    # across plans, seats tracks ARR because big accounts buy big plans: not evidence
    assert c["corr"]["seats"]["arr_rho"] > 0.3
    assert abs(c["corr"]["seats"]["detail"]["arr_evidence"]["value"]) < 0.1
    assert c["rec"]["primary_metric"] is None and c["rec"]["gate"] == []
    assert all(kinds == [] for kinds in c["thresholds"].values()), c["thresholds"]
    assert c["separating"] == []
    for row in c["corr"].values():
        assert row["survival"]["q"] >= 0.05, row["metric"]


def test_planted_truths_priced_by_plan(database_url: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    files = planted.generate_priced_by_plan(tmp_path, n=1200, seed=1)
    _load(database_url, files)
    c = _claims(database_url, files.config, capsys)
    rec = c["rec"]
    assert rec["primary_metric"] == "seats", rec["text"]
    assert rec["gate"] == ["integrations"]
    # the harmful behaviour is a warning sign, never aligned, primary or gate
    harmful = c["corr"]["competitor_adds"]
    assert harmful["aligned"] is False and "competitor_adds" in rec["warnings"]
    assert harmful["survival"]["hazard_ratio"] > 1 and harmful["survival"]["q"] < 0.05
    assert "Warning sign: more competitor_adds goes with more churn" in rec["text"]
    # records only tracks account age: no claim of any kind
    records = c["corr"]["records"]
    assert records["aligned"] is False and c["thresholds"]["records"] == []
    assert "records" not in c["separating"]
    seats = c["raw"]["seats"]
    assert abs(seats["activation"]["value"] - planted.ACTIVATION_CUTOFF) <= 1
    assert seats["survival"]["hazard_ratio"] < 1
    assert [b["label"] for b in seats["survival_bands"]] == [
        f"below {seats['activation']['value']:g}", f"{seats['activation']['value']:g} or more"]
    low, high = seats["survival_bands"]
    assert low["survival"][-1] < high["survival"][-1]
    integrations = c["raw"]["integrations"]
    assert abs(integrations["expansion"]["value"] - planted.EXPANSION_CUTOFF) <= 1
    assert integrations["expansion"]["q"] < 0.05


def test_without_catalog_categories_are_inferred_and_nothing_harmful_is_recommended(
        database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = planted.generate_priced_by_plan(tmp_path, n=1000, seed=2, catalog=False)
    _load(database_url, files)
    metrics = _ask(database_url, files.config, "metrics", capsys)["metrics"]
    assert {m["name"]: (m["category"], m["category_inferred"]) for m in metrics} == {
        "api_calls": ("usage", True), "competitor_adds": ("usage", True),
        "integrations": ("feature", True), "records": ("record", True),
        "seats": ("seat", True)}
    c = _claims(database_url, files.config, capsys)
    assert c["pricing"]["detected"] is True  # plan explains most of ARR
    rec = c["rec"]
    assert rec["primary_metric"] != "competitor_adds"
    assert "competitor_adds" not in rec["gate"]
    assert "inferred" in rec["text"] or rec["primary_metric"] is None


def _truncate(files: planted.PlantedFiles, at: dt.date, out: Path) -> planted.PlantedFiles:
    """The same data as a database filled at ``at`` would hold."""
    out.mkdir()
    accounts = pd.read_csv(files.accounts, dtype=str, keep_default_na=False)
    accounts = accounts[accounts["signup_date"] <= at.isoformat()].copy()
    later = accounts["churn_date"] > at.isoformat()
    accounts.loc[later, "churn_date"] = ""
    usage = pd.read_csv(files.usage, dtype=str)
    revenue = pd.read_csv(files.revenue, dtype=str)
    cut = planted.PlantedFiles(out / "accounts.csv", out / "usage.csv", out / "revenue.csv",
                               files.config)
    accounts.to_csv(cut.accounts, index=False, quoting=csv.QUOTE_MINIMAL)
    known = accounts["account_id"]
    usage[(usage["date"] <= at.isoformat()) & usage["account_id"].isin(known)].to_csv(
        cut.usage, index=False)
    revenue[(revenue["month"] <= at.isoformat()) & revenue["account_id"].isin(known)].to_csv(
        cut.revenue, index=False)
    return cut


def test_answers_at_an_as_of_date_equal_a_truncated_database(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = planted.generate(tmp_path / "full", n=700, seed=6)
    at = planted.AS_OF - dt.timedelta(days=200)
    cut = _truncate(files, at, tmp_path / "cut")
    full_url = f"sqlite:///{tmp_path / 'full.db'}"
    cut_url = f"sqlite:///{tmp_path / 'cut.db'}"
    _load(full_url, files)
    _load(cut_url, cut)
    accounts = pd.read_csv(cut.accounts, keep_default_na=False)
    active = accounts.loc[accounts["churn_date"] == "", "account_id"].iloc[0]
    churned = accounts.loc[accounts["churn_date"] != "", "account_id"].iloc[0]
    for text in ("correlate", "segments", "thresholds seats", "thresholds documents",
                 "recommend", "simulate seats", f"customer {active}", f"customer {churned}"):
        full = _ask(full_url, files.config, text, capsys, as_of=at)
        truncated = _ask(cut_url, cut.config, text, capsys, as_of=at)
        assert full == truncated, text
    # an account that signs up after the as-of date is not an account yet
    later = pd.read_csv(files.accounts)
    future = later.loc[later["signup_date"] > at.isoformat(), "account_id"].iloc[0]
    assert main(["ask", f"customer {future}", "--config", str(files.config),
                 "--database-url", full_url, "--as-of", at.isoformat()]) == 2


def test_price_increase_panel_matches_pandas_and_ignores_later_months(engine: Engine,
                                                                      tmp_path: Path) -> None:
    files = planted.generate(tmp_path, seed=5, n=150)
    ensure_schema(engine)
    for kind in ("accounts", "usage", "revenue"):
        import_csv(engine, kind, getattr(files, kind))
    at = planted.AS_OF - dt.timedelta(days=60)
    with engine.connect() as conn:
        ours = features.increase_panel(imported(conn), ["seats"], 28, at)
    revenue = pd.read_csv(files.revenue, parse_dates=["month"])
    revenue = revenue[revenue["month"] <= pd.Timestamp(at)].sort_values(["account_id", "month"])
    revenue["previous"] = revenue.groupby("account_id")["mrr"].shift()
    signup = pd.read_csv(files.accounts, parse_dates=["signup_date"]).set_index(
        "account_id")["signup_date"]
    rows = revenue[(revenue["previous"] > 0)
                   & (revenue["month"] > pd.Timestamp(at - dt.timedelta(days=31 * 12)))
                   & (revenue["account_id"].map(signup)
                      <= revenue["month"] - pd.Timedelta(days=29))]
    usage = pd.read_csv(files.usage, parse_dates=["date"])
    seats = usage[usage["metric"] == "seats"]
    expected = []
    for account, month, mrr, previous in rows[["account_id", "month", "mrr", "previous"]
                                              ].itertuples(index=False):
        own = seats[(seats["account_id"] == account) & (seats["date"] < month)
                    & (seats["date"] >= month - pd.Timedelta(days=28))]
        expected.append((account, month.date(), mrr > previous,
                         round(own["value"].mean() if len(own) else 0.0, 9)))
    got = [(a, m, bool(i), round(v, 9)) for a, m, i, v in
           ours[["account_id", "month", "increased", "seats"]].itertuples(index=False)]
    assert sorted(got) == sorted(expected)
    assert sum(e[2] for e in expected) > 5 and max(e[1] for e in expected) <= at


def test_customer_facts_as_of_the_date(engine: Engine, tmp_path: Path) -> None:
    files = planted.generate(tmp_path, seed=7, n=200)
    ensure_schema(engine)
    for kind in ("accounts", "usage", "revenue"):
        import_csv(engine, kind, getattr(files, kind))
    accounts = pd.read_csv(files.accounts, parse_dates=["signup_date", "churn_date"])
    churned = accounts.dropna(subset=["churn_date"]).iloc[0]
    at = planted.AS_OF
    with engine.connect() as conn:
        catalog = [Metric("seats", category="seat")]
        ds = load_dataset(imported(conn, catalog), catalog, AnalysisSettings(), at)
    customer = describe_customer(ds, churned["account_id"], {})
    assert not customer.active
    assert customer.tenure_days == (churned["churn_date"] - churned["signup_date"]).days
    # mid-rank: a level shared by every active account sits at the 50th percentile
    active = ds.active.index[0]
    level = float(ds.current.loc[active, "seats"])
    share_below = (ds.current["seats"] < level).mean()
    share_equal = (ds.current["seats"] == level).mean()
    seats = describe_customer(ds, active, {}).metrics[0]
    assert seats.percentile == pytest.approx(100 * (share_below + share_equal / 2))
