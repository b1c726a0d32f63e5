"""``/valuemetric``: acknowledge at once, answer after the ack through response_url.

Bolt runs this listener in its thread pool (``process_before_response`` is off), so the
HTTP request returns as soon as ``ack()`` is called and the analysis runs afterwards.
This is the only module that touches Bolt's request objects; the work itself is
:func:`bot.slash.answer` on a plain :class:`bot.slash.SlashRequest`.
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
            text=str(body.get("text", "")), user_id=str(body.get("user_id", "")),
            channel_id=str(body.get("channel_id", "")),
            response_url=str(body.get("response_url", "")),
        )
        denial = services.access.denial(request.user_id, request.channel_id)
        if denial:
            ack(text=denial)
            return
        ack()
        slash.answer(request, services)
