"""The delivery ledger and alert state: data access for exactly-once scheduled posts.

A post is claimed before it is sent: inserting (kind, channel, period) under a unique
constraint succeeds for exactly one claimer, across threads, processes and machines
sharing the database. Only the claimer posts, then records the outcome:

* ``sent`` with Slack's message ts;
* ``failed`` when nothing was posted (Slack refused it, or the request never reached
  Slack): the next run claims it again;
* ``unknown`` when the connection broke after the request was written (Slack may have
  posted it);
* ``dropped`` when a post that never went out is no longer due (an alert whose crossing
  has gone by the time Slack can be reached again).

A claim is a lease. A ``sending`` row whose claimer is gone (its lease ran out, or its
process on this host has died) and an ``unknown`` row can be claimed again, but as a
*reconciling* claim: the new claimer first looks for the post in the channel by the
delivery id in its Slack metadata, records it as sent when found, and posts only when
it is not there. Every conditional update below names the row version it read, so of two
claimers racing for the same row exactly one wins.

Times are stored as naive UTC (SQLite keeps no zone).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from analysis.alerts import StateChange
from analysis.db import dialect_insert
from analysis.schema import alert_state, deliveries

SENDING, SENT, FAILED, UNKNOWN = "sending", "sent", "failed", "unknown"
DROPPED = "dropped"  # never posted, and no longer worth posting (the crossing is gone)


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def claimer_name() -> str:
    """Who claims: host and process (so a dead claimer on this host is recognised at once)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claimer_gone(claimer: str) -> bool:
    """True when ``claimer`` ran on this host in a process that no longer exists.

    Claimers on other hosts (or named otherwise) are only ever given up by their lease.
    """
    host, _, rest = claimer.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    try:  # a killed process its parent has not reaped yet is a zombie: gone all the same
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


@dataclass(frozen=True)
class Delivery:
    id: int
    kind: str
    channel: str
    period: str
    state: str
    ts: str | None
    summary: str | None
    action: str | None
    action_reason: str | None
    action_user: str | None
    claimed_at: dt.datetime
    claimed_by: str = ""
    updated_at: dt.datetime | None = None
    error: str | None = None
    parts: int | None = None

    def stuck(self, now: dt.datetime, lease: dt.timedelta) -> bool:
        """Needs attention: refused or unknown, or claimed by a run that did not finish."""
        if self.state in (FAILED, UNKNOWN):
            return True
        if self.state == SENDING:
            return (self.updated_at or self.claimed_at) < now - lease or \
                claimer_gone(self.claimed_by)
        return False


@dataclass(frozen=True)
class Claim:
    """A won claim; ``reconcile`` when an earlier attempt may already have posted it."""

    delivery: Delivery
    reconcile: bool

    @property
    def id(self) -> int:
        return self.delivery.id

    @property
    def period(self) -> str:
        return self.delivery.period


def _delivery(row: Any) -> Delivery:
    return Delivery(row.id, row.kind, row.channel, row.period, row.state, row.ts, row.summary,
                    row.action, row.action_reason, row.action_user,
                    _aware(row.claimed_at) or dt.datetime.now(dt.UTC), row.claimed_by,
                    _aware(row.updated_at), row.error, row.parts)


def _insert_ignoring_duplicates(conn: Connection, values: dict[str, Any]) -> bool:
    # RETURNING, not rowcount: with an autoincrement key SQLAlchemy already asks for
    # RETURNING on PostgreSQL, and psycopg then reports rowcount -1.
    stmt = (dialect_insert(conn, deliveries).values(**values).on_conflict_do_nothing()
            .returning(deliveries.c.id))
    return conn.execute(stmt).first() is not None


def _take_over(conn: Connection, row: Any, claimer: str, stamp: dt.datetime, *,
               restart: bool) -> bool:
    """Claim ``row`` if it is still the version read; ``restart`` also resets the claim time
    (nothing was posted before), else it is kept as the start of the history to search."""
    values: dict[str, Any] = {"state": SENDING, "claimed_by": claimer, "updated_at": stamp,
                              "error": None}
    if restart:
        values["claimed_at"] = stamp
    return conn.execute(update(deliveries).where(
        deliveries.c.id == row.id, deliveries.c.state == row.state,
        deliveries.c.claimed_by == row.claimed_by, deliveries.c.updated_at == row.updated_at,
    ).values(**values)).rowcount == 1


def claim(engine: Engine, kind: str, channel: str, period: str, claimer: str,
          now: dt.datetime, lease: dt.timedelta) -> Claim | None:
    """Claim one post; None when it was sent, or a live claimer holds it."""
    stamp = _utc(now)
    where = (deliveries.c.kind == kind, deliveries.c.channel == channel,
             deliveries.c.period == period)
    with engine.begin() as conn:
        if _insert_ignoring_duplicates(conn, {
                "kind": kind, "channel": channel, "period": period, "state": SENDING,
                "claimed_by": claimer, "claimed_at": stamp, "updated_at": stamp}):
            reconcile = False
        else:
            row = conn.execute(select(deliveries).where(*where)).one()
            current = _delivery(row)
            if row.state in (FAILED, DROPPED):  # nothing was posted
                won, reconcile = _take_over(conn, row, claimer, stamp, restart=True), False
            elif row.state == UNKNOWN or (row.state == SENDING and
                                          current.stuck(now, lease)):
                won, reconcile = _take_over(conn, row, claimer, stamp, restart=False), True
            else:
                won = False
            if not won:
                return None
        row = conn.execute(select(deliveries).where(*where)).one()
    return Claim(_delivery(row), reconcile)


def renew(engine: Engine, delivery_id: int, claimer: str, now: dt.datetime) -> bool:
    """Extend the lease just before sending; False when another claimer has taken it over."""
    with engine.begin() as conn:
        return conn.execute(update(deliveries).where(
            deliveries.c.id == delivery_id, deliveries.c.claimed_by == claimer,
            deliveries.c.state == SENDING,
        ).values(updated_at=_utc(now))).rowcount == 1


def finish(engine: Engine, delivery_id: int, state: str, now: dt.datetime, *,
           ts: str | None = None, error: str | None = None, summary: str | None = None,
           parts: int | None = None, alert_changes: Sequence[StateChange] = ()) -> None:
    """Record the outcome, and with it (one transaction) the alert state it settles."""
    values: dict[str, Any] = {"state": state, "ts": ts, "error": error,
                              "updated_at": _utc(now)}
    if summary is not None:
        values["summary"] = summary
    if parts is not None:
        values["parts"] = parts
    with engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**values))
        for change in alert_changes:
            _save_alert_state(conn, change, now)


def find(engine: Engine, kind: str, channel: str, period: str) -> Delivery | None:
    with engine.connect() as conn:
        row = conn.execute(select(deliveries).where(
            deliveries.c.kind == kind, deliveries.c.channel == channel,
            deliveries.c.period == period)).one_or_none()
    return None if row is None else _delivery(row)


def find_prefix(engine: Engine, kind: str, channel: str, prefix: str) -> list[Delivery]:
    """Rows whose period starts with ``prefix`` (a digest's thread replies)."""
    with engine.connect() as conn:
        rows = conn.execute(select(deliveries).where(
            deliveries.c.kind == kind, deliveries.c.channel == channel,
            deliveries.c.period.startswith(prefix, autoescape=True)
        ).order_by(deliveries.c.id)).all()
    return [_delivery(r) for r in rows]


def latest(engine: Engine, kind: str, channel: str, *, state: str | None = SENT,
           limit: int = 1, since: dt.datetime | None = None) -> list[Delivery]:
    """Newest first; ``state`` None means any state, ``since`` claimed after that moment."""
    query = select(deliveries).where(deliveries.c.kind == kind, deliveries.c.channel == channel)
    if state is not None:
        query = query.where(deliveries.c.state == state)
    if since is not None:
        query = query.where(deliveries.c.claimed_at > _utc(since))
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(deliveries.c.claimed_at.desc(),
                                           deliveries.c.id.desc()).limit(limit)).all()
    return [_delivery(r) for r in rows]


def listing(engine: Engine, limit: int) -> list[Delivery]:
    """The newest rows of every kind and channel, for ``valuemetric deliveries``."""
    with engine.connect() as conn:
        rows = conn.execute(select(deliveries).order_by(deliveries.c.updated_at.desc(),
                                                        deliveries.c.id.desc())
                            .limit(limit)).all()
    return [_delivery(r) for r in rows]


def unfinished(engine: Engine) -> list[Delivery]:
    """Every row not sent (whatever its age): what an operator may need to look at."""
    with engine.connect() as conn:
        rows = conn.execute(select(deliveries).where(deliveries.c.state != SENT)
                            .order_by(deliveries.c.id)).all()
    return [_delivery(r) for r in rows]


def by_id(engine: Engine, delivery_id: int) -> Delivery | None:
    with engine.connect() as conn:
        row = conn.execute(select(deliveries).where(
            deliveries.c.id == delivery_id)).one_or_none()
    return None if row is None else _delivery(row)


def by_message(engine: Engine, channel: str, ts: str) -> Delivery | None:
    with engine.connect() as conn:
        row = conn.execute(select(deliveries).where(deliveries.c.channel == channel,
                                                    deliveries.c.ts == ts)).first()
    return None if row is None else _delivery(row)


def record_action(engine: Engine, delivery_id: int, action: str, user: str,
                  reason: str | None, now: dt.datetime) -> None:
    with engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(
            action=action, action_user=user, action_reason=reason, updated_at=_utc(now)))


# -- alert state --------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertState:
    account_id: str
    rule: str
    armed: bool
    crossings: int
    snoozed_until: dt.datetime | None


def alert_states(engine: Engine, rules: list[str]) -> dict[tuple[str, str], AlertState]:
    if not rules:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(select(alert_state).where(alert_state.c.rule.in_(rules))).all()
    return {(r.account_id, r.rule): AlertState(r.account_id, r.rule, bool(r.armed),
                                               int(r.crossings), _aware(r.snoozed_until))
            for r in rows}


def _save_alert_state(conn: Connection, change: StateChange, now: dt.datetime) -> None:
    values: dict[str, Any] = {"armed": change.armed, "crossings": change.crossings,
                              "level": change.level, "updated_at": _utc(now)}
    # an upsert: instances evaluating together must not collide
    stmt = dialect_insert(conn, alert_state).values(account_id=change.account_id,
                                                    rule=change.rule, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["account_id", "rule"], set_=values))


def save_alert_states(engine: Engine, changes: Sequence[StateChange], now: dt.datetime) -> None:
    with engine.begin() as conn:
        for change in changes:
            _save_alert_state(conn, change, now)


def snooze(engine: Engine, account_id: str, rule: str, until: dt.datetime,
           now: dt.datetime) -> None:
    with engine.begin() as conn:
        conn.execute(update(alert_state).where(
            alert_state.c.account_id == account_id, alert_state.c.rule == rule
        ).values(snoozed_until=_utc(until), updated_at=_utc(now)))
