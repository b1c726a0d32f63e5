"""A generated SaaS company for benchmarks: deterministic by seed, big enough to matter.

``generate(directory, n_accounts=50_000, seed=0)`` writes the CSV files the
``valuemetric import`` commands take, in the shapes of DESIGN section 3, and a settings file
with the metric catalog and plan tiers:

* ``accounts.csv``: four plan tiers by team size, signups spread over two years;
* ``usage.csv``: weekly snapshots (``active_users``, ``api_calls``) and monthly snapshots on
  the first Monday of each month (``projects``, ``integrations``);
* ``events.csv``: raw product events (``report_run``, ``report_scheduled``; about one every
  three weeks per account, so the file stays manageable) for the event metric ``reports``;
* ``revenue.csv``: monthly MRR, the state at each month's last weekly snapshot;
* ``invoices.csv``: the same revenue as invoices: monthly billing for most accounts, annual
  billing (one invoice a year, prorated invoices on expansion, a credit on churn) for the rest,
  so the invoices spread over their service periods give back ``revenue.csv``;
* ``company.toml``: the catalog (with the event metric, or without it for versions that do
  not read event metrics yet), plan tiers and segments.

The data are realistic where the statistics look: churn is higher for accounts that did not
reach 5 active users in their first four weeks and for those that rarely run reports (so
retention AUCs, activation thresholds and survival models have hundreds of churn events at
any size from 2,000 accounts); accounts with 3+ integrations expand far more often (seats
grow, sometimes a plan upgrade), a few contract; ARR is a plan base fee plus a price per
seat. Every cohort of DESIGN section 4 therefore has both outcome classes well populated.

    python -m benchmarks.company DIRECTORY [--accounts 50000] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

PLANS = ("starter", "team", "business", "enterprise")
PLAN_BASE = np.array([0.0, 99.0, 399.0, 999.0])
PLAN_SEAT = np.array([12.0, 20.0, 35.0, 45.0])
WEEKS = 104
# A fixed Monday, so the same seed gives the same files whatever the day (and no row is
# ever in the future).
END = dt.date(2025, 12, 29)
EVENT_NAMES = ("report_run", "report_scheduled")

# (name, category, unit, description, snapshot cadence)
SNAPSHOT_METRICS = (
    ("active_users", "seat", "active users", "team adoption", "weekly"),
    ("api_calls", "usage", "API calls", "API volume", "weekly"),
    ("projects", "record", "projects", "projects created", "monthly"),
    ("integrations", "feature", "integrations", "depth of use", "monthly"),
)
EVENT_METRIC = ("reports", "feature", "reports", "reports run or scheduled")


@dataclass(frozen=True)
class CompanyFiles:
    directory: Path
    accounts: Path
    usage: Path
    events: Path
    revenue: Path
    invoices: Path
    config: Path
    as_of: dt.date
    rows: dict[str, int]

    def csv(self, kind: str) -> Path:
        path: Path = getattr(self, kind)
        return path


def config_toml(event_metrics: bool = True) -> str:
    """The company's settings: catalog, plan tiers and segments (the database comes apart)."""
    lines = ["# Settings of the generated benchmark company (benchmarks/company.py)."]
    catalog = [m[:4] for m in SNAPSHOT_METRICS] + ([EVENT_METRIC] if event_metrics else [])
    for name, category, unit, description in catalog:
        lines += ["", "[[metrics]]", f"name = {json.dumps(name)}",
                  f"category = {json.dumps(category)}", f"unit = {json.dumps(unit)}",
                  f"description = {json.dumps(description)}"]
        if name == EVENT_METRIC[0]:
            lines += [f"events = {json.dumps(list(EVENT_NAMES))}", 'aggregate = "count"',
                      'period = "week"']
    lines += ["", "[[segments]]", 'name = "High-LTV customers (>$10k ARR)"', "min_arr = 10000.0",
              "", "[[segments]]", 'name = "Churned customers"', "churned = true"]
    for rank, plan in enumerate(PLANS, start=1):
        lines += ["", f"[plans.{plan}]", f"rank = {rank}"]
    return "\n".join(lines) + "\n"


def generate(directory: Path, n_accounts: int = 50_000, seed: int = 0,
             event_metrics: bool = True) -> CompanyFiles:
    """Write the company's CSV files and settings into ``directory`` (created if needed)."""
    rng = np.random.default_rng(seed)
    n = n_accounts
    start = END - dt.timedelta(weeks=WEEKS)
    mondays = [start + dt.timedelta(weeks=w) for w in range(WEEKS + 1)]
    weeks = len(mondays)

    signup_week = rng.integers(0, WEEKS - 2, n)
    signup_offset = rng.integers(0, 7, n)  # days before that Monday's snapshot
    team = np.clip(np.round(rng.lognormal(np.log(9), 0.8, n)), 1, 300)
    # Adoption: a share of the team signs in, half of it by the second week (a half-life
    # curve), and the adopting team grows a little every week after the first month.
    adopters = np.maximum(1.0, np.round(team * rng.beta(2.2, 2.0, n)))
    half_life = rng.uniform(0.7, 2.0, n)
    team_growth = rng.normal(0.004, 0.004, n)
    # Integrations: connected one at a time, every 1 / pace weeks, up to the account's need.
    integrations_needed = np.minimum(rng.poisson(2.2, n), 10)
    integration_pace = rng.uniform(0.08, 0.4, n)
    api_per_integration = rng.lognormal(np.log(900), 0.6, n)
    report_rate = rng.lognormal(np.log(0.25), 0.9, n)  # reports a week
    engaged = report_rate > 0.3
    annual = rng.random(n) < np.array([0.1, 0.2, 0.4, 0.6])[
        np.searchsorted([5, 15, 40], team, side="left")]

    plan = np.searchsorted([5, 15, 40], team, side="left")
    seats = np.ceil(adopters * 1.1)
    churn_week = np.full(n, -1)
    projects = np.zeros(n)
    early_sum = np.zeros(n)

    # per account and week; NaN where the account is not active
    snap = {name: np.full((n, weeks), np.nan, dtype=np.float32) for name, *_ in SNAPSHOT_METRICS}
    reports = np.zeros((n, weeks), dtype=np.int32)
    mrr = np.full((n, weeks), np.nan)
    for w in range(weeks):
        age = w - signup_week
        active = (age >= 0) & (churn_week < 0)
        weeks_in = np.maximum(age + 1, 0)
        adopted = (adopters * (1 - 0.5 ** (weeks_in / half_life))
                   * (1 + team_growth) ** np.maximum(age - 4, 0))
        users = np.clip(np.round(adopted + rng.normal(0, 0.6, n)), 0, None)
        integrations = np.minimum(integrations_needed, np.floor(weeks_in * integration_pace))
        projects = np.where(active, projects + rng.poisson(0.05 + 0.03 * users), projects)
        early_sum = np.where(active & (age < 4), early_sum + users, early_sum)
        api_calls = np.round(integrations * api_per_integration * rng.lognormal(0, 0.5, n)
                             + users * rng.poisson(30, n))
        for name, values in (("active_users", users), ("api_calls", api_calls),
                             ("projects", projects), ("integrations", integrations)):
            snap[name][:, w] = np.where(active, values, np.nan)
        reports[:, w] = np.where(active & (users > 0), rng.poisson(report_rate), 0)

        # churn (some inside the early window), expansion and contraction
        activated = early_sum / 4 >= 5
        hazard = np.where(age < 4, 0.006, np.where(activated, 0.0035, 0.014))
        hazard = hazard * np.where(engaged, 0.6, 1.0)
        leaving = active & (rng.random(n) < hazard)
        churn_week = np.where(leaving, w, churn_week)
        settled = active & ~leaving & (age >= 4)
        expand = settled & (rng.random(n) < np.where(integrations >= 3, 0.02, 0.003))
        seats = np.where(expand, np.ceil(np.maximum(seats, users) * rng.uniform(1.2, 1.6, n)),
                         seats)
        upgrade = expand & (rng.random(n) < 0.35) & (plan < len(PLANS) - 1)
        plan = np.where(upgrade, plan + 1, plan)
        contract = settled & ~expand & (rng.random(n) < 0.002) & (seats > 1)
        seats = np.where(contract, np.maximum(1, np.floor(seats * 0.8)), seats)
        mrr[:, w] = np.where(active & ~leaving, PLAN_BASE[plan] + PLAN_SEAT[plan] * seats,
                             np.nan)

    directory.mkdir(parents=True, exist_ok=True)
    ids = np.array([f"acct-{i + 1:06d}" for i in range(n)], dtype=object)
    iso = np.array([m.isoformat() for m in mondays], dtype=object)
    files = CompanyFiles(directory, directory / "accounts.csv", directory / "usage.csv",
                         directory / "events.csv", directory / "revenue.csv",
                         directory / "invoices.csv", directory / "company.toml",
                         END, {})

    signup = [(mondays[s] - dt.timedelta(days=int(o))).isoformat()
              for s, o in zip(signup_week, signup_offset, strict=True)]
    churn = ["" if c < 0 else (mondays[c] + dt.timedelta(days=3)).isoformat() for c in churn_week]
    pd.DataFrame({"account_id": ids,
                  "name": [f"{_NAMES[i % len(_NAMES)]} {i + 1}" for i in range(n)],
                  "plan": np.array(PLANS, dtype=object)[plan],
                  "signup_date": signup, "churn_date": churn}).to_csv(files.accounts, index=False)
    files.rows["accounts"] = n

    first_monday = np.array([m.day <= 7 for m in mondays])
    parts = []
    for name, *_, cadence in SNAPSHOT_METRICS:
        kept = snap[name] if cadence == "weekly" else np.where(first_monday, snap[name], np.nan)
        account, week = np.nonzero(~np.isnan(kept))
        parts.append(pd.DataFrame({"account_id": ids[account], "date": iso[week],
                                   "metric": name,
                                   "value": kept[account, week].astype(np.int64)}))
    usage = pd.concat(parts, ignore_index=True)
    usage.to_csv(files.usage, index=False)
    files.rows["usage"] = len(usage)
    del usage, parts

    files.rows["events"] = _write_events(files.events, rng, reports, ids, mondays, signup_week,
                                         snap["active_users"])
    files.rows["revenue"], files.rows["invoices"] = _write_revenue(
        files.revenue, files.invoices, mrr, ids, mondays, annual)
    files.config.write_text(config_toml(event_metrics))
    return files


def _write_events(path: Path, rng: np.random.Generator, reports: np.ndarray, ids: np.ndarray,
                  mondays: list[dt.date], signup_week: np.ndarray, users: np.ndarray) -> int:
    """One row per event, timestamped inside the account's life (ISO-8601, UTC)."""
    account, week = np.nonzero(reports)
    counts = reports[account, week]
    account, week = np.repeat(account, counts), np.repeat(week, counts)
    base = np.array([np.datetime64(m, "s") for m in mondays])[week]
    # the six days before the snapshot (the account was signed up and not yet churned then);
    # in the signup week, the two days after it (churn comes 3 days after a snapshot at earliest)
    seconds = np.where(week > signup_week[account],
                       -rng.integers(1, 6 * 86_400, len(week)),
                       rng.integers(0, 2 * 86_400, len(week)))
    stamps = base + seconds.astype("timedelta64[s]")
    keep = stamps < np.datetime64(END, "s") + np.timedelta64(1, "D")
    account, week, stamps = account[keep], week[keep], stamps[keep]
    team = np.maximum(1, np.nan_to_num(users[account, week])).astype(np.int64)
    user = rng.integers(0, team) + 1
    frame = pd.DataFrame({
        "account_id": ids[account],
        "user_id": pd.Series(ids[account]).str.cat(pd.Series(user).astype(str), sep="-u"),
        "event": np.array(EVENT_NAMES, dtype=object)[(rng.random(len(account)) < 0.3)
                                                     .astype(int)],
        "timestamp": np.char.add(np.datetime_as_string(stamps, unit="s"), "Z"),
    })
    frame.sort_values("timestamp", kind="stable").to_csv(path, index=False)
    return len(frame)


def _write_revenue(revenue_path: Path, invoices_path: Path, mrr: np.ndarray, ids: np.ndarray,
                   mondays: list[dt.date], annual: np.ndarray) -> tuple[int, int]:
    """revenue.csv (MRR per month) and invoices.csv that spread back into the same MRR."""
    months = sorted({(m.year, m.month) for m in mondays})
    # MRR of a month is the state at that month's last weekly snapshot
    last_week = {ym: max(w for w, m in enumerate(mondays) if (m.year, m.month) == ym)
                 for ym in months}
    monthly = mrr[:, [last_week[ym] for ym in months]]  # accounts x months, NaN = no revenue
    first_day = [dt.date(y, m, 1) for y, m in months]
    last_day = [(pd.Timestamp(d) + pd.offsets.MonthEnd(0)).date() for d in first_day]
    account, month = np.nonzero(~np.isnan(monthly))
    pd.DataFrame({"account_id": ids[account],
                  "month": np.array([d.isoformat() for d in first_day], dtype=object)[month],
                  "mrr": np.round(monthly[account, month], 2)}).to_csv(revenue_path, index=False)

    invoices: list[tuple[str, str, str, float]] = []
    for i in range(len(ids)):
        row = monthly[i]
        live = np.flatnonzero(~np.isnan(row))
        if not len(live):
            continue
        if not annual[i]:
            invoices.extend((ids[i], first_day[k].isoformat(), last_day[k].isoformat(),
                             round(float(row[k]), 2)) for k in live)
            continue
        # annual terms from the first paid month; a change mid-term is invoiced pro rata
        # for the rest of the term; churn mid-term is credited back
        term_start, billed = int(live[0]), 0.0
        for k in range(live[0], min(live[-1] + 2, len(months))):
            if k - term_start == 12:
                term_start, billed = k, 0.0
            now = 0.0 if np.isnan(row[k]) else float(row[k])
            if now != billed:
                invoices.append((ids[i], first_day[k].isoformat(),
                                 _month_end(first_day[term_start], 12).isoformat(),
                                 round((now - billed) * (term_start + 12 - k), 2)))
                billed = now
    pd.DataFrame(invoices, columns=["account_id", "period_start", "period_end", "amount"]
                 ).to_csv(invoices_path, index=False)
    return len(account), len(invoices)


def _month_end(first: dt.date, months: int) -> dt.date:
    """The last day of the ``months``-th month starting at ``first`` (1 = ``first``'s month)."""
    return (pd.Timestamp(first) + pd.offsets.MonthEnd(months)).date()


_NAMES = ("Northwind", "Contoso", "Fabrikam", "Tailspin Toys", "Litware", "Adatum",
          "Proseware", "Woodgrove Bank", "Fourth Coffee", "Wingtip", "Lucerne Publishing",
          "Alpine Ski House", "Coho Winery", "Margie's Travel", "Blue Yonder")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    files = generate(Path(args.directory), args.accounts, args.seed)
    print(", ".join(f"{kind} {rows:,} rows" for kind, rows in files.rows.items()))


if __name__ == "__main__":
    main()
