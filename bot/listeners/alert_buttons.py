"""Buttons on alert messages: Snooze 30 days, Done, Not a fit (with a reason)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from slack_bolt import Ack, App

from bot import alert_actions
from bot.render import ACTION_DONE, ACTION_NOT_A_FIT, ACTION_SNOOZE
from bot.services import Services


def register(app: App, services: Services) -> None:
    def on_action(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        value = action.get("value") or (action.get("selected_option") or {}).get("value", "")
        message = body.get("message") or {}
        alert_actions.apply(alert_actions.AlertAction(
            action_id=str(action["action_id"]), value=str(value),
            user_id=str(body["user"]["id"]), channel_id=str(body["channel"]["id"]),
            message_ts=str(message.get("ts", "")), blocks=list(message.get("blocks") or []),
            text=str(message.get("text", "")),
        ), services, dt.datetime.now(dt.UTC))

    for action_id in (ACTION_SNOOZE, ACTION_DONE, ACTION_NOT_A_FIT):
        app.action(action_id)(on_action)
