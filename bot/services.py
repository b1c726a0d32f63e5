"""What the Slack doors need, built once at start-up from the validated settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from bot.access import Access
from bot.config import Settings
from bot.sender import Sender


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: Engine
    sender: Sender
    access: Access
