"""A company's data in its own shape, with effects and data problems planted on purpose.

Tables (as a product team keeps them): ``organizations`` (id, name, tier, created_at and
canceled_at timestamps), ``product_events`` (org_id, user_id, name, occurred_at; a quiet week
simply has no rows), ``billing_invoices`` (monthly or annual service periods, some in EUR,
the current month not yet invoiced for many monthly customers, unpaid drafts) and
``state_snapshots`` (integrations, written only when the number changes).

Planted effects: MRR is 20 per seat (a plan base on top), and active users track seats, so
``active_users`` correlates strongly with ARR; accounts with few active users churn more.
Planted problems: events from an organisation that is not in ``organizations``, one event
dated in 2099, and 40% of monthly customers not yet invoiced for the last month.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

END = dt.date(2025, 12, 28)
START = dt.date(2024, 1, 1)
EUR_RATE = 1.08
GHOST = "org-ghost"

CONFIG = """
[analysis]
bootstrap_resamples = 200
permutations = 50

[revenue]
currency = "USD"
rates = { EUR = 1.08 }

[[metrics]]
name = "active_users"
category = "seat"
events = []
aggregate = "distinct_users"
period = "week"

[[metrics]]
name = "doc_edits"
category = "usage"
events = ["doc_edit"]
aggregate = "count"
period = "week"

[[metrics]]
name = "integrations"
category = "feature"
kind = "state"
"""

SOURCE_SQL = {
    "accounts": "SELECT id AS account_id, name, tier AS plan, created_at AS signup_date, "
                "canceled_at AS churn_date FROM organizations",
    "revenue": "SELECT org_id AS account_id, period_start, period_end, amount, currency "
               "FROM billing_invoices WHERE status = 'paid'",
    "events": "SELECT org_id AS account_id, user_id, name AS event, occurred_at AS timestamp "
              "FROM product_events",
    "usage": "SELECT org_id AS account_id, day AS date, metric, value FROM state_snapshots;",
}


@dataclass(frozen=True)
class Company:
    organizations: pd.DataFrame
    product_events: pd.DataFrame
    billing_invoices: pd.DataFrame
    state_snapshots: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"organizations": self.organizations, "product_events": self.product_events,
                "billing_invoices": self.billing_invoices,
                "state_snapshots": self.state_snapshots}


def _month_end(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)


def generate(n: int = 140, seed: int = 3) -> Company:
    rng = np.random.default_rng(seed)
    orgs, events, invoices, snaps = [], [], [], []
    span = (END - START).days - 90
    for i in range(n):
        org = f"org-{i:04d}"
        created = START + dt.timedelta(days=int(rng.integers(0, span)))
        seats = int(rng.integers(2, 30))
        tier = "business" if seats > 15 else "team"
        engaged = float(rng.uniform(0.2, 0.95))  # share of seats active in a week
        churn_p = 0.7 if engaged < 0.45 else 0.15
        canceled = None
        if rng.random() < churn_p:
            life = int(rng.integers(60, 400))
            if created + dt.timedelta(days=life) < END - dt.timedelta(days=14):
                canceled = created + dt.timedelta(days=life)
        last = (canceled - dt.timedelta(days=1)) if canceled else END
        orgs.append((org, f"Org {i}", tier,
                     dt.datetime.combine(created, dt.time(9, 30)),
                     dt.datetime.combine(canceled, dt.time(17)) if canceled else None))
        week = created
        while week <= last:
            if rng.random() > 0.15:  # a quiet week has no rows at all
                users = rng.binomial(seats, engaged)
                for u in range(users):
                    for _ in range(int(rng.integers(1, 4))):
                        moment = dt.datetime.combine(week, dt.time()) + dt.timedelta(
                            seconds=int(rng.integers(0, 7 * 86400)))
                        if moment.date() <= last:
                            events.append((org, f"{org}-u{u}", "doc_edit", moment))
                    if rng.random() < 0.5:
                        moment = dt.datetime.combine(week, dt.time(8)) + dt.timedelta(
                            seconds=int(rng.integers(0, 6 * 86400)))
                        if moment.date() <= last:
                            events.append((org, f"{org}-u{u}", "login", moment))
            week += dt.timedelta(days=7)
        level = int(rng.integers(0, 3))
        snaps.append((org, created, "integrations", level))
        day = created + dt.timedelta(days=int(rng.integers(20, 120)))
        while day <= last:
            level += 1 if rng.random() < 0.6 else -1 if level > 0 else 0
            snaps.append((org, day, "integrations", level))
            day += dt.timedelta(days=int(rng.integers(30, 150)))
        mrr = 20.0 * seats + (100 if tier == "business" else 0)
        currency = "EUR" if rng.random() < 0.2 else "USD"
        rate = EUR_RATE if currency == "EUR" else 1.0
        if rng.random() < 0.3:  # annual, billed for a year from signup
            start = created
            while start <= last:
                end = start.replace(year=start.year + 1) - dt.timedelta(days=1)
                invoices.append((org, start, end, round(12 * mrr / rate, 2), currency, "paid"))
                start = end + dt.timedelta(days=1)
        else:  # monthly, calendar months; the newest one not yet billed for many
            month = created.replace(day=1)
            while month <= last:
                behind = month == END.replace(day=1) and rng.random() < 0.4
                if not behind:
                    invoices.append((org, month, _month_end(month), round(mrr / rate, 2),
                                     currency, "paid"))
                month = _month_end(month) + dt.timedelta(days=1)
        if rng.random() < 0.1:
            invoices.append((org, END.replace(day=1), _month_end(END), 999999.0, "USD", "draft"))
    events.append((GHOST, "ghost-u0", "login", dt.datetime(2025, 12, 1, 10)))
    events.append((GHOST, "ghost-u0", "doc_edit", dt.datetime(2025, 12, 2, 10)))
    events.append(("org-0000", "org-0000-u0", "login", dt.datetime(2099, 1, 1)))
    return Company(
        pd.DataFrame(orgs, columns=["id", "name", "tier", "created_at", "canceled_at"]),
        pd.DataFrame(events, columns=["org_id", "user_id", "name", "occurred_at"]),
        pd.DataFrame(invoices, columns=["org_id", "period_start", "period_end", "amount",
                                        "currency", "status"]),
        pd.DataFrame(snaps, columns=["org_id", "day", "metric", "value"]))
