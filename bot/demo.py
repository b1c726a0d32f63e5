"""A synthetic SaaS company for the demo, with effects worth finding.

Planted truth (what the analysis should recover):

* ``active_users`` (seat): accounts reaching 5 active users in their first 28 days churn
  far less (weekly churn hazard 0.35% vs 1.6%): the activation threshold.
* ``integrations`` (feature): accounts with 3+ integrations expand 8x as often: depth of
  use drives expansion, so it is worth gating to higher tiers.
* ``projects`` (record): loosely follows active users, no effect of its own.
* ``api_calls`` (usage): follows integrations, noisy.
* ``records`` (record): grows with account age only; correlates with ARR through tenure.
* ``exports`` (feature): pure noise.

Revenue is per-plan base fee plus price per licensed seat; expansions add seats and
sometimes move the account up a plan.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.catalog import Metric

PLANS = ("starter", "team", "business", "enterprise")
PLAN_BASE = np.array([0.0, 99.0, 399.0, 999.0])
PLAN_SEAT = np.array([12.0, 20.0, 35.0, 45.0])
WEEKS = 104

DEMO_METRICS = (
    Metric("active_users", "seat", "active users", "team adoption"),
    Metric("projects", "record", "projects", "projects created"),
    Metric("integrations", "feature", "integrations", "depth of use"),
    Metric("api_calls", "usage", "API calls", "API volume"),
    Metric("records", "record", "records", "data stored"),
    Metric("exports", "feature", "exports", "report exports"),
)


SETTINGS_FILE = "valuemetric-demo.toml"


def settings_toml(database_url: str | None) -> str:
    """The demo's settings file: its database, metric catalog and plan tiers.

    Written beside the demo so that ``valuemetric ask --config valuemetric-demo.toml`` (and
    the bot) read the same catalog the demo digest used, and so give the same numbers.
    ``database_url`` is None when it holds a password, which never goes into a file.
    """
    lines = ["# Settings of `valuemetric demo` (rewritten by each demo run).", "", "[database]"]
    lines.append(f"url = {json.dumps(database_url)}" if database_url else
                 "# the URL has a password: pass --database-url or set VALUEMETRIC_DATABASE_URL")
    for metric in DEMO_METRICS:
        lines += ["", "[[metrics]]", f"name = {json.dumps(metric.name)}",
                  f"category = {json.dumps(metric.category)}", f"unit = {json.dumps(metric.unit)}",
                  f"description = {json.dumps(metric.description)}"]
    for rank, plan in enumerate(PLANS, start=1):
        lines += ["", f"[plans.{plan}]", f"rank = {rank}"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DemoFiles:
    accounts: Path
    usage: Path
    revenue: Path
    as_of: dt.date


def last_monday(today: dt.date) -> dt.date:
    return today - dt.timedelta(days=today.weekday())


def generate(directory: Path, *, n_accounts: int = 2000, seed: int = 7,
             end: dt.date | None = None) -> DemoFiles:
    """Write accounts.csv, usage.csv and revenue.csv for a synthetic company into ``directory``."""
    rng = np.random.default_rng(seed)
    end = end or last_monday(dt.date.today())
    start = end - dt.timedelta(weeks=WEEKS)
    mondays = [start + dt.timedelta(weeks=w) for w in range(WEEKS + 1)]
    n = n_accounts

    signup_week = rng.integers(0, WEEKS - 2, n)
    signup_offset = rng.integers(0, 7, n)  # days before that Monday's snapshot
    team = np.clip(np.round(rng.lognormal(np.log(9), 0.8, n)), 1, 300)
    adoption = rng.beta(2.2, 2.0, n)
    target_users = np.maximum(1, np.round(team * adoption))
    target_integrations = np.minimum(rng.poisson(2.2, n), 10)
    integration_rate = rng.uniform(0.08, 0.4, n)
    team_growth = rng.normal(0.004, 0.004, n)  # weekly growth of the team that adopts
    records_rate = rng.lognormal(np.log(40), 0.5, n)
    api_per_integration = rng.lognormal(np.log(900), 0.6, n)

    plan = np.searchsorted([5, 15, 40], team, side="left")
    seats = np.ceil(target_users * 1.1)
    churn_week = np.full(n, -1)
    users = np.zeros(n)
    integrations = np.zeros(n)
    early_sum = np.zeros(n)
    alive = np.zeros(n, dtype=bool)

    usage_rows: list[tuple[int, int, str, float]] = []
    monthly_state: dict[tuple[int, int], np.ndarray] = {}

    for w, monday in enumerate(mondays):
        just_signed = signup_week == w
        alive |= just_signed
        age = w - signup_week
        active = alive & (age >= 0) & (churn_week < 0)
        ramp = 1 - np.exp(-(age + 1) / 2.0)
        target_users = np.where(active & (age >= 4), target_users * (1 + team_growth),
                                target_users)
        users = np.where(active, np.maximum(
            0, np.round(target_users * ramp + rng.normal(0, 0.6, n))), users)
        grow = active & (integrations < target_integrations) & (rng.random(n) < integration_rate)
        integrations = np.where(grow, integrations + 1, integrations)
        early = active & (age < 4)
        early_sum = np.where(early, early_sum + users, early_sum)

        idx = np.flatnonzero(active)
        projects = np.maximum(0, np.round(users * 0.3 + rng.poisson(2.5, n)))
        api_calls = np.round(integrations * api_per_integration * rng.lognormal(0, 0.5, n)
                             + users * rng.poisson(30, n))
        records = np.round(records_rate * (age + 1) + rng.normal(0, 15, n)).clip(0)
        exports = rng.poisson(4.0, n).astype(float)
        for name, values in (("active_users", users), ("projects", projects),
                             ("integrations", integrations), ("api_calls", api_calls),
                             ("records", records), ("exports", exports)):
            usage_rows.extend((int(i), w, name, float(values[i])) for i in idx)

        # churn and expansion act after the early window
        settled = active & (age >= 4)
        activated = early_sum / 4 >= 5
        hazard = np.where(activated, 0.0035, 0.016)
        leaving = settled & (rng.random(n) < hazard)
        churn_week = np.where(leaving, w, churn_week)
        deep = integrations >= 3
        expand = settled & ~leaving & (rng.random(n) < np.where(deep, 0.025, 0.003))
        seats = np.where(expand, np.ceil(np.maximum(seats, users) * rng.uniform(1.2, 1.6, n)),
                         seats)
        upgrade = expand & (rng.random(n) < 0.35) & (plan < len(PLANS) - 1)
        plan = np.where(upgrade, plan + 1, plan)
        monthly_state[(monday.year, monday.month)] = np.where(
            active & ~leaving, PLAN_BASE[plan] + PLAN_SEAT[plan] * seats, np.nan)

    directory.mkdir(parents=True, exist_ok=True)
    ids = [f"acct-{i + 1:05d}" for i in range(n)]
    names = [f"{_COMPANY_WORDS[i % len(_COMPANY_WORDS)]} "
             f"{_SUFFIXES[(i // 7) % len(_SUFFIXES)]} {i + 1}" for i in range(n)]
    files = DemoFiles(directory / "accounts.csv", directory / "usage.csv",
                      directory / "revenue.csv", end)
    with open(files.accounts, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["account_id", "name", "plan", "signup_date", "churn_date"])
        for i in range(n):
            signup = mondays[signup_week[i]] - dt.timedelta(days=int(signup_offset[i]))
            churn = "" if churn_week[i] < 0 else (
                mondays[churn_week[i]] + dt.timedelta(days=3)).isoformat()
            out.writerow([ids[i], names[i], PLANS[plan[i]], signup.isoformat(), churn])
    with open(files.usage, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["account_id", "date", "metric", "value"])
        iso = [m.isoformat() for m in mondays]
        out.writerows((ids[i], iso[w], name, f"{v:g}") for i, w, name, v in usage_rows)
    with open(files.revenue, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["account_id", "month", "mrr"])
        # MRR of a month is the state at that month's last snapshot
        for (year, month), mrr in sorted(monthly_state.items()):
            first = dt.date(year, month, 1)
            for k in np.flatnonzero(~np.isnan(mrr)).tolist():
                out.writerow([ids[k], first.isoformat(), f"{mrr[k]:.2f}"])
    return files


_COMPANY_WORDS = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark",
                  "Wayne", "Tyrell", "Soylent", "Cyberdyne", "Wonka", "Gringotts")
_SUFFIXES = ("Labs", "Systems", "Analytics", "Cloud", "Works", "Group", "AI", "& Co")
