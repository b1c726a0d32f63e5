"""Answering a slash command: parse, compute through the reports layer, render, send.

Every error becomes a short reply here, in one place: usage mistakes get the usage line
and the closest names, missing data says what to import, anything else is logged with
its traceback and answered without internals (no stack trace, no SQL).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from analysis.dataset import NoData
from bot import render, reports
from bot.blocks import Message, to_message
from bot.commands import UsageError, parse
from bot.render import escape_mrkdwn
from bot.services import Services

log = logging.getLogger(__name__)
BUSY = "valuemetric is busy answering other questions; please try again in a minute."


def unescape_slack(text: str) -> str:
    """Slack sends ``&``, ``<`` and ``>`` in command text as HTML entities."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@dataclass(frozen=True)
class SlashRequest:
    text: str  # as the user typed it (unescaped)
    user_id: str
    channel_id: str
    response_url: str


def error_message(exc: Exception, request: SlashRequest) -> Message:
    if isinstance(exc, UsageError):
        lines = str(exc).split("\n")
        return to_message("\n".join(f"`{escape_mrkdwn(line)}`" if line.startswith("usage:")
                                    else escape_mrkdwn(line) for line in lines))
    if isinstance(exc, NoData):
        return to_message(f"Nothing to analyse yet: {escape_mrkdwn(exc)}")
    reference = uuid.uuid4().hex[:8]
    log.exception("/valuemetric %r failed (ref %s)", request.text, reference)
    return to_message(f"Sorry, `/valuemetric {escape_mrkdwn(request.text)}` failed. The "
                      f"error is logged with reference `{reference}`; please tell your admin.")


def _chart(context: reports.Context, metric: str) -> bytes | None:
    from bot.charts import threshold_chart  # matplotlib is slow to import; only when needed

    proxies = context.correlation.get(metric).alignment.proxies
    return threshold_chart(metric, proxies, context.thresholds(metric))


def handle(request: SlashRequest, services: Services) -> None:
    """The work after the ack, on a worker: access check, then the answer."""
    denial = services.access.denial(request.user_id, request.channel_id)
    if denial:
        services.sender.respond(request.response_url, to_message(denial))
        return
    answer(request, services)


def answer(request: SlashRequest, services: Services) -> None:
    share = False
    chart: bytes | None = None
    try:
        context = services.analysis.context()
        command = parse(request.text, context.names())
        share = command.share and services.access.may_share_in(request.channel_id)
        report = reports.answer(context, command)
        message = render.render_slack(report)
        if command.name == "thresholds":
            chart = _chart(context, command.argument)
            if chart is not None and not share:  # a private answer cannot carry a file
                message = Message(message.text, [*message.blocks[:48], {
                    "type": "context", "elements": [{"type": "mrkdwn", "text":
                        "The chart is in your direct messages with valuemetric."}]}])
        if command.share and not share:
            message = Message(message.text, [*message.blocks[:49], {
                "type": "context", "elements": [{"type": "mrkdwn", "text":
                    "Only you can see this: sharing is not enabled in this channel."}]}])
    except Exception as exc:
        message = error_message(exc, request)
    services.sender.respond(request.response_url, message, in_channel=share,
                            fallback_user=request.user_id)
    if chart is not None:
        # shared answers get the chart in the channel; private ones in the user's DM
        services.sender.upload_png(request.channel_id if share else request.user_id,
                                   "thresholds.png", chart, "Value rate by usage level")
