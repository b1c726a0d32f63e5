"""The ``valuemetric`` command line: a thin door onto the same reports layer as Slack."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError

from analysis.dataset import NoData
from analysis.db import (
    DatabaseError,
    current_revision,
    ensure_schema,
    make_engine,
    pending_revisions,
    upgrade,
)
from analysis.imports import (
    KINDS,
    ImportRejected,
    ImportReport,
    Progress,
    import_csv,
    parse_columns,
)
from analysis.sources import DataSources, SourceError
from bot.commands import UsageError
from bot.config import ConfigError, DatabaseSettings, Secrets, Settings, load_settings
from bot.sender import SecretRedactor

if TYPE_CHECKING:
    from bot.jobs import Jobs

EXIT_ERROR = 1
EXIT_USAGE = 2


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    if getattr(args, "database_url", None):
        settings = dataclasses.replace(settings, database=DatabaseSettings(url=args.database_url))
    return settings


def _shown(engine: Engine) -> str:
    """The database URL without its password, for messages."""
    return engine.url.render_as_string(hide_password=True)


def _progress(label: str) -> Progress:
    """Progress lines on stderr: each new phase, then every couple of seconds within one."""
    started = time.perf_counter()
    last_phase, last_at = [""], [started]
    doing = {"wait": "waiting for another writer to finish", "read": "read and loaded",
             "check": "looking for duplicate keys", "upsert": "writing the table",
             "index": "building indexes", "statistics": "updating planner statistics",
             "spread": "spreading the invoices over their months", "commit": "committing"}

    def report(phase: str, count: int | None) -> None:
        now = time.perf_counter()
        if phase == last_phase[0] and now - last_at[0] < 2:
            return
        last_phase[0], last_at[0] = phase, now
        if phase == "wait":
            text = f"{doing[phase]} ({count} s so far)"
        elif count is not None:
            text = f"{doing[phase]} {count:,} rows ({count / (now - started):,.0f} rows/s)"
        else:
            text = f"{doing.get(phase, phase)}... ({now - started:.0f} s)"
        print(f"{label}: {text}", file=sys.stderr, flush=True)

    return report


def _print_import(report: ImportReport) -> None:
    merged = f" (merged into {report.rows - report.merged:,})" if report.merged else ""
    print(f"{report.path}: {report.rows:,} {report.kind} rows{merged} in {report.seconds:.1f} s "
          f"({report.rows_per_second:,.0f} rows/s): {report.inserted:,} new, "
          f"{report.updated:,} updated, {report.unchanged:,} unchanged")
    for warning in report.warnings:
        print(f"{report.path}: warning: {warning}", file=sys.stderr)


def cmd_db(args: argparse.Namespace) -> int:
    settings = _settings(args)
    engine = make_engine(settings.database.url)
    if current_revision(engine) is not None:
        # a revision that rebuilds a large table runs for minutes: say what is going on
        for revision in pending_revisions(engine):
            print(f"{_shown(engine)}: applying {revision}", file=sys.stderr, flush=True)
    before, after = upgrade(engine)
    if before == after:
        print(f"{_shown(engine)}: already at revision {after}")
    else:
        print(f"{_shown(engine)}: upgraded "
              f"{before or 'empty database'} -> {after}")
    return 0


def _currencies(settings: Settings) -> set[str]:
    """Codes invoices may use: [revenue] currency and those it has rates for."""
    return {settings.revenue.currency, *settings.revenue.rates}


def cmd_import(args: argparse.Namespace) -> int:
    settings = _settings(args)
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        columns = parse_columns(args.columns or "")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    engine = make_engine(settings.database.url)
    if ensure_schema(engine):
        print(f"created the valuemetric schema in {_shown(engine)}",
              file=sys.stderr)
    _print_import(import_csv(engine, args.kind, path, _progress(str(path)), columns=columns,
                             currencies=_currencies(settings)))
    if settings.slack.alert_channel and os.environ.get("SLACK_BOT_TOKEN"):
        # alerts are evaluated after each import, not only on the hourly schedule; the data
        # is written by now, so an evaluation that cannot run yet is a warning, not a failure
        try:
            outcomes = _jobs(settings).post_alerts(dt.datetime.now(dt.UTC))
        except Exception as exc:
            print(f"alerts: warning: not evaluated after this import: {exc}", file=sys.stderr)
        else:
            print(f"alerts: {sum(o == 'sent' for _, o in outcomes)} new crossings posted",
                  file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bot import demo, render, reports

    url = args.database_url or "sqlite:///valuemetric-demo.db"
    engine = make_engine(url)
    if engine.dialect.name == "sqlite" and engine.url.database:
        db_path = Path(engine.url.database)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    ensure_schema(engine)
    print(f"demo database: {_shown(engine)}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="valuemetric-demo-") as tmp:
        data_dir = Path(args.data_dir) if args.data_dir else Path(tmp)
        files = demo.generate(data_dir, n_accounts=args.accounts, seed=args.seed)
        for kind in ("accounts", "usage", "revenue"):
            report = import_csv(engine, kind, getattr(files, kind), _progress(kind))
            print(f"imported {report.rows:,} {kind} rows ({report.rows_per_second:,.0f} rows/s)",
                  file=sys.stderr)
    settings_path = Path(demo.SETTINGS_FILE)
    settings_path.write_text(demo.settings_toml(None if engine.url.password else url))
    # read back through the loader, as every other door will read it
    settings = dataclasses.replace(load_settings(settings_path, env={}),
                                   database=DatabaseSettings(url=url))
    print(f"demo settings: {settings_path} (ask more: valuemetric ask recommend --config "
          f"{settings_path})", file=sys.stderr)
    print(render.render_text(reports.build_digest(reports.Context.load(engine, settings), None)))
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from bot import render, reports
    from bot.commands import parse

    settings = _settings(args)
    engine = make_engine(settings.database.url)
    ensure_schema(engine)
    as_of = _date_arg(args.as_of)
    context = reports.Context.load(engine, settings, as_of=as_of)
    report = reports.answer(context, parse(args.text, context.names()))
    if args.format == "json":
        print(render.render_json(report))
    else:
        print(render.render_text(report))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    import json

    from bot import reports

    settings = _settings(args)
    engine = make_engine(settings.database.url)
    ensure_schema(engine)
    result = reports.Context.load(engine, settings, _date_arg(args.as_of)).data_check
    if args.format == "json":
        print(json.dumps({"as_of": str(result.as_of) if result.as_of else None,
                          "source": result.source, "active_accounts": result.active_accounts,
                          "findings": [dataclasses.asdict(f) for f in result.findings]},
                         indent=2))
    else:
        print(result.summary)
        for finding in sorted(result.findings, key=lambda f: f.severity != "problem"):
            examples = f" (e.g. {', '.join(finding.examples)})" if finding.examples else ""
            print(f"{finding.severity}: {finding.message}{examples}")
    return EXIT_ERROR if result.problems else 0


def _check_source_sql(settings: Settings, engine: Engine) -> None:
    """Start-up check of the [source] SQL: each query runs with LIMIT 0 (SourceError names
    the query and the column)."""
    sources = DataSources(engine, settings.source, revenue=settings.revenue)
    if sources.queries():
        with sources.connect():
            pass


def _jobs(settings: Settings) -> Jobs:
    from bot.jobs import Jobs
    from bot.sender import Sender, make_web_client

    engine = make_engine(settings.database.url)
    ensure_schema(engine)
    _check_source_sql(settings, engine)
    return Jobs(engine, settings, Sender(make_web_client(Secrets.from_env().bot_token)))


def _require_token() -> None:
    if not os.environ.get("SLACK_BOT_TOKEN"):
        raise ConfigError("SLACK_BOT_TOKEN not set: posting to Slack needs the bot token in "
                          "the environment")


def cmd_digest(args: argparse.Namespace) -> int:
    from bot import render, reports

    settings = _settings(args)
    now = dt.datetime.now(dt.UTC)
    if args.post:
        _require_token()
        outcome = _jobs(settings).post_digest(now, args.channel)
        print(f"digest: {outcome}")
        return 0 if outcome in ("sent", "already claimed") else EXIT_ERROR
    engine = make_engine(settings.database.url)
    ensure_schema(engine)
    context = reports.Context.load(engine, settings, _date_arg(args.as_of))
    report = reports.build_digest(context, args.channel or settings.slack.digest_channel, now)
    print(render.render_json(report) if args.format == "json" else render.render_text(report))
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from bot import render, reports
    from bot.commands import Command

    settings = _settings(args)
    now = dt.datetime.now(dt.UTC)
    if args.action == "backtest":
        jobs = _jobs(settings)
        report = reports.Context.load(jobs.engine, settings).backtest(args.rule)
    elif args.post:
        _require_token()
        render.alert_renderer(settings).validate()
        outcomes = _jobs(settings).post_alerts(now)
        for crossing, outcome in outcomes:
            print(f"{crossing.account_id} {crossing.rule.key}: {outcome}")
        print(f"{len(outcomes)} crossings")
        return 0 if all(o in ("sent", "already claimed") for _, o in outcomes) else EXIT_ERROR
    else:
        jobs = _jobs(settings)
        report = reports.answer(reports.Context.load(jobs.engine, settings), Command("alerts"))
    print(render.render_json(report) if args.format == "json" else render.render_text(report))
    return 0


def _age(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def cmd_deliveries(args: argparse.Namespace) -> int:
    from analysis import ledger
    from bot.jobs import DIGEST, thread_complete

    settings = _settings(args)
    engine = make_engine(settings.database.url)
    ensure_schema(engine)
    now = dt.datetime.now(dt.UTC)
    lease = dt.timedelta(seconds=settings.delivery.lease_seconds)
    newest = ledger.listing(engine, args.limit)
    shown = {d.id: d for d in [*newest, *ledger.unfinished(engine)]}
    half_threads = [d for d in shown.values() if d.kind == DIGEST and d.state == ledger.SENT
                    and not thread_complete(engine, d)]
    shown |= {d.id: dataclasses.replace(d, error="thread replies missing")
              for d in half_threads}
    stuck = [d for d in shown.values() if d.stuck(now, lease) or d.id in
             {h.id for h in half_threads}]
    print(f"{'ID':>6}  {'KIND':<12} {'CHANNEL':<12} {'STATE':<8} {'AGE':>5}  PERIOD / ERROR")
    for d in sorted(shown.values(), key=lambda d: d.id):
        flag = "  <- stuck" if d in stuck else ""
        error = f"  ({d.error})" if d.error else ""
        print(f"{d.id:>6}  {d.kind:<12} {d.channel:<12} {d.state:<8} "
              f"{_age(now - (d.updated_at or d.claimed_at)):>5}  {d.period}{error}{flag}")
    if not stuck:
        print(f"{len(shown)} deliveries shown; nothing stuck")
        return 0
    print(f"{len(stuck)} stuck: failed and unknown posts are retried (after a look at the "
          "channel) by the next `--post` run or scheduler pass; fix what the error names "
          "(e.g. invite the bot to the channel), or run `valuemetric digest --post` / "
          "`valuemetric alerts --post` now", file=sys.stderr)
    return EXIT_ERROR


def _check_token(client_url: str | None = None) -> None:
    """A bot token Slack refuses stops start-up with one line (auth.test)."""
    from bot.sender import Sender, make_web_client

    problem = Sender(make_web_client(Secrets.from_env().bot_token, client_url)).check_token()
    if problem:
        raise ConfigError(problem)


def cmd_schedule(args: argparse.Namespace) -> int:
    from bot import render, scheduler

    settings = _settings(args)
    _require_token()
    render.alert_renderer(settings).validate()
    _check_token()
    _configure_logging(Secrets.from_env())
    scheduler.start(_jobs(settings), blocking=True)
    return 0


def _configure_logging(secrets: Secrets) -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redactor = SecretRedactor([secrets.bot_token, secrets.signing_secret, secrets.app_token])
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)


def cmd_serve(args: argparse.Namespace) -> int:
    from bot import render, scheduler
    from bot.app import create_app
    from bot.doctor import log_checks, run_checks
    from bot.jobs import Jobs
    from bot.sender import Sender
    from bot.server import serve_http, serve_socket_mode

    settings = _settings(args)
    secrets = Secrets.from_env()
    needed = ["SLACK_BOT_TOKEN"] + (["SLACK_SIGNING_SECRET"] if args.http else ["SLACK_APP_TOKEN"])
    missing = [name for name in needed if not os.environ.get(name)]
    if missing:
        mode = "HTTP mode" if args.http else "Socket Mode (or pass --http for HTTP mode)"
        raise ConfigError(f"{', '.join(missing)} not set: {mode} needs it in the environment")
    render.alert_renderer(settings).validate()  # a broken template stops start-up
    engine = make_engine(settings.database.url)
    ensure_schema(engine)
    _check_source_sql(settings, engine)
    _check_token()
    _configure_logging(secrets)
    app = create_app(settings, secrets, engine)
    log_checks(run_checks(app.client, settings))  # scopes and channels: the fix in the log
    if not args.no_scheduler:
        scheduler.start(Jobs(engine, settings, Sender(app.client)), blocking=False)
    if args.http:
        serve_http(app, args.host, args.port, settings.serve.http_threads)
    else:
        serve_socket_mode(app, secrets.app_token)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from bot.doctor import run_checks
    from bot.sender import make_web_client

    settings = _settings(args)
    _require_token()
    checks = run_checks(make_web_client(Secrets.from_env().bot_token), settings)
    for check in checks:
        print(check.line())
    return 0 if all(c.ok for c in checks) else EXIT_ERROR


def cmd_manifest(args: argparse.Namespace) -> int:
    from bot.render import ENV

    print(ENV.get_template("manifest.yaml.j2").render(request_url=args.request_url))
    return 0


def _date_arg(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--as-of: bad date {text!r} (expected YYYY-MM-DD)") from None


def _alert_template_error() -> type[Exception]:
    # imported only once an error reaches main(): bot.render pulls in scipy, seconds of
    # start-up that commands such as `import` do not need
    from bot.render import AlertTemplateError

    return AlertTemplateError


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="settings file (default: $VALUEMETRIC_CONFIG, "
                        "./config.toml, or built-in defaults)")
    common.add_argument("--database-url", help="SQLAlchemy URL (default: "
                        "$VALUEMETRIC_DATABASE_URL or database.url)")

    parser = argparse.ArgumentParser(
        prog="valuemetric", description="Find what to charge for, from usage, revenue and churn."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = sub.add_parser("db", parents=[common], help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("upgrade", parents=[common], help="create or upgrade the schema")
    db.set_defaults(func=cmd_db)

    imp = sub.add_parser("import", parents=[common], help="import a CSV file",
                         description="Import accounts, usage, revenue, events or invoices "
                         "from a CSV file, optionally gzipped (one transaction; a bad row "
                         "rejects the file).")
    imp.add_argument("kind", choices=list(KINDS))
    imp.add_argument("file")
    imp.add_argument("--columns", metavar="OURS=THEIRS,...", help="read our column from the "
                     "file's column of another name, e.g. account_id=org_id,date=day; other "
                     "columns of the file are ignored with a warning")
    imp.set_defaults(func=cmd_import)

    demo = sub.add_parser("demo", help="build a synthetic company and print its digest",
                          description="Writes a fresh database (default "
                          "sqlite:///valuemetric-demo.db) and its settings file "
                          "valuemetric-demo.toml in the working directory.")
    demo.add_argument("--database-url", help="where to build it (default: "
                      "sqlite:///valuemetric-demo.db; an existing SQLite file is replaced)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument("--accounts", type=int, default=2000, help="number of accounts")
    demo.add_argument("--data-dir", help="keep the generated CSV files here")
    demo.set_defaults(func=cmd_demo)

    ask = sub.add_parser("ask", parents=[common], help="ask what /valuemetric would answer",
                         description="TEXT is what you would type after /valuemetric in Slack.")
    ask.add_argument("text")
    ask.add_argument("--format", choices=("text", "json"), default="text")
    ask.add_argument("--as-of", help="as-of date YYYY-MM-DD (default: latest usage date)")
    ask.set_defaults(func=cmd_ask)

    digest = sub.add_parser("digest", parents=[common], help="print or post the weekly digest")
    digest.add_argument("--format", choices=("text", "json"), default="text")
    digest.add_argument("--as-of", help="as-of date YYYY-MM-DD (default: latest usage date)")
    digest.add_argument("--post", action="store_true", help="post it to Slack (once per period, "
                        "through the delivery ledger)")
    digest.add_argument("--channel", help="channel id (default: slack.digest_channel)")
    digest.set_defaults(func=cmd_digest)

    alerts = sub.add_parser("alerts", parents=[common], help="expansion alerts: what would "
                            "fire now, --post, or backtest [RULE]")
    alerts.add_argument("action", nargs="?", choices=("backtest",), help="replay rules over "
                        "history")
    alerts.add_argument("rule", nargs="?", help="with backtest: one rule key (default: all)")
    alerts.add_argument("--post", action="store_true", help="post new crossings to Slack")
    alerts.add_argument("--format", choices=("text", "json"), default="text")
    alerts.set_defaults(func=cmd_alerts)

    check = sub.add_parser("check", parents=[common], help="check the data before analysing it",
                           description="Runs each [source] query with LIMIT 0, then looks for "
                           "revenue gaps at the as-of date, accounts without usage, gaps in "
                           "a metric's series, usage outside an account's life, unknown "
                           "accounts, mixed currencies and future dates. Exit 1 when a problem "
                           "would make answers wrong, 0 with warnings otherwise.")
    check.add_argument("--as-of", help="as-of date YYYY-MM-DD (default: the latest date usage "
                       "and revenue are both complete)")
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.set_defaults(func=cmd_check)

    schedule = sub.add_parser("schedule", parents=[common], help="run only the scheduler "
                              "(digest and alerts)")
    schedule.set_defaults(func=cmd_schedule)

    serve = sub.add_parser("serve", parents=[common], help="run the Slack bot",
                           description="Socket Mode when SLACK_APP_TOKEN is set; --http serves "
                           "Slack's signed requests at /slack/events instead.")
    serve.add_argument("--http", action="store_true", help="serve HTTP instead of Socket Mode")
    serve.add_argument("--host", default="0.0.0.0", help="HTTP listen address (default 0.0.0.0)")
    serve.add_argument("--port", type=int, default=3000, help="HTTP port (default 3000; 0 picks "
                       "a free one)")
    serve.add_argument("--no-scheduler", action="store_true", help="do not run the digest and "
                       "alert jobs here (run `valuemetric schedule` elsewhere)")
    serve.set_defaults(func=cmd_serve)

    doctor = sub.add_parser("doctor", parents=[common], help="check the Slack token, scopes "
                            "and channels, with the fix for each problem")
    doctor.set_defaults(func=cmd_doctor)

    deliveries = sub.add_parser(
        "deliveries", parents=[common], help="the delivery ledger: what was posted, what is "
        "stuck", description="Lists the newest scheduled posts and every one not sent, with "
        "state, age and error. Exits 1 when something is stuck (refused, unknown, or claimed "
        "by a run that did not finish), so a cron check or monitor can alert on it.")
    deliveries.add_argument("--limit", type=int, default=20, help="newest posts to list "
                            "(default 20; unsent ones are always listed)")
    deliveries.set_defaults(func=cmd_deliveries)

    manifest = sub.add_parser("manifest", help="print the Slack app manifest (YAML)")
    manifest.add_argument("--request-url", help="HTTP mode: https://HOST/slack/events "
                          "(default: Socket Mode)")
    manifest.set_defaults(func=cmd_manifest)
    return parser


def _database_shown(args: argparse.Namespace) -> str:
    """The database URL in use, password hidden (for the unreachable-database line)."""
    try:
        url = _settings(args).database.url if hasattr(args, "config") else args.database_url
        return make_url(url).render_as_string(hide_password=True)
    except (ConfigError, ArgumentError, TypeError):
        return "the configured database"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (OperationalError, InterfaceError) as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        print(f"valuemetric: cannot use the database {_database_shown(args)}: {reason}. Check "
              "that it is running and reachable, and database.url or VALUEMETRIC_DATABASE_URL",
              file=sys.stderr)
        return EXIT_ERROR
    except DBAPIError as exc:  # the database refused a statement: its reason, not the SQL
        reason = str(exc.orig or exc).strip().splitlines()[0]
        print(f"valuemetric: the database {_database_shown(args)} refused the change: "
              f"{reason}", file=sys.stderr)
        return EXIT_ERROR
    except UsageError as exc:
        print(f"valuemetric: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ImportRejected as exc:
        print(exc.describe(), file=sys.stderr)
        return EXIT_ERROR
    except (ConfigError, DatabaseError, NoData, SourceError, _alert_template_error()) as exc:
        print(f"valuemetric: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. `valuemetric manifest | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("valuemetric: interrupted; nothing half-written (imports are one transaction)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
