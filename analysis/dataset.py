"""One analysis run's per-account data, loaded by SQL pushdown (see :mod:`analysis.features`).

Cohorts (DESIGN section 4), with T the as-of date:

* known at T: accounts signed up after T are not accounts yet, and a churn after T is
  unknown (the account is active at T). Why: the answer at T must equal the answer on a
  database truncated at T, or a backtest of any statistic is a lie.
* current: accounts active at T, their levels in (T - w, T] and their ARR at T;
* retention (landmark): accounts signed up at least E + H days before T and still active at
  signup + E, their levels over the first E days; retained = not churned by signup + E + H.
  Why the landmark: an account that churns inside the early window has fewer snapshots
  there, so it "used less" because it churned; counting it would make any usage metric
  (a cumulative one most of all) predict retention on data where nothing does. How many
  were left out is kept (``n_early_churned``).
* survival: every account signed up more than E days before T and active at signup + E, its
  early level, and its tenure (days from signup to churn, or to T: censored);
* expansion: accounts active at T - L (L = 182 days) and at T, their levels at T - L;
  expanded = MRR at T > MRR at T - L;
* churned: accounts churned by T, their levels over the last window before churn.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from analysis import features
from analysis.catalog import Metric
from analysis.params import AnalysisSettings
from analysis.sources import Source, SourceOpener, side_by_side


class NoData(Exception):
    """There is nothing to analyse yet; the message says what to import."""


@dataclass(frozen=True)
class Dataset:
    windows: features.Windows
    metrics: tuple[Metric, ...]
    accounts: pd.DataFrame
    current: pd.DataFrame
    past: pd.DataFrame
    early: pd.DataFrame
    before_churn: pd.DataFrame
    survival_early: pd.DataFrame
    n_early_churned: int

    @property
    def metric_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    def metric(self, name: str) -> Metric:
        return next(m for m in self.metrics if m.name == name)

    @property
    def retained(self) -> pd.Series:
        a = self.accounts.loc[self.early.index]
        horizon = pd.Timedelta(days=self.windows.early_days + self.windows.horizon_days)
        return (a["churn_date"].isna() | (a["churn_date"] > a["signup_date"] + horizon)).rename(
            "retained")

    @property
    def survival_time(self) -> pd.DataFrame:
        """Survival cohort: tenure in days, churned (event) and landmark entry (E days)."""
        a = self.accounts.loc[self.survival_early.index]
        end = a["churn_date"].fillna(pd.Timestamp(self.windows.as_of))
        return pd.DataFrame({"tenure": (end - a["signup_date"]).dt.days.astype(float),
                             "churned": a["churn_date"].notna(),
                             "entry": float(self.windows.early_days)}, index=a.index)

    @property
    def expansion_index(self) -> pd.Index:
        return self.past.index.intersection(self.current.index)

    @property
    def expanded(self) -> pd.Series:
        a = self.accounts.loc[self.expansion_index]
        return (a["mrr"] > a["mrr_past"]).rename("expanded")

    @property
    def active(self) -> pd.DataFrame:
        """Accounts active at T with their ARR and tenure."""
        return self.accounts.loc[self.current.index]


def load_dataset(source: Source, catalog: Sequence[Metric], params: AnalysisSettings,
                 as_of: dt.date | None = None, side: SourceOpener | None = None) -> Dataset:
    """The per-account frames of one analysis at ``as_of`` (default: the data's own date).

    ``side``: another connection onto the same data, so the cohorts' queries run two at a
    time (:func:`analysis.sources.side_by_side`).
    """
    metrics = [m.name for m in catalog]
    if not metrics:
        raise NoData("no usage metrics found: import usage.csv first "
                     "(valuemetric import usage FILE)")
    as_of = as_of or params.as_of or features.default_as_of(source, metrics)
    if as_of is None:
        raise NoData("the usage table has no rows for the configured metrics: import usage.csv "
                     "or fix [[metrics]] names in the config")
    # The coarsest metric sets the window: a 28-day window would miss most snapshots of a
    # metric exported monthly beside weekly ones, and read their absence as zero usage.
    interval = max((i for i in (features.snapshot_interval_days(source, m, as_of)
                                for m in metrics) if i is not None), default=None)
    windows = features.Windows(
        as_of=as_of,
        window_days=features.effective_window(params.window_days, interval),
        early_days=features.effective_window(params.early_days, interval),
        horizon_days=params.horizon_days,
        lookback_days=params.expansion_lookback_days,
        snapshot_interval_days=interval,
    )
    # the accounts, the cohorts' levels and the MRRs, the slowest first
    early_by = as_of - dt.timedelta(days=windows.early_days + 1)
    (landmark_early, current, past, before_churn, (mrr_now, mrr_past), table) = side_by_side(
        source, side, [
            lambda s: features.early_levels(s, metrics, windows.early_days, early_by),
            lambda s: features.levels_at(s, metrics, as_of, windows.window_days),
            lambda s: features.levels_at(s, metrics, windows.past, windows.window_days),
            lambda s: features.levels_before_churn(s, metrics, windows.window_days, as_of),
            # both through one source: revenue spread from invoices is then worked out once
            lambda s: (features.mrr_at(s, as_of), features.mrr_at(s, windows.past)),
            features.account_table,
        ])
    accounts = known_at(table, as_of)
    if accounts.empty:
        raise NoData("no accounts: import accounts.csv first (valuemetric import accounts FILE)")
    accounts["mrr"] = mrr_now.reindex(accounts.index).fillna(0.0)
    accounts["mrr_past"] = mrr_past.reindex(accounts.index).fillna(0.0)
    accounts["arr"] = 12 * accounts["mrr"]
    # a churned account's tenure ends at its churn
    end = accounts["churn_date"].fillna(pd.Timestamp(as_of))
    accounts["tenure_days"] = (end - accounts["signup_date"]).dt.days

    # one query for every account past its landmark (signup + E) before T; the retention
    # cohort is the part old enough for its horizon too
    landmark_early = landmark_early[landmark_early.index.isin(accounts.index)]
    a = accounts.loc[landmark_early.index]
    landmark = a["signup_date"] + pd.Timedelta(days=windows.early_days)
    survived = (a["churn_date"].isna() | (a["churn_date"] > landmark)).to_numpy()
    old_enough = (a["signup_date"] <= pd.Timestamp(windows.retention_signup_cutoff)).to_numpy()
    early = landmark_early[old_enough & survived]
    return Dataset(windows, tuple(catalog), accounts, current, past, early, before_churn,
                   landmark_early[survived], int((old_enough & ~survived).sum()))


def known_at(accounts: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Accounts as they were known at ``as_of``: signed up by then, later churns unknown."""
    at = pd.Timestamp(as_of)
    known = accounts[accounts["signup_date"] <= at].copy()
    known["churn_date"] = known["churn_date"].where(known["churn_date"] <= at)
    return known
