"""Scheduled work: the weekly digest and expansion alerts, posted exactly once.

Each post is claimed in the delivery ledger (:mod:`analysis.ledger`) before anything is
sent and carries its delivery id as Slack message metadata, so any number of instances,
restarts, kills, outages and manual ``--post`` runs give one post per digest period (and
per reply in its thread) and one per alert crossing: a claim whose outcome is unknown, or
whose claimer died, is first looked up in the channel history. The clock is injected
(``now``) so tests never sleep through real schedules.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from analysis import ledger
from analysis.alerts import Crossing, StateChange
from bot import home, render, reports
from bot.blocks import Message
from bot.commands import UsageError
from bot.config import Settings
from bot.sender import PostOutcome, Sender

log = logging.getLogger(__name__)
DIGEST, DIGEST_REPLY, ALERT = "digest", "digest-reply", "alert"
ALREADY_CLAIMED = "already claimed"
ROLLUP_SIZE = 25  # crossings per roll-up message, well inside Slack's block text limit
# Slack's clock and ours may differ a little: the history search starts this much earlier.
CLOCK_MARGIN = dt.timedelta(minutes=5)


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




def thread_complete(engine: Engine, headline: ledger.Delivery) -> bool:
    """Whether every reply in a sent digest's thread is sent too."""
    if headline.parts is None or headline.parts <= 1:
        return True
    replies = ledger.find_prefix(engine, DIGEST_REPLY, headline.channel, f"{headline.period}#")
    return sum(r.state == ledger.SENT for r in replies) >= headline.parts - 1


# what ``build`` returns for the claims it is given: the message and, per claim, the
# summary the ledger keeps
Built = tuple[Message, list[str | None]]


@dataclass
class Jobs:
    engine: Engine
    settings: Settings
    sender: Sender
    claimer: str = field(default_factory=ledger.claimer_name)

    @property
    def lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.settings.delivery.lease_seconds)

    # -- posting through the ledger ----------------------------------------------------

    def _already_posted(self, channel: str, claims: Sequence[ledger.Claim],
                        thread_ts: str | None) -> dict[int, str] | None:
        """For reconciling claims: which are in the channel already (id -> ts)."""
        checking = [c for c in claims if c.reconcile]
        if not checking:
            return {}
        since = min(c.delivery.claimed_at for c in checking) - CLOCK_MARGIN
        return self.sender.find_posted(channel, since, thread_ts)

    def _send(self, channel: str, claims: Sequence[ledger.Claim], message: Message,
              summaries: Sequence[str | None], now: dt.datetime, *,
              thread_ts: str | None = None, parts: int | None = None,
              settles: Callable[[str], Sequence[StateChange]] = lambda _: ()
              ) -> PostOutcome | None:
        """Post one message for ``claims`` and record the outcome on each; None when the
        lease was lost while building (another run has taken over)."""
        for claim in claims:
            if not ledger.renew(self.engine, claim.id, self.claimer, now):
                log.warning("delivery %s was taken over by another run; not posting", claim.id)
                return None
        outcome = self.sender.post_tracked(channel, message, [c.id for c in claims],
                                           thread_ts)
        for claim, summary in zip(claims, summaries, strict=True):
            ledger.finish(self.engine, claim.id, outcome.state, now, ts=outcome.ts,
                          error=outcome.error, summary=summary, parts=parts,
                          alert_changes=settles(claim.period) if outcome.state == ledger.SENT
                          else ())
        if outcome.state == ledger.UNKNOWN:
            log.warning("%s to %s: the answer was lost after sending (%s); the next run "
                        "checks the channel before posting again",
                        ", ".join(c.period for c in claims), channel, outcome.error)
        return outcome

    def _abandon(self, claims: Sequence[ledger.Claim], now: dt.datetime,
                 exc: Exception) -> None:
        """Building failed: nothing new was posted. A claim an earlier attempt may have
        posted stays ``unknown`` so the next run still looks before posting."""
        for claim in claims:
            ledger.finish(self.engine, claim.id,
                          ledger.UNKNOWN if claim.reconcile else ledger.FAILED, now,
                          error=repr(exc))

    def _deliver(self, kind: str, channel: str, periods: list[str], now: dt.datetime,
                 build: Callable[[list[ledger.Claim]], Built], *,
                 thread_ts: str | None = None,
                 settles: Callable[[str], Sequence[StateChange]] = lambda _: ()
                 ) -> list[str]:
        """Claim each period and post one message for those won that are not in the
        channel yet. Returns an outcome per period, for logs and the CLI.

        ``settles`` gives the alert state a period's post settles: it is written in the
        same transaction as the post's outcome, and only when it was sent.
        """
        claims = {p: ledger.claim(self.engine, kind, channel, p, self.claimer, now, self.lease)
                  for p in periods}
        outcomes = {p: ALREADY_CLAIMED for p in periods}
        for period, claim in claims.items():
            settled = settles(period)
            if claim is None and settled:  # sent by a run that did not record the state
                row = ledger.find(self.engine, kind, channel, period)
                if row is not None and row.state == ledger.SENT:
                    ledger.save_alert_states(self.engine, settled, now)
        won = [c for c in claims.values() if c is not None]
        posted = self._already_posted(channel, won, thread_ts)
        if posted is None:  # cannot tell: leave them for a run that can read the history
            for claim in won:
                if claim.reconcile:
                    ledger.finish(self.engine, claim.id, ledger.UNKNOWN, now,
                                  error="could not read the channel history to check")
                    outcomes[claim.period] = ledger.UNKNOWN
            won = [c for c in won if not c.reconcile]
            posted = {}
        for claim in won:
            if claim.id in posted:
                log.info("%s %s was already in %s (ts %s): recorded as sent", kind,
                         claim.period, channel, posted[claim.id])
                ledger.finish(self.engine, claim.id, ledger.SENT, now, ts=posted[claim.id],
                              alert_changes=settles(claim.period))
                outcomes[claim.period] = ledger.SENT
        to_post = [c for c in won if c.id not in posted]
        if not to_post:
            return [outcomes[p] for p in periods]
        try:
            message, summaries = build(to_post)
        except Exception as exc:
            self._abandon(to_post, now, exc)
            raise
        outcome = self._send(channel, to_post, message, summaries, now, thread_ts=thread_ts,
                             settles=settles)
        for claim in to_post:
            outcomes[claim.period] = outcome.state if outcome else ALREADY_CLAIMED
        return [outcomes[p] for p in periods]

    # -- digest --------------------------------------------------------------------------

    def _digest_period(self, now: dt.datetime) -> dt.datetime:
        due = fire_times(digest_trigger(self.settings), now - dt.timedelta(days=8), now)
        return due[-1] if due else now

    def _digest_pending(self, channel: str, key: str, now: dt.datetime) -> bool:
        """Whether the digest of ``key`` still needs a run: not claimed, not sent, stuck,
        or its thread incomplete. A live claimer's digest is not pending."""
        row = ledger.find(self.engine, DIGEST, channel, key)
        if row is None or row.stuck(now, self.lease):
            return True
        return row.state == ledger.SENT and not thread_complete(self.engine, row)

    def post_digest(self, now: dt.datetime, channel: str | None = None,
                    period: dt.datetime | None = None) -> str:
        """Post the digest of ``period`` (default: the latest scheduled one) and its thread."""
        channel = channel or self.settings.slack.digest_channel
        if not channel:
            raise UsageError("no channel: set slack.digest_channel or pass --channel")
        key = (period or self._digest_period(now)).isoformat()
        claim = ledger.claim(self.engine, DIGEST, channel, key, self.claimer, now, self.lease)
        if claim is None:
            row = ledger.find(self.engine, DIGEST, channel, key)
            if row is None or row.state != ledger.SENT or thread_complete(self.engine, row):
                log.info("digest for %s to %s: %s", key, channel, ALREADY_CLAIMED)
                return ALREADY_CLAIMED
            headline_ts = row.ts  # a run stopped between the headline and its replies
        try:
            report = reports.build_digest(reports.Context.load(self.engine, self.settings),
                                          channel, now)
            messages = render.render_digest_thread(report)
        except Exception as exc:
            if claim is not None:
                self._abandon([claim], now, exc)
            raise
        if claim is not None:
            summary = json.dumps(report.data.statistics())
            posted = self._already_posted(channel, [claim], None)
            if posted is None:
                ledger.finish(self.engine, claim.id, ledger.UNKNOWN, now,
                              error="could not read the channel history to check")
                return ledger.UNKNOWN
            if claim.id in posted:
                ledger.finish(self.engine, claim.id, ledger.SENT, now, ts=posted[claim.id],
                              summary=summary, parts=len(messages))
                headline_ts = posted[claim.id]
            else:
                outcome = self._send(channel, [claim], messages[0], [summary], now,
                                     parts=len(messages))
                if outcome is None:
                    return ALREADY_CLAIMED
                if outcome.state != ledger.SENT:
                    log.info("digest for %s to %s: %s", key, channel, outcome.state)
                    return outcome.state
                headline_ts = outcome.ts
        states = [ledger.SENT]
        for number, reply in enumerate(messages[1:], start=1):
            def build(_: list[ledger.Claim], reply: Message = reply) -> Built:
                return reply, [None]

            (state,) = self._deliver(DIGEST_REPLY, channel, [f"{key}#{number}"], now, build,
                                     thread_ts=headline_ts)
            if state == ledger.SENT and reply.chart is not None:  # the chart with its answer
                self.sender.upload_png(channel, reply.chart.filename, reply.chart.png,
                                       reply.chart.title, thread_ts=headline_ts)
            states.append(state)
        failed = [s for s in states if s not in (ledger.SENT, ALREADY_CLAIMED)]
        outcome_text = failed[0] if failed else ledger.SENT
        log.info("digest for %s to %s: %s", key, channel, outcome_text)
        home.refresh(self.engine, self.settings, self.sender)  # Home tabs open here show it
        return outcome_text

    def catch_up(self, now: dt.datetime) -> str | None:
        """At start-up and after each alert run: post the latest digest still pending (missed,
        refused, unknown, or its claimer died) if within the grace; log older ones."""
        channel = self.settings.slack.digest_channel
        if not channel:
            return None
        trigger = digest_trigger(self.settings)
        grace = dt.timedelta(days=self.settings.digest.catch_up_grace_days)
        missed = [t for t in fire_times(trigger, now - dt.timedelta(days=35), now)
                  if self._digest_pending(channel, t.isoformat(), now)]
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

    def retry_digest(self, now: dt.datetime) -> str | None:
        """Between scheduled runs: finish the latest digest if a run left it refused,
        unknown or half-posted (a digest never attempted is the start-up catch-up's)."""
        channel = self.settings.slack.digest_channel
        grace = dt.timedelta(days=self.settings.digest.catch_up_grace_days)
        due = fire_times(digest_trigger(self.settings), now - grace, now)
        if not channel or not due:
            return None
        key = due[-1].isoformat()
        if ledger.find(self.engine, DIGEST, channel, key) is None or \
                not self._digest_pending(channel, key, now):
            return None
        return self.post_digest(now, channel, due[-1])

    # -- alerts ----------------------------------------------------------------------------

    def post_alerts(self, now: dt.datetime) -> list[tuple[Crossing, str]]:
        """Post new crossings: the ``max_per_run`` largest accounts (by ARR) one message
        each, with buttons; any others in roll-ups, so nothing floods.

        A crossing disarms its rule in the transaction that records its post as sent:
        one refused, unknown or killed stays armed, so the next run finds it again and
        retries (or first checks the channel for) the same ledger row.
        """
        channel = self.settings.slack.alert_channel
        if not channel:
            raise UsageError("no channel: set slack.alert_channel in the config")
        result = reports.Context.load(self.engine, self.settings).alert_evaluation(now)
        crossings = sorted(result.crossings, key=lambda c: -c.arr)
        by_period = {c.period: c for c in crossings}
        period_of = {(c.account_id, c.rule.key): c.period for c in crossings}
        changes: dict[str, list[StateChange]] = {}
        unrelated = []
        for change in result.changes:
            key = period_of.get((change.account_id, change.rule))
            if key is None:
                unrelated.append(change)
            else:
                changes.setdefault(key, []).append(change)
        ledger.save_alert_states(self.engine, unrelated, now)  # re-arming, level updates

        def settles(period: str) -> Sequence[StateChange]:
            return changes.get(period, ())

        renderer = render.alert_renderer(self.settings)
        limit = self.settings.alerts.max_per_run
        outcomes = []
        for crossing in crossings[:limit]:
            def build(won: list[ledger.Claim], crossing: Crossing = crossing) -> Built:
                return (renderer.message(crossing, won[0].id),
                        [reports.PostedAlert.record(crossing)])

            (outcome,) = self._deliver(ALERT, channel, [crossing.period], now, build,
                                       settles=settles)
            outcomes.append((crossing, outcome))
        rest = crossings[limit:]
        for start in range(0, len(rest), ROLLUP_SIZE):
            group = rest[start:start + ROLLUP_SIZE]

            def build_rollup(won: list[ledger.Claim]) -> Built:
                chosen = [by_period[claim.period] for claim in won]
                return (renderer.rollup(chosen),
                        [reports.PostedAlert.record(c) for c in chosen])

            states = self._deliver(ALERT, channel, [c.period for c in group], now,
                                   build_rollup, settles=settles)
            outcomes += zip(group, states, strict=True)
        self._settle_gone_crossings(channel, set(by_period), now)
        return outcomes

    def _settle_gone_crossings(self, channel: str, current: set[str],
                               now: dt.datetime) -> None:
        """Alerts left failed, unknown or half-sent whose crossing has since gone (the
        level fell back): recorded as sent when the channel has them, else dropped, so
        nothing stays stuck and nothing stale is posted."""
        left = [d for d in ledger.unfinished(self.engine)
                if d.kind == ALERT and d.channel == channel and d.period not in current
                and d.stuck(now, self.lease)]
        claims = [c for c in (ledger.claim(self.engine, ALERT, channel, d.period, self.claimer,
                                           now, self.lease) for d in left) if c is not None]
        posted = self._already_posted(channel, claims, None)
        for claim in claims:
            if posted is None and claim.reconcile:
                ledger.finish(self.engine, claim.id, ledger.UNKNOWN, now,
                              error="could not read the channel history to check")
            elif posted and claim.id in posted:
                ledger.finish(self.engine, claim.id, ledger.SENT, now, ts=posted[claim.id])
            else:
                log.info("alert %s in %s was never posted and its crossing is gone: dropped",
                         claim.period, channel)
                ledger.finish(self.engine, claim.id, ledger.DROPPED, now,
                              error="the crossing was gone before it could be posted")
