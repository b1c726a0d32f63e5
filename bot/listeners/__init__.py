"""Bolt listeners, registered by feature (as in Bolt's starter template)."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners import alert_buttons, commands, home
from bot.services import Services


def register(app: App, services: Services) -> None:
    commands.register(app, services)
    alert_buttons.register(app, services)
    home.register(app, services)
