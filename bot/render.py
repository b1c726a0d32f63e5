"""Rendering reports: Jinja text templates for people, a stable JSON shape for scripts.

Slack messages come from ``slack/*.md.j2`` (the document format of :mod:`bot.blocks`),
the CLI's text from ``text/*.txt.j2``. Every ``{{ expression }}`` in a Slack template
passes through one cleaner: control characters and newlines collapsed, so text from data
cannot add a line or a block; ``&``, ``<``, ``>`` escaped and ``@here``-style words
neutralised, so a customer's name can neither form a link nor ping a channel.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateError,
)
from jinja2.sandbox import SandboxedEnvironment
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    Option,
    StaticSelectElement,
)

from analysis.alerts import Backtest, Crossing, Evaluation, Evidence, Rule
from analysis.correlate import Correlation, MetricCorrelation
from analysis.customer import Customer
from analysis.recommend import Recommendation
from analysis.segments import SegmentComparison
from analysis.simulate import Simulation
from analysis.stats import Cutoff, Estimate, p_text
from analysis.survival import HazardRatio, KaplanMeierBand
from analysis.thresholds import Threshold, Thresholds
from bot import glossary
from bot.blocks import Chart, Message, block_text_length, to_message, to_messages
from bot.commands import COMMANDS, usage_line
from bot.reports import AlertsOverview, Digest, PostedAlert, Report, Style


def fmt(value: Any, digits: int = 2) -> str:
    """A number for people: None/NaN as 'n/a', thousands separated, trailing zeros dropped."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1):
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def qty(value: Any) -> str:
    """A usage level: whole numbers from 10 up ("23 active users"), at most two decimals
    below, so a threshold of 2.25 does not print as the 2.2 it is above."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if abs(value) >= 10 or float(value).is_integer():
        return f"{round(value):,}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}


def money(value: Any, currency: str = "USD") -> str:
    """An amount in the revenue currency: no decimals from 100 up, cents below."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    amount = f"{abs(value):,.0f}" if abs(value) >= 100 else f"{abs(value):,.2f}"
    sign = "-" if value < 0 else ""
    symbol = CURRENCY_SYMBOLS.get(currency.upper())
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency.upper()}"


def pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def ci(est: Estimate) -> str:
    if est.value is None:
        return "n/a"  # the note explaining why is listed under the table
    if est.ci is None:
        return fmt(est.value)
    return f"{fmt(est.value)} [{fmt(est.ci[0])}, {fmt(est.ci[1])}]"


class Mrkdwn(str):
    """Text that is already safe mrkdwn (escaped, or written by us)."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_BROADCAST = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)


def one_line(value: Any) -> str:
    """Text from data on one line: newlines and other control characters become a space."""
    return _CONTROL.sub(" ", str(value))


def escape_mrkdwn(value: Any) -> Mrkdwn:
    """Text from data, safe in Slack mrkdwn: one line, ``&<>`` escaped, no broadcast pings.

    With ``&<>`` escaped it cannot form a link or a mention such as <!channel>; a zero-width
    joiner keeps a plain ``@here`` from notifying anyone while it still reads the same.
    """
    if isinstance(value, Mrkdwn):
        return value
    text = one_line(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return Mrkdwn(_BROADCAST.sub("@\u2060\\1", text))


def _escape_output(value: Any) -> Any:
    # Every {{ expression }} in a Slack template is escaped unless already Mrkdwn, so a
    # forgotten filter cannot let a customer's name ping a channel.
    return escape_mrkdwn(value) if isinstance(value, str) else value


class Glosser:
    """``{{ g("AUC") }}`` after a statistic in a template: its short meaning in brackets the
    first time the term appears in a message, nothing after that."""

    def __init__(self, slack: bool) -> None:
        self.seen: set[str] = set()
        self.slack = slack

    def __call__(self, name: str) -> str:
        term = glossary.lookup(name)
        if term is None or term.name in self.seen:
            return ""
        self.seen.add(term.name)
        return Mrkdwn(f" (_{term.short}_)") if self.slack else f" ({term.short})"


def signals(m: MetricCorrelation, alpha: float) -> list[tuple[str, str, str, float]]:
    # e.g. ("stay", "AUC", "retention AUC", 0.72): "stay (retention AUC 0.72)"
    """What more usage of a metric goes with, as (verb, glossary term, label, value)."""
    out = []
    if m.retention.significant(alpha) and (m.retention.value or 0) > 0.5:
        out.append(("stay", "AUC", "retention AUC", float(m.retention.value or 0)))
    if m.expansion.significant(alpha) and (m.expansion.value or 0) > 0.5:
        out.append(("expand", "AUC", "expansion AUC", float(m.expansion.value or 0)))
    if m.arr_partial.significant(alpha) and (m.arr_partial.value or 0) > 0:
        out.append(("pay more", "partial", "ARR \u03c1 with tenure fixed",
                    float(m.arr_partial.value or 0)))
    return out


def strength(rec: Recommendation, metric: str) -> str:
    """How strong the evidence for a recommended metric is, in one word."""
    score = next((s for s in rec.scorecard if s.metric == metric), None)
    evidence = float(getattr(score, "evidence", 0.0) or 0.0)
    return "strong" if evidence >= 0.4 else "moderate" if evidence >= 0.2 else "weak"


def _environment(env_class: type[Environment] = Environment, loader: BaseLoader | None = None,
                 **options: Any) -> Environment:
    env = env_class(loader=loader or PackageLoader("bot", "templates"),
                    undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                    keep_trailing_newline=False, autoescape=False, **options)
    env.filters.update(fmt=fmt, pct=pct, ci=ci, qty=qty, mrkdwn=escape_mrkdwn, pval=p_text)
    env.globals.update(usage_line=usage_line, signals=signals, strength=strength)
    return env


ENV = _environment()
SLACK_ENV = _environment(finalize=_escape_output)


def template_helpers(style: Style, slack: bool) -> dict[str, Any]:
    """Per-render helpers: a fresh glosser, money in the revenue currency, metric units."""
    return {"g": Glosser(slack), "money": lambda v: money(v, style.currency),
            "unit": style.unit}


def render_text(report: Report) -> str:
    return ENV.get_template(f"text/{report.kind}.txt.j2").render(
        r=report, d=report.data, **template_helpers(report.style, slack=False)).rstrip()


def _slack_document(template: str, report: Report, **extra: Any) -> str:
    return SLACK_ENV.get_template(template).render(
        r=report, d=report.data, **template_helpers(report.style, slack=True), **extra)


HEADLINE_TEXT = 1500  # characters: the digest's channel message fits one phone screen
HEADLINE_BLOCKS = 12
# (accounts, warnings, changes) shown in the headline, tried in order until it fits
_HEADLINE_CUTS = ((5, 3, 4), (4, 3, 3), (3, 2, 2), (3, 1, 1), (2, 1, 1), (1, 0, 0))


def render_slack(report: Report) -> Message:
    """One message answering a command; for the digest, a preview of its headline."""
    if report.kind == "digest":
        return _headline(report, in_thread=False)
    return to_message(_slack_document(f"slack/{report.kind}.md.j2", report))


def _headline(report: Report, in_thread: bool) -> Message:
    """The digest's channel message, cut down until it fits one phone screen."""
    for leads, warnings, changes in _HEADLINE_CUTS:
        message = to_message(_slack_document(
            "slack/digest.md.j2", report, shown_leads=leads, shown_warnings=warnings,
            shown_changes=changes, in_thread=in_thread))
        if block_text_length(message.blocks) <= HEADLINE_TEXT and \
                len(message.blocks) <= HEADLINE_BLOCKS:
            break
    return message


def _chart(metric: str, digest: Digest, style: Style) -> Chart | None:
    from bot.charts import threshold_chart  # matplotlib is slow to import; only when needed

    thresholds = next(t for t in digest.thresholds if t.metric == metric)
    proxies = digest.correlation.get(metric).alignment.proxies
    png = threshold_chart(metric, proxies, thresholds, style.unit(metric))
    return None if png is None else Chart(png, f"thresholds-{metric}.png",
                                          f"Retention and expansion by {metric}")


def render_digest_thread(report: Report) -> list[Message]:
    """The digest as a thread: item 0 the headline for the channel, the rest replies.

    The headline fits one phone screen; the details follow in order (how each metric
    predicts value, segments, each leading metric's thresholds with its chart, every
    crossing of the week, the recommendation's reasoning). A part longer than one message
    allows continues in the next reply.
    """
    digest: Digest = report.data
    thread = [_headline(report, in_thread=True)]
    thread += to_messages(_slack_document("slack/digest_correlation.md.j2", report))
    thread += to_messages(_slack_document("slack/segments.md.j2", Report(
        "segments", report.as_of, digest.segments, report.style)))
    for t in digest.thresholds:
        first, *rest = to_messages(_slack_document("slack/thresholds.md.j2", Report(
            "thresholds", report.as_of, t, report.style)))
        thread += [Message(first.text, first.blocks, _chart(t.metric, digest, report.style)), *rest]
    if digest.alerts is not None:
        thread += to_messages(_slack_document("slack/digest_crossings.md.j2", report))
    thread += to_messages(_slack_document("slack/recommend.md.j2", Report(
        "recommend", report.as_of, digest.recommendation, report.style)))
    return thread


# -- alerts -------------------------------------------------------------------------------

ALERT_TEMPLATE = "alerts/alert.md.j2"
ROLLUP_TEMPLATE = "alerts/rollup.md.j2"
ACTION_SNOOZE = "vm_alert_snooze"
ACTION_DONE = "vm_alert_done"
ACTION_NOT_A_FIT = "vm_alert_not_a_fit"
NOT_A_FIT_REASONS = ("too small", "wrong timing", "already in talks", "other")
SAMPLE_CROSSING = Crossing(Rule("learned:seats", "seats", 10.0, (), "learned"), "acme-1",
                           "Acme <Corp> & Co", "team", "U0OWNER", 12.0, 24_000.0, 1,
                           Evidence(40, 13, 5_000, 250))
TEMPLATE_TIME_LIMIT = 1.0  # seconds a sample render may take at start-up


class AlertTemplateError(Exception):
    """An alert template does not render; raised at start-up, naming the file."""


class _TimeLimit:
    """Stops rendering in this thread after ``seconds``: a trace function checks the clock
    on every line of template code, so even nested loops over huge ranges end promptly."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds

    def _trace(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"took longer than {self.seconds:g} s to render sample data")
        return self._trace

    def run(self, render: Callable[[], Any]) -> Any:
        previous = sys.gettrace()
        sys.settrace(self._trace)
        try:
            return render()
        finally:
            sys.settrace(previous)


class AlertRenderer:
    """Alert messages from a sandboxed template (shipped, or overridden from a directory)."""

    def __init__(self, templates_dir: str = "", currency: str = "USD",
                 units: dict[str, str] | None = None) -> None:
        loaders: list[BaseLoader] = [PackageLoader("bot", "templates")]
        if templates_dir:
            loaders.insert(0, FileSystemLoader(templates_dir))
        self.source = templates_dir or "the shipped templates"
        self.style = Style(currency, units or {})
        self.env = _environment(SandboxedEnvironment, ChoiceLoader(loaders),
                                finalize=_escape_output)

    def _render(self, name: str, **variables: Any) -> str:
        try:
            return self.env.get_template(name).render(
                **template_helpers(self.style, slack=True), **variables)
        except TemplateError as exc:
            raise AlertTemplateError(f"{self.source}: {name}: {exc}") from exc

    def document(self, crossing: Crossing) -> str:
        return self._render(ALERT_TEMPLATE, c=crossing)

    def validate(self, time_limit: float = TEMPLATE_TIME_LIMIT) -> None:
        """Render sample alerts now, so a broken or endless template fails at start-up, not
        at 3 a.m.; a render longer than ``time_limit`` seconds counts as broken."""
        def sample() -> None:
            to_message(self.document(SAMPLE_CROSSING))
            self.rollup([SAMPLE_CROSSING, SAMPLE_CROSSING])

        try:
            _TimeLimit(time_limit).run(sample)
        except TimeoutError as exc:
            raise AlertTemplateError(f"{self.source}: {exc} (a loop over too much data?); "
                                     "fix the template or remove alerts.templates_dir") from None
        except AlertTemplateError:
            raise
        except Exception as exc:  # a template may fail in any way; say which and how
            raise AlertTemplateError(f"{self.source}: {type(exc).__name__}: {exc}") from exc

    def rollup(self, crossings: list[Crossing]) -> Message:
        """One message for crossings past ``alerts.max_per_run`` (no buttons), largest ARR
        first. The caller groups crossings so each roll-up fits in one message; names are
        cut short in the template so a group of long ones still does."""
        ordered = sorted(crossings, key=lambda c: -c.arr)
        return to_message(self._render(ROLLUP_TEMPLATE, crossings=ordered))

    def message(self, crossing: Crossing, delivery_id: int) -> Message:
        base = to_message(self.document(crossing))
        value = str(delivery_id)
        actions = ActionsBlock(block_id="vm_alert_actions", elements=[
            ButtonElement(text="Snooze 30 days", action_id=ACTION_SNOOZE, value=value),
            ButtonElement(text="Done", action_id=ACTION_DONE, value=value, style="primary"),
            StaticSelectElement(placeholder="Not a fit…", action_id=ACTION_NOT_A_FIT, options=[
                Option(text=reason, value=f"{value}|{reason}") for reason in NOT_A_FIT_REASONS]),
        ])
        return Message(base.text, [*base.blocks[:49], actions.to_dict()])


def alert_renderer(settings: Any) -> AlertRenderer:
    from bot.reports import metric_unit, revenue_currency

    return AlertRenderer(settings.alerts.templates_dir, revenue_currency(settings),
                         {m.name: metric_unit(m) for m in settings.metrics})


# -- JSON -----------------------------------------------------------------------------------


def _num(x: Any) -> Any:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _est(e: Estimate) -> dict[str, Any]:
    return {"value": _num(e.value), "ci": list(e.ci) if e.ci else None, "p": _num(e.p),
            "q": _num(e.p_adjusted), "n": e.n, "note": e.note or None}


def _hazard(h: HazardRatio) -> dict[str, Any]:
    return {"hazard_ratio": _num(h.hazard_ratio), "ci": list(h.ci) if h.ci else None,
            "p": _num(h.p), "q": _num(h.q), "n": h.n, "events": h.events,
            "concordance": _num(h.concordance), "note": h.note or None}


def _band(b: KaplanMeierBand) -> dict[str, Any]:
    return {"label": b.label, "lo": b.lo, "hi": b.hi, "n": b.n, "events": b.events,
            "times": list(b.times), "survival": list(b.survival),
            "ci_lower": list(b.ci_lower), "ci_upper": list(b.ci_upper)}


def _correlation(c: Correlation) -> dict[str, Any]:
    rows = []
    for m in c.metrics:
        rows.append({
            "metric": m.metric.name,
            "arr_rho": _num(m.arr.value), "arr_rho_ci": list(m.arr.ci) if m.arr.ci else None,
            "arr_partial_rho": _num(m.arr_partial.value),
            "retention_auc": _num(m.retention.value),
            "retention_auc_ci": list(m.retention.ci) if m.retention.ci else None,
            "expansion_auc": _num(m.expansion.value),
            "expansion_auc_ci": list(m.expansion.ci) if m.expansion.ci else None,
            "aligned": bool(m.alignment.aligned),
            "alignment": {
                "verdict": {True: "aligned", False: "not aligned", None: "insufficient data"}[
                    m.alignment.aligned],
                "reason": m.alignment.reason,
                "proxies": [{"proxy": p.proxy, "trend": _est(p.trend),
                             "bins": [b.__dict__ for b in p.bins]} for p in m.alignment.proxies],
            },
            "confounded_by_tenure": m.confounded_by_tenure(c.alpha),
            "n": {"arr": m.arr.n, "retention": m.retention.n, "expansion": m.expansion.n},
            "detail": {"arr": _est(m.arr), "arr_partial": _est(m.arr_partial),
                       "retention": _est(m.retention), "expansion": _est(m.expansion),
                       "arr_evidence": _est(m.arr_evidence),
                       "expansion_adjusted": _est(m.expansion_adjusted)},
            "category": m.metric.category, "category_inferred": m.metric.category_inferred,
            "arr_by_construction": m.by_construction,
            "survival": _hazard(m.survival),
            "warning": m.harmful(c.alpha),
        })
    p = c.pricing
    return {"as_of": c.as_of.isoformat(), "alpha": c.alpha, "metrics": rows,
            "pricing": {"billed_on": p.billed_on or None, "plan_eta2": _num(p.plan_eta2),
                        "within_plan": p.within_plan, "detected": p.detected,
                        "note": p.note or None},
            "n_early_churned": c.n_early_churned, "n_survival": c.n_survival}


def _cutoff(t: Threshold) -> dict[str, Any] | None:
    c: Cutoff | None = t.cutoff
    if c is None:
        return None
    return {"value": c.value, "rate_above": c.rate_above, "rate_below": c.rate_below,
            "lift": _num(c.lift), "ppv": c.ppv, "npv": c.npv, "sensitivity": c.sensitivity,
            "specificity": c.specificity, "n_above": c.n_above, "n_below": c.n_below,
            "ci": list(c.ci), "p_value": c.p_value, "q": _num(t.q), "youden_j": c.j}


def _thresholds(t: Thresholds) -> dict[str, Any]:
    price = t.price_increase
    return {
        "metric": t.metric,
        "activation": _cutoff(t.activation),
        "expansion": _cutoff(t.expansion),
        "price_increase": ({"value": price.value, "n_events": price.n_events,
                            "lift": _num(price.lift),
                            "lift_ci": list(price.lift_ci) if price.lift_ci else None,
                            "rate_above": price.rate_above, "rate_below": price.rate_below,
                            "separation": _est(price.separation) if price.separation else None}
                           if price.value is not None else None),
        "survival": _hazard(t.survival),
        "survival_bands": [_band(b) for b in t.survival_bands],
        "n_early_churned": t.n_early_churned,
        "notes": {"activation": t.activation.reason or None,
                  "expansion": t.expansion.reason or None,
                  "price_increase": t.price_increase.reason or None},
    }


def _segments(s: SegmentComparison) -> dict[str, Any]:
    return {"as_of": s.as_of.isoformat(),
            "segments": [{"name": g.name, "n": g.n, "churned": g.churned,
                          "means": {k: _num(v) for k, v in g.means.items()},
                          "mean_arr": _num(g.mean_arr)} for g in s.segments],
            "separating": [{"metric": x.metric, "effect_size": x.effect_size, "q": x.q}
                           for x in s.separating],
            "insight": s.insight}


def _recommendation(r: Recommendation) -> dict[str, Any]:
    return {"as_of": r.as_of.isoformat(), "primary_metric": r.primary, "gate": list(r.gate),
            "scorecard": [{**s.__dict__, "caveats": list(s.caveats)} for s in r.scorecard],
            "tied": list(r.tied), "warnings": list(r.warnings), "text": r.text}


def _customer(c: Customer) -> dict[str, Any]:
    out = {k: v for k, v in c.__dict__.items() if k != "metrics"}
    out["as_of"] = c.as_of.isoformat()
    out["churn_date"] = c.churn_date.isoformat() if c.churn_date else None
    out["metrics"] = [m.__dict__ for m in c.metrics]
    return out


def _simulation(s: Simulation) -> dict[str, Any]:
    out = {k: v for k, v in s.__dict__.items() if not k.startswith("top_")}
    out["as_of"] = s.as_of.isoformat()
    out["top_increases"] = [m.__dict__ for m in s.top_increases]
    out["top_decreases"] = [m.__dict__ for m in s.top_decreases]
    return out


def _digest(d: Digest) -> dict[str, Any]:
    return {"as_of": d.as_of.isoformat(), "newest_usage": d.newest_usage.isoformat(),
            "stale": d.stale, "correlate": _correlation(d.correlation),
            "segments": _segments(d.segments),
            "thresholds": [_thresholds(t) for t in d.thresholds],
            "recommend": _recommendation(d.recommendation),
            "alerts": {**(_pending(d.alerts) if d.alerts else {}),
                       "posted_this_week": [_posted(x) for x in d.posted]},
            "leads": [x.__dict__ for x in d.leads], "changes": list(d.changes()),
            "warnings": list(d.warnings)}


def _crossing(c: Crossing) -> dict[str, Any]:
    return {"account_id": c.account_id, "name": c.name, "plan": c.plan, "owner": c.owner,
            "metric": c.rule.metric, "rule": c.rule.key, "threshold": c.rule.threshold,
            "level": c.level, "arr": c.arr, "crossing": c.number,
            "evidence": {"past_crossings": c.evidence.crossings,
                         "hit_rate": _num(c.evidence.hit_rate),
                         "base_rate": _num(c.evidence.base_rate),
                         "lift": _num(c.evidence.lift),
                         "horizon_days": c.evidence.horizon_days}}


def _posted(x: PostedAlert) -> dict[str, Any]:
    d = x.delivery
    return {"account_id": x.account_id, "name": x.name, "metric": x.metric, "level": x.level,
            "threshold": x.threshold, "label": x.label, "period": d.period, "state": d.state,
            "ts": d.ts, "action": d.action, "action_reason": d.action_reason,
            "at": d.claimed_at.isoformat()}


def _pending(e: Evaluation) -> dict[str, Any]:
    return {"would_fire": [_crossing(c) for c in e.crossings],
            "closest": [{"account_id": n.account_id, "name": n.name, "rule": n.rule.key,
                         "level": n.level, "threshold": n.rule.threshold} for n in e.closest]}


def _alerts(a: AlertsOverview) -> dict[str, Any]:
    return {"as_of": a.pending.as_of.isoformat(), **_pending(a.pending),
            "recent": [_posted(x) for x in a.recent]}


def _backtest(results: tuple[Backtest, ...]) -> dict[str, Any]:
    return {"rules": [{"rule": b.rule.key, "metric": b.rule.metric,
                       "threshold": b.rule.threshold, "weeks": b.weeks, "alerts": b.alerts,
                       "alerts_per_week": b.alerts_per_week,
                       "followed_by_expansion": b.followed_by_expansion,
                       "expansions": b.expansions, "expansions_caught": b.expansions_caught,
                       "share_followed": _num(b.share_followed),
                       "base_rate": _num(b.evidence.base_rate),
                       "share_caught": _num(b.share_caught)} for b in results]}


def to_json_data(report: Report) -> Any:
    d = report.data
    converters: dict[str, Any] = {
        "term": lambda t: {"term": t.name, "short": t.short, "meaning": t.long},
        "help": lambda _: {"usage": usage_line(),
                           "commands": {n: {"argument": a or None, "help": h}
                                        for n, (a, h) in COMMANDS.items()}},
        "metrics": lambda ms: {"metrics": [{**{k: v for k, v in m.__dict__.items()
                                               if not k.startswith("_")},
                                            "category_inferred": m.category_inferred,
                                            "easy_to_understand": m.is_easy_to_understand,
                                            "hard_to_game": m.is_hard_to_game} for m in ms]},
        "correlate": _correlation, "thresholds": _thresholds, "segments": _segments,
        "recommend": _recommendation, "customer": _customer, "simulate": _simulation,
        "digest": _digest, "alerts": _alerts, "backtest": _backtest,
    }
    return converters[report.kind](d)


def render_json(report: Report) -> str:
    return json.dumps(to_json_data(report), indent=2, default=_json_default)


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")
