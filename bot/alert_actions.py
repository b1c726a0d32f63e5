"""What the alert buttons do: store the choice in the ledger and update the message in place.

The same ``[access]`` rules as commands apply. A click that cannot be applied (not
allowed, an alert the ledger does not know, an error) is answered with an ephemeral
message to the clicker, and the card is left as it was.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from analysis import ledger
from bot.blocks import Message, to_message
from bot.render import ACTION_DONE, ACTION_NOT_A_FIT, ACTION_SNOOZE, escape_mrkdwn
from bot.services import Services

log = logging.getLogger(__name__)
SNOOZE_DAYS = 30
ACTION_NAMES = {ACTION_SNOOZE: "snoozed", ACTION_DONE: "done", ACTION_NOT_A_FIT: "not_a_fit"}


@dataclass(frozen=True)
class AlertAction:
    action_id: str
    value: str  # "DELIVERY_ID" or, for "not a fit", "DELIVERY_ID|reason"
    user_id: str
    channel_id: str
    message_ts: str
    blocks: list[dict[str, Any]]
    text: str
    response_url: str = ""


def handle(action: AlertAction, services: Services, now: dt.datetime) -> str | None:
    """The work after the ack: check access, apply, or explain ephemerally why not."""
    denial = services.access.denial(action.user_id, action.channel_id)
    if denial:
        services.sender.respond(action.response_url, to_message(denial))
        return None
    try:
        return apply(action, services, now)
    except Exception:
        reference = uuid.uuid4().hex[:8]
        log.exception("alert button %s failed (ref %s)", action.action_id, reference)
        services.sender.respond(action.response_url, to_message(
            f"Sorry, that did not work; the alert is unchanged. The error is logged with "
            f"reference `{reference}`; please tell your admin."))
        return None


def apply(action: AlertAction, services: Services, now: dt.datetime) -> str | None:
    """Record the choice and update the alert message; returns the stored action, or None
    (after telling the clicker) when the alert is not one valuemetric knows."""
    delivery_text, _, reason = action.value.partition("|")
    engine = services.engine
    delivery = ledger.by_id(engine, int(delivery_text)) if delivery_text.isdigit() else None
    if delivery is None or delivery.kind != "alert" or delivery.channel != action.channel_id:
        services.sender.respond(action.response_url, to_message(
            "valuemetric has no record of this alert (it may come from another installation "
            "or a reset database), so nothing was changed."))
        return None
    name = ACTION_NAMES[action.action_id]
    ledger.record_action(engine, delivery.id, name, action.user_id, reason or None, now)
    if name == "snoozed":
        rule, account_id, _ = delivery.period.rsplit("|", 2)
        ledger.snooze(engine, account_id, rule, now + dt.timedelta(days=SNOOZE_DAYS), now)
    user = f"<@{escape_mrkdwn(action.user_id)}>"
    note = {"snoozed": f":zzz: Snoozed for {SNOOZE_DAYS} days by {user}",
            "done": f":white_check_mark: Done, by {user}",
            "not_a_fit": f":no_entry_sign: Not a fit ({escape_mrkdwn(reason)}), by {user}"}[name]
    blocks = [b for b in action.blocks if b.get("type") != "actions"]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    if not services.sender.update(action.channel_id, action.message_ts,
                                  Message(action.text, blocks)):
        services.sender.respond(action.response_url, to_message(
            f"Recorded as {name.replace('_', ' ')}, but Slack refused to update the alert "
            "message."))
    return name
