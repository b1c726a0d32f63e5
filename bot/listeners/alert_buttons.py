"""Buttons on alert messages: Snooze 30 days, Done, Not a fit (with a reason).

Acknowledged on the request thread before anything else; the work (access check, ledger,
card update) runs on the worker pool and answers problems ephemerally.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from slack_bolt import Ack, App

from bot import alert_actions
from bot.blocks import to_message
from bot.render import ACTION_DONE, ACTION_NOT_A_FIT, ACTION_SNOOZE
from bot.services import Services
from bot.slash import BUSY


def register(app: App, services: Services) -> None:
    def on_action(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        value = action.get("value") or (action.get("selected_option") or {}).get("value", "")
        message = body.get("message") or {}
        click = alert_actions.AlertAction(
            action_id=str(action["action_id"]), value=str(value),
            user_id=str((body.get("user") or {}).get("id", "")),
            channel_id=str((body.get("channel") or {}).get("id", "")),
            message_ts=str(message.get("ts", "")), blocks=list(message.get("blocks") or []),
            text=str(message.get("text", "")), response_url=str(body.get("response_url", "")),
        )
        if not services.pool.submit(
                lambda: alert_actions.handle(click, services, dt.datetime.now(dt.UTC))):
            # the ack is already on its way; say "busy" without holding this thread
            threading.Thread(target=services.sender.respond,
                             args=(click.response_url, to_message(BUSY)), daemon=True).start()

    for action_id in (ACTION_SNOOZE, ACTION_DONE, ACTION_NOT_A_FIT):
        app.action(action_id)(on_action)
