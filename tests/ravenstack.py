"""RavenStack (a public synthetic SaaS dataset by River @ Rivalytics) in valuemetric's CSV shapes.

The dataset lives in ``shared/datasets/ravenstack`` beside the repository (see its
SOURCE.txt); it is not shipped. Its churn is known to be unrelated to usage, which makes
it the public "no real signal" check. The mapping:

* accounts: plan_tier as plan; churn date = the latest churn event of an account flagged
  as churned (else its latest subscription end), dropped when before signup;
* usage: monthly per account (via subscription_id): feature_uses (sum of usage_count),
  features_used (distinct features), usage_minutes and errors;
* revenue: per month, the summed mrr_amount of subscriptions active on its first day.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ravenstack"


def convert(out: Path, source: Path = SOURCE) -> dict[str, Path]:
    accounts = pd.read_csv(source / "ravenstack_accounts.csv", parse_dates=["signup_date"])
    events = pd.read_csv(source / "ravenstack_churn_events.csv", parse_dates=["churn_date"])
    subs = pd.read_csv(source / "ravenstack_subscriptions.csv",
                       parse_dates=["start_date", "end_date"])
    usage = pd.read_csv(source / "ravenstack_feature_usage.csv", parse_dates=["usage_date"])

    ids = accounts["account_id"]
    churn = ids.map(events.groupby("account_id")["churn_date"].max()).fillna(
        ids.map(subs.groupby("account_id")["end_date"].max()))
    churn = churn.where(accounts["churn_flag"] & (churn >= accounts["signup_date"]))
    files = {kind: out / f"{kind}.csv" for kind in ("accounts", "usage", "revenue")}
    pd.DataFrame({"account_id": ids, "name": accounts["account_name"],
                  "plan": accounts["plan_tier"], "signup_date": accounts["signup_date"].dt.date,
                  "churn_date": churn.dt.date}).to_csv(files["accounts"], index=False)

    usage = usage.merge(subs[["subscription_id", "account_id"]], on="subscription_id")
    usage["date"] = usage["usage_date"].dt.to_period("M").dt.to_timestamp().dt.date
    monthly = usage.groupby(["account_id", "date"])
    wide = pd.concat([
        monthly["usage_count"].sum().rename("feature_uses"),
        monthly["feature_name"].nunique().rename("features_used"),
        (monthly["usage_duration_secs"].sum() / 60).round(1).rename("usage_minutes"),
        monthly["error_count"].sum().rename("errors"),
    ], axis=1).reset_index()
    wide.melt(id_vars=["account_id", "date"], var_name="metric").to_csv(files["usage"],
                                                                         index=False)

    rows = []
    for month in pd.date_range("2023-01-01", "2024-12-01", freq="MS"):
        live = subs[(subs["start_date"] <= month)
                    & (subs["end_date"].isna() | (subs["end_date"] > month))]
        rows += [(a, month.date(), mrr)
                 for a, mrr in live.groupby("account_id")["mrr_amount"].sum().items()]
    pd.DataFrame(rows, columns=["account_id", "month", "mrr"]).to_csv(files["revenue"],
                                                                      index=False)
    return files
