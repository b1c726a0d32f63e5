"""The one module that sends anything to Slack.

Web API calls go through a ``WebClient`` whose base URL comes from
``VALUEMETRIC_SLACK_API_URL`` (default Slack's own), with slack_sdk's rate-limit retry
handler: a 429 is retried after its ``Retry-After``. Connection errors are not retried
here for posts, because a reset after Slack accepted a message would post it twice; the
ledger's next run retries them, after looking for the post by its metadata when the
request may have reached Slack.
"""

from __future__ import annotations

import datetime as dt
import http.client
import logging
import os
import re
import urllib.error
from collections.abc import Mapping, Sequence
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
MIN_SECRET_LENGTH = 8
DELIVERY_EVENT = "valuemetric_delivery"  # Slack message metadata on every tracked post
HISTORY_PAGES = 20  # of 200 messages: how far back a reconciliation looks
# Slack's Web API answers refusals with HTTP 200 and ok=false: nothing was posted. An HTTP
# 5xx, a reset or a timeout after the request was written may have posted it.


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
        # a real secret is long; masking a short test value would mangle every log line
        self.secrets = [s for s in secrets if len(s) >= MIN_SECRET_LENGTH]

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


def classify_failure(exc: Exception) -> PostOutcome:
    """What a failed post means for the ledger: ``failed`` (retry) or ``unknown`` (check)."""
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        error = str(exc.response.get("error") or f"HTTP {status}")
        return PostOutcome("unknown" if status >= 500 else "failed", None, error)
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        # urllib wraps what fails while connecting and writing the request (refused, DNS,
        # TLS): the request never reached Slack
        return PostOutcome("failed", None, f"Slack unreachable: {exc.reason}")
    return PostOutcome("unknown", None, f"{type(exc).__name__}: {exc}")


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

    def post_tracked(self, channel: str, message: Message, delivery_ids: Sequence[int],
                     thread_ts: str | None = None) -> PostOutcome:
        """chat.postMessage for the ledger, carrying the delivery ids as message metadata.

        ``failed``: nothing was posted (Slack refused it, or the request never reached it);
        ``unknown``: the request was written and the answer lost, so it may be posted.
        """
        payload: dict[str, Any] = {"delivery": delivery_ids[0]}
        if len(delivery_ids) > 1:
            payload["deliveries"] = list(delivery_ids)
        try:
            response = self.client.chat_postMessage(
                channel=channel, text=message.text, blocks=message.blocks, unfurl_links=False,
                thread_ts=thread_ts,
                metadata={"event_type": DELIVERY_EVENT, "event_payload": payload})
        except Exception as exc:  # every failure is classified; none may escape
            outcome = classify_failure(exc)
            log.error("chat.postMessage to %s: %s (%s)", channel, outcome.state, outcome.error)
            return outcome
        return PostOutcome("sent", str(response.get("ts")), None)

    def find_posted(self, channel: str, since: dt.datetime,
                    thread_ts: str | None = None) -> dict[int, str] | None:
        """Delivery id -> ts of our tracked posts in ``channel`` (or one thread) since then.

        None when the history cannot be read (missing scope, Slack unreachable): the caller
        must then leave the delivery unresolved rather than guess.
        """
        found: dict[int, str] = {}
        oldest = f"{since.timestamp():.6f}"
        cursor: str | None = None
        try:
            for _ in range(HISTORY_PAGES):
                if thread_ts is None:
                    page = self.client.conversations_history(
                        channel=channel, oldest=oldest, include_all_metadata=True, limit=200,
                        cursor=cursor)
                else:
                    page = self.client.conversations_replies(
                        channel=channel, ts=thread_ts, oldest=oldest,
                        include_all_metadata=True, limit=200, cursor=cursor)
                for item in page.get("messages") or []:
                    metadata = item.get("metadata") or {}
                    if metadata.get("event_type") != DELIVERY_EVENT:
                        continue
                    event = metadata.get("event_payload") or {}
                    for delivery in event.get("deliveries") or [event.get("delivery")]:
                        if isinstance(delivery, int):
                            found[delivery] = str(item.get("ts"))
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                if cursor is None:
                    break
        except SlackApiError as exc:
            log.error("reading the history of %s failed: %s (the app needs the "
                      "channels:history and groups:history scopes)", channel,
                      exc.response.get("error"))
            return None
        except (OSError, http.client.HTTPException) as exc:
            log.error("reading the history of %s failed: %s", channel, exc)
            return None
        return found

    def check_token(self) -> str | None:
        """auth.test: None when the bot token works, else what is wrong and the fix."""
        try:
            self.client.auth_test()
        except SlackApiError as exc:
            error = exc.response.get("error")
            return (f"Slack refused SLACK_BOT_TOKEN ({error}): it is invalid or was revoked; "
                    "reinstall the app and set the new xoxb- token")
        except (OSError, http.client.HTTPException) as exc:
            return (f"cannot reach Slack at {self.client.base_url} ({type(exc).__name__}: "
                    f"{exc}); check the network or VALUEMETRIC_SLACK_API_URL")
        return None

    def update(self, channel: str, ts: str, message: Message) -> bool:
        try:
            self.client.chat_update(channel=channel, ts=ts, text=message.text,
                                    blocks=message.blocks)
        except SlackApiError as exc:
            log.error("chat.update in %s failed: %s", channel, exc.response.get("error"))
            return False
        except (OSError, http.client.HTTPException) as exc:
            log.error("chat.update in %s failed: %s", channel, exc)
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
        except (OSError, http.client.HTTPException) as exc:
            log.error("chat.postMessage to %s failed: %s", channel, exc)
            return None
        return str(response.get("ts"))

    def upload_png(self, channel: str, filename: str, content: bytes, title: str,
                   thread_ts: str | None = None) -> bool:
        """Upload a PNG into a channel (or a thread there), or into a user's DM when
        ``channel`` is a user id."""
        try:
            if channel.startswith(("U", "W")):
                opened = self.client.conversations_open(users=channel)
                channel = str(opened["channel"]["id"])
            self.client.files_upload_v2(channel=channel, filename=filename, content=content,
                                        title=title, thread_ts=thread_ts)
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
