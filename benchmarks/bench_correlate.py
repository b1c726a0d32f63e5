"""Benchmark: `correlate` on 50,000 accounts x 52 weekly snapshots x 6 metrics (15.6 M rows).

Goal (issue 3): under 10 s and under 1 GB on a 2-core machine, SQLite. Prints the time and
peak memory of valuemetric's SQL-pushdown path beside a naive baseline that loads the whole
usage table into pandas, each measured in its own fresh process.

    python benchmarks/bench_correlate.py [--db PATH] [--accounts 50000]

The database is generated once (about two minutes) and reused while its size matches.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

METRICS = ("users", "projects", "integrations", "api_calls", "records", "exports")
WEEKS = 52
AS_OF = dt.date(2025, 12, 29)


def build(path: Path, n: int, seed: int = 0) -> None:
    from analysis.db import make_engine, upgrade

    path.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    rng = np.random.default_rng(seed)
    # Every account has exactly 52 weekly snapshots (50,000 x 52 x 6 = 15.6 M rows): active
    # accounts' run up to AS_OF, churned accounts' (15%) end earlier, at their churn.
    calendar = 2 * WEEKS
    start = AS_OF - dt.timedelta(weeks=calendar - 1)
    churned = rng.random(n) < 0.15
    last_week = np.where(churned, rng.integers(WEEKS + 4, calendar - 2, n), calendar - 1)
    first_week = last_week - (WEEKS - 1)
    dates = [(start + dt.timedelta(weeks=w)).isoformat() for w in range(calendar)]
    signup = [start + dt.timedelta(weeks=int(w)) - dt.timedelta(days=int(d))
              for w, d in zip(first_week, rng.integers(0, 200, n), strict=True)]
    churn = [(start + dt.timedelta(weeks=int(w), days=3)).isoformat() for w in last_week]
    ids = [f"acct{i:06d}" for i in range(n)]
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    con.executemany(
        "INSERT INTO accounts (account_id, name, plan, signup_date, churn_date) "
        "VALUES (?, ?, 'pro', ?, ?)",
        [(ids[i], f"Account {i}", signup[i].isoformat(), churn[i] if churned[i] else None)
         for i in range(n)])
    base = rng.lognormal(1.5, 0.8, (n, len(METRICS)))
    t0 = time.perf_counter()
    for i0 in range(0, n, 2000):
        block = range(i0, min(n, i0 + 2000))
        rows: list[tuple[str, str, str, float]] = []
        for i in block:
            weeks = range(first_week[i], last_week[i] + 1)
            for m, metric in enumerate(METRICS):
                values = np.round(base[i, m] * rng.lognormal(0, 0.2, WEEKS), 2)
                rows.extend((ids[i], metric, dates[w], float(v))
                            for w, v in zip(weeks, values, strict=True))
        con.executemany("INSERT INTO usage (account_id, metric, date, value) VALUES (?,?,?,?)",
                        rows)
        print(f"  generated {min(n, i0 + 2000):,} / {n:,} accounts "
              f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    months = sorted({(AS_OF - dt.timedelta(days=30 * k)).replace(day=1) for k in range(24)})
    mrr = np.round(base[:, 0] * 20, 2)
    con.executemany("INSERT INTO revenue (account_id, month, mrr) VALUES (?,?,?)",
                    [(ids[i], mo.isoformat(), float(mrr[i] * (1.2 if k > 6 and i % 5 == 0 else 1)))
                     for i in range(n) for k, mo in enumerate(months)])
    con.commit()
    con.execute("ANALYZE")
    con.close()


def run_valuemetric(path: Path) -> dict[str, float]:
    from analysis.catalog import Metric
    from analysis.correlate import correlate
    from analysis.dataset import load_dataset
    from analysis.db import make_engine
    from analysis.params import AnalysisSettings
    from analysis.sources import imported

    params = AnalysisSettings()
    engine = make_engine(f"sqlite:///{path}")
    t0 = time.perf_counter()
    with engine.connect() as conn:
        ds = load_dataset(imported(conn), [Metric(m) for m in METRICS], params)
    t1 = time.perf_counter()
    result = correlate(ds, params)
    t2 = time.perf_counter()
    assert len(result.metrics) == len(METRICS)
    return {"load_s": t1 - t0, "stats_s": t2 - t1, "total_s": t2 - t0}


def run_naive(path: Path) -> dict[str, float]:
    """Load every usage row into pandas and aggregate there (what pushdown avoids)."""
    import pandas as pd

    t0 = time.perf_counter()
    con = sqlite3.connect(path)
    frame = pd.read_sql_query("SELECT account_id, metric, date, value FROM usage", con)
    window = frame[frame["date"] > (AS_OF - dt.timedelta(days=28)).isoformat()]
    levels = window.pivot_table(index="account_id", columns="metric", values="value")
    t1 = time.perf_counter()
    assert len(levels) > 0
    return {"load_s": t1 - t0, "stats_s": 0.0, "total_s": t1 - t0}


def measure(kind: str, path: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--db", str(path)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="bench-50k.db")
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--child", choices=("valuemetric", "naive"))
    args = parser.parse_args()
    path = Path(args.db)
    if args.child:
        result = (run_valuemetric if args.child == "valuemetric" else run_naive)(path)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    marker = path.with_suffix(".n")
    if not path.exists() or not marker.exists() or marker.read_text() != str(args.accounts):
        print(f"building {path} with {args.accounts:,} accounts ...", file=sys.stderr)
        build(path, args.accounts)
        marker.write_text(str(args.accounts))
    con = sqlite3.connect(path)
    rows = con.execute("SELECT COUNT(*) FROM usage").fetchone()[0]
    con.close()
    print(f"usage rows: {rows:,}; accounts: {args.accounts:,}; metrics: {len(METRICS)}")
    print(f"{'path':<12} {'load s':>8} {'stats s':>8} {'total s':>8} {'peak MB':>8}")
    for kind in ("valuemetric", "naive"):
        r = measure(kind, path)
        print(f"{kind:<12} {r['load_s']:8.2f} {r['stats_s']:8.2f} {r['total_s']:8.2f} "
              f"{r['peak_rss_mb']:8.0f}")
    print("goal: valuemetric total under 10 s and peak under 1,024 MB")


if __name__ == "__main__":
    main()
