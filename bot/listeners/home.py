"""The App Home tab: ``app_home_opened`` -> a view of the shared analysis through
``views.publish``."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot import home
from bot.services import Services


def register(app: App, services: Services) -> None:
    @app.event("app_home_opened")
    def on_home_opened(event: dict[str, Any]) -> None:
        # Bolt acknowledges events itself before this runs; the Messages tab opens too
        if event.get("tab", "home") == "home":
            home.opened(services.analysis.context, services.sender, str(event["user"]))
