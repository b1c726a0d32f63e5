"""One account against the thresholds and its peers, as known at the as-of date T.

* Facts as of T: an account that signs up after T is unknown; a churn after T is not known
  (the account is active); a churned account's tenure ends at its churn.
* Percentiles among active accounts (all, and on the same plan) are mid-rank: ties count
  half, so a zero level shared by most accounts is not "at the 80th percentile".
* The activation cutoff is about early usage (the first E days), so it is compared with the
  account's own early-window level, not its current level; an account whose early window
  has not closed by T has none yet. The expansion cutoff is about the current level.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from scipy import stats as sps

from analysis.dataset import Dataset
from analysis.thresholds import Thresholds


class UnknownAccount(KeyError):
    pass


@dataclass(frozen=True)
class CustomerMetric:
    metric: str
    unit: str
    level: float
    early_level: float | None  # over the account's first E days (compared with activation)
    activation: float | None
    expansion: float | None
    percentile: float | None  # among active accounts
    plan_percentile: float | None  # among active accounts on the same plan


@dataclass(frozen=True)
class Customer:
    as_of: dt.date
    account_id: str
    name: str
    plan: str
    owner: str | None
    active: bool
    arr: float
    tenure_days: int
    churn_date: dt.date | None
    metrics: tuple[CustomerMetric, ...]

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([m.__dict__ for m in self.metrics]).set_index("metric")


def _percentile(values: pd.Series, x: float) -> float | None:
    if values.empty:
        return None
    return float(sps.percentileofscore(values.to_numpy(), x, kind="mean"))


def describe_customer(ds: Dataset, account_id: str,
                      thresholds: Mapping[str, Thresholds]) -> Customer:
    if account_id not in ds.accounts.index:
        raise UnknownAccount(account_id)
    row: dict[Any, Any] = ds.accounts.loc[account_id].to_dict()
    active = account_id in ds.current.index
    # known at T, an account is either active or churned by then
    source = ds.current if active else ds.before_churn
    levels: dict[Any, float] = source.loc[account_id].astype(float).to_dict()
    peers = ds.current
    same_plan = peers[ds.active["plan"] == row["plan"]]
    early = (ds.survival_early.loc[account_id].astype(float).to_dict()
             if account_id in ds.survival_early.index else None)
    metrics = []
    for m in ds.metrics:
        t = thresholds.get(m.name)
        metrics.append(CustomerMetric(
            m.name, m.label, float(levels[m.name]),
            None if early is None else float(early[m.name]),
            t.activation.cutoff.value if t and t.activation.cutoff else None,
            t.expansion.cutoff.value if t and t.expansion.cutoff else None,
            _percentile(peers[m.name], float(levels[m.name])),
            _percentile(same_plan[m.name], float(levels[m.name])),
        ))
    churn = row["churn_date"]
    return Customer(
        ds.windows.as_of, account_id, str(row["name"]), str(row["plan"]),
        None if pd.isna(row["owner"]) else str(row["owner"]), active,
        float(row["arr"]) if active else 0.0, int(row["tenure_days"]),
        None if pd.isna(churn) else churn.date(), tuple(metrics),
    )
