"""Benchmark: `valuemetric import` against the engines' own bulk loaders (issue 12 item 2).

Generates accounts, a usage file (weekly snapshots of 6 metrics, in date order, as exports
come) and an events file, then imports each with `valuemetric import` in a fresh process and
prints rows/s beside, on the same data, schema and indexes:

- SQLite: the ``sqlite3`` command-line shell's ``.import`` (Debian package ``sqlite3``:
  ``apt-get install sqlite3`` if it is missing) into an empty database made by valuemetric's
  own migrations, accounts already loaded;
- PostgreSQL (with ``--pg URL``): plain ``COPY ... FROM STDIN`` into the same table.

Goals: usage >= 0.8x of the engine's loader on both; events >= 200,000 rows/s on SQLite.

    python benchmarks/bench_import.py [--rows 1000000] [--repeat 3] [--pg URL]

Each figure is the median of ``--repeat`` runs, ours and the reference interleaved. The
`valuemetric import` figures include the process start-up (about a second).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

METRICS = ("users", "projects", "integrations", "api_calls", "records", "exports")
EVENTS = ("login", "export", "api_call", "invite", "report_view")
START = dt.date(2024, 1, 1)


def generate(directory: Path, rows: int, seed: int = 0) -> dict[str, Path]:
    """accounts.csv, usage.csv (about ``rows`` rows) and events.csv (``rows`` rows)."""
    rng = np.random.default_rng(seed)
    n_accounts = max(10, rows // (len(METRICS) * 52))
    ids = np.array([f"acct-{k:06d}" for k in range(n_accounts)])
    pd.DataFrame({"account_id": ids, "name": [f"Company {k}" for k in range(n_accounts)],
                  "plan": rng.choice(["basic", "pro", "enterprise"], n_accounts),
                  "signup_date": "2023-06-01", "churn_date": ""}
                 ).to_csv(directory / "accounts.csv", index=False)
    weeks = -(-rows // (n_accounts * len(METRICS)))
    dates = [(START + dt.timedelta(weeks=w)).isoformat() for w in range(weeks)]
    usage = pd.DataFrame({
        "account_id": np.tile(np.repeat(ids, len(METRICS)), weeks),
        "date": np.repeat(dates, n_accounts * len(METRICS)),
        "metric": np.tile(METRICS, n_accounts * weeks),
    }).iloc[:rows]
    usage["value"] = rng.integers(0, 500, len(usage))
    usage.to_csv(directory / "usage.csv", index=False)
    seconds = np.sort(rng.integers(0, 365 * 86_400, rows))
    stamps = (np.datetime64("2024-01-01T00:00:00") + seconds.astype("timedelta64[s]"))
    pd.DataFrame({
        "account_id": ids[rng.integers(0, n_accounts, rows)],
        "user_id": [f"u{k}" for k in rng.integers(0, 20, rows)],
        "event": rng.choice(EVENTS, rows),
        "timestamp": np.datetime_as_string(stamps, unit="s"),
        "value": rng.integers(1, 10, rows),
    }).to_csv(directory / "events.csv", index=False)
    return {"accounts": directory / "accounts.csv", "usage": directory / "usage.csv",
            "events": directory / "events.csv"}


def _valuemetric(url: str, kind: str, path: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bot.cli", "import", kind, str(path),
                    "--database-url", url], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def _lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in fh) - 1


def _fresh_sqlite(directory: Path, name: str, files: dict[str, Path]) -> str:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{directory / name}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{directory / name}"
    _valuemetric(url, "accounts", files["accounts"])  # creates the schema too
    return url


def _shell_import(shell: str, directory: Path, files: dict[str, Path]) -> float:
    _fresh_sqlite(directory, "shell.db", files)
    started = time.perf_counter()
    subprocess.run([shell, str(directory / "shell.db"), ".mode csv",
                    f".import --skip 1 {files['usage']} usage"], check=True)
    return time.perf_counter() - started


def _line(label: str, rows: int, seconds: list[float], note: str = "") -> None:
    median = statistics.median(seconds)
    print(f"{label:<22} {rows:>10,} rows {median:7.1f} s {rows / median:>10,.0f} rows/s"
          f"{note}", flush=True)


def bench_sqlite(directory: Path, files: dict[str, Path], repeat: int) -> None:
    shell = shutil.which("sqlite3")
    rows = _lines(files["usage"])
    ours, theirs = [], []
    for _ in range(repeat):  # interleaved, so both see the same load on a shared machine
        ours.append(_valuemetric(_fresh_sqlite(directory, "ours.db", files), "usage",
                                 files["usage"]))
        if shell is not None:
            theirs.append(_shell_import(shell, directory, files))
    _line("sqlite import usage", rows, ours)
    if shell is None:
        print("sqlite .import usage   skipped: no sqlite3 shell (apt-get install sqlite3)")
    else:
        ratio = statistics.median(theirs) / statistics.median(ours)
        _line("sqlite .import usage", rows, theirs, f"   ratio {ratio:.2f}x (goal >= 0.8x)")
    rows = _lines(files["events"])
    events = [_valuemetric(_fresh_sqlite(directory, "ours.db", files), "events",
                           files["events"]) for _ in range(repeat)]
    _line("sqlite import events", rows, events, "   (goal >= 200,000 rows/s)")


def _in_fresh_schema(url: str, files: dict[str, Path], load: Callable[[str, str], None]
                     ) -> float:
    import psycopg
    from sqlalchemy.engine import make_url

    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    schema = f"vm_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(plain, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in url else "?"
    try:
        _valuemetric(f"{url}{separator}options=-csearch_path%3D{schema}", "accounts",
                     files["accounts"])
        started = time.perf_counter()
        load(plain, schema)
        return time.perf_counter() - started
    finally:
        with psycopg.connect(plain, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def bench_postgres(url: str, files: dict[str, Path], repeat: int) -> None:
    import psycopg

    def ours(_plain: str, schema: str) -> None:
        separator = "&" if "?" in url else "?"
        _valuemetric(f"{url}{separator}options=-csearch_path%3D{schema}", "usage",
                     files["usage"])

    def copy(plain: str, schema: str) -> None:
        with psycopg.connect(plain, options=f"-csearch_path={schema}") as conn, \
                conn.cursor() as cur, \
                cur.copy("COPY usage (account_id, date, metric, value) FROM STDIN "
                         "(FORMAT csv, HEADER true)") as pipe, \
                open(files["usage"], "rb") as fh:
            while block := fh.read(1 << 20):
                pipe.write(block)

    rows = _lines(files["usage"])
    timings: dict[str, list[float]] = {"ours": [], "copy": []}
    for _ in range(repeat):
        timings["ours"].append(_in_fresh_schema(url, files, ours))
        timings["copy"].append(_in_fresh_schema(url, files, copy))
    _line("pg import usage", rows, timings["ours"])
    ratio = statistics.median(timings["copy"]) / statistics.median(timings["ours"])
    _line("pg COPY usage", rows, timings["copy"], f"   ratio {ratio:.2f}x (goal >= 0.8x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="usage and event rows")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, interleaved; "
                        "the median is printed (use 3 on a busy machine)")
    parser.add_argument("--pg", default=os.environ.get("VALUEMETRIC_TEST_DATABASE_URL"),
                        help="PostgreSQL URL for the COPY comparison (default: "
                        "$VALUEMETRIC_TEST_DATABASE_URL; none = SQLite only)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vm-bench-import-") as tmp:
        directory = Path(tmp)
        started = time.perf_counter()
        files = generate(directory, args.rows)
        print(f"generated {args.rows:,} usage and event rows in "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
        bench_sqlite(directory, files, args.repeat)
        if args.pg:
            bench_postgres(args.pg, files, args.repeat)


if __name__ == "__main__":
    main()
