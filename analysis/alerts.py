"""Expansion alerts: which accounts crossed a threshold, evaluated with hysteresis.

Rules come from three places: learned expansion thresholds, explicit rules
(``metric >= above``, optionally on some plans) and plan limits (a share of the amount a
plan includes). An account crosses a rule when its level at T reaches the threshold
while the rule is armed for it; the rule then disarms and re-arms only when the level
falls below ``threshold x (1 - hysteresis)``. Accounts on the top-ranked plan are
skipped: there is no higher tier to sell them.

An account seen for the first time by a rule fires only if it crossed since the previous
week (level a week before T below the threshold); one that was already above is recorded
as disarmed without an alert, so switching alerts on does not flood the channel.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.dataset import Dataset


@dataclass(frozen=True)
class Rule:
    key: str
    metric: str
    threshold: float
    plans: tuple[str, ...] = ()
    source: str = "config"  # learned | config | limit

    @property
    def label(self) -> str:
        return {"learned": "learned expansion threshold", "limit": "plan limit"}.get(
            self.source, "alert rule")


@dataclass(frozen=True)
class Evidence:
    """A rule's track record, from replaying it over past weeks (:func:`backtest`).

    ``hit_rate``: the share of past crossings followed by an MRR increase within the
    horizon. ``base_rate``: the same for the account-weeks below the threshold, so a card
    can say how much more often crossing accounts expanded than the others.
    """

    crossings: int
    followed: int
    baseline: int  # account-weeks below the threshold
    baseline_expanded: int
    horizon_days: int = 90

    @property
    def hit_rate(self) -> float | None:
        return self.followed / self.crossings if self.crossings else None

    @property
    def base_rate(self) -> float | None:
        return self.baseline_expanded / self.baseline if self.baseline else None

    @property
    def lift(self) -> float | None:
        if self.hit_rate is None or not self.base_rate:
            return None
        return self.hit_rate / self.base_rate


NO_HISTORY = Evidence(0, 0, 0, 0)


@dataclass(frozen=True)
class Crossing:
    rule: Rule
    account_id: str
    name: str
    plan: str
    owner: str | None
    level: float
    arr: float
    number: int  # the n-th crossing of this rule by this account
    evidence: Evidence

    @property
    def period(self) -> str:
        """The ledger key: one post per account, rule and crossing."""
        return f"{self.rule.key}|{self.account_id}|{self.number}"


@dataclass(frozen=True)
class Near:
    rule: Rule
    account_id: str
    name: str
    level: float

    @property
    def share(self) -> float:
        return self.level / self.rule.threshold if self.rule.threshold else 0.0


@dataclass(frozen=True)
class StateChange:
    account_id: str
    rule: str
    armed: bool
    crossings: int
    level: float


@dataclass(frozen=True)
class Evaluation:
    as_of: dt.date
    crossings: tuple[Crossing, ...]
    changes: tuple[StateChange, ...]
    closest: tuple[Near, ...]


@dataclass(frozen=True)
class PriorState:
    armed: bool
    crossings: int
    snoozed_until: dt.datetime | None


def build_rules(learned: Mapping[str, float | None],
                explicit: Iterable[tuple[str, float, Iterable[str]]],
                plan_limits: Mapping[str, Mapping[str, float]],
                limit_shares: Iterable[float]) -> list[Rule]:
    rules = [Rule(f"learned:{metric}", metric, value, (), "learned")
             for metric, value in sorted(learned.items()) if value is not None and value > 0]
    rules += [Rule(f"rule:{metric}>={above:g}" + (f":{','.join(plans)}" if plans else ""),
                   metric, above, tuple(plans), "config")
              for metric, above, plans in ((m, a, tuple(p)) for m, a, p in explicit)]
    for plan, limits in sorted(plan_limits.items()):
        for metric, limit in sorted(limits.items()):
            for share in limit_shares:
                rules.append(Rule(f"limit:{plan}:{metric}:{share:g}", metric, share * limit,
                                  (plan,), "limit"))
    return rules


def evaluate(ds: Dataset, previous: pd.DataFrame, rules: list[Rule],
             states: Mapping[tuple[str, str], PriorState], hysteresis: float, now: dt.datetime,
             top_plans: Iterable[str] = (), closest: int = 5,
             evidence: Callable[[list[Rule]], Mapping[str, Evidence]] = lambda _: {}
             ) -> Evaluation:
    """Crossings to alert on and state changes to store; ``previous`` = levels a week ago.

    ``evidence`` gives the track record of each rule that fires, by rule key (none:
    :data:`NO_HISTORY`); it is asked once, for all of them, so that their replays can
    share their queries.
    """
    active = ds.active
    skip = set(top_plans)
    crossings: list[Crossing] = []
    changes: list[StateChange] = []
    near: list[Near] = []
    # plain dicts: a pandas lookup per account and rule costs microseconds each, which adds
    # up to seconds over 50,000 accounts and every rule on the hourly job
    names = active["name"].to_dict()
    for rule in rules:
        if rule.metric not in ds.current.columns:
            continue
        level = ds.current[rule.metric]
        values = level.to_dict()
        before_of = previous[rule.metric].to_dict() if rule.metric in previous.columns else {}
        eligible = ~active["plan"].isin(skip)
        if rule.plans:
            eligible &= active["plan"].isin(rule.plans)
        for account_id in level.index[eligible.to_numpy()]:
            value = float(values[account_id])
            prior = states.get((account_id, rule.key))
            if prior is None:
                before = float(before_of.get(account_id, 0.0))
                if value >= rule.threshold and before >= rule.threshold:
                    changes.append(StateChange(str(account_id), rule.key, False, 0, value))
                    continue
                prior = PriorState(True, 0, None)
            if value >= rule.threshold:
                if not prior.armed:
                    continue
                if prior.snoozed_until is not None and prior.snoozed_until > now:
                    continue
                row = active.loc[account_id]
                number = prior.crossings + 1
                crossings.append(Crossing(
                    rule, str(account_id), str(row["name"]), str(row["plan"]),
                    None if pd.isna(row["owner"]) else str(row["owner"]), value,
                    float(row["arr"]), number, NO_HISTORY))
                changes.append(StateChange(str(account_id), rule.key, False, number, value))
            else:
                if not prior.armed and value < rule.threshold * (1 - hysteresis):
                    changes.append(StateChange(str(account_id), rule.key, True,
                                               prior.crossings, value))
                if prior.armed:
                    near.append(Near(rule, str(account_id), str(names[account_id]), value))
    near.sort(key=lambda n: -n.share)
    if crossings:
        fired = list({c.rule.key: c.rule for c in crossings}.values())
        proof = evidence(fired)
        crossings = [dataclasses.replace(c, evidence=proof.get(c.rule.key, NO_HISTORY))
                     for c in crossings]
    return Evaluation(ds.windows.as_of, tuple(crossings), tuple(changes), tuple(near[:closest]))


@dataclass(frozen=True)
class Backtest:
    """A rule replayed over weekly history (DESIGN: would it have helped?)."""

    rule: Rule
    weeks: int
    alerts: int
    followed_by_expansion: int  # alerts followed by an MRR increase within the horizon
    expansions: int  # MRR increases in the replayed period
    expansions_caught: int  # ... preceded by an alert on the account within the horizon
    baseline: int = 0  # account-weeks below the threshold (no alert)
    baseline_expanded: int = 0  # ... followed by an MRR increase within the horizon
    horizon_days: int = 90

    @property
    def evidence(self) -> Evidence:
        return Evidence(self.alerts, self.followed_by_expansion, self.baseline,
                        self.baseline_expanded, self.horizon_days)

    @property
    def alerts_per_week(self) -> float:
        return self.alerts / self.weeks if self.weeks else 0.0

    @property
    def share_followed(self) -> float | None:
        return self.evidence.hit_rate

    @property
    def share_caught(self) -> float | None:
        return self.expansions_caught / self.expansions if self.expansions else None


def _replayed_crossings(rule: Rule, levels: Sequence[pd.Series], eligible: set[Any] | None,
                        hysteresis: float) -> list[tuple[str, int]]:
    """(account, week) of each crossing of ``rule`` over weekly ``levels``, armed as live
    alerts are: an account already above in the first week starts disarmed; a crossing
    disarms it until it falls below the threshold less the hysteresis.

    Week by week over every account at once: account by account, 52 weeks of 30,000
    accounts took over a second per rule.
    """
    every = [np.asarray(week.index, dtype=object) for week in levels]
    # hashed, not sorted: sorting a million strings took most of the replay's second
    accounts = pd.Index(pd.unique(np.concatenate(every))) if every else pd.Index([])
    allowed = (np.ones(len(accounts), bool) if eligible is None
               else accounts.isin(list(eligible)))
    armed = np.full(len(accounts), -1, np.int8)  # -1: not seen yet, then 0 or 1
    fired: list[tuple[str, int]] = []
    for k, week in enumerate(levels):
        at = accounts.get_indexer(week.index)
        value = week.to_numpy(float)
        kept = allowed[at]
        at, value = at[kept], value[kept]
        above = value >= rule.threshold
        new = armed[at] < 0
        armed[at[new]] = ~(above[new] & (k == 0))
        crossing = above & (armed[at] == 1)
        fired += [(str(a), k) for a in accounts[at[crossing]]]
        armed[at[crossing]] = 0
        armed[at[~above & (value < rule.threshold * (1 - hysteresis))]] = 1
    return fired


def backtest(rule: Rule, weekly_levels: Mapping[dt.date, pd.Series],
             plans: pd.Series, increases: pd.DataFrame, hysteresis: float,
             horizon_days: int = 90) -> Backtest:
    """Replay ``rule`` week by week with the same arming logic as live alerts.

    ``weekly_levels`` maps each replayed date to the rule metric's levels of the accounts
    active then; ``increases`` has one row per MRR increase (``account_id``, ``month``).
    Accounts already above the threshold in the first week start disarmed.
    """
    dates = sorted(weekly_levels)
    eligible = set(plans.index[plans.isin(rule.plans)]) if rule.plans else None
    fired = [(account_id, pd.Timestamp(dates[k])) for account_id, k in _replayed_crossings(
        rule, [weekly_levels[day] for day in dates], eligible, hysteresis)]
    horizon = pd.Timedelta(days=horizon_days)
    events = increases.assign(month=pd.to_datetime(increases["month"]))
    if dates:
        first, last = pd.Timestamp(dates[0]), pd.Timestamp(dates[-1]) + horizon
        events = events[(events["month"] > first) & (events["month"] <= last)]
    baseline = baseline_expanded = 0
    for day in dates:
        start = pd.Timestamp(day)
        levels = weekly_levels[day]
        if eligible is not None:
            levels = levels[levels.index.isin(list(eligible))]
        below = levels.index[(levels < rule.threshold).to_numpy()]
        window = events[(events["month"] > start) & (events["month"] <= start + horizon)]
        baseline += len(below)
        baseline_expanded += int(below.isin(window["account_id"].astype(str).unique()).sum())
    # an alert and an increase of the same account are linked when the increase comes
    # within the horizon after it: the alert was followed, the increase caught
    alerts = pd.DataFrame({"account_id": pd.Series([a for a, _ in fired], dtype=object),
                           "day": pd.to_datetime(pd.Series([d for _, d in fired],
                                                           dtype="datetime64[ns]"))}
                          ).rename_axis("alert")
    pairs = alerts.reset_index().merge(
        events.assign(account_id=events["account_id"].astype(str)).reset_index(drop=True)
        .rename_axis("increase").reset_index(), on="account_id")
    linked = pairs[(pairs["day"] < pairs["month"]) & (pairs["month"] <= pairs["day"] + horizon)]
    followed, caught = linked["alert"].nunique(), linked["increase"].nunique()
    return Backtest(rule, len(dates), len(fired), followed, len(events), caught, baseline,
                    baseline_expanded, horizon_days)
