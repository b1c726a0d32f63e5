"""Soak test: `valuemetric serve --http` under bursts of signed slash commands and hostile
traffic, against the fake Slack, on 127.0.0.1 only.

Goals (issue 10): every ack HTTP 200 within 3 s (none reset); RSS after all commands
within 50 MB of the RSS after the first 100; unsigned 100 MiB bodies and slow connections
grow neither memory nor threads. Prints ack latency percentiles, non-200 count, busy
answers, and the server's RSS and thread count at each stage.

    python -m benchmarks.soak_serve [--total 2000] [--concurrency 200] [--accounts 500]

(run from the repository root: it uses the fake Slack from tests/)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from analysis.db import ensure_schema, make_engine
from analysis.imports import import_csv
from bot import demo
from tests.fake_slack import FakeSlack
from tests.test_slack import BOT_TOKEN, SIGNING_SECRET, sign, slash_body

HEAVY = ["correlate", "segments", "recommend", "thresholds active_users", "customer {account}",
         "simulate active_users"]


def _proc_status(pid: int) -> tuple[float, int]:
    """RSS in MB and thread count of a process."""
    text = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024  # type: ignore[union-attr]
    threads = int(re.search(r"Threads:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    return rss, threads


def _ask(url: str, text: str, response_url: str) -> tuple[int, float, bool]:
    body = slash_body(text, response_url)
    now = int(time.time())
    request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": sign(body, now)})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = response.read()
            return response.status, time.monotonic() - started, b"busy" in answer
    except urllib.error.HTTPError as err:
        return err.code, time.monotonic() - started, False
    except OSError:  # reset or refused: counted as a failure
        return 0, time.monotonic() - started, False


def _hostile(host: str, port: int) -> None:
    """20 unsigned 100 MiB bodies (as far as the server lets them in) and 100 slow clients."""
    for _ in range(20):
        with socket.create_connection((host, port), timeout=10) as conn:
            conn.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         b"application/x-www-form-urlencoded\r\nContent-Length: 104857600\r\n\r\n")
            try:
                for _ in range(100):
                    conn.sendall(b"x" * (1024 * 1024))
            except OSError:
                pass  # refused with 413 and closed, as it should be
    slow = [socket.create_connection((host, port), timeout=10) for _ in range(100)]
    for conn in slow:
        conn.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Le")
    time.sleep(2)
    for conn in slow:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--total", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--accounts", type=int, default=500)
    args = parser.parse_args()
    fake = FakeSlack().start()
    with tempfile.TemporaryDirectory(prefix="vm-soak-") as tmp:
        url = f"sqlite:///{tmp}/soak.db"
        engine = make_engine(url)
        ensure_schema(engine)
        files = demo.generate(Path(tmp), n_accounts=args.accounts, seed=3)
        for kind in ("accounts", "usage", "revenue"):
            import_csv(engine, kind, getattr(files, kind))
        account = engine.connect().exec_driver_sql(
            "SELECT account_id FROM accounts LIMIT 1").scalar_one()
        engine.dispose()
        config = Path(tmp) / "config.toml"
        config.write_text(demo.settings_toml(url))
        env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET":
               SIGNING_SECRET, "VALUEMETRIC_SLACK_API_URL": fake.api_url,
               "VALUEMETRIC_DATABASE_URL": url, "VALUEMETRIC_CONFIG": str(config)}
        server = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--http", "--no-scheduler", "--host",
             "127.0.0.1", "--port", "0"], env=env, stderr=subprocess.PIPE, text=True)
        assert server.stderr is not None
        events = ""
        while not events:
            line = server.stderr.readline()
            if not line:
                raise SystemExit("serve exited before listening")
            match = re.search(r"listening on (http://\S+)", line)
            events = match.group(1) if match else ""
        # drain the server's log so it never blocks on a full pipe
        log_lines: list[str] = []
        concurrent.futures.ThreadPoolExecutor(1).submit(
            lambda: log_lines.extend(iter(server.stderr.readline, "")))  # type: ignore[union-attr]
        texts = ["help"] + [h.format(account=account) for h in HEAVY]
        latencies: list[float] = []
        statuses: list[int] = []
        busy = 0
        stages: list[tuple[str, float, int]] = [("start", *_proc_status(server.pid))]
        sent = 0
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            while sent < args.total:
                size = 100 if sent == 0 else min(args.concurrency, args.total - sent)
                batch = list(pool.map(
                    lambda k: _ask(events, texts[k % len(texts)], fake.response_url(f"s{k}")),
                    range(sent, sent + size)))
                sent += size
                statuses += [s for s, _, _ in batch]
                latencies += [t for _, t, _ in batch]
                busy += sum(b for _, _, b in batch)
                time.sleep(1)  # bounded bursts: let the pool drain a little
                if sent == 100:
                    time.sleep(20)
                    stages.append(("after first 100", *_proc_status(server.pid)))
        time.sleep(30)  # let queued work finish
        stages.append((f"after {sent}", *_proc_status(server.pid)))
        host, port = events.split("//")[1].split("/")[0].split(":")
        _hostile(host, int(port))
        time.sleep(3)
        stages.append(("after 20 x 100 MiB + 100 slow", *_proc_status(server.pid)))
        server.terminate()
        server.wait(timeout=30)
    fake.stop()
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    print(f"commands: {len(statuses)} sent, {args.concurrency} concurrent per burst")
    print(f"ack latency: p50 {pct(50) * 1000:.0f} ms, p95 {pct(95) * 1000:.0f} ms, "
          f"p99 {pct(99) * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms, "
          f"mean {statistics.mean(ordered) * 1000:.0f} ms")
    print(f"non-200 acks: {sum(s != 200 for s in statuses)}; acks over 3 s: "
          f"{sum(t >= 3 for t in latencies)}; answered busy: {busy}")
    print(f"answers through response_url: {len(fake.calls)} Slack calls recorded")
    for name, rss, threads in stages:
        print(f"server {name}: RSS {rss:.0f} MB, {threads} threads")
    growth = stages[2][1] - stages[1][1]
    print(f"RSS growth from the first 100 to the end: {growth:+.0f} MB (goal: within 50 MB)")


if __name__ == "__main__":
    main()
