"""Slack messages: a rendered mrkdwn document -> Block Kit within Slack's limits.

Templates write a small document format, read line by line:

* ``# Title`` -> a header block (plain text, at most 150 characters);
* ``---`` -> a divider;
* ``~ text`` -> a context block (small grey text);
* anything else -> sections of mrkdwn, one per blank-line separated paragraph, split at
  line boundaries into texts of at most 3,000 characters.

A marker line ends the paragraph before it, so ``---`` or ``~`` can never leak into Slack
as literal text, whatever the blank lines around them.

Slack refuses a message with more than 50 blocks or about 12,000 characters of block text
(``msg_blocks_too_long``). :func:`to_messages` splits a long document into several
messages instead of clipping it, so every line stays visible; :func:`to_message` is for
answers that must be one message and says what it left out. Every message carries a
plain-text fallback for notifications and clients that cannot show blocks.
"""

from __future__ import annotations

from collections.abc import Iterator
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
# Slack's undocumented cap on the text of all blocks together is about 12,000 characters;
# staying a little below leaves room for the buttons and notes added after rendering.
MAX_BLOCK_TEXT = 11_000


@dataclass(frozen=True)
class Chart:
    """A PNG to upload into the same conversation as the message that carries it."""

    png: bytes
    filename: str
    title: str


@dataclass(frozen=True)
class Message:
    """A Slack message: plain-text fallback, Block Kit blocks (JSON-ready dicts), a chart."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    chart: Chart | None = None


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


def block_text_length(value: Any) -> int:
    """Characters of every ``text`` string in blocks: what Slack's total limit counts."""
    if isinstance(value, dict):
        return sum(len(v) if k == "text" and isinstance(v, str) else block_text_length(v)
                   for k, v in value.items())
    if isinstance(value, list):
        return sum(block_text_length(v) for v in value)
    return 0


def _paragraphs(document: str) -> Iterator[tuple[str, str]]:
    """(kind, text) per element: header, divider, context or section."""
    current: list[str] = []

    def flush() -> Iterator[tuple[str, str]]:
        text = "\n".join(current).strip("\n")
        current.clear()
        if text.strip():
            yield "section", text

    for line in document.split("\n"):
        if line.startswith("# "):
            yield from flush()
            yield "header", line[2:].strip()
        elif line.strip() == "---":
            yield from flush()
            yield "divider", ""
        elif line.startswith("~ "):
            yield from flush()
            yield "context", line[2:].strip()
        elif not line.strip():
            yield from flush()
        else:
            current.append(line)
    yield from flush()


def _blocks(document: str) -> list[tuple[Block, str]]:
    """Blocks of a document, each with its share of the fallback text."""
    out: list[tuple[Block, str]] = []
    for kind, text in _paragraphs(document):
        if kind == "header":
            title = _plain(text)
            out.append((HeaderBlock(text=PlainTextObject(
                text=_truncate(title, MAX_HEADER_TEXT), emoji=False)), title))
        elif kind == "divider":
            out.append((DividerBlock(), ""))
        elif kind == "context":
            out.append((ContextBlock(elements=[MarkdownTextObject(
                text=_truncate(text, MAX_CONTEXT_TEXT))]), ""))
        else:
            for piece in _split(text, MAX_SECTION_TEXT):
                out.append((SectionBlock(text=MarkdownTextObject(text=piece)), _plain(piece)))
    return out


def _message(parts: list[tuple[Block, str]]) -> Message:
    text = _truncate("\n".join(t for _, t in parts if t), MAX_FALLBACK_TEXT) or "valuemetric"
    return Message(text=text, blocks=[b.to_dict() for b, _ in parts])


def to_messages(document: str, max_blocks: int = MAX_BLOCKS,
                max_text: int = MAX_BLOCK_TEXT) -> list[Message]:
    """The document as one message, or several in order when it exceeds Slack's limits."""
    messages: list[Message] = []
    current: list[tuple[Block, str]] = []
    size = 0
    for block, fallback in _blocks(document):
        length = block_text_length(block.to_dict())
        if current and (len(current) >= max_blocks or size + length > max_text):
            messages.append(_message(current))
            current, size = [], 0
        if isinstance(block, DividerBlock) and not current:
            continue  # a divider opening a message separates nothing
        current.append((block, fallback))
        size += length
    if current or not messages:
        messages.append(_message(current))
    return messages


def to_message(document: str) -> Message:
    """One message; past Slack's limits it ends with a note saying how much was left out."""
    first, *rest = to_messages(document, max_blocks=MAX_BLOCKS - 1)
    if not rest:
        return first
    left_out = sum(len(m.blocks) for m in rest)
    note = ContextBlock(elements=[MarkdownTextObject(
        text=f"{left_out} more blocks left out to fit Slack's limits; run the same question "
             "with `valuemetric ask` for the full answer.")])
    return Message(first.text, [*first.blocks, note.to_dict()])
