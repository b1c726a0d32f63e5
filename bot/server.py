"""Serving Slack: HTTP mode (signed requests at /slack/events, GET /healthz) or Socket Mode."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler

log = logging.getLogger(__name__)
EVENTS_PATH = "/slack/events"


def wsgi_app(app: App) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
    """Slack's requests go to Bolt (which verifies signatures: 401 when bad or stale)."""
    slack = SlackRequestHandler(app, path=EVENTS_PATH)

    def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz" and environ.get("REQUEST_METHOD") == "GET":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        return slack(environ, start_response)

    return application


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # one thread per request, so slow clients never delay an ack


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


def make_http_server(app: App, host: str, port: int) -> WSGIServer:
    return make_server(host, port, wsgi_app(app), server_class=_ThreadingServer,
                       handler_class=_Handler)


def serve_http(app: App, host: str, port: int) -> None:
    server = make_http_server(app, host, port)
    print(f"valuemetric: listening on http://{host}:{server.server_port}{EVENTS_PATH}",
          file=sys.stderr, flush=True)
    server.serve_forever()


def serve_socket_mode(app: App, app_token: str) -> None:
    print("valuemetric: connecting to Slack in Socket Mode", file=sys.stderr, flush=True)
    SocketModeHandler(app, app_token).start()
