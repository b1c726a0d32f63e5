"""Serving Slack: HTTP mode (signed requests at /slack/events, GET /healthz) or Socket Mode.

HTTP mode runs on waitress, a production WSGI server: connections are read by one event
loop (a slow or idle client holds no thread and is dropped after ``CHANNEL_TIMEOUT``),
only complete requests reach the worker threads, and a body over ``MAX_BODY`` is answered
413 from its Content-Length before it is read. Slack requires https: put a TLS-terminating
proxy (nginx, Caddy, a cloud load balancer) in front, see the README.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from waitress.server import BaseWSGIServer, create_server

log = logging.getLogger(__name__)
EVENTS_PATH = "/slack/events"
MAX_BODY = 64 * 1024  # Slack's requests are a few KiB; anything larger is not Slack
MAX_HEADERS = 16 * 1024
CHANNEL_TIMEOUT = 15  # seconds a connection may sit idle or trickle a request
BACKLOG = 1024
CONNECTION_LIMIT = 1000

WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


def _plain(start_response: Any, status: str, text: str) -> list[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
    return [body]


def wsgi_app(app: App) -> WsgiApp:
    """Slack's requests go to Bolt (which verifies signatures: 401 when bad or stale).

    A request Bolt cannot even read (not UTF-8, not a form or JSON) is answered 400 with
    one log line: it did not come from Slack, and its traceback would only fill the log.
    """
    slack = SlackRequestHandler(app, path=EVENTS_PATH)

    def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
        client = environ.get("REMOTE_ADDR", "-")
        if path == "/healthz" and method == "GET":
            return _plain(start_response, "200 OK", "ok\n")
        if path != EVENTS_PATH or method != "POST":
            log.info("%s %s %s -> 404", client, method, path)
            return _plain(start_response, "404 Not Found", "not found\n")
        statuses: list[str] = []

        def recording(status: str, headers: Any, exc_info: Any = None) -> Any:
            statuses.append(status)
            return start_response(status, headers, exc_info)

        try:
            answer = slack(environ, recording)
        except Exception as exc:
            log.warning("%s POST %s -> 400: unreadable request (%s: %s)", client, path,
                        type(exc).__name__, str(exc)[:120])
            return _plain(start_response, "400 Bad Request", "bad request\n")
        log.info("%s POST %s -> %s", client, path, statuses[0] if statuses else "?")
        return answer

    return application


def make_http_server(app: App, host: str, port: int, threads: int = 8) -> BaseWSGIServer:
    server: BaseWSGIServer = create_server(
        wsgi_app(app), host=host, port=port, threads=threads, backlog=BACKLOG,
        connection_limit=CONNECTION_LIMIT, channel_timeout=CHANNEL_TIMEOUT,
        cleanup_interval=5, max_request_body_size=MAX_BODY,
        max_request_header_size=MAX_HEADERS, asyncore_use_poll=True, ident="valuemetric",
        expose_tracebacks=False)
    return server


def stop_http_server(server: BaseWSGIServer) -> None:
    """Stop accepting, finish the requests in hand, and end ``server.run()``."""
    server.close()
    server.task_dispatcher.shutdown()
    for channel in list(server._map.values()):  # open connections keep the loop alive
        channel.close()


def serve_http(app: App, host: str, port: int, threads: int) -> None:
    server = make_http_server(app, host, port, threads)
    print(f"valuemetric: listening on http://{host}:{server.effective_port}{EVENTS_PATH}",
          file=sys.stderr, flush=True)
    server.run()


def serve_socket_mode(app: App, app_token: str) -> None:
    print("valuemetric: connecting to Slack in Socket Mode", file=sys.stderr, flush=True)
    SocketModeHandler(app, app_token).start()
