"""What the alert buttons do: store the choice in the ledger and update the message in place."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from analysis import ledger
from bot.blocks import Message
from bot.render import ACTION_DONE, ACTION_NOT_A_FIT, ACTION_SNOOZE, escape_mrkdwn
from bot.services import Services

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


def apply(action: AlertAction, services: Services, now: dt.datetime) -> str:
    """Record the choice and update the alert message; returns the stored action."""
    delivery_id, _, reason = action.value.partition("|")
    name = ACTION_NAMES[action.action_id]
    engine = services.engine
    ledger.record_action(engine, int(delivery_id), name, action.user_id, reason or None, now)
    delivery = ledger.by_message(engine, action.channel_id, action.message_ts)
    if name == "snoozed" and delivery is not None:
        rule, account_id, _ = delivery.period.rsplit("|", 2)
        ledger.snooze(engine, account_id, rule, now + dt.timedelta(days=SNOOZE_DAYS), now)
    user = f"<@{escape_mrkdwn(action.user_id)}>"
    note = {"snoozed": f":zzz: Snoozed for {SNOOZE_DAYS} days by {user}",
            "done": f":white_check_mark: Done, by {user}",
            "not_a_fit": f":no_entry_sign: Not a fit ({escape_mrkdwn(reason)}), by {user}"}[name]
    blocks = [b for b in action.blocks if b.get("type") != "actions"]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    services.sender.update(action.channel_id, action.message_ts, Message(action.text, blocks))
    return name
