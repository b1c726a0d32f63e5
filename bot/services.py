"""What the Slack doors need, built once at start-up from the validated settings."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Engine

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


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: Engine
    sender: Sender
    access: Access
    pool: WorkPool
