"""Datasets with effects planted on purpose, whose true values the tests know.

* ``seats`` (seat): constant per account; accounts with seats >= ACTIVATION_CUTOFF churn
  within the horizon with probability 10%, the others 60% (or everyone alike when
  ``churn_signal`` is off).
* ``integrations`` (feature): constant; accounts with integrations >= EXPANSION_CUTOFF
  expand with probability 70%, the others 10%.
* ``clicks`` (feature): pure noise.
* ``documents`` (record): grows with account age only; MRR also grows with age, so its
  raw ARR correlation is real but its tenure-adjusted one is zero.

MRR = 50 x seats + 0.5 x account age at AS_OF in days (a cohort effect, constant per
account), times 1.5 from the expansion month on.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ACTIVATION_CUTOFF = 6
EXPANSION_CUTOFF = 4
AS_OF = dt.date(2025, 12, 29)  # a Monday
EARLY_DAYS = 28
HORIZON_DAYS = 112

CONFIG = """
[analysis]
bootstrap_resamples = 300
permutations = 1000

[[metrics]]
name = "seats"
category = "seat"
unit = "seats"
description = "team adoption"

[[metrics]]
name = "integrations"
category = "feature"
description = "depth of use"

[[metrics]]
name = "clicks"
category = "feature"
description = "clicking around"

[[metrics]]
name = "documents"
category = "record"
description = "documents stored"
"""


@dataclass(frozen=True)
class PlantedFiles:
    accounts: Path
    usage: Path
    revenue: Path
    config: Path


def _month_start(d: dt.date) -> dt.date:
    return d.replace(day=1)


def _next_month(d: dt.date) -> dt.date:
    return dt.date(d.year + d.month // 12, d.month % 12 + 1, 1)


def generate(directory: Path, *, n: int = 1500, seed: int = 1, monthly: bool = False,
             churn_signal: bool = True, null: bool = False) -> PlantedFiles:
    """The dataset of the module docstring; ``null``: nothing drives churn, expansion or
    price (churn 35%, expansion 30% for everyone, MRR from a package drawn independently of
    usage), while documents and MRR still grow with account age."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    start = AS_OF - dt.timedelta(days=730)
    signup_offsets = rng.integers(0, 720, n)
    seats = rng.integers(1, 13, n)
    integrations = rng.integers(0, 9, n)
    clicks_rate = 20.0
    doc_rate = rng.uniform(8, 12, n)

    rows_accounts, rows_usage, rows_revenue = [], [], []
    expansion_month = _month_start(AS_OF - dt.timedelta(days=90))
    for i in range(n):
        account = f"a{i:05d}"
        signup = start + dt.timedelta(days=int(signup_offsets[i]))
        p_churn = (0.10 if seats[i] >= ACTIVATION_CUTOFF else 0.60) if (
            churn_signal and not null) else 0.35
        churn = None
        if rng.random() < p_churn:
            churn = signup + dt.timedelta(days=EARLY_DAYS + int(rng.integers(1, HORIZON_DAYS)))
            if churn > AS_OF:
                churn = None
        expands = rng.random() < (0.30 if null else 0.70 if integrations[i] >= EXPANSION_CUTOFF
                                  else 0.10)
        package = int(rng.integers(1, 13)) if null else int(seats[i])
        rows_accounts.append([account, f"Company {i}", "pro", signup.isoformat(),
                              churn.isoformat() if churn else ""])
        end = churn or AS_OF
        if monthly:
            day = _next_month(signup) if signup.day != 1 else signup
            dates = []
            while day <= end:
                dates.append(day)
                day = _next_month(day)
        else:
            first = signup + dt.timedelta(days=(7 - signup.weekday()) % 7)
            dates = [first + dt.timedelta(weeks=k)
                     for k in range(((end - first).days // 7) + 1) if first <= end]
        for day in dates:
            age_weeks = (day - signup).days / 7
            rows_usage.append([account, day.isoformat(), "seats", int(seats[i])])
            rows_usage.append([account, day.isoformat(), "integrations", int(integrations[i])])
            rows_usage.append([account, day.isoformat(), "clicks", int(rng.poisson(clicks_rate))])
            rows_usage.append([account, day.isoformat(), "documents",
                               round(doc_rate[i] * age_weeks + rng.normal(0, 3), 1)])
        month = _month_start(signup)
        while month <= end:
            # older cohorts bought bigger packages: constant per account, higher with age
            mrr = 50.0 * package + 0.5 * (AS_OF - signup).days
            if expands and month >= expansion_month and signup < expansion_month:
                mrr *= 1.5
            rows_revenue.append([account, month.isoformat(), f"{mrr:.2f}"])
            month = _next_month(month)

    return _write(directory, rows_accounts, rows_usage, rows_revenue, CONFIG)


PLAN_PRICES = {"starter": 50.0, "team": 200.0, "business": 800.0}
PLAN_SEATS = {"starter": (1, 6), "team": (3, 13), "business": (8, 26)}

PRICED_BY_PLAN_CONFIG = """
[analysis]
bootstrap_resamples = 200

[pricing]
billed_on = "plan"

[[metrics]]
name = "seats"
category = "seat"

[[metrics]]
name = "integrations"
category = "feature"

[[metrics]]
name = "api_calls"
category = "usage"

[[metrics]]
name = "records"
category = "record"

[[metrics]]
name = "competitor_adds"
category = "usage"
"""


def generate_priced_by_plan(directory: Path, *, n: int = 1200, seed: int = 1,
                            planted: bool = True, catalog: bool = True) -> PlantedFiles:
    """Prices set by plan tiers, bigger plans with more seats, weekly snapshots.

    With ``planted``: accounts with fewer than ACTIVATION_CUTOFF seats churn more (60% vs
    15% within a year), each ``competitor_adds`` per week above 2 adds churn (a harmful
    behaviour), and accounts with integrations >= EXPANSION_CUTOFF upgrade (x1.5 MRR) in
    the last six months with probability 70% (others 10%). Without it (a null dataset)
    churn (35%) and upgrades (20%) are independent of usage. Always: ``records`` only
    accumulates with age, ``api_calls`` is noise scaled by plan size, churn dates spread
    over the first year (some inside the early window).
    """
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    start = AS_OF - dt.timedelta(days=730)
    rows_accounts, rows_usage, rows_revenue = [], [], []
    plans = list(PLAN_PRICES)
    for i in range(n):
        account = f"p{i:05d}"
        plan = plans[int(rng.choice(3, p=[0.5, 0.35, 0.15]))]
        signup = start + dt.timedelta(days=int(rng.integers(0, 720)))
        seats = int(rng.integers(*PLAN_SEATS[plan]))
        integrations = int(rng.integers(0, 9))
        competitor = float(rng.gamma(1.5, 1.5))
        record_rate = float(rng.uniform(5, 15))
        if planted:
            p_churn = (0.15 if seats >= ACTIVATION_CUTOFF else 0.60) + 0.12 * max(
                competitor - 2, 0)
            p_expand = 0.70 if integrations >= EXPANSION_CUTOFF else 0.10
        else:
            p_churn, p_expand = 0.35, 0.20
        churn = None
        if rng.random() < min(p_churn, 0.95):
            churn = signup + dt.timedelta(days=int(rng.integers(5, 365)))
            if churn > AS_OF:
                churn = None
        upgrade = (AS_OF - dt.timedelta(days=int(rng.integers(10, 170)))
                   if rng.random() < p_expand else None)
        rows_accounts.append([account, f"Company {i}", plan, signup.isoformat(),
                              churn.isoformat() if churn else ""])
        end = churn or AS_OF
        first = signup + dt.timedelta(days=(7 - signup.weekday()) % 7)
        day = first
        while day <= end:
            age_weeks = (day - signup).days / 7
            rows_usage += [
                [account, day.isoformat(), "seats", seats],
                [account, day.isoformat(), "integrations", integrations],
                [account, day.isoformat(), "api_calls",
                 int(rng.poisson(30 * PLAN_PRICES[plan] / 50))],
                [account, day.isoformat(), "records",
                 round(record_rate * age_weeks + rng.normal(0, 2), 1)],
                [account, day.isoformat(), "competitor_adds", int(rng.poisson(competitor))],
            ]
            day += dt.timedelta(weeks=1)
        month = _month_start(signup)
        while month <= end:
            mrr = PLAN_PRICES[plan] * (1.5 if upgrade and month >= _month_start(upgrade)
                                       and signup < _month_start(upgrade) else 1.0)
            rows_revenue.append([account, month.isoformat(), f"{mrr:.2f}"])
            month = _next_month(month)

    return _write(directory, rows_accounts, rows_usage, rows_revenue,
                  PRICED_BY_PLAN_CONFIG if catalog else "[analysis]\nbootstrap_resamples = 200\n")


def _write(directory: Path, rows_accounts: list[list[Any]], rows_usage: list[list[Any]],
           rows_revenue: list[list[Any]], config: str) -> PlantedFiles:
    files = PlantedFiles(directory / "accounts.csv", directory / "usage.csv",
                         directory / "revenue.csv", directory / "config.toml")
    for path, header, rows in (
        (files.accounts, ["account_id", "name", "plan", "signup_date", "churn_date"],
         rows_accounts),
        (files.usage, ["account_id", "date", "metric", "value"], rows_usage),
        (files.revenue, ["account_id", "month", "mrr"], rows_revenue),
    ):
        with open(path, "w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(header)
            out.writerows(rows)
    files.config.write_text(config)
    return files
