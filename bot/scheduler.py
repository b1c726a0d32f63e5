"""APScheduler 3 inside ``valuemetric serve`` (or alone with ``valuemetric schedule``).

The digest runs on a cron trigger read in the configured timezone; alerts on an
interval. Every run goes through the delivery ledger, so overlapping instances and
restarts post once. A digest missed while nothing was running is caught up at start-up.
"""

from __future__ import annotations

import datetime as dt
import logging

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.jobs import Jobs, digest_trigger

log = logging.getLogger(__name__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def build_scheduler(jobs: Jobs, *, blocking: bool) -> BaseScheduler:
    settings = jobs.settings
    scheduler: BaseScheduler = (BlockingScheduler if blocking else BackgroundScheduler)(
        timezone=dt.UTC, job_defaults={"coalesce": True, "max_instances": 1,
                                       "misfire_grace_time": 3600})
    if settings.slack.digest_channel:
        scheduler.add_job(lambda: jobs.post_digest(_now()), digest_trigger(settings),
                          id="digest", name="weekly digest")
    else:
        log.info("slack.digest_channel is not set: no weekly digest")
    if settings.slack.alert_channel:
        scheduler.add_job(lambda: jobs.post_alerts(_now()),
                          IntervalTrigger(minutes=settings.alerts.interval_minutes),
                          id="alerts", name="expansion alerts")
    else:
        log.info("slack.alert_channel is not set: no expansion alerts")
    return scheduler


def start(jobs: Jobs, *, blocking: bool) -> BaseScheduler:
    scheduler = build_scheduler(jobs, blocking=blocking)
    try:
        jobs.catch_up(_now())
    except Exception:  # a failed catch-up must not keep the bot from starting
        log.exception("digest catch-up failed")
    for job in scheduler.get_jobs():
        log.info("scheduled %s", job.name)
    scheduler.start()
    return scheduler
