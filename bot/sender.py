"""The one module that sends anything to Slack.

Web API calls go through a ``WebClient`` whose base URL comes from
``VALUEMETRIC_SLACK_API_URL`` (default Slack's own), with slack_sdk's rate-limit retry
handler: a 429 is retried after its ``Retry-After``. Connection errors are not retried
for posts, because a reset after Slack accepted a message would post it twice.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from bot.blocks import Message

log = logging.getLogger(__name__)

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
RATE_LIMIT_RETRIES = 3


def slack_api_url(env: Mapping[str, str] | None = None) -> str:
    url = (os.environ if env is None else env).get("VALUEMETRIC_SLACK_API_URL") or \
        DEFAULT_SLACK_API_URL
    return url if url.endswith("/") else url + "/"


def make_web_client(token: str, base_url: str | None = None) -> WebClient:
    return WebClient(
        token=token or None, base_url=base_url or slack_api_url(),
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES)],
    )


class SecretRedactor(logging.Filter):
    """Masks Slack tokens and the signing secret in every log record."""

    TOKEN = re.compile(r"xox[a-z]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+")

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.TOKEN.sub("[redacted]", message)
        for secret in self.secrets:
            redacted = redacted.replace(secret, "[redacted]")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


@dataclass(frozen=True)
class PostOutcome:
    state: str  # sent | failed | unknown (the delivery ledger's states)
    ts: str | None
    error: str | None


@dataclass
class Sender:
    client: WebClient

    def respond(self, response_url: str, message: Message, *, in_channel: bool = False,
                fallback_user: str | None = None) -> bool:
        """Answer a slash command through its response_url; DM the user if that fails."""
        webhook = WebhookClient(
            response_url,
            retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES)],
        )
        try:
            response = webhook.send(text=message.text, blocks=message.blocks,
                                    response_type="in_channel" if in_channel else "ephemeral",
                                    replace_original=False)
            ok = response.status_code == 200
            failure = f"HTTP {response.status_code}: {response.body[:200]!r}"
        except OSError as exc:  # connection refused, reset, timeout
            ok, failure = False, f"{type(exc).__name__}: {exc}"
        if ok:
            return True
        log.warning("response_url post failed (%s)%s", failure,
                    "; sending a direct message instead" if fallback_user else "")
        if fallback_user:
            self.post(fallback_user, message)
        return False

    def post_tracked(self, channel: str, message: Message) -> PostOutcome:
        """chat.postMessage for the ledger: sent, failed (Slack refused) or unknown.

        "unknown" is a connection that broke after the request went out: Slack may have
        posted it, so the caller must not post it again.
        """
        try:
            response = self.client.chat_postMessage(channel=channel, text=message.text,
                                                    blocks=message.blocks, unfurl_links=False)
        except SlackApiError as exc:
            error = str(exc.response.get("error"))
            log.error("chat.postMessage to %s failed: %s", channel, error)
            return PostOutcome("failed", None, error)
        except (OSError, http.client.HTTPException) as exc:
            return PostOutcome("unknown", None, f"{type(exc).__name__}: {exc}")
        return PostOutcome("sent", str(response.get("ts")), None)

    def update(self, channel: str, ts: str, message: Message) -> bool:
        try:
            self.client.chat_update(channel=channel, ts=ts, text=message.text,
                                    blocks=message.blocks)
        except SlackApiError as exc:
            log.error("chat.update in %s failed: %s", channel, exc.response.get("error"))
            return False
        return True

    def post(self, channel: str, message: Message) -> str | None:
        """chat.postMessage; returns the message ts, or None when Slack refused it."""
        try:
            response = self.client.chat_postMessage(channel=channel, text=message.text,
                                                    blocks=message.blocks, unfurl_links=False)
        except SlackApiError as exc:
            log.error("chat.postMessage to %s failed: %s", channel, exc.response.get("error"))
            return None
        return str(response.get("ts"))

    def upload_png(self, channel: str, filename: str, content: bytes, title: str) -> bool:
        """Upload a PNG into a channel, or into a user's DM when ``channel`` is a user id."""
        try:
            if channel.startswith(("U", "W")):
                opened = self.client.conversations_open(users=channel)
                channel = str(opened["channel"]["id"])
            self.client.files_upload_v2(channel=channel, filename=filename, content=content,
                                        title=title)
        except SlackApiError as exc:
            log.error("chart upload to %s failed: %s", channel, exc.response.get("error"))
            return False
        except OSError as exc:  # the upload URL is a separate host; a chart is not worth a crash
            log.error("chart upload to %s failed: %s", channel, exc)
            return False
        return True

    def publish_home(self, user_id: str, view: dict[str, Any]) -> bool:
        """views.publish: the user's App Home tab."""
        try:
            self.client.views_publish(user_id=user_id, view=view)
        except SlackApiError as exc:
            log.error("views.publish for %s failed: %s", user_id, exc.response.get("error"))
            return False
        except OSError as exc:
            log.error("views.publish for %s failed: %s", user_id, exc)
            return False
        return True
