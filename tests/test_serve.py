"""HTTP mode under hostile and heavy traffic: body cap, malformed requests, slow clients and
bursts of signed commands, against the real waitress server on 127.0.0.1."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import gc
import json
import logging
import re
import socket
import threading
import time
import urllib.parse
import weakref
from typing import Any

import pytest

from analysis.db import make_engine
from bot import reports
from bot.config import ServeSettings, Settings
from bot.services import SharedAnalysis
from tests import test_slack
from tests.test_slack import Bot, post, sign, slash_body

# the Slack tests' fixtures: a fake Slack and settings on a planted SQLite dataset
fake = test_slack.fake
planted_db = test_slack.planted_db
settings = test_slack.settings
bot_for = test_slack.bot_for


def _address(bot: Bot) -> tuple[str, int]:
    parsed = urllib.parse.urlparse(bot.url)
    assert parsed.hostname is not None and parsed.port is not None
    return parsed.hostname, parsed.port


def _raw(bot: Bot, request: bytes, then_send: bytes = b"", timeout: float = 10) -> bytes:
    """Send raw bytes, return whatever the server answers before closing."""
    with socket.create_connection(_address(bot), timeout=timeout) as conn:
        conn.sendall(request)
        try:
            if then_send:
                conn.sendall(then_send)
        except OSError:  # the server may close as soon as it has answered
            pass
        answer = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            answer += chunk
        return answer


def _head(path: str, length: int, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
            f"\r\nContent-Length: {length}\r\n{extra}\r\n").encode()


def test_a_huge_unsigned_body_is_refused_413_before_it_is_read(bot_for: Any,
                                                               settings: Settings) -> None:
    bot = bot_for(settings)
    started = time.monotonic()
    answer = _raw(bot, _head("/slack/events", 100 * 1024 * 1024), b"x" * (1024 * 1024))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert time.monotonic() - started < 5


def test_garbage_is_answered_400_with_one_log_line(bot_for: Any, settings: Settings,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    bot = bot_for(settings)
    caplog.set_level(logging.INFO)
    body = b"\xff\xfe\x00garbage\x80"
    answer = _raw(bot, _head("/slack/events", len(body)) + body)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"Traceback" not in answer
    lines = [r for r in caplog.records if "unreadable request" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert "Traceback" not in caplog.text
    # not HTTP at all: the server answers 400 itself
    assert re.match(rb"HTTP/1.[01] 400", _raw(bot, b"\x16\x03\x01 hello tls?\r\n\r\n"))


def test_slow_clients_hold_no_threads_and_do_not_delay_acks(bot_for: Any,
                                                            settings: Settings) -> None:
    bot = bot_for(settings)
    before = threading.active_count()
    slow = []
    for _ in range(100):  # each sends half a request and then nothing
        conn = socket.create_connection(_address(bot), timeout=10)
        conn.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Le")
        slow.append(conn)
    try:
        time.sleep(0.5)
        status, _, elapsed = bot.ask("help")
        assert status == 200 and elapsed < 3
        assert threading.active_count() - before < 10
    finally:
        for conn in slow:
            conn.close()


def test_two_hundred_concurrent_signed_commands_are_all_acknowledged_in_time(
        bot_for: Any, settings: Settings) -> None:
    bot = bot_for(settings)
    texts = ["help", "correlate", "thresholds seats", "customer a00001"]

    def ask(k: int) -> tuple[int, str, float]:
        return bot.ask(texts[k % len(texts)], name=f"c{k}")

    with concurrent.futures.ThreadPoolExecutor(200) as pool:
        results = list(pool.map(ask, range(200)))
    assert [status for status, _, _ in results] == [200] * 200
    assert max(elapsed for _, _, elapsed in results) < 3
    answered = sum("busy" not in body for _, body, _ in results)
    assert answered >= settings.serve.workers  # the pool took what it could hold


def test_a_stale_signature_is_401_and_unknown_paths_404(bot_for: Any,
                                                        settings: Settings) -> None:
    bot = bot_for(settings)
    body = slash_body("help", bot.fake.response_url())
    old = int(time.time()) - 600
    assert post(bot.url, body, timestamp=old, signature=sign(body, old))[0] == 401
    assert post(bot.url.replace("/slack/events", "/admin"), body)[0] == 404


def test_a_context_and_its_dataset_are_freed_after_the_request(settings: Settings) -> None:
    context = reports.Context.load(make_engine(settings.database.url), settings)
    context.thresholds("seats")
    dataset = weakref.ref(context.dataset)
    freed = weakref.ref(context)
    del context
    gc.collect()
    assert freed() is None and dataset() is None


def test_commands_within_cache_seconds_share_one_analysis(settings: Settings) -> None:
    engine = make_engine(settings.database.url)
    now = [0.0]
    shared = SharedAnalysis(engine, settings, clock=lambda: now[0])
    first = shared.context()
    now[0] = settings.serve.cache_seconds - 0.1
    assert shared.context() is first
    now[0] = settings.serve.cache_seconds
    assert shared.context() is not first  # stale: the next command analyses afresh
    fresh = dataclasses.replace(settings, serve=ServeSettings(cache_seconds=0))
    every_time = SharedAnalysis(engine, fresh, clock=lambda: now[0])
    assert every_time.context() is not every_time.context()


def test_a_burst_of_the_same_question_computes_it_once(
        bot_for: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    computed: list[int] = []
    real_correlate = reports.correlate

    def counted(*args: Any, **kwargs: Any) -> Any:
        computed.append(1)
        return real_correlate(*args, **kwargs)

    monkeypatch.setattr(reports, "correlate", counted)
    bot = bot_for(settings)
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda k: bot.ask("correlate", name=f"c{k}"), range(20)))
    assert all(status == 200 and elapsed < 3 for status, _, elapsed in results)
    for k in range(20):
        assert bot.fake.wait_for(f"/response/c{k}", timeout=60)
    texts = {json.dumps(bot.reply(f"c{k}")["blocks"]) for k in range(20)}
    assert len(texts) == 1 and "Which usage predicts value" in texts.pop()
    assert computed == [1]
