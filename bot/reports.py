"""The reports layer: one place that turns a question into numbers.

Slack, the scheduler and the CLI all call :func:`answer` (or :func:`digest`), so the same
question gives the same numbers through every door. Rendering lives in
:mod:`bot.render`; this module only computes.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from analysis import features, ledger
from analysis.alerts import (
    Crossing,
    Evaluation,
    PriorState,
    Rule,
    backtest,
    build_rules,
    evaluate,
)
from analysis.catalog import Metric, resolve_catalog
from analysis.checks import DataCheck, run_checks
from analysis.correlate import Correlation, correlate
from analysis.customer import Customer, describe_customer
from analysis.dataset import Dataset, NoData, load_dataset
from analysis.recommend import Recommendation, recommend
from analysis.segments import SegmentComparison, compare_segments
from analysis.simulate import Simulation, simulate
from analysis.sources import DataSources
from analysis.thresholds import Thresholds, find_all_thresholds
from bot.commands import COMMANDS, Command, UsageError, suggestion, usage_line
from bot.config import Settings

__all__ = ["Context", "Digest", "NoData", "PostedAlert", "Report", "answer", "build_digest",
           "data_warnings"]


@dataclass(frozen=True)
class Report:
    """What a command computed: ``kind`` names the template, ``data`` the result."""

    kind: str
    as_of: dt.date | None
    data: Any


@dataclass(frozen=True)
class PostedAlert:
    """An alert in the delivery ledger, with what it said (stored beside it when posted)."""

    delivery: ledger.Delivery
    account_id: str
    name: str
    metric: str
    level: float | None
    threshold: float | None
    label: str

    @staticmethod
    def record(crossing: Crossing) -> str:
        """What the ledger keeps of a crossing, so later reports can name it."""
        return json.dumps({"account_id": crossing.account_id, "name": crossing.name,
                           "metric": crossing.rule.metric, "level": crossing.level,
                           "threshold": crossing.rule.threshold, "label": crossing.rule.label})

    @classmethod
    def of(cls, delivery: ledger.Delivery) -> PostedAlert:
        kept = json.loads(delivery.summary) if delivery.summary else {}
        # without a record (a post that failed before it was built), the key "RULE|ACCOUNT|N"
        # still names the rule and the account
        rule, account, *_ = [*delivery.period.split("|"), "", ""]
        return cls(delivery, kept.get("account_id", account), kept.get("name", account),
                   kept.get("metric", rule), kept.get("level"), kept.get("threshold"),
                   kept.get("label", rule))


@dataclass(frozen=True)
class Digest:
    as_of: dt.date
    today: dt.date
    newest_usage: dt.date
    stale_after_days: int
    correlation: Correlation
    segments: SegmentComparison
    thresholds: tuple[Thresholds, ...]
    recommendation: Recommendation
    previous: Mapping[str, Mapping[str, float | None]] | None = None
    alerts: Evaluation | None = None
    posted: tuple[PostedAlert, ...] = ()  # alerts sent in the week before the digest

    @property
    def stale(self) -> bool:
        return (self.today - self.newest_usage).days > self.stale_after_days

    def change(self, metric: str, key: str, now: float | None) -> float | None:
        """Change of a statistic since the previous digest (None when unknown)."""
        before = (self.previous or {}).get(metric, {}).get(key)
        return None if before is None or now is None else now - before

    def statistics(self) -> dict[str, dict[str, float | None]]:
        """What the next digest compares against (kept in the ledger with the post)."""
        return {m.metric.name: {"arr_rho": m.arr.value, "retention_auc": m.retention.value,
                                "expansion_auc": m.expansion.value}
                for m in self.correlation.metrics}


@dataclass(frozen=True)
class AlertsOverview:
    """What would fire now (not yet posted) and the latest posted crossings."""

    pending: Evaluation
    recent: tuple[PostedAlert, ...]


class Context:
    """Settings, database and lazily computed analyses for one as-of date."""

    def __init__(self, engine: Engine, settings: Settings, catalog: list[Metric],
                 as_of: dt.date | None) -> None:
        self.engine = engine
        self.settings = settings
        self.catalog = catalog
        self.requested_as_of = as_of
        # the analysed data: [source] SQL or the imported tables (the ledger stays in engine)
        self.sources = DataSources(engine, settings.source, revenue=settings.revenue,
                                   catalog=catalog)

    @classmethod
    def load(cls, engine: Engine, settings: Settings, as_of: dt.date | None = None) -> Context:
        in_data: list[str] = []
        if not settings.metrics:
            with DataSources(engine, settings.source,
                             revenue=settings.revenue).connect() as source:
                in_data = features.metrics_in_data(source)
        return cls(engine, settings, resolve_catalog(settings.metrics, in_data), as_of)

    def names(self) -> list[str]:
        return [m.name for m in self.catalog]

    @functools.cached_property
    def dataset(self) -> Dataset:
        with self.sources.connect() as source:
            return load_dataset(source, self.catalog, self.settings.analysis, self.requested_as_of)

    @functools.cached_property
    def data_check(self) -> DataCheck:
        """Data problems at the requested as-of date (the default as-of when none)."""
        return run_checks(self.sources, self.names(), self.settings.analysis.window_days,
                          self.requested_as_of or self.settings.analysis.as_of)

    @functools.cached_property
    def correlation(self) -> Correlation:
        return correlate(self.dataset, self.settings.analysis, self.settings.pricing.billed_on)

    @functools.cached_property
    def segments(self) -> SegmentComparison:
        return compare_segments(self.dataset, self.settings.segments, self.settings.analysis,
                                self.settings.pricing.billed_on)

    @functools.cached_property
    def recommendation(self) -> Recommendation:
        return recommend(self.dataset, self.correlation, self.settings.analysis)

    @functools.cached_property
    def all_thresholds(self) -> dict[str, Thresholds]:
        """Every metric's thresholds: one BH family across metrics and threshold kinds."""
        windows = self.dataset.windows
        with self.sources.connect() as source:
            increases = features.increase_panel(source, self.names(), windows.window_days,
                                                windows.as_of)
        return find_all_thresholds(self.dataset, self.correlation, increases,
                                   self.settings.analysis)

    def thresholds(self, metric: str) -> Thresholds:
        return self.all_thresholds[metric]

    def customer(self, account: str) -> Customer:
        accounts = self.dataset.accounts
        if account not in accounts.index:
            by_name = accounts.index[accounts["name"].str.lower() == account.lower()]
            if len(by_name) != 1:
                ids = list(accounts.index)
                raise UsageError(f"unknown account '{account}'.{suggestion(account, ids)}\n"
                                 + usage_line("customer"))
            account = str(by_name[0])
        return describe_customer(self.dataset, account,
                                 {m: self.thresholds(m) for m in self.names()})

    def simulation(self, metric: str) -> Simulation:
        return simulate(self.dataset, metric)

    def alert_rules(self) -> list[Rule]:
        a = self.settings.alerts
        learned: dict[str, float | None] = {}
        if a.learned_thresholds:
            alpha = self.settings.analysis.alpha
            for name in self.names():
                # only where expansion follows usage among accounts of the same age: a
                # metric that just tracks account age would alert on every old account
                adjusted = self.correlation.get(name).expansion_adjusted
                holds = adjusted.significant(alpha) and (adjusted.value or 0) > 0.5
                cutoff = self.thresholds(name).expansion.cutoff
                learned[name] = cutoff.value if cutoff and holds else None
        return build_rules(learned, [(r.metric, r.above, r.plans) for r in a.rules],
                           {name: plan.limits for name, plan in self.settings.plans.items()},
                           a.plan_limit_shares)

    def alert_evaluation(self, now: dt.datetime) -> Evaluation:
        """Crossings as of the data's date, against the stored alert state (read only)."""
        ds = self.dataset
        rules = self.alert_rules()
        with self.sources.connect() as source:
            previous = features.levels_at(source, self.names(),
                                          ds.windows.as_of - dt.timedelta(days=7),
                                          ds.windows.window_days)
        states = {key: PriorState(s.armed, s.crossings, s.snoozed_until)
                  for key, s in ledger.alert_states(self.engine, [r.key for r in rules]).items()}
        ranks = {name: plan.rank for name, plan in self.settings.plans.items()}
        top = [n for n, r in ranks.items() if r == max(ranks.values())] if ranks else []
        return evaluate(ds, previous, rules, states, self.settings.alerts.hysteresis, now, top)

    def backtest(self, rule_key: str | None = None, weeks: int = 52,
                 horizon_days: int = 90) -> Report:
        """Replay alert rules over the weeks whose outcome is already known."""
        rules = self.alert_rules()
        if rule_key is not None:
            chosen = [r for r in rules if r.key == rule_key]
            if not chosen:
                raise UsageError(f"unknown rule '{rule_key}'."
                                 f"{suggestion(rule_key, [r.key for r in rules])} Rules: "
                                 + ", ".join(r.key for r in rules))
            rules = chosen
        ds = self.dataset
        last = ds.windows.as_of - dt.timedelta(days=horizon_days)
        dates = [last - dt.timedelta(weeks=k) for k in range(weeks)][::-1]
        metrics = sorted({r.metric for r in rules})
        with self.sources.connect() as source:
            levels = {d: features.levels_at(source, metrics, d, ds.windows.window_days)
                      for d in dates}
            increases = features.mrr_increases(source, ds.windows.as_of)
        results = tuple(
            backtest(rule, {d: frame[rule.metric] for d, frame in levels.items()},
                     ds.accounts["plan"], increases, self.settings.alerts.hysteresis,
                     horizon_days)
            for rule in rules)
        return Report("backtest", ds.windows.as_of, results)

    def recent_alerts(self, limit: int = 10,
                      since: dt.datetime | None = None) -> tuple[PostedAlert, ...]:
        channel = self.settings.slack.alert_channel
        if not channel:
            return ()
        return tuple(PostedAlert.of(d) for d in ledger.latest(
            self.engine, "alert", channel, state=None, limit=limit, since=since))

    def previous_digest(self, channel: str | None) -> dict[str, Any] | None:
        """Statistics of the last digest posted to ``channel``."""
        sent = ledger.latest(self.engine, "digest", channel) if channel else []
        return json.loads(sent[0].summary) if sent and sent[0].summary else None


def data_warnings(ctx: Context) -> tuple[str, ...]:
    """The data checks' findings as lines, problems first: what the digest and `recommend`
    lead with (empty when the data is clean)."""
    return ctx.data_check.warnings


def answer(ctx: Context, command: Command) -> Report:
    """Compute the answer to one parsed command."""
    name = command.name
    if name == "help":
        return Report("help", None, COMMANDS)
    if name == "metrics":
        return Report("metrics", None, tuple(ctx.catalog))
    if name == "digest":
        return build_digest(ctx, ctx.settings.slack.digest_channel)
    if name == "alerts":
        now = dt.datetime.now(dt.UTC)
        return Report("alerts", ctx.dataset.windows.as_of,
                      AlertsOverview(ctx.alert_evaluation(now), ctx.recent_alerts()))
    as_of = ctx.dataset.windows.as_of
    data: Any
    if name == "correlate":
        data = ctx.correlation
    elif name == "segments":
        data = ctx.segments
    elif name == "thresholds":
        data = ctx.thresholds(command.argument)
    elif name == "customer":
        data = ctx.customer(command.argument)
    elif name == "recommend":
        data = ctx.recommendation
    elif name == "simulate":
        data = ctx.simulation(command.argument)
    else:  # pragma: no cover - parse() only yields known names
        raise UsageError(usage_line())
    return Report(name, as_of, data)


def build_digest(ctx: Context, channel: str | None, now: dt.datetime | None = None,
                 leading: int = 3) -> Report:
    """The weekly digest for ``channel`` (None: not tied to a channel, nothing to compare)."""
    now = now or dt.datetime.now(dt.UTC)
    ds = ctx.dataset
    rec = ctx.recommendation
    lead = [m for m in (rec.primary, *rec.gate) if m][:leading]
    if not lead:  # nothing recommended: show the strongest ARR correlates instead
        ranked = sorted(ctx.correlation.metrics, key=lambda m: -(m.arr.value or 0))
        lead = [m.metric.name for m in ranked[:leading]]
    with ctx.sources.connect() as source:
        newest = features.latest_usage_date(source, ctx.names()) or ds.windows.as_of
    # Alerts run hourly, so by digest time this week's crossings are mostly posted already:
    # the digest shows those from the ledger beside any still pending.
    posted = tuple(p for p in ctx.recent_alerts(limit=1000, since=now - dt.timedelta(days=7))
                   if p.delivery.state in (ledger.SENT, ledger.UNKNOWN))
    data = Digest(ds.windows.as_of, now.date(), newest, ctx.settings.digest.stale_after_days,
                  ctx.correlation, ctx.segments, tuple(ctx.thresholds(m) for m in lead), rec,
                  ctx.previous_digest(channel), ctx.alert_evaluation(now), posted)
    return Report("digest", ds.windows.as_of, data)
