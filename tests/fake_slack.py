"""A fake Slack Web API on 127.0.0.1 that records every call the bot makes.

It answers the Web API methods the bot uses under ``/api/``, response_url posts under
``/response/ID``, and file uploads under ``/upload/ID``. Posted messages are kept per
channel (with their metadata and thread) and served back by ``conversations.history``
and ``conversations.replies`` as Slack does, so exactly-once delivery can be checked
against what a channel really shows.

Failure modes, to test a bot against an unreliable Slack:

* ``fail_next(path, status, headers, body)`` queues an answer for the next call to a
  path (429 with Retry-After, 500, ...); status 0 handles the call (a post is posted) and
  then drops the connection without an answer;
* ``drop_next(path)`` drops the connection before handling the call (nothing posted);
* ``refuse_connections()`` / ``accept_connections()``: the API is down / back (same port);
* ``delay[path] = seconds``: slow answers;
* ``joined``: when set, posting to a channel not in it answers ``not_in_channel``;
  ``archived`` channels answer ``is_archived``;
* blocks beyond Slack's limits answer ``invalid_blocks`` or ``msg_blocks_too_long``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DROP_AFTER, DROP_BEFORE = 0, -1
MAX_BLOCKS, MAX_SECTION_TEXT, MAX_BLOCK_TEXT = 50, 3000, 12_000


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


def _block_texts(value: Any) -> list[str]:
    """Every "text" string inside blocks (what Slack counts toward its block text limit)."""
    if isinstance(value, dict):
        found = [value["text"]] if isinstance(value.get("text"), str) else []
        return found + [t for k, v in value.items() if k != "text" or not isinstance(v, str)
                        for t in _block_texts(v)]
    if isinstance(value, list):
        return [t for item in value for t in _block_texts(item)]
    return []


def block_problem(blocks: Any) -> str | None:
    """Slack's error for blocks it would refuse, or None."""
    if not isinstance(blocks, list):
        return None
    if len(blocks) > MAX_BLOCKS:
        return "invalid_blocks"
    for block in blocks:
        text = (block.get("text") or {}).get("text", "") if isinstance(block, dict) else ""
        if block.get("type") == "section" and len(text) > MAX_SECTION_TEXT:
            return "invalid_blocks"
    if sum(len(t) for t in _block_texts(blocks)) > MAX_BLOCK_TEXT:
        return "msg_blocks_too_long"
    return None


@dataclass
class FakeSlack:
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, list[tuple[int, dict[str, str], bytes]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    ts_counter: int = 0
    socket_mode_url: str = ""  # what apps.connections.open hands out (Socket Mode tests)
    scopes: str | None = None  # auth.test's x-oauth-scopes header, when set
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)  # conversations.info
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by channel
    delay: dict[str, float] = field(default_factory=dict)  # path -> seconds before answering
    joined: set[str] | None = None  # None: the bot may post anywhere
    archived: set[str] = field(default_factory=set)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, name: str = "r1") -> str:
        return f"{self.url}/response/{name}"

    def fail_next(self, path: str, status: int, headers: dict[str, str] | None = None,
                  body: bytes = b"") -> None:
        self.failures.setdefault(path, []).append((status, headers or {}, body))

    def drop_next(self, path: str) -> None:
        self.fail_next(path, DROP_BEFORE)

    def calls_to(self, path: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 30) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.calls_to(path)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"expected {count} calls to {path}, got {self.calls_to(path)}")

    def posted(self, channel: str) -> list[dict[str, Any]]:
        """Messages in a channel, oldest first, thread replies included."""
        with self.lock:
            return list(self.messages.get(channel, []))

    def _post_message(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = str(body.get("channel"))
        is_conversation = channel.startswith(("C", "G"))
        if is_conversation and channel in self.archived:
            return {"ok": False, "error": "is_archived"}
        if is_conversation and self.joined is not None and channel not in self.joined:
            return {"ok": False, "error": "not_in_channel"}
        problem = block_problem(body.get("blocks"))
        if problem:
            return {"ok": False, "error": problem}
        metadata = body.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        with self.lock:
            self.ts_counter += 1
            ts = f"{int(time.time())}.{self.ts_counter:06d}"
            self.messages.setdefault(channel, []).append({
                "ts": ts, "text": body.get("text"), "blocks": body.get("blocks"),
                "metadata": metadata, "thread_ts": body.get("thread_ts")})
        return {"ok": True, "channel": channel, "ts": ts}

    def _history(self, body: dict[str, Any], thread: bool) -> dict[str, Any]:
        channel = str(body.get("channel"))
        if channel.startswith(("C", "G")) and self.joined is not None \
                and channel not in self.joined:
            return {"ok": False, "error": "not_in_channel"}
        oldest = float(body.get("oldest") or 0)
        with_metadata = str(body.get("include_all_metadata")).lower() in ("1", "true")
        with self.lock:
            items = list(self.messages.get(channel, []))
        if thread:
            parent = str(body.get("ts"))
            items = [m for m in items if m["ts"] == parent or m["thread_ts"] == parent]
        else:
            items = [m for m in items if not m["thread_ts"]][::-1]  # newest first
        items = [m for m in items if float(m["ts"]) >= oldest]
        start = int(body.get("cursor") or 0)
        limit = int(body.get("limit") or 100)
        page = items[start:start + limit]
        shown = [{k: v for k, v in m.items() if v is not None and
                  (with_metadata or k != "metadata")} for m in page]
        more = start + limit < len(items)
        return {"ok": True, "messages": shown, "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def _answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/api/apps.connections.open":
            return {"ok": True, "url": self.socket_mode_url}
        if path == "/api/auth.test":
            return {"ok": True, "user_id": "UBOT", "team_id": "T1", "bot_id": "B1",
                    "url": "https://example.slack.com/"}
        if path == "/api/chat.postMessage":
            return self._post_message(body)
        if path == "/api/conversations.history":
            return self._history(body, thread=False)
        if path == "/api/conversations.replies":
            return self._history(body, thread=True)
        if path == "/api/chat.update":
            return {"ok": True, "channel": body.get("channel"), "ts": body.get("ts")}
        if path == "/api/conversations.open":
            return {"ok": True, "channel": {"id": "D0DM"}}
        if path == "/api/usergroups.users.list":
            return {"ok": True, "users": ["UGROUPMEMBER"]}
        if path == "/api/files.getUploadURLExternal":
            return {"ok": True, "upload_url": f"{self.url}/upload/F1", "file_id": "F1"}
        if path == "/api/files.completeUploadExternal":
            return {"ok": True, "files": [{"id": "F1", "title": "chart"}]}
        if path == "/api/views.publish":
            view = body["view"] if isinstance(body.get("view"), dict) else json.loads(body["view"])
            return {"ok": True, "view": {"id": "V1", **view}}
        if path == "/api/conversations.info":  # from ``channels``, kept in step with
            channel_id = str(body.get("channel"))  # ``joined`` and ``archived``
            info = self.channels.get(channel_id)
            if info is None:
                return {"ok": False, "error": "channel_not_found"}
            return {"ok": True, "channel": {
                **info, "is_archived": info.get("is_archived") or channel_id in self.archived,
                "is_member": info.get("is_member", False) if self.joined is None
                else channel_id in self.joined}}
        if path.startswith("/api/"):
            return {"ok": False, "error": "unknown_method"}
        return {}

    def _serve(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                path, _, query = self.path.partition("?")
                with fake.lock:
                    queued = fake.failures.get(path)
                    failure = queued.pop(0) if queued else None
                if failure is not None and failure[0] == DROP_BEFORE:
                    with fake.lock:
                        fake.calls.append(Call(path, dict(self.headers), {}, time.monotonic()))
                    self.close_connection = True
                    return
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ctype = self.headers.get("Content-Type", "")
                body: dict[str, Any]
                if path.startswith("/upload/"):  # file bytes, whatever the content type
                    body = {"raw_bytes": len(raw), "png": raw.startswith(b"\x89PNG")}
                elif "json" in ctype:
                    body = json.loads(raw or b"{}")
                elif "x-www-form-urlencoded" in ctype:
                    body = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
                    for key in ("blocks", "metadata"):
                        if key in body:
                            body[key] = json.loads(body[key])
                else:
                    body = {"raw_bytes": len(raw)}
                body.update({k: v[0] for k, v in urllib.parse.parse_qs(query).items()})
                with fake.lock:
                    fake.calls.append(Call(path, dict(self.headers), body, time.monotonic()))
                    delay = fake.delay.get(path, 0.0)
                if delay:
                    time.sleep(delay)
                if failure is not None and failure[0] == DROP_AFTER:
                    # handled (a message is posted), then the connection breaks unanswered
                    fake._answer(path, body)
                    self.close_connection = True
                    return
                if failure is not None:
                    status, headers, payload = failure
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if path.startswith(("/response/", "/upload/")):
                    payload = b"ok"
                    ctype_out = "text/plain"
                else:
                    payload = json.dumps(fake._answer(path, body)).encode()
                    ctype_out = "application/json"
                self.send_response(200)
                if path == "/api/auth.test" and fake.scopes is not None:
                    self.send_header("x-oauth-scopes", fake.scopes)
                self.send_header("Content-Type", ctype_out)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def start(self) -> FakeSlack:
        self._serve()
        return self

    def refuse_connections(self) -> None:
        """The API is down: connections to its port are refused until accepted again."""
        self.stop()

    def accept_connections(self) -> None:
        self._serve()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
