"""The delivery ledger and alert state: data access for exactly-once scheduled posts.

A post is claimed before it is sent: inserting (kind, channel, period) under a unique
constraint succeeds for exactly one claimer, across threads, processes and machines
sharing the database. Only the claimer posts, then records the outcome:

* ``sent`` with Slack's message ts;
* ``failed`` when Slack refused it (nothing was posted): a later run may claim it again;
* ``unknown`` when the connection broke after the request left (Slack may have posted
  it): never retried automatically, so a lost answer cannot become a second post.

Times are stored as naive UTC (SQLite keeps no zone).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from analysis.db import dialect_insert
from analysis.schema import alert_state, deliveries

SENDING, SENT, FAILED, UNKNOWN = "sending", "sent", "failed", "unknown"


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    return None if moment is None else moment.replace(tzinfo=dt.UTC)


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


def _delivery(row: Any) -> Delivery:
    return Delivery(row.id, row.kind, row.channel, row.period, row.state, row.ts, row.summary,
                    row.action, row.action_reason, row.action_user,
                    _aware(row.claimed_at) or dt.datetime.now(dt.UTC))


def _insert_ignoring_duplicates(conn: Connection, values: dict[str, Any]) -> bool:
    # RETURNING, not rowcount: with an autoincrement key SQLAlchemy already asks for
    # RETURNING on PostgreSQL, and psycopg then reports rowcount -1.
    stmt = (dialect_insert(conn, deliveries).values(**values).on_conflict_do_nothing()
            .returning(deliveries.c.id))
    return conn.execute(stmt).first() is not None


def claim(engine: Engine, kind: str, channel: str, period: str, claimer: str,
          now: dt.datetime) -> Delivery | None:
    """Claim one post; None when another claimer has it (or it was sent, or is unknown)."""
    stamp = _utc(now)
    with engine.begin() as conn:
        won = _insert_ignoring_duplicates(conn, {
            "kind": kind, "channel": channel, "period": period, "state": SENDING,
            "claimed_by": claimer, "claimed_at": stamp, "updated_at": stamp})
        if not won:  # a post Slack refused earlier may be claimed again, by one claimer
            won = conn.execute(
                update(deliveries)
                .where(deliveries.c.kind == kind, deliveries.c.channel == channel,
                       deliveries.c.period == period, deliveries.c.state == FAILED)
                .values(state=SENDING, claimed_by=claimer, claimed_at=stamp, updated_at=stamp,
                        error=None)
            ).rowcount == 1
        if not won:
            return None
        row = conn.execute(select(deliveries).where(
            deliveries.c.kind == kind, deliveries.c.channel == channel,
            deliveries.c.period == period)).one()
    return _delivery(row)


def finish(engine: Engine, delivery_id: int, state: str, now: dt.datetime, *,
           ts: str | None = None, error: str | None = None, summary: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(
            state=state, ts=ts, error=error, summary=summary, updated_at=_utc(now)))


def find(engine: Engine, kind: str, channel: str, period: str) -> Delivery | None:
    with engine.connect() as conn:
        row = conn.execute(select(deliveries).where(
            deliveries.c.kind == kind, deliveries.c.channel == channel,
            deliveries.c.period == period)).one_or_none()
    return None if row is None else _delivery(row)


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


def by_message(engine: Engine, channel: str, ts: str) -> Delivery | None:
    with engine.connect() as conn:
        row = conn.execute(select(deliveries).where(deliveries.c.channel == channel,
                                                    deliveries.c.ts == ts)).one_or_none()
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


def save_alert_state(engine: Engine, account_id: str, rule: str, *, armed: bool,
                     crossings: int, level: float, now: dt.datetime,
                     snoozed_until: dt.datetime | None = None) -> None:
    values: dict[str, Any] = {"armed": armed, "crossings": crossings, "level": level,
                              "updated_at": _utc(now)}
    if snoozed_until is not None:
        values["snoozed_until"] = _utc(snoozed_until)
    with engine.begin() as conn:  # an upsert: instances evaluating together must not collide
        stmt = dialect_insert(conn, alert_state).values(account_id=account_id, rule=rule,
                                                        **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["account_id", "rule"],
                                                set_=values))


def snooze(engine: Engine, account_id: str, rule: str, until: dt.datetime,
           now: dt.datetime) -> None:
    with engine.begin() as conn:
        conn.execute(update(alert_state).where(
            alert_state.c.account_id == account_id, alert_state.c.rule == rule
        ).values(snoozed_until=_utc(until), updated_at=_utc(now)))
