"""One account against the thresholds and its peers."""

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
    return float(sps.percentileofscore(values.to_numpy(), x, kind="weak"))


def describe_customer(ds: Dataset, account_id: str,
                      thresholds: Mapping[str, Thresholds]) -> Customer:
    if account_id not in ds.accounts.index:
        raise UnknownAccount(account_id)
    row: dict[Any, Any] = ds.accounts.loc[account_id].to_dict()
    active = account_id in ds.current.index
    levels: dict[Any, float] = {m: 0.0 for m in ds.metric_names}  # signed up after T
    if active:
        levels = ds.current.loc[account_id].astype(float).to_dict()
    elif account_id in ds.before_churn.index:
        levels = ds.before_churn.loc[account_id].astype(float).to_dict()
    peers = ds.current
    same_plan = peers[ds.active["plan"] == row["plan"]]
    metrics = []
    for m in ds.metrics:
        t = thresholds.get(m.name)
        metrics.append(CustomerMetric(
            m.name, m.label, float(levels[m.name]),
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
