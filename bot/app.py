"""The Bolt app, built by a factory from validated settings (thin, as Bolt's template).

Listeners run on the request thread (``process_before_response``) and only acknowledge
and hand work to the bounded :class:`bot.services.WorkPool`, so every request is
acknowledged within Slack's 3 seconds however busy the workers are.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from sqlalchemy import Engine

from bot import listeners
from bot.access import Access
from bot.config import Secrets, Settings
from bot.sender import Sender, make_web_client
from bot.services import Services, SharedAnalysis, WorkPool

log = logging.getLogger(__name__)


def create_app(settings: Settings, secrets: Secrets, engine: Engine,
               client: WebClient | None = None) -> App:
    client = client or make_web_client(secrets.bot_token)
    app = App(
        client=client,
        signing_secret=secrets.signing_secret,
        process_before_response=True,
    )
    access = Access(settings, client)
    access.refresh_in_background()
    services = Services(settings, engine, Sender(client), access,
                        WorkPool(settings.serve.workers, settings.serve.queue),
                        SharedAnalysis(engine, settings))
    listeners.register(app, services)

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        # Errors escaping a listener (ours reply themselves); never echo internals to Slack.
        log.error("unhandled error for %s: %s", body.get("command") or body.get("type"),
                  error, exc_info=error)

    return app
