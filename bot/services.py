"""What the Slack doors need, built once at start-up from the validated settings."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Engine

from bot import reports
from bot.access import Access
from bot.config import Settings
from bot.sender import Sender

log = logging.getLogger(__name__)


class WorkPool:
    """Worker threads behind a bounded queue: work beyond it is refused, never piled up.

    Slack needs an acknowledgement within 3 seconds whatever the load, so requests are
    acknowledged first and their work handed here; when ``workers + queue`` jobs are
    already waiting, :meth:`submit` says no and the user is told the bot is busy.
    """

    def __init__(self, workers: int, queue: int) -> None:
        self._slots = threading.BoundedSemaphore(workers + queue)
        self._executor = ThreadPoolExecutor(max_workers=workers,
                                            thread_name_prefix="valuemetric-work")

    def submit(self, work: Callable[[], object]) -> bool:
        if not self._slots.acquire(blocking=False):
            return False
        future = self._executor.submit(work)
        future.add_done_callback(self._done)
        return True

    def _done(self, future: Future[object]) -> None:
        self._slots.release()
        error = future.exception()
        if error is not None:  # the work answers its own errors; this is a last resort
            log.error("background work failed: %s", error, exc_info=error)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class SharedAnalysis:
    """The analysis context slash commands share for ``serve.cache_seconds``.

    Each command otherwise loads the data and computes its statistics anew, so a burst of
    questions after a digest keeps every worker busy with the same computation. Within the
    time, every command reads one :class:`bot.reports.Context`, whose analyses are computed
    once (its cached properties) and then answered from memory.
    """

    def __init__(self, engine: Engine, settings: Settings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._engine, self._settings, self._clock = engine, settings, clock
        self._lock = threading.Lock()
        self._context: reports.Context | None = None
        self._made = 0.0

    def context(self) -> reports.Context:
        seconds = self._settings.serve.cache_seconds
        with self._lock:
            now = self._clock()
            if self._context is None or now - self._made >= seconds:
                self._context = reports.Context.load(self._engine, self._settings)
                self._made = now
            return self._context


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: Engine
    sender: Sender
    access: Access
    pool: WorkPool
    analysis: SharedAnalysis
