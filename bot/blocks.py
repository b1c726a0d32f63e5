"""Slack messages: a rendered mrkdwn document -> Block Kit within Slack's limits.

Templates write a small document format, one element per paragraph (blank-line separated):

* ``# Title`` -> a header block (plain text, at most 150 characters);
* ``---`` -> a divider;
* ``~ text`` -> a context block (small grey text);
* anything else -> a section of mrkdwn, split at line boundaries into texts of at most
  3,000 characters.

At most 50 blocks: past that the message ends with a context block saying how much was
left out. Every message carries a plain-text fallback for notifications and clients
that cannot show blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_TEXT = 2000
MAX_FALLBACK_TEXT = 3000


@dataclass(frozen=True)
class Message:
    """A Slack message: plain-text fallback plus Block Kit blocks (as JSON-ready dicts)."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _split(text: str, limit: int) -> list[str]:
    """Pieces of at most ``limit`` characters, cut at line ends where possible."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:  # one line longer than a whole section
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces


def _plain(mrkdwn: str) -> str:
    """The fallback text without bold and code marks.

    Entities stay escaped: Slack parses a message's ``text`` as mrkdwn too, so unescaping
    here would let a customer named <!channel> ping everyone through the notification.
    """
    return mrkdwn.replace("*", "").replace("`", "")


def to_message(document: str) -> Message:
    blocks: list[Block] = []
    fallback: list[str] = []
    for paragraph in (p.strip("\n") for p in document.split("\n\n")):
        if not paragraph.strip():
            continue
        if paragraph.startswith("# "):
            title = _plain(paragraph[2:].strip().replace("\n", " "))
            blocks.append(HeaderBlock(text=PlainTextObject(
                text=_truncate(title, MAX_HEADER_TEXT), emoji=False)))
            fallback.append(title)
        elif paragraph.strip() == "---":
            blocks.append(DividerBlock())
        elif paragraph.startswith("~ "):
            blocks.append(ContextBlock(elements=[MarkdownTextObject(
                text=_truncate(paragraph[2:], MAX_CONTEXT_TEXT))]))
        else:
            for piece in _split(paragraph, MAX_SECTION_TEXT):
                blocks.append(SectionBlock(text=MarkdownTextObject(text=piece)))
            fallback.append(_plain(paragraph))
    if len(blocks) > MAX_BLOCKS:
        left_out = len(blocks) - (MAX_BLOCKS - 1)
        blocks = blocks[: MAX_BLOCKS - 1]
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"{left_out} more blocks left out to fit Slack's limits; run the same "
                 "question with `valuemetric ask` for the full answer.")]))
    text = _truncate("\n".join(fallback), MAX_FALLBACK_TEXT) or "valuemetric"
    return Message(text=text, blocks=[b.to_dict() for b in blocks])
