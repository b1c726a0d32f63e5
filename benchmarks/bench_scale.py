"""Benchmark: valuemetric end to end on a generated company, beside engine references.

Generates the company of ``benchmarks/company.py`` (cached per size and seed under
``--dir``), then on SQLite and on PostgreSQL (a throwaway database on the local server,
created and dropped by this script) runs each step as its own ``valuemetric`` process, the
way a user or cron runs it: ``import`` of every file, ``ask correlate``, ``ask recommend``,
``ask "thresholds active_users"`` and ``digest``. Peak memory is each process's own maximum
resident set (measured by GNU time). Beside them, in the same run:

* ``ask correlate`` against ``benchmarks/reference_duckdb.py`` (a fresh process computing the
  same per-account aggregations and the ARR rank correlations in DuckDB); the two sets of
  correlations are compared, so the reference is known to compute the same thing;
* ``import usage`` against the engine's own loader into the same schema and indexes:
  ``sqlite3``'s ``.import`` (the Debian ``sqlite3`` CLI) and ``psql``'s ``\\copy`` (COPY);
* the targets of issue 12: correlate within 2.5x of DuckDB, digest under 15 s on SQLite,
  every step under 1 GB, PostgreSQL within 2x of SQLite.

Invoices are imported first into a scratch database of their own (with the accounts), so
the analyses read one revenue source, ``revenue.csv``; then into the main database, where
they replace the monthly revenue as the source of MRR (spread over the months they cover),
and ``ask correlate`` and ``digest`` run again on them. Each analysis figure is the median
of ``--repeat`` runs; imports run once per backend (a re-import of the same file is a
different, cheaper operation).

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python -m benchmarks.bench_scale --accounts 50000 [--repeat 3] [--backends sqlite]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks import company

ROOT = Path(__file__).resolve().parent.parent
VALUEMETRIC = Path(sys.executable).with_name("valuemetric")
TIME = "/usr/bin/time"  # GNU time (Debian package `time`)
THRESHOLDS_METRIC = "active_users"
ANALYSES = (
    ("ask correlate", ["ask", "correlate", "--format", "json"]),
    ("ask recommend", ["ask", "recommend"]),
    (f"ask thresholds {THRESHOLDS_METRIC}", ["ask", f"thresholds {THRESHOLDS_METRIC}"]),
    ("digest", ["digest"]),
)
# again once invoices are imported beside the monthly revenue: MRR then comes from them
INVOICED_ANALYSES = tuple((f"{step}, MRR from invoices", args) for step, args in ANALYSES
                          if step in ("ask correlate", "digest"))
IMPORTS = ("accounts", "usage", "revenue", "events")
GIB = 1024.0


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float
    peak_mb: float
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Figure:
    step: str
    backend: str
    seconds: float | None
    peak_mb: float | None
    rows: int | None = None
    cpu_seconds: float | None = None
    note: str = ""


def run(argv: Sequence[str], env: dict[str, str] | None = None) -> Run:
    """Run a process to its end: wall time, CPU time and its own peak RSS.

    Through GNU time: a child started straight from this process would report this
    process's memory as its own peak (Linux carries the parent's high-water mark into a
    forked or vforked child through exec), and this process may hold a generated company.
    """
    with (tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err,
          tempfile.NamedTemporaryFile("r") as measured):
        # each step starts with no dirty pages of the one before (the DuckDB file, an
        # import) still being written out: 3 s of a 27 s import otherwise
        os.sync()
        started = time.perf_counter()
        process = subprocess.run([TIME, "-q", "-f", "%M %U %S", "-o", measured.name, *argv],
                                 stdout=out, stderr=err, cwd=ROOT, check=False,
                                 env={**os.environ, **(env or {})})
        seconds = time.perf_counter() - started
        peak_kb, user, system = measured.read().split()[-3:]
        out.seek(0)
        err.seek(0)
        return Run(seconds, float(user) + float(system), int(peak_kb) / 1024,
                   process.returncode,
                   out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def valuemetric(args: Sequence[str], url: str, config: Path) -> Run:
    return run([str(VALUEMETRIC), *args, "--database-url", url, "--config", str(config)])


def median_run(argv: Sequence[str], repeat: int) -> tuple[Run, Figure]:
    """The last run, and the median seconds (wall and CPU) and highest peak of ``repeat`` runs."""
    runs = [run(argv) for _ in range(repeat)]
    return runs[-1], Figure("", "", statistics.median(r.seconds for r in runs),
                            max(r.peak_mb for r in runs),
                            cpu_seconds=statistics.median(r.cpu_seconds for r in runs))


def failed(step: str, backend: str, result: Run) -> Figure:
    last = (result.stderr.strip().splitlines() or ["no output"])[-1]
    return Figure(step, backend, None, result.peak_mb, note=f"failed (exit {result.returncode}): "
                  f"{last[:120]}")


class Backend:
    """A fresh, empty database for one run of the benchmark."""

    name: str

    def url(self, purpose: str) -> str:
        raise NotImplementedError

    def usage_reference(self, files: company.CompanyFiles, config: Path) -> Figure:
        raise NotImplementedError

    def drop(self) -> None:
        raise NotImplementedError


class SQLite(Backend):
    name = "sqlite"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.paths: list[Path] = []

    def url(self, purpose: str) -> str:
        path = self.directory / f"bench-{purpose}.db"
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        self.paths.append(path)
        return f"sqlite:///{path}"

    def usage_reference(self, files: company.CompanyFiles, config: Path) -> Figure:
        step = "import usage: sqlite3 .import"
        if not shutil.which("sqlite3"):
            return Figure(step, self.name, None, None, note="no sqlite3 CLI (apt-get install "
                          "sqlite3)")
        url = self.url("sqlite3-import")
        upgraded = valuemetric(["db", "upgrade"], url, config)
        if upgraded.returncode:
            return failed(step, self.name, upgraded)
        # .import fills columns by position: the same rows in the table's column order
        ordered = self.directory / "usage-table-order.csv"
        with open(files.usage) as src, open(ordered, "w") as dst:
            next(src)
            for line in src:
                account, date, metric, value = line.rstrip("\n").split(",")
                dst.write(f"{account},{metric},{date},{value}\n")
        result = run(["sqlite3", url.removeprefix("sqlite:///"), ".mode csv",
                      f".import {ordered} usage"])
        ordered.unlink()
        if result.returncode or result.stderr.strip():
            return failed(step, self.name, result)
        return Figure(step, self.name, result.seconds, result.peak_mb, files.rows["usage"],
                      result.cpu_seconds)

    def drop(self) -> None:
        for path in self.paths:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)


class PostgreSQL(Backend):
    name = "postgresql"

    def __init__(self, server: str) -> None:
        import psycopg

        self.server = server.rstrip("/")
        self.databases: list[str] = []
        self.admin = psycopg.connect(f"{self.server}/postgres", autocommit=True)

    def url(self, purpose: str) -> str:
        name = f"valuemetric_bench_{os.getpid()}_{purpose.replace('-', '_')}"
        self.admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        self.admin.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return f"{self.server.replace('postgresql://', 'postgresql+psycopg://')}/{name}"

    def usage_reference(self, files: company.CompanyFiles, config: Path) -> Figure:
        step = "import usage: psql \\copy"
        if not shutil.which("psql"):
            return Figure(step, self.name, None, None, note="no psql client")
        url = self.url("copy")
        # the usage table's foreign key needs the accounts first
        setup = valuemetric(["import", "accounts", str(files.accounts)], url, config)
        if setup.returncode:
            return failed(step, self.name, setup)
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        result = run(["psql", "-v", "ON_ERROR_STOP=1", "-q", dsn, "-c",
                      f"\\copy usage (account_id, date, metric, value) FROM '{files.usage}' "
                      "WITH (FORMAT csv, HEADER true)"])
        if result.returncode:
            return failed(step, self.name, result)
        # psql only streams the file: the server's CPU is not in its rusage
        return Figure(step, self.name, result.seconds, result.peak_mb, files.rows["usage"])

    def drop(self) -> None:
        for name in self.databases:
            self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.close()


def company_files(directory: Path, accounts: int, seed: int) -> company.CompanyFiles:
    """The company's files, generated once per size and seed."""
    target = directory / f"company-{accounts}-{seed}"
    marker = target / "rows.json"
    if marker.exists():
        rows = json.loads(marker.read_text())
        paths = {kind: target / f"{kind}.csv" for kind in (*IMPORTS, "invoices")}
        return company.CompanyFiles(target, paths["accounts"], paths["usage"], paths["events"],
                                    paths["revenue"], paths["invoices"], target / "company.toml",
                                    company.END, rows)
    started = time.perf_counter()
    print(f"generating {accounts:,} accounts into {target} ...", file=sys.stderr, flush=True)
    files = company.generate(target, accounts, seed)
    marker.write_text(json.dumps(files.rows))
    print(f"  done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return files


def usable_config(files: company.CompanyFiles) -> tuple[Path, str]:
    """The company's settings, without the event metric if this valuemetric cannot read it."""
    from bot.config import ConfigError, load_settings

    try:
        load_settings(files.config, env={})
        return files.config, ""
    except ConfigError as exc:
        fallback = files.directory / "company-snapshots.toml"
        fallback.write_text(company.config_toml(event_metrics=False))
        return fallback, f"event metric left out of the catalog ({exc})"


def bench_backend(backend: Backend, files: company.CompanyFiles, config: Path,
                  repeat: int) -> tuple[list[Figure], dict[str, float | None]]:
    figures: list[Figure] = []

    def record(figure: Figure) -> None:
        # a 50,000-account run takes many minutes: show each figure as it comes
        figures.append(figure)
        seconds = "failed" if figure.seconds is None else f"{figure.seconds:.1f} s"
        print(f"  {figure.step}: {seconds} {figure.note}", file=sys.stderr, flush=True)

    url = backend.url("main")
    for kind in IMPORTS:
        result = valuemetric(["import", kind, str(files.csv(kind))], url, config)
        record(_import_figure(f"import {kind}", backend.name, result, files.rows[kind]))
    scratch = backend.url("invoices")
    setup = valuemetric(["import", "accounts", str(files.accounts)], scratch, config)
    invoices = valuemetric(["import", "invoices", str(files.invoices)], scratch, config)
    record(failed("import invoices", backend.name, setup) if setup.returncode else
           _import_figure("import invoices", backend.name, invoices, files.rows["invoices"]))
    record(backend.usage_reference(files, config))
    rho: dict[str, float | None] = {}
    for step, args in ANALYSES:
        argv = [str(VALUEMETRIC), *args, "--database-url", url, "--config", str(config),
                "--as-of", files.as_of.isoformat()]
        last, median = median_run(argv, repeat)
        if last.returncode:
            record(failed(step, backend.name, last))
            continue
        record(dataclasses.replace(median, step=step, backend=backend.name))
        if step == "ask correlate":
            rho = {m["metric"]: m.get("arr_rho") for m in json.loads(last.stdout)["metrics"]}
    billed = valuemetric(["import", "invoices", str(files.invoices)], url, config)
    if billed.returncode:
        record(failed("import invoices beside the monthly revenue", backend.name, billed))
        return figures, rho
    for step, args in INVOICED_ANALYSES:
        argv = [str(VALUEMETRIC), *args, "--database-url", url, "--config", str(config),
                "--as-of", files.as_of.isoformat()]
        last, median = median_run(argv, repeat)
        record(failed(step, backend.name, last) if last.returncode else
               dataclasses.replace(median, step=step, backend=backend.name))
    return figures, rho


def _import_figure(step: str, backend: str, result: Run, rows: int) -> Figure:
    if result.returncode == 2 and "invalid choice" in result.stderr:
        return Figure(step, backend, None, None, rows, note="not in this version of valuemetric")
    if result.returncode:
        return failed(step, backend, result)
    return Figure(step, backend, result.seconds, result.peak_mb, rows, result.cpu_seconds)


def bench_reference(files: company.CompanyFiles, directory: Path,
                    repeat: int) -> tuple[list[Figure], dict[str, float | None]]:
    database = directory / f"reference-{files.rows['accounts']}.duckdb"
    module = [sys.executable, "-m", "benchmarks.reference_duckdb"]
    loaded = run([*module, "load", str(files.directory), str(database)])
    if loaded.returncode:
        return [failed("duckdb: load the CSV files", "duckdb", loaded)], {}
    figures = [Figure("duckdb: load the CSV files", "duckdb", loaded.seconds, loaded.peak_mb,
                      sum(files.rows[k] for k in IMPORTS), loaded.cpu_seconds)]
    last, median = median_run(
        [*module, "correlate", str(database), "--as-of", files.as_of.isoformat()], repeat)
    database.unlink(missing_ok=True)
    if last.returncode:
        return [*figures, failed("duckdb: correlate", "duckdb", last)], {}
    return ([*figures, dataclasses.replace(median, step="duckdb: correlate", backend="duckdb")],
            json.loads(last.stdout))


def ratio(figure: Figure, reference: Figure | None, *, per_row: bool = False) -> str:
    """Wall-time ratio to the reference (and CPU-time ratio, steadier on a busy machine)."""
    if figure.seconds is None or reference is None or not reference.seconds:
        return ""
    if per_row:  # a throughput ratio: valuemetric's rows/s over the engine's
        return f"{reference.seconds / figure.seconds:.2f}x engine rows/s"
    text = f"{figure.seconds / reference.seconds:.1f}x {reference.backend}"
    if figure.cpu_seconds and reference.cpu_seconds:
        text += f" (CPU {figure.cpu_seconds / reference.cpu_seconds:.1f}x)"
    return text


def report(figures: list[Figure], accounts: int, files: company.CompanyFiles, repeat: int,
           rho: dict[str, dict[str, float | None]], notes: list[str]) -> None:
    by = {(f.step, f.backend): f for f in figures}
    print(f"\nvaluemetric at scale: {accounts:,} accounts, "
          + ", ".join(f"{kind} {rows:,}" for kind, rows in files.rows.items() if kind != "accounts")
          + f" rows; as of {files.as_of}; median of {repeat} run(s); {os.cpu_count()} cores")
    for note in notes:
        print(f"note: {note}")
    print(f"\n{'step':<34} {'backend':<11} {'seconds':>8} {'CPU s':>7} {'rows/s':>10} "
          f"{'peak MB':>8}  vs")
    for f in figures:
        reference: Figure | None = None
        per_row = False
        if f.step == "ask correlate":
            reference = by.get(("duckdb: correlate", "duckdb"))
        elif f.step == "import usage":
            per_row = True
            reference = by.get(("import usage: sqlite3 .import" if f.backend == "sqlite" else
                                "import usage: psql \\copy", f.backend))
        elif f.backend == "postgresql":
            reference = by.get((f.step, "sqlite"))
        seconds = "-" if f.seconds is None else f"{f.seconds:8.2f}"
        cpu = "" if f.cpu_seconds is None else f"{f.cpu_seconds:7.2f}"
        rate = f"{f.rows / f.seconds:,.0f}" if f.rows and f.seconds else ""
        peak = "" if f.peak_mb is None else f"{f.peak_mb:,.0f}"
        compared = ratio(f, reference, per_row=per_row)
        print(f"{f.step:<34} {f.backend:<11} {seconds:>8} {cpu:>7} {rate:>10} {peak:>8}  "
              f"{compared or f.note}")

    if "duckdb" in rho:
        for backend, values in rho.items():
            if backend == "duckdb" or not values:
                continue
            shared = [m for m in values if m in rho["duckdb"] and values[m] is not None]
            gap = max((abs((values[m] or 0) - (rho["duckdb"][m] or 0)) for m in shared),
                      default=None)
            print(f"ARR rho, {backend} vs duckdb: "
                  + ("no metric in common" if gap is None else
                     f"largest difference {gap:.4f} over {', '.join(shared)}"))

    print("\ntargets (issue 12):")
    correlate_ref = by.get(("duckdb: correlate", "duckdb"))
    for backend in ("sqlite", "postgresql"):
        corr = by.get(("ask correlate", backend))
        if corr and corr.seconds and correlate_ref and correlate_ref.seconds:
            x = corr.seconds / correlate_ref.seconds
            cpu = (f", CPU {corr.cpu_seconds / correlate_ref.cpu_seconds:.1f}x"
                   if corr.cpu_seconds and correlate_ref.cpu_seconds else "")
            print(f"  {backend}: ask correlate {x:.1f}x duckdb{cpu} (goal <= 2.5x): "
                  f"{'met' if x <= 2.5 else 'missed'} (wall time)")
    digest = by.get(("digest", "sqlite"))
    if digest and digest.seconds:
        print(f"  sqlite: digest {digest.seconds:.1f} s (goal < 15 s): "
              f"{'met' if digest.seconds < 15 else 'missed'}")
    peaks = [f for f in figures if f.peak_mb and f.backend in ("sqlite", "postgresql")]
    if peaks:
        top = max(peaks, key=lambda f: f.peak_mb or 0)
        print(f"  peak memory {top.peak_mb:,.0f} MB ({top.step}, {top.backend}) "
              f"(goal < 1,024 MB): {'met' if (top.peak_mb or 0) < GIB else 'missed'}")
    slow = [(f.step, f.seconds / s.seconds) for f in figures
            if f.backend == "postgresql" and f.seconds
            and (s := by.get((f.step, "sqlite"))) is not None and s.seconds
            and not f.step.startswith("import")]
    if slow:
        worst = max(slow, key=lambda x: x[1])
        print(f"  postgresql vs sqlite, analysis steps: at most {worst[1]:.1f}x ({worst[0]}) "
              f"(goal <= 2x): {'met' if worst[1] <= 2 else 'missed'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="runs per analysis step "
                        "(the median is shown)")
    parser.add_argument("--dir", default=".bench", help="where the company files and SQLite "
                        "databases go (default .bench)")
    parser.add_argument("--backends", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432",
                        help="PostgreSQL server (a database is created there and dropped)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    directory = Path(args.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)

    files = company_files(directory, args.accounts, args.seed)
    config, note = usable_config(files)
    notes = [note] if note else []
    figures, reference_rho = bench_reference(files, directory, args.repeat)
    rho: dict[str, dict[str, float | None]] = {"duckdb": reference_rho}
    for name in args.backends.split(","):
        backend: Backend
        try:
            backend = (SQLite(directory) if name == "sqlite" else PostgreSQL(args.postgres))
        except Exception as exc:  # an unreachable server skips that backend, with the reason
            notes.append(f"{name} skipped: {exc}")
            continue
        print(f"{name}: importing and asking ...", file=sys.stderr, flush=True)
        try:
            measured, rho[name] = bench_backend(backend, files, config, args.repeat)
            figures += measured
        finally:
            backend.drop()
    report(figures, args.accounts, files, args.repeat, rho, notes)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "accounts": args.accounts, "rows": files.rows, "repeat": args.repeat,
            "date": dt.date.today().isoformat(), "notes": notes,
            "figures": [dataclasses.asdict(f) for f in figures]}, indent=1))


if __name__ == "__main__":
    main()
