"""Who may ask, and where answers with revenue may be shared.

Checked after the request is acknowledged (on a worker thread): a user group's members
come from a cache that a background thread refreshes, so a check rarely waits on Slack.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import Settings

log = logging.getLogger(__name__)
GROUP_CACHE_SECONDS = 300
NOT_AUTHORIZED = "You are not authorized to use valuemetric; ask an admin to add you."


@dataclass
class Access:
    settings: Settings
    client: WebClient
    _groups: dict[str, tuple[float, set[str]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _fetch(self, group: str) -> set[str]:
        try:
            users = set(self.client.usergroups_users_list(usergroup=group).get("users") or [])
        except SlackApiError as exc:
            log.error("usergroups.users.list %s failed: %s", group, exc.response.get("error"))
            users = set()
        except OSError as exc:
            log.error("usergroups.users.list %s failed: %s", group, exc)
            with self._lock:  # keep what we knew while Slack is unreachable
                cached = self._groups.get(group)
            users = cached[1] if cached else set()
        with self._lock:
            self._groups[group] = (time.monotonic(), users)
        return users

    def _group_members(self, group: str) -> set[str]:
        with self._lock:
            cached = self._groups.get(group)
        if cached and time.monotonic() - cached[0] < 2 * GROUP_CACHE_SECONDS:
            return cached[1]
        return self._fetch(group)  # cold (or the refresher has stalled)

    def refresh_in_background(self, every: float = GROUP_CACHE_SECONDS) -> None:
        """Keep the allowed user groups' members fresh from a daemon thread."""
        groups = self.settings.access.allowed_usergroups
        if not groups:
            return

        def refresh() -> None:
            while True:
                for group in groups:
                    self._fetch(group)
                time.sleep(every)

        threading.Thread(target=refresh, name="valuemetric-usergroups", daemon=True).start()

    def denial(self, user_id: str, channel_id: str) -> str | None:
        """Why this user may not ask here, or None when they may."""
        rules = self.settings.access
        if rules.allowed_channels and channel_id not in rules.allowed_channels:
            return "valuemetric is not enabled in this channel."
        if rules.allowed_users or rules.allowed_usergroups:
            if user_id in rules.allowed_users:
                return None
            if any(user_id in self._group_members(g) for g in rules.allowed_usergroups):
                return None
            return NOT_AUTHORIZED
        return None

    def may_share_in(self, channel_id: str) -> bool:
        slack = self.settings.slack
        return channel_id in slack.share_channels or (
            bool(slack.digest_channel) and channel_id == slack.digest_channel)
