"""``/valuemetric``: acknowledge at once, answer after the ack through response_url.

Bolt runs this listener on the request thread (``process_before_response``), so it must
not touch Slack or the database: it only hands the work to the bounded worker pool and
acknowledges, with a "busy" note when the pool is full. This is the only module that
touches Bolt's request objects; the work itself is :func:`bot.slash.handle` on a plain
:class:`bot.slash.SlashRequest`.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot import slash
from bot.services import Services

COMMAND = "/valuemetric"


def register(app: App, services: Services) -> None:
    @app.command(COMMAND)
    def valuemetric_command(ack: Ack, body: dict[str, Any]) -> None:
        request = slash.SlashRequest(
            text=slash.unescape_slack(str(body.get("text", ""))),
            user_id=str(body.get("user_id", "")),
            channel_id=str(body.get("channel_id", "")),
            response_url=str(body.get("response_url", "")),
        )
        if services.pool.submit(lambda: slash.handle(request, services)):
            ack()
        else:
            ack(text=slash.BUSY)
