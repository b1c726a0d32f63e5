"""Scheduled work: the weekly digest and expansion alerts, posted exactly once.

Each post is claimed in the delivery ledger (:mod:`analysis.ledger`) before anything is
sent, so any number of instances, restarts and manual ``--post`` runs give one post per
digest period and one per alert crossing. The clock is injected (``now``) so tests never
sleep through real schedules.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import uuid
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from analysis import ledger
from analysis.alerts import Crossing, StateChange
from bot import render, reports
from bot.blocks import Message
from bot.commands import UsageError
from bot.config import Settings
from bot.sender import Sender

log = logging.getLogger(__name__)
DIGEST, ALERT = "digest", "alert"


def instance_name() -> str:
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"


def digest_trigger(settings: Settings) -> CronTrigger:
    """The weekly digest's schedule, read in the configured zone (never the host's)."""
    d = settings.digest
    return CronTrigger(day_of_week=d.day_of_week, hour=d.hour, minute=d.minute,
                       timezone=zoneinfo.ZoneInfo(d.timezone))


def fire_times(trigger: CronTrigger, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Scheduled times in (start, end]."""
    times: list[dt.datetime] = []
    previous: dt.datetime | None = None
    moment = trigger.get_next_fire_time(None, start + dt.timedelta(microseconds=1))
    while moment is not None and moment <= end:
        times.append(moment)
        previous = moment
        moment = trigger.get_next_fire_time(previous, moment + dt.timedelta(microseconds=1))
    return times


@dataclass
class Jobs:
    engine: Engine
    settings: Settings
    sender: Sender
    claimer: str = field(default_factory=instance_name)

    # -- posting through the ledger ----------------------------------------------------

    def _deliver(self, kind: str, channel: str, periods: list[str], now: dt.datetime,
                 build: Callable[[list[ledger.Delivery]], tuple[Message, list[str]]]
                 ) -> list[str]:
        """Claim each period, post one message for those won, record it on each claim.

        ``build`` gets the won claims and returns the message and, per claim, the summary
        the ledger keeps. Returns an outcome per period, for logs and the CLI.
        """
        claims = [ledger.claim(self.engine, kind, channel, p, self.claimer, now)
                  for p in periods]
        won = [c for c in claims if c is not None]
        if not won:
            return ["already claimed"] * len(periods)
        try:
            message, summaries = build(won)
        except Exception as exc:
            for claim in won:
                ledger.finish(self.engine, claim.id, ledger.FAILED, now, error=repr(exc))
            raise
        outcome = self.sender.post_tracked(channel, message)
        for claim, summary in zip(won, summaries, strict=True):
            ledger.finish(self.engine, claim.id, outcome.state, now, ts=outcome.ts,
                          error=outcome.error, summary=summary)
        if outcome.state == ledger.UNKNOWN:
            log.error("%s %s to %s: the connection broke after sending; it may or may not "
                      "have been posted, and will not be retried (%s)", kind,
                      ", ".join(c.period for c in won), channel, outcome.error)
        return [outcome.state if c is not None else "already claimed" for c in claims]

    # -- digest --------------------------------------------------------------------------

    def post_digest(self, now: dt.datetime, channel: str | None = None,
                    period: dt.datetime | None = None) -> str:
        channel = channel or self.settings.slack.digest_channel
        if not channel:
            raise UsageError("no channel: set slack.digest_channel or pass --channel")
        if period is None:
            trigger = digest_trigger(self.settings)
            due = fire_times(trigger, now - dt.timedelta(days=8), now)
            period = due[-1] if due else now
        key = period.isoformat()

        def build(_: list[ledger.Delivery]) -> tuple[Message, list[str]]:
            report = reports.build_digest(reports.Context.load(self.engine, self.settings),
                                          channel, now)
            return render.render_slack(report), [json.dumps(report.data.statistics())]

        (outcome,) = self._deliver(DIGEST, channel, [key], now, build)
        log.info("digest for %s to %s: %s", key, channel, outcome)
        return outcome

    def catch_up(self, now: dt.datetime) -> str | None:
        """At start-up: post the latest missed digest if within the grace; log older ones."""
        channel = self.settings.slack.digest_channel
        if not channel:
            return None
        trigger = digest_trigger(self.settings)
        grace = dt.timedelta(days=self.settings.digest.catch_up_grace_days)
        missed = [t for t in fire_times(trigger, now - dt.timedelta(days=35), now)
                  if ledger.find(self.engine, DIGEST, channel, t.isoformat()) is None]
        if not missed:
            return None
        latest = missed[-1]
        for old in missed[:-1]:
            log.warning("digest of %s was missed while valuemetric was down; not posted late",
                        old.isoformat())
        if now - latest > grace:
            log.warning("digest of %s was missed and is older than the %s-day grace; not "
                        "posted", latest.isoformat(), grace.days)
            return None
        return self.post_digest(now, channel, latest)

    # -- alerts ----------------------------------------------------------------------------

    def _save_states(self, changes: list[StateChange], now: dt.datetime) -> None:
        for change in changes:
            ledger.save_alert_state(self.engine, change.account_id, change.rule,
                                    armed=change.armed, crossings=change.crossings,
                                    level=change.level, now=now)

    def post_alerts(self, now: dt.datetime) -> list[tuple[Crossing, str]]:
        """Post new crossings: the ``max_per_run`` largest accounts (by ARR) one message
        each, with buttons; any others together in one roll-up, so nothing floods."""
        channel = self.settings.slack.alert_channel
        if not channel:
            raise UsageError("no channel: set slack.alert_channel in the config")
        result = reports.Context.load(self.engine, self.settings).alert_evaluation(now)
        crossed = {(c.account_id, c.rule.key) for c in result.crossings}
        self._save_states([ch for ch in result.changes
                           if (ch.account_id, ch.rule) not in crossed], now)
        crossings = sorted(result.crossings, key=lambda c: -c.arr)
        renderer = render.alert_renderer(self.settings)
        limit = self.settings.alerts.max_per_run
        outcomes = []
        for crossing in crossings[:limit]:
            def build(won: list[ledger.Delivery], crossing: Crossing = crossing
                      ) -> tuple[Message, list[str]]:
                return (renderer.message(crossing, won[0].id),
                        [reports.PostedAlert.record(crossing)])

            (outcome,) = self._deliver(ALERT, channel, [crossing.period], now, build)
            outcomes.append((crossing, outcome))
        rest = crossings[limit:]
        if rest:
            by_period = {c.period: c for c in rest}

            def build_rollup(won: list[ledger.Delivery]) -> tuple[Message, list[str]]:
                chosen = [by_period[claim.period] for claim in won]
                return (renderer.rollup(chosen),
                        [reports.PostedAlert.record(c) for c in chosen])

            states = self._deliver(ALERT, channel, list(by_period), now, build_rollup)
            outcomes += zip(rest, states, strict=True)
        # A crossing disarms its rule only once posted (or claimed elsewhere): one Slack
        # refused stays armed, so the next run finds it again and re-claims its failed post.
        posted = {(c.account_id, c.rule.key) for c, o in outcomes if o != ledger.FAILED}
        self._save_states([ch for ch in result.changes
                           if (ch.account_id, ch.rule) in posted], now)
        return outcomes
