"""The DuckDB reference for ``ask correlate``: the same per-account aggregations, in one script.

What valuemetric's correlate reads from the database, computed by DuckDB over the same data
(loaded once from the company's CSV files into a DuckDB file, untimed, as valuemetric's
import is timed apart): per account the level of each metric at T, at T - 182 days, over the
first days after signup and before churn (mean of the snapshots in the window, 0 without
one); the event metric as events a week over the same windows; MRR at T and T - 182 days;
then each metric's Spearman rank correlation with ARR over the accounts active at T (average
ranks for ties, as scipy's spearmanr). It prints the correlations as JSON, so the benchmark
can check them against valuemetric's own.

    python benchmarks/reference_duckdb.py load COMPANY_DIR DUCKDB_FILE
    python benchmarks/reference_duckdb.py correlate DUCKDB_FILE --as-of 2025-12-29 [--window 31]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import duckdb

from benchmarks.company import EVENT_METRIC, EVENT_NAMES, SNAPSHOT_METRICS

EARLY_DAYS = 28
HORIZON_DAYS = 112
LOOKBACK_DAYS = 182


def load(company: Path, target: Path) -> None:
    """Copy the company's CSV files into a DuckDB file, typed as valuemetric's schema."""
    target.unlink(missing_ok=True)
    con = duckdb.connect(str(target))
    con.execute(f"""
        CREATE TABLE accounts AS SELECT * FROM read_csv('{company / "accounts.csv"}', header=true,
            columns={{'account_id': 'VARCHAR', 'name': 'VARCHAR', 'plan': 'VARCHAR',
                      'signup_date': 'DATE', 'churn_date': 'DATE'}});
        CREATE TABLE usage AS SELECT * FROM read_csv('{company / "usage.csv"}', header=true,
            columns={{'account_id': 'VARCHAR', 'date': 'DATE', 'metric': 'VARCHAR',
                      'value': 'DOUBLE'}});
        CREATE TABLE revenue AS SELECT * FROM read_csv('{company / "revenue.csv"}', header=true,
            columns={{'account_id': 'VARCHAR', 'month': 'DATE', 'mrr': 'DOUBLE'}});
        CREATE TABLE events AS SELECT account_id, user_id, event,
            CAST(timestamp AS TIMESTAMP) AS timestamp
            FROM read_csv('{company / "events.csv"}', header=true,
            columns={{'account_id': 'VARCHAR', 'user_id': 'VARCHAR', 'event': 'VARCHAR',
                      'timestamp': 'TIMESTAMPTZ'}});
    """)
    con.close()


def correlate(path: Path, as_of: dt.date, window: int) -> dict[str, float | None]:
    """Spearman rho of each metric's level at T with ARR at T, after every aggregation."""
    con = duckdb.connect(str(path), read_only=True)
    early = max(EARLY_DAYS, window)
    past = as_of - dt.timedelta(days=LOOKBACK_DAYS)
    retention_cutoff = as_of - dt.timedelta(days=early + HORIZON_DAYS)
    snapshot_names = [m[0] for m in SNAPSHOT_METRICS]
    event_metric = EVENT_METRIC[0]
    con.execute("""
        CREATE TEMP TABLE anchors AS
        SELECT account_id, 'current' AS cohort, $t - $w * INTERVAL 1 DAY AS lo,
               $t::TIMESTAMP AS hi
          FROM accounts WHERE signup_date <= $t AND (churn_date IS NULL OR churn_date > $t)
        UNION ALL
        SELECT account_id, 'past', $past - $w * INTERVAL 1 DAY, $past::TIMESTAMP
          FROM accounts WHERE signup_date <= $past AND (churn_date IS NULL OR churn_date > $past)
        UNION ALL
        SELECT account_id, 'early', signup_date - INTERVAL 1 DAY,
               signup_date + ($e - 1) * INTERVAL 1 DAY
          FROM accounts WHERE signup_date <= $cutoff
        UNION ALL
        SELECT account_id, 'before_churn', churn_date - $w * INTERVAL 1 DAY,
               churn_date::TIMESTAMP
          FROM accounts WHERE churn_date <= $t
    """, {"t": as_of, "past": past, "w": window, "e": early, "cutoff": retention_cutoff})
    con.execute("""
        CREATE TEMP TABLE levels AS
        SELECT a.account_id, a.cohort, u.metric, avg(u.value) AS level
          FROM anchors a JOIN usage u ON u.account_id = a.account_id
           AND list_contains($metrics, u.metric) AND u.date > a.lo AND u.date <= a.hi
         GROUP BY ALL
        UNION ALL
        SELECT a.account_id, a.cohort, $event_metric, count(*) / $weeks
          FROM anchors a JOIN events e ON e.account_id = a.account_id
           AND list_contains($events, e.event) AND e.timestamp > a.lo
           AND e.timestamp <= a.hi + INTERVAL 1 DAY
         GROUP BY ALL
    """, {"metrics": snapshot_names, "events": list(EVENT_NAMES), "event_metric": event_metric,
          "weeks": window / 7})
    rows = con.execute("""
        WITH month_now AS (SELECT max(month) AS m FROM revenue WHERE month <= $t),
        arr AS (
            SELECT a.account_id, 12 * coalesce(r.mrr, 0) AS arr
              FROM anchors a
              LEFT JOIN revenue r ON r.account_id = a.account_id
               AND r.month = (SELECT m FROM month_now)
             WHERE a.cohort = 'current'),
        grid AS (
            SELECT arr.account_id, arr.arr, m.metric, coalesce(l.level, 0) AS level
              FROM arr CROSS JOIN (SELECT unnest($all) AS metric) m
              LEFT JOIN levels l ON l.account_id = arr.account_id AND l.cohort = 'current'
               AND l.metric = m.metric),
        ranked AS (
            SELECT metric,
                   rank() OVER (PARTITION BY metric ORDER BY level)
                   + (count(*) OVER (PARTITION BY metric, level) - 1) / 2 AS level_rank,
                   rank() OVER (PARTITION BY metric ORDER BY arr)
                   + (count(*) OVER (PARTITION BY metric, arr) - 1) / 2 AS arr_rank
              FROM grid)
        SELECT metric, corr(level_rank, arr_rank) FROM ranked GROUP BY metric ORDER BY metric
    """, {"t": as_of, "all": [*snapshot_names, event_metric]}).fetchall()
    # the other cohorts' aggregations are what valuemetric also computes; fetch them
    # (one row per account and metric) so the reference pays for moving them to Python too
    fetched = con.execute("SELECT * FROM levels").fetchnumpy()
    assert len(fetched["account_id"]) > 0
    con.close()
    return {str(metric): None if rho is None else float(rho) for metric, rho in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    load_cmd = sub.add_parser("load")
    load_cmd.add_argument("company")
    load_cmd.add_argument("database")
    corr = sub.add_parser("correlate")
    corr.add_argument("database")
    corr.add_argument("--as-of", required=True)
    corr.add_argument("--window", type=int, default=31,
                      help="level window in days (valuemetric widens 28 to 31 for monthly "
                      "snapshots)")
    args = parser.parse_args()
    if args.action == "load":
        load(Path(args.company), Path(args.database))
    else:
        json.dump(correlate(Path(args.database), dt.date.fromisoformat(args.as_of), args.window),
                  sys.stdout)


if __name__ == "__main__":
    main()
