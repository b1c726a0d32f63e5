"""SQL pushdown against the same numbers computed in pandas from the raw rows."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from analysis import features, sweep
from analysis.catalog import Metric
from analysis.dataset import load_dataset
from analysis.db import ensure_schema, make_engine
from analysis.imports import import_csv
from analysis.params import AnalysisSettings
from analysis.sources import DataSources, Source, imported, side_by_side
from tests import planted


@pytest.fixture
def loaded(engine: Engine, tmp_path: Path) -> tuple[Engine, planted.PlantedFiles]:
    files = planted.generate(tmp_path, seed=5, n=150)
    ensure_schema(engine)
    for kind in ("accounts", "usage", "revenue"):
        import_csv(engine, kind, getattr(files, kind))
    return engine, files


def _raw(files: planted.PlantedFiles) -> tuple[pd.DataFrame, pd.DataFrame]:
    usage = pd.read_csv(files.usage, parse_dates=["date"])
    accounts = pd.read_csv(files.accounts, parse_dates=["signup_date", "churn_date"])
    return usage, accounts.set_index("account_id")


def state_reference(usage: pd.DataFrame, accounts: pd.DataFrame, metric: str,
                    windows: dict[Any, tuple[Any, Any, Any]],
                    max_age_days: int = 366) -> pd.Series:
    """The mean of the snapshots in (lo, hi] while the account existed; without any, the
    last snapshot before the window if younger than max_age_days; else 0."""
    own = {a: g.sort_values("date") for a, g in usage[usage.metric == metric].groupby(
        "account_id")}
    out = {}
    empty = pd.DataFrame({"date": pd.to_datetime([]), "value": []})
    for key, (account, lo, hi) in windows.items():
        signup, churn = accounts.loc[account, ["signup_date", "churn_date"]]
        snaps = own.get(account, empty)
        first = max(lo + pd.Timedelta(days=1), signup)
        inside = snaps[(snaps.date >= first) & (snaps.date <= hi)
                       & (pd.isna(churn) | (snaps.date < churn))]
        before = snaps[snaps.date < first]
        if len(inside):
            out[key] = float(inside.value.mean())
        elif len(before) and before.date.iloc[-1] > first - pd.Timedelta(days=max_age_days):
            out[key] = float(before.value.iloc[-1])
        else:
            out[key] = 0.0
    return pd.Series(out)


def test_levels_at_match_pandas(loaded: tuple[Engine, planted.PlantedFiles]) -> None:
    engine, files = loaded
    usage, accounts = _raw(files)
    at = planted.AS_OF - dt.timedelta(days=40)
    metrics = ["seats", "clicks", "documents"]
    with engine.connect() as conn:
        ours = features.levels_at(imported(conn), metrics, at, 28)
    ts = pd.Timestamp(at)
    active = accounts[(accounts.signup_date <= ts)
                      & (accounts.churn_date.isna() | (accounts.churn_date > ts))].index
    ref = pd.DataFrame({m: state_reference(usage, accounts, m, {
        a: (a, ts - pd.Timedelta(days=28), ts) for a in active}) for m in metrics})
    assert sorted(ours.index) == sorted(active)
    pd.testing.assert_frame_equal(ours.loc[ref.index, metrics], ref, check_names=False,
                                  check_exact=False, rtol=1e-9)


def test_levels_of_many_dates_in_one_pass_equal_each_date_alone(
        loaded: tuple[Engine, planted.PlantedFiles]) -> None:
    engine, _ = loaded
    metrics = ["seats", "clicks", "documents"]
    dates = [planted.AS_OF - dt.timedelta(weeks=k) for k in range(0, 120, 15)]
    with engine.connect() as conn:
        source = imported(conn)
        together = features.levels_in_one_pass(source, metrics, dates, 28)
        assert sweep.levels_on_dates(source, metrics, dates[:2], 28).keys() == {*dates[:2]}
        for day in dates:
            alone = features.levels_at(source, metrics, day, 28)
            pd.testing.assert_frame_equal(together[day].sort_index(), alone.sort_index(),
                                          check_names=False)
    assert any(len(together[day]) for day in dates)
    # before the first signup there is no account to have a level
    before = [dt.date(2000, 1, 3), dt.date(2000, 1, 10)]
    with engine.connect() as conn:
        empty = features.levels_in_one_pass(imported(conn), metrics, before, 28)
    assert {day: len(frame) for day, frame in empty.items()} == {day: 0 for day in before}
    # two at a time on two connections: the same frames
    sources = DataSources(engine)
    with sources.connect() as source:
        side = sweep.levels_on_dates(source, metrics, before + dates, 28, side=sources.side)
    for day in dates:
        pd.testing.assert_frame_equal(side[day].sort_index(), together[day].sort_index(),
                                      check_names=False)
    assert all(side[day].empty for day in before)


def test_early_levels_match_pandas(loaded: tuple[Engine, planted.PlantedFiles]) -> None:
    engine, files = loaded
    usage, accounts = _raw(files)
    cutoff = planted.AS_OF - dt.timedelta(days=140)
    with engine.connect() as conn:
        ours = features.early_levels(imported(conn), ["clicks"], 28, cutoff)
    cohort = accounts[accounts.signup_date <= pd.Timestamp(cutoff)]
    ref = state_reference(usage, accounts, "clicks", {
        a: (a, s - pd.Timedelta(days=1), s + pd.Timedelta(days=27))
        for a, s in cohort["signup_date"].items()})
    assert np.allclose(ours.loc[ref.index, "clicks"].to_numpy(), ref.to_numpy())


def test_snapshot_interval_and_window(loaded: tuple[Engine, planted.PlantedFiles]) -> None:
    engine, _ = loaded
    with engine.connect() as conn:
        counted = imported(conn, [Metric("seats", kind="count")])
        assert features.snapshot_interval_days(counted, "seats", planted.AS_OF) == 7
        assert features.snapshot_interval_days(imported(conn), "seats", planted.AS_OF) is None
        assert features.latest_usage_date(imported(conn), ["seats", "clicks"]) == planted.AS_OF
        assert features.metrics_in_data(imported(conn)) == ["clicks", "documents",
                                                            "integrations", "seats"]
    assert features.effective_window(28, 7.0) == 28
    assert features.effective_window(28, 30.4) == 31
    assert features.effective_window(28, 91.0) == 91


def test_a_monthly_metric_beside_weekly_ones_widens_the_window(
        loaded: tuple[Engine, planted.PlantedFiles], tmp_path: Path) -> None:
    engine, files = loaded
    accounts = pd.read_csv(files.accounts, parse_dates=["signup_date", "churn_date"])
    # "invoices": one snapshot on the first of each month, value 3 for every account
    ends = accounts["churn_date"].fillna(pd.Timestamp(planted.AS_OF))
    rows = [(account, month.date().isoformat(), "invoices", 3)
            for account, signup, end in zip(accounts["account_id"], accounts["signup_date"],
                                            ends, strict=True)
            for month in pd.date_range(signup, end, freq="MS")]
    monthly = tmp_path / "monthly.csv"
    pd.DataFrame(rows, columns=["account_id", "date", "metric", "value"]).to_csv(monthly,
                                                                                 index=False)
    import_csv(engine, "usage", monthly)
    catalog = [Metric("seats"), Metric("invoices", kind="count")]  # the weekly metric first
    with engine.connect() as conn:
        ds = load_dataset(imported(conn, catalog), catalog, AnalysisSettings())
    assert ds.windows.window_days == 31
    # every account active for a month or more had an invoice snapshot in its window
    settled = ds.active[ds.active["tenure_days"] >= 31].index
    assert len(settled) > 50
    # 3 per month, read per median month length (30 days) over the 31-day window
    assert np.allclose(ds.current.loc[settled, "invoices"], 3 * 30 / 31)
    # as a state, the monthly snapshot holds between months: no wider window needed
    states = [Metric("seats"), Metric("invoices")]
    with engine.connect() as conn:
        ds = load_dataset(imported(conn, states), states, AnalysisSettings())
    assert ds.windows.window_days == 28
    assert (ds.current.loc[settled, "invoices"] == 3).all()


def test_a_dataset_loaded_side_by_side_is_the_same(
        loaded: tuple[Engine, planted.PlantedFiles]) -> None:
    """The cohorts' queries two at a time on two connections give the same frames."""
    engine, _ = loaded
    catalog = [Metric("seats"), Metric("projects")]
    sources = DataSources(engine, catalog=catalog)
    assert sources.side is not None
    with sources.connect() as source:
        alone = load_dataset(source, catalog, AnalysisSettings())
        together = load_dataset(source, catalog, AnalysisSettings(), side=sources.side)
    for name in ("accounts", "current", "past", "early", "before_churn", "survival_early"):
        pd.testing.assert_frame_equal(getattr(together, name), getattr(alone, name))
    assert len(alone.current) > 50 and alone.current["seats"].gt(0).any()


def test_side_by_side_runs_each_job_once_in_order_on_two_connections(
        loaded: tuple[Engine, planted.PlantedFiles]) -> None:
    engine, _ = loaded
    sources = DataSources(engine)
    seen: list[tuple[int, int]] = []
    both_started = threading.Barrier(2, timeout=30)

    def job(number: int) -> Callable[[Source], int]:
        def run(source: Source) -> int:
            if number < 2:  # jobs 0 and 1 wait for each other: one on each side
                both_started.wait()
            time.sleep(0.01)
            seen.append((number, id(source.conn)))
            return number
        return run

    with sources.connect() as source:
        assert side_by_side(source, sources.side, [job(n) for n in range(8)]) == list(range(8))
    assert sorted(n for n, _ in seen) == list(range(8))
    assert len({conn for _, conn in seen}) == 2

    def failing(source: Source) -> int:
        raise ValueError("bad metric")

    seen.clear()
    both_started = threading.Barrier(1)  # the jobs below need not meet
    with sources.connect() as source, pytest.raises(ValueError, match="bad metric"):
        side_by_side(source, sources.side, [failing, *[job(n) for n in range(20)]])
    assert len(seen) < 20  # the other side stopped taking jobs

    def refused() -> Any:
        raise OperationalError("connect", {}, Exception("too many clients already"))

    seen.clear()
    with sources.connect() as source:  # no second connection: this one does every job
        assert side_by_side(source, refused, [job(n) for n in range(4)]) == list(range(4))
    assert len({conn for _, conn in seen}) == 1


def test_no_side_connection_for_an_in_memory_database() -> None:
    assert DataSources(make_engine("sqlite://")).side is None
    assert DataSources(make_engine("sqlite:///:memory:")).side is None
