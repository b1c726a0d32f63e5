"""Re-price active accounts at a revenue-neutral price per unit of one metric.

The price per unit is total current MRR / total level, so total MRR is unchanged; an
account "pays more" when its new MRR exceeds the current one by more than 1%.
Concentration is the share of MRR from the top 10% of accounts, and the Gini coefficient.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.dataset import Dataset

TOLERANCE = 0.01


@dataclass(frozen=True)
class Mover:
    account_id: str
    name: str
    current_mrr: float
    new_mrr: float

    @property
    def change(self) -> float:
        return self.new_mrr - self.current_mrr


@dataclass(frozen=True)
class Simulation:
    as_of: dt.date
    metric: str
    n: int
    price_per_unit: float | None
    share_pay_more: float
    share_pay_less: float
    median_change: float
    median_change_pct: float | None
    top_increases: tuple[Mover, ...]
    top_decreases: tuple[Mover, ...]
    top10_share_before: float
    top10_share_after: float
    gini_before: float
    gini_after: float
    zero_usage_accounts: int
    note: str

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"before": [self.top10_share_before, self.gini_before],
             "after": [self.top10_share_after, self.gini_after]},
            index=["top10_share", "gini"],
        )


def gini(values: np.ndarray) -> float:
    v = np.sort(np.asarray(values, float))
    if len(v) == 0 or v.sum() == 0:
        return 0.0
    n = len(v)
    return float((2 * np.arange(1, n + 1) - n - 1).dot(v) / (n * v.sum()))


def top_share(values: np.ndarray, share: float = 0.1) -> float:
    v = np.sort(np.asarray(values, float))[::-1]
    if len(v) == 0 or v.sum() == 0:
        return 0.0
    k = max(1, int(np.ceil(share * len(v))))
    return float(v[:k].sum() / v.sum())


def simulate(ds: Dataset, metric: str, movers: int = 5) -> Simulation:
    active = ds.active
    level = ds.current[metric].to_numpy()
    mrr = active["mrr"].to_numpy()
    total_level = level.sum()
    n = len(level)
    if n == 0 or total_level <= 0:
        return Simulation(ds.windows.as_of, metric, n, None, 0, 0, 0, None, (), (), 0, 0, 0, 0,
                          n, f"no active account uses {metric}; nothing to price on")
    price = mrr.sum() / total_level
    new = price * level
    change = new - mrr
    relative = np.divide(change, mrr, out=np.full(n, np.nan), where=mrr > 0)
    more = change > TOLERANCE * np.maximum(mrr, 1e-9)
    less = change < -TOLERANCE * np.maximum(mrr, 1e-9)
    order = np.argsort(change)
    names = active["name"].astype(str).to_numpy()
    ids = active.index.to_numpy()

    def pick(indices: np.ndarray) -> tuple[Mover, ...]:
        return tuple(Mover(str(ids[i]), str(names[i]), float(mrr[i]), float(new[i]))
                     for i in indices)

    pct = relative[np.isfinite(relative)]
    zero = int((level == 0).sum())
    return Simulation(
        ds.windows.as_of, metric, n, float(price), float(more.mean()), float(less.mean()),
        float(np.median(change)), float(np.median(pct)) if len(pct) else None,
        pick(order[::-1][:movers]), pick(order[:movers]),
        top_share(mrr), top_share(new), gini(mrr), gini(new), zero,
        f"{zero} active accounts have no {metric} and would pay nothing; a platform fee "
        "is not modelled" if zero else "",
    )
