"""The reports layer: one place that turns a question into numbers.

Slack, the scheduler and the CLI all call :func:`answer` (or :func:`digest`), so the same
question gives the same numbers through every door. Rendering lives in
:mod:`bot.render`; this module only computes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from analysis import features, ledger, sweep
from analysis.alerts import (
    Backtest,
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
from bot import glossary
from bot.commands import COMMANDS, Command, UsageError, suggestion, usage_line
from bot.config import Settings

__all__ = ["Context", "Digest", "NoData", "PostedAlert", "Report", "Style", "answer",
           "build_digest", "data_warnings"]


@dataclass(frozen=True)
class Style:
    """How numbers read for people: the revenue currency and each metric's unit and period."""

    currency: str = "USD"
    units: Mapping[str, str] = field(default_factory=dict)  # metric -> "API calls a week"

    def unit(self, metric: str) -> str:
        return self.units.get(metric) or metric.replace("_", " ")


def revenue_currency(settings: Settings) -> str:
    return settings.revenue.currency


def metric_unit(metric: Metric) -> str:
    """'API calls a week': the unit (or name) and, for counts of events, their period."""
    return f"{metric.label} a {metric.period}" if metric.from_events else metric.label


def style_of(ctx: Context) -> Style:
    return Style(revenue_currency(ctx.settings), {m.name: metric_unit(m) for m in ctx.catalog})


@dataclass(frozen=True)
class Report:
    """What a command computed: ``kind`` names the template, ``data`` the result."""

    kind: str
    as_of: dt.date | None
    data: Any
    style: Style = Style()


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
class Lead:
    """An account worth a call this week: it crossed an expansion threshold."""

    account_id: str
    name: str
    arr: float | None
    metric: str
    level: float | None
    threshold: float | None
    label: str
    alerted: dt.date | None  # None: crossed, not alerted yet
    hit_rate: float | None = None  # share of the rule's past crossings followed by expansion
    base_rate: float | None = None


# A statistic "predicts" an outcome when significant after correction and pointing up.
_SIGNALS = (("retention", "retention_auc", "retention_q", 0.5),
            ("expansion", "expansion_auc", "expansion_q", 0.5),
            ("ARR", "arr_partial_rho", "arr_partial_q", 0.0))


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
    previous: Mapping[str, Mapping[str, Any]] | None = None
    alerts: Evaluation | None = None
    posted: tuple[PostedAlert, ...] = ()  # alerts sent in the week before the digest
    leads: tuple[Lead, ...] = ()  # this week's crossings, largest ARR first
    warnings: tuple[str, ...] = ()  # from the data checks, shown first

    @property
    def stale(self) -> bool:
        return (self.today - self.newest_usage).days > self.stale_after_days

    def change(self, metric: str, key: str, now: float | None) -> float | None:
        """Change of a statistic since the previous digest (None when unknown)."""
        before = (self.previous or {}).get(metric, {}).get(key)
        return None if before is None or now is None else now - before

    def statistics(self) -> dict[str, dict[str, Any]]:
        """What the next digest compares against (kept in the ledger with the post)."""
        rec = self.recommendation
        return {m.metric.name: {
            "arr_rho": m.arr.value, "retention_auc": m.retention.value,
            "expansion_auc": m.expansion.value, "arr_partial_rho": m.arr_partial.value,
            "retention_q": m.retention.p_adjusted, "expansion_q": m.expansion.p_adjusted,
            "arr_partial_q": m.arr_partial.p_adjusted,
            "role": "primary" if m.metric.name == rec.primary
            else "gate" if m.metric.name in rec.gate else ""}
            for m in self.correlation.metrics}

    def changes(self) -> tuple[str, ...]:
        """What changed since the previous digest, in words; () when nothing moved."""
        if not self.previous:
            return ()
        alpha = self.correlation.alpha
        now = self.statistics()
        said: list[str] = []
        primary_before = next((k for k, v in self.previous.items()
                               if v.get("role") == "primary"), None)
        if any("role" in v for v in self.previous.values()) and \
                primary_before != self.recommendation.primary:
            said.append(f"the recommended price metric is now "
                        f"{self.recommendation.primary or 'none'} (was {primary_before or 'none'})")
        for metric, stats_now in now.items():
            before = self.previous.get(metric)
            if before is None:
                said.append(f"{metric} is new in the data")
                continue
            for outcome, value_key, q_key, neutral in _SIGNALS:
                if q_key not in before:
                    continue  # a digest from before significance was kept
                was = _predicts(before.get(value_key), before.get(q_key), neutral, alpha)
                is_ = _predicts(stats_now[value_key], stats_now[q_key], neutral, alpha)
                if is_ and not was:
                    said.append(f"{metric} now predicts {outcome}")
                elif was and not is_:
                    said.append(f"{metric} no longer predicts {outcome}")
        return tuple(said)


def _predicts(value: Any, q: Any, neutral: float, alpha: float) -> bool:
    return value is not None and q is not None and q < alpha and value > neutral


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
        self._levels: dict[tuple[str, dt.date], pd.Series] = {}  # see _levels_on

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
            return load_dataset(source, self.catalog, self.settings.analysis, self.requested_as_of,
                                side=self.sources.side)

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
                                                windows.as_of, side=self.sources.side)
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
        return evaluate(ds, previous, rules, states, self.settings.alerts.hysteresis, now, top,
                        evidence=lambda fired: {b.rule.key: b.evidence
                                                for b in self.replay(fired)})

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
        return Report("backtest", self.dataset.windows.as_of,
                      self.replay(rules, weeks, horizon_days))

    def replay(self, rules: list[Rule], weeks: int = 52,
               horizon_days: int = 90) -> tuple[Backtest, ...]:
        """Each rule replayed over the ``weeks`` whose outcome is already known."""
        ds = self.dataset
        last = ds.windows.as_of - dt.timedelta(days=horizon_days)
        dates = [last - dt.timedelta(weeks=k) for k in range(weeks)][::-1]
        levels = self._levels_on(sorted({r.metric for r in rules}), dates)
        return tuple(
            backtest(rule, {d: levels[rule.metric, d] for d in dates}, ds.accounts["plan"],
                     self.mrr_increases, self.settings.alerts.hysteresis, horizon_days)
            for rule in rules)

    def _levels_on(self, metrics: list[str], dates: list[dt.date]
                   ) -> dict[tuple[str, dt.date], pd.Series]:
        """Levels by (metric, date), each queried once per context: the alert job and the
        digest replay every firing rule, and rules share metrics."""
        cache = self._levels
        missing = [m for m in metrics if any((m, day) not in cache for day in dates)]
        if missing:
            with self.sources.connect() as source:
                frames = sweep.levels_on_dates(source, missing, dates,
                                               self.dataset.windows.window_days,
                                               side=self.sources.side)
            cache.update({(m, day): frame[m] for day, frame in frames.items() for m in missing})
        return {(m, d): cache[m, d] for m in metrics for d in dates}

    @functools.cached_property
    def mrr_increases(self) -> pd.DataFrame:
        with self.sources.connect() as source:
            return features.mrr_increases(source, self.dataset.windows.as_of)

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
    return dataclasses.replace(_answer(ctx, command), style=style_of(ctx))


def _answer(ctx: Context, command: Command) -> Report:
    name = command.name
    if name == "help":
        if command.argument:
            term = glossary.lookup(command.argument)
            if term is None:
                near = glossary.near(command.argument)
                hint = f" Did you mean {' or '.join(near)}?" if near else ""
                raise UsageError(f"no glossary entry for '{command.argument}'.{hint} Terms: "
                                 + ", ".join(t.name for t in glossary.TERMS))
            return Report("term", None, term)
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


def _leads(ctx: Context, posted: tuple[PostedAlert, ...],
           pending: Evaluation) -> tuple[Lead, ...]:
    arr = ctx.dataset.accounts["arr"]

    def arr_of(account_id: str) -> float | None:
        value = arr.get(account_id)
        return None if value is None or value != value else float(value)  # NaN: unknown

    leads = [Lead(p.account_id, p.name, arr_of(p.account_id), p.metric, p.level, p.threshold,
                  p.label, p.delivery.claimed_at.date()) for p in posted]
    leads += [Lead(c.account_id, c.name, c.arr, c.rule.metric, c.level, c.rule.threshold,
                   c.rule.label, None, c.evidence.hit_rate, c.evidence.base_rate)
              for c in pending.crossings]
    return tuple(sorted(leads, key=lambda x: -(x.arr or 0)))


def build_digest(ctx: Context, channel: str | None, now: dt.datetime | None = None,
                 leading: int = 3, warnings: tuple[str, ...] | None = None) -> Report:
    """The weekly digest for ``channel`` (None: not tied to a channel, nothing to compare).

    ``warnings`` (default: the data checks' findings) are shown before anything else.
    """
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
    pending = ctx.alert_evaluation(now)
    data = Digest(ds.windows.as_of, now.date(), newest, ctx.settings.digest.stale_after_days,
                  ctx.correlation, ctx.segments, tuple(ctx.thresholds(m) for m in lead), rec,
                  ctx.previous_digest(channel), pending, posted, _leads(ctx, posted, pending),
                  data_warnings(ctx) if warnings is None else warnings)
    return Report("digest", ds.windows.as_of, data, style_of(ctx))
