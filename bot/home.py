"""The App Home tab: where things stand, for whoever opens the app.

It shows the current recommendation, the leading metrics' thresholds, the latest alerts
and what was done with them (snoozed, done, not a fit), and how fresh the data is. The
view is built each time a user opens the tab (``app_home_opened``), from the analysis the
slash commands share (at most ``serve.cache_seconds`` old); a process that posts a digest
or imports data calls :func:`refresh` to republish it, from a fresh analysis, for the users
who opened it there, so an open Home tab does not show last week's answer. (A user who
reopens the tab within ``serve.cache_seconds`` of a refresh may see the shared analysis
from just before it, as a slash command would.)
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from analysis import features
from analysis.dataset import NoData
from analysis.recommend import Recommendation
from analysis.thresholds import Thresholds
from bot import reports
from bot.blocks import to_messages
from bot.config import Settings
from bot.render import SLACK_ENV, template_helpers
from bot.sender import Sender

log = logging.getLogger(__name__)

MAX_HOME_BLOCKS = 100  # Slack's limit for a Home tab view
LEADING = 3
RECENT_ALERTS = 10


@dataclass(frozen=True)
class Home:
    """What the Home tab shows (``recommendation`` is None before there is data)."""

    today: dt.date
    as_of: dt.date | None
    newest_usage: dt.date | None
    stale_after_days: int
    recommendation: Recommendation | None
    thresholds: tuple[Thresholds, ...]
    recent: tuple[reports.PostedAlert, ...]
    primary_singular: str = ""  # "active user", for "charge per active user"
    problem: str = ""  # why there is no analysis yet

    @property
    def age_days(self) -> int | None:
        return None if self.newest_usage is None else (self.today - self.newest_usage).days

    @property
    def stale(self) -> bool:
        return self.age_days is not None and self.age_days > self.stale_after_days


def build_home(ctx: reports.Context, now: dt.datetime | None = None) -> Home:
    today = (now or dt.datetime.now(dt.UTC)).date()
    stale_after = ctx.settings.digest.stale_after_days
    recent = ctx.recent_alerts(limit=RECENT_ALERTS)
    try:
        rec = ctx.recommendation
    except NoData as exc:
        return Home(today, None, None, stale_after, None, (), recent, problem=str(exc))
    lead = [m for m in (rec.primary, *rec.gate) if m][:LEADING]
    with ctx.sources.connect() as source:
        newest = features.latest_usage_date(source, ctx.names())
    singular = next((m.singular for m in ctx.catalog if m.name == rec.primary), "")
    return Home(today, ctx.dataset.windows.as_of, newest, stale_after, rec,
                tuple(ctx.thresholds(m) for m in lead), recent, singular)


def home_view(home: Home, style: reports.Style) -> dict[str, Any]:
    """The ``views.publish`` payload: a Home view within Slack's 100-block limit."""
    document = SLACK_ENV.get_template("slack/home.md.j2").render(
        d=home, **template_helpers(style, slack=True))
    blocks = to_messages(document, max_blocks=MAX_HOME_BLOCKS)[0].blocks
    return {"type": "home", "blocks": blocks}


class Viewers:
    """Users who opened the Home tab in this process (bounded), to republish for."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._users: dict[str, None] = {}
        self._lock = threading.Lock()

    def add(self, user_id: str) -> None:
        with self._lock:
            self._users.pop(user_id, None)
            self._users[user_id] = None
            while len(self._users) > self.limit:
                self._users.pop(next(iter(self._users)))

    def __iter__(self) -> Any:
        with self._lock:
            return iter(list(self._users))


VIEWERS = Viewers()


def publish(ctx: reports.Context, sender: Sender, users: Iterable[str]) -> int:
    """Build the Home view once from ``ctx`` and publish it to each user; returns how many
    got it."""
    view = home_view(build_home(ctx), reports.style_of(ctx))
    return sum(sender.publish_home(user, view) for user in users)


def opened(analysis: Callable[[], reports.Context], sender: Sender, user_id: str) -> bool:
    """``app_home_opened``: remember the user and publish a view of ``analysis()``, the
    context slash commands share (:class:`bot.services.SharedAnalysis`): opening the tab
    during a burst of questions does not compute the analysis again."""
    VIEWERS.add(user_id)
    return publish(analysis(), sender, [user_id]) == 1


def refresh(engine: Engine, settings: Settings, sender: Sender) -> int:
    """After an import or a digest: republish for everyone who opened the Home tab here."""
    users = list(VIEWERS)
    if not users:
        return 0
    try:  # the data changed: a context of its own, not the shared one
        return publish(reports.Context.load(engine, settings), sender, users)
    except Exception:  # the Home tab is never worth failing an import or a digest for
        log.exception("could not refresh the App Home")
        return 0
