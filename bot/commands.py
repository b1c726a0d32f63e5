"""The ``/valuemetric`` command language, shared by Slack and ``valuemetric ask``."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

# name -> (argument placeholder or "", one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "help": ("[TERM]", "what valuemetric can answer, or what a term such as AUC means"),
    "metrics": ("", "the metric catalog and what each measures"),
    "correlate": ("", "which usage predicts ARR, retention and expansion"),
    "segments": ("", "average usage of high-value vs churned customers"),
    "thresholds": ("METRIC", "activation, expansion and price-increase levels of a metric"),
    "customer": ("ACCOUNT", "one account against the thresholds and its peers"),
    "recommend": ("", "the value metric to price on and features to gate"),
    "simulate": ("METRIC", "re-price active accounts per unit of a metric"),
    "digest": ("", "preview the weekly digest"),
    "alerts": ("", "recent expansion-threshold crossings"),
}
SHARE_WORD = "share"


class UsageError(Exception):
    """The command line is not understood; the message holds the usage and suggestions."""


@dataclass(frozen=True)
class Command:
    name: str
    argument: str = ""
    share: bool = False


def usage_line(name: str | None = None) -> str:
    if name is not None:
        arg = COMMANDS[name][0]
        return f"usage: /valuemetric {name}{' ' + arg if arg else ''}"
    return "usage: /valuemetric " + " | ".join(
        f"{n} {a}".strip() for n, (a, _) in COMMANDS.items())


def closest(word: str, choices: Sequence[str], n: int = 3) -> list[str]:
    lowered = {c.lower(): c for c in choices}
    matches = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[m] for m in matches]


def suggestion(word: str, choices: Sequence[str]) -> str:
    near = closest(word, choices)
    return f" Did you mean {' or '.join(near)}?" if near else ""


def parse(text: str, metrics: Sequence[str]) -> Command:
    """Parse what follows ``/valuemetric``; empty text means help.

    Metric names are checked here; account ids are checked by the reports layer, which
    knows them.
    """
    words = text.split()
    share = bool(words) and words[-1].lower() == SHARE_WORD
    if share:
        words = words[:-1]
    if not words:
        return Command("help", share=share)
    name = words[0].lower()
    if name not in COMMANDS:
        raise UsageError(f"unknown command '{words[0]}'.{suggestion(words[0], list(COMMANDS))}\n"
                         + usage_line())
    placeholder = COMMANDS[name][0]
    rest = " ".join(words[1:])
    if not placeholder:
        if rest:
            raise UsageError(f"'{name}' takes no argument.\n{usage_line(name)}")
        return Command(name, share=share)
    if not rest and placeholder.startswith("["):  # an optional argument
        return Command(name, share=share)
    if not rest:
        hint = f" Metrics: {', '.join(metrics)}." if placeholder == "METRIC" else ""
        raise UsageError(f"'{name}' needs {placeholder}.{hint}\n{usage_line(name)}")
    if placeholder == "METRIC":
        by_lower = {m.lower(): m for m in metrics}
        if rest.lower() not in by_lower:
            near = suggestion(rest, metrics) or f" Metrics: {', '.join(metrics)}."
            raise UsageError(f"unknown metric '{rest}'.{near}\n{usage_line(name)}")
        rest = by_lower[rest.lower()]
    return Command(name, rest, share)
