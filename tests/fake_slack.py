"""A fake Slack Web API on 127.0.0.1 that records every call the bot makes.

It answers the Web API methods the bot uses under ``/api/``, response_url posts under
``/response/ID``, and file uploads under ``/upload/ID``. Failures can be queued per path
(``fail_next``) to test 429 retries and broken response URLs; status 0 records the call
and drops the connection without an answer.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


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

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, name: str = "r1") -> str:
        return f"{self.url}/response/{name}"

    def fail_next(self, path: str, status: int, headers: dict[str, str] | None = None,
                  body: bytes = b"") -> None:
        self.failures.setdefault(path, []).append((status, headers or {}, body))

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

    def _answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/api/apps.connections.open":
            return {"ok": True, "url": self.socket_mode_url}
        if path == "/api/auth.test":
            return {"ok": True, "user_id": "UBOT", "team_id": "T1", "bot_id": "B1",
                    "url": "https://example.slack.com/"}
        if path == "/api/chat.postMessage":
            with self.lock:
                self.ts_counter += 1
                ts = f"1700000000.{self.ts_counter:06d}"
            return {"ok": True, "channel": body.get("channel"), "ts": ts}
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
        if path == "/api/conversations.info":
            channel = self.channels.get(str(body.get("channel")))
            return {"ok": True, "channel": channel} if channel else {
                "ok": False, "error": "channel_not_found"}
        if path.startswith("/api/"):
            return {"ok": False, "error": "unknown_method"}
        return {}

    def start(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ctype = self.headers.get("Content-Type", "")
                body: dict[str, Any]
                if self.path.startswith("/upload/"):  # file bytes, whatever the content type
                    body = {"raw_bytes": len(raw), "png": raw.startswith(b"\x89PNG")}
                elif "json" in ctype:
                    body = json.loads(raw or b"{}")
                elif "x-www-form-urlencoded" in ctype:
                    body = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
                    for key in ("blocks",):
                        if key in body:
                            body[key] = json.loads(body[key])
                else:
                    body = {"raw_bytes": len(raw)}
                with fake.lock:
                    fake.calls.append(Call(self.path, dict(self.headers), body, time.monotonic()))
                    queued = fake.failures.get(self.path)
                    failure = queued.pop(0) if queued else None
                if failure is not None and failure[0] == 0:
                    # accepted, then the connection breaks before any answer
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
                if self.path.startswith(("/response/", "/upload/")):
                    payload = b"ok"
                    ctype_out = "text/plain"
                else:
                    payload = json.dumps(fake._answer(self.path, body)).encode()
                    ctype_out = "application/json"
                self.send_response(200)
                if self.path == "/api/auth.test" and fake.scopes is not None:
                    self.send_header("x-oauth-scopes", fake.scopes)
                self.send_header("Content-Type", ctype_out)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
