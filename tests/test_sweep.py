"""Levels on many dates (analysis.sweep) against window_levels' statements, date by date."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, insert

from analysis import features, schema, sweep
from analysis.catalog import Metric
from analysis.db import ensure_schema
from analysis.sources import DataSources, imported

START = dt.date(2024, 1, 1)
CATALOG = [
    Metric("seats"),  # state: snapshots on change only, so most windows hold an older one
    Metric("storage", max_age_days=20),  # state, held only briefly
    Metric("calls", kind="count"),  # weekly counts with weeks left out
    Metric("reports", events=["report_run"], aggregate="count"),  # events: asked, not swept
]


def _company(engine: Engine, seed: int = 7) -> None:
    """Accounts signing up and churning throughout, snapshots with gaps, an account with no
    snapshots at all."""
    rng = np.random.default_rng(seed)
    accounts: list[dict[str, Any]] = []
    usage: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for i in range(80):
        signup = START + dt.timedelta(days=int(rng.integers(0, 600)))
        churn = (signup + dt.timedelta(days=int(rng.integers(20, 400)))
                 if rng.random() < 0.4 else None)
        account = f"a{i:03d}"
        accounts.append({"account_id": account, "name": account, "plan": "team",
                         "signup_date": signup, "churn_date": churn})
        if i == 0:
            continue  # no snapshot ever: every level 0
        end = min(churn or dt.date(2026, 1, 1), dt.date(2026, 1, 1))
        day, seats = signup, int(rng.integers(1, 20))
        while day < end:
            if rng.random() < 0.15:  # seats change, and only then is a snapshot written
                seats = max(1, seats + int(rng.integers(-3, 4)))
                usage.append({"account_id": account, "metric": "seats", "date": day,
                              "value": float(seats)})
            if rng.random() < 0.7:
                usage.append({"account_id": account, "metric": "calls", "date": day,
                              "value": float(rng.poisson(40))})
            if rng.random() < 0.3:
                usage.append({"account_id": account, "metric": "storage", "date": day,
                              "value": round(float(rng.gamma(2.0, 1.5)), 3)})
            if rng.random() < 0.2:
                events.append({"account_id": account, "event": "report_run", "user_id": "u",
                               "timestamp": dt.datetime.combine(day, dt.time(9)),
                               "occurrences": int(rng.integers(1, 4))})
            day += dt.timedelta(days=7)
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(insert(schema.accounts), accounts)
        conn.execute(insert(schema.usage), usage)
        conn.execute(insert(schema.events), events)


def test_levels_on_dates_equal_each_date_asked_alone(engine: Engine,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep, "FETCH_ROWS", 97)  # snapshots arrive in many chunks
    _company(engine)
    names = [m.name for m in CATALOG]
    # weekly dates from before the first signup to after most churns, a 28-day window; and
    # from mid-history, where the snapshots before the first window hold in it
    dates = [START + dt.timedelta(weeks=k) - dt.timedelta(days=3) for k in range(0, 110, 3)]
    later = [dt.date(2025, 2, 3) + dt.timedelta(weeks=k) for k in range(10)]
    sources = DataSources(engine, catalog=CATALOG)
    with sources.connect() as source:
        assert [sweep.sweepable(source, m) for m in CATALOG] == [True, True, True, False]
        together = sweep.levels_on_dates(source, names, dates, 28, side=sources.side)
        together_later = sweep.levels_on_dates(source, names, later, 28)
        assert sweep.levels_on_dates(source, names, [], 28) == {}
    with engine.connect() as conn:
        source = imported(conn, CATALOG)
        for day, ours in [*together.items(), *together_later.items()]:
            alone = features.levels_at(source, names, day, 28)
            assert list(ours.columns) == names
            # the same digits: a level on a learned threshold stays on the same side of it
            pd.testing.assert_frame_equal(ours.sort_index(), alone.sort_index(),
                                          check_names=False, check_exact=True)
    levels = pd.concat(together.values())
    assert len(together[dates[0]]) == 0  # nobody signed up yet
    # seats change in 15% of weeks: most windows have no snapshot and hold an older one
    assert (levels["seats"] > 0).mean() > 0.8
    assert 0 < (levels["storage"] > 0).mean() < 0.9  # held only for 20 days
    assert (levels.loc["a000"] == 0).all().all()


def test_a_metric_without_snapshots_has_level_zero(engine: Engine) -> None:
    _company(engine)
    catalog = [Metric("seats"), Metric("absent"), Metric("absent_count", kind="count")]
    day = dt.date(2025, 3, 3)
    with engine.connect() as conn:
        source = imported(conn, catalog)
        levels = sweep.levels_on_dates(source, [m.name for m in catalog], [day], 28)[day]
        alone = features.levels_at(source, [m.name for m in catalog], day, 28)
    assert len(levels) and (levels[["absent", "absent_count"]] == 0).all().all()
    pd.testing.assert_frame_equal(levels.sort_index(), alone.sort_index(), check_names=False)
