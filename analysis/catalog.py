"""The metric catalog: what each usage metric is, and how it rates as a value metric.

A metric's category decides whether it can be a price (seat, usage, record, transaction,
revenue share) or a gate (feature). When the catalog does not set it, it is inferred from
the name (users/seats/members -> seat; integrations/features/*_enabled -> feature;
contacts/records/projects/documents -> record; calls/requests/events/messages -> usage;
orders/transactions/payments -> transaction; anything else -> usage) and every report that
depends on it says "(inferred)" with the one-line fix. Why: without a catalog every metric
used to be "usage", so a feature flag could be recommended as the price.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from analysis.params import setting

# category -> (easy_to_understand, hard_to_game) defaults. A seat or a record is easy to
# explain on an invoice; raw usage volumes (API calls) are harder. Features are easy to
# understand but trivially gamed (switch it on, never use it); revenue share is neither.
CATEGORIES: dict[str, tuple[bool, bool]] = {
    "seat": (True, True),
    "usage": (False, True),
    "feature": (True, False),
    "record": (True, True),
    "transaction": (True, True),
    "flat": (True, True),
    "revenue_share": (False, False),
}

# Categories that describe "how much" a customer uses (candidates for price per X);
# feature-like metrics are candidates for gating to higher tiers instead.
PRICEABLE = {"seat", "usage", "record", "transaction", "revenue_share"}
GATEABLE = {"feature"}

# name words -> category, checked in this order (a "features_enabled" is a feature)
NAME_WORDS: tuple[tuple[str, frozenset[str]], ...] = (
    ("seat", frozenset({"user", "users", "seat", "seats", "member", "members", "licenses",
                        "license", "mau", "dau"})),
    ("feature", frozenset({"integration", "integrations", "feature", "features", "enabled",
                           "addon", "addons", "module", "modules"})),
    ("record", frozenset({"contact", "contacts", "record", "records", "project", "projects",
                          "document", "documents", "docs", "files", "leads", "deals"})),
    ("transaction", frozenset({"order", "orders", "transaction", "transactions", "payment",
                               "payments", "invoices", "purchases"})),
    ("usage", frozenset({"call", "calls", "request", "requests", "event", "events",
                         "message", "messages", "minutes", "sessions", "queries"})),
)


def infer_category(name: str) -> str:
    """The category a metric's name suggests ("usage" when nothing matches)."""
    words = set(re.split(r"[^a-z0-9]+", name.lower()))
    return next((category for category, known in NAME_WORDS if words & known), "usage")


# Length of a metric's period in days. A month is 30 days ending at the window's end (not a
# calendar month), so every account's window holds the same whole periods.
PERIOD_DAYS = {"day": 1, "week": 7, "month": 30}
AGGREGATES = ("count", "distinct_users", "sum")
KINDS = ("count", "state")


@dataclass(frozen=True)
class Metric:
    name: str = setting(help="metric name as it appears in usage.metric")
    category: str = setting("", help="one of " + ", ".join(CATEGORIES)
                            + " (empty: inferred from the name)")
    unit: str = setting("", help="unit shown after numbers, e.g. 'active users'")
    description: str = setting("", help="what it measures, e.g. 'team adoption'")
    easy_to_understand: bool | None = setting(None, help="override the category's default")
    hard_to_game: bool | None = setting(None, help="override the category's default")
    kind: str = setting("", help="count (per period; no row = 0) or state (the last snapshot "
                        "holds); default: count for event metrics, state for snapshots")
    events: list[str] | None = setting(None, help="define the metric from events with these "
                                       "names ([] = every event) instead of usage snapshots")
    aggregate: str = setting("count", help="event metrics: count | distinct_users | sum "
                             "(of value)")
    period: str = setting("week", help="event metrics: day | week | month; the level is the "
                          "mean per period over the window")
    max_age_days: int = setting(366, help="state metrics: a snapshot holds at most this many "
                                "days without a newer one")

    def __post_init__(self) -> None:
        # frozen: the inferred category is filled in once, here, and remembered as inferred
        object.__setattr__(self, "_category_inferred", not self.category)
        if not self.category:
            object.__setattr__(self, "category", infer_category(self.name))
        if self.category not in CATEGORIES:
            raise ValueError(
                f"metric '{self.name}': category '{self.category}' is not one of "
                + ", ".join(CATEGORIES)
            )
        for key, value, allowed in (("kind", self.kind, ("", *KINDS)),
                                    ("aggregate", self.aggregate, AGGREGATES),
                                    ("period", self.period, tuple(PERIOD_DAYS))):
            if value not in allowed:
                raise ValueError(f"metric '{self.name}': {key} '{value}' is not one of "
                                 + ", ".join(a for a in allowed if a))
        if self.from_events and self.kind == "state":
            raise ValueError(f"metric '{self.name}': an event metric counts events; remove "
                             "kind = \"state\" or define it from usage snapshots")
        if self.max_age_days < 1:
            raise ValueError(f"metric '{self.name}': max_age_days must be at least 1")

    @property
    def from_events(self) -> bool:
        return self.events is not None

    @property
    def semantics(self) -> str:
        """``count`` or ``state`` (events count; snapshots hold unless configured)."""
        return self.kind or ("count" if self.from_events else "state")

    @property
    def category_inferred(self) -> bool:
        return bool(self.__dict__["_category_inferred"])

    @property
    def category_fix(self) -> str:
        """The one line that overrides an inferred category."""
        return (f'[[metrics]] name = "{self.name}" category = "{self.category}" (or another of '
                + ", ".join(CATEGORIES) + ")")

    @property
    def is_easy_to_understand(self) -> bool:
        if self.easy_to_understand is not None:
            return self.easy_to_understand
        return CATEGORIES[self.category][0]

    @property
    def is_hard_to_game(self) -> bool:
        if self.hard_to_game is not None:
            return self.hard_to_game
        return CATEGORIES[self.category][1]

    @property
    def label(self) -> str:
        return self.unit or self.name.replace("_", " ")

    @property
    def singular(self) -> str:
        """'active users' -> 'active user', for "price per ..."."""
        label = self.label
        return label[:-1] if label.endswith("s") and not label.endswith("ss") else label


def resolve_catalog(configured: list[Metric], in_data: list[str]) -> list[Metric]:
    """The configured catalog, or one default entry per metric found in the data."""
    if configured:
        return list(configured)
    return [Metric(name=name) for name in sorted(in_data)]
