"""APScheduler 3 inside ``valuemetric serve`` (or alone with ``valuemetric schedule``).

The digest runs on a cron trigger read in the configured timezone; alerts on an
interval, first at start-up. Every run goes through the delivery ledger, so overlapping
instances and restarts post once. A digest missed while nothing was running, refused by
Slack, or left unfinished by a killed run is caught up at start-up and after each alert
interval.
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
        scheduler.add_job(lambda: jobs.retry_digest(_now()),
                          IntervalTrigger(minutes=settings.alerts.interval_minutes),
                          id="digest-retry", name="unfinished digest retry")
    else:
        log.info("slack.digest_channel is not set: no weekly digest")
    if settings.slack.alert_channel:
        # first run at start-up: it also retries and reconciles what a previous run left
        scheduler.add_job(lambda: jobs.post_alerts(_now()),
                          IntervalTrigger(minutes=settings.alerts.interval_minutes),
                          id="alerts", name="expansion alerts", next_run_time=_now())
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
