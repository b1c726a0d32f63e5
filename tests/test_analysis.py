"""The analysis on datasets with planted effects, through `valuemetric import` and `ask`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from tests import planted, ravenstack
from tests.conftest import DATABASES, new_database


def _load(database_url: str, files: planted.PlantedFiles) -> None:
    for kind in ("accounts", "usage", "revenue"):
        assert main(["import", kind, str(getattr(files, kind)),
                     "--database-url", database_url]) == 0


def ask(database_url: str, config: Path, text: str, capsys: pytest.CaptureFixture[str]) -> Any:
    capsys.readouterr()
    assert main(["ask", text, "--format", "json", "--config", str(config),
                 "--database-url", database_url]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def weekly(tmp_path_factory: pytest.TempPathFactory) -> planted.PlantedFiles:
    return planted.generate(tmp_path_factory.mktemp("weekly"), seed=1)


@pytest.fixture(scope="module", params=DATABASES)
def weekly_url(request: pytest.FixtureRequest, weekly: planted.PlantedFiles,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The weekly planted dataset, imported once per database for this module."""
    with new_database(request.param, tmp_path_factory.mktemp("db")) as url:
        _load(url, weekly)
        yield url


def _by_metric(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["metric"]: m for m in payload["metrics"]}


def test_planted_effects_are_recovered(weekly_url: str, weekly: planted.PlantedFiles,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    database_url = weekly_url
    corr = _by_metric(ask(database_url, weekly.config, "correlate", capsys))

    noise = corr["clicks"]
    assert noise["aligned"] is False
    assert noise["arr_rho_ci"][0] < 0 < noise["arr_rho_ci"][1]
    assert noise["retention_auc_ci"][0] < 0.5 < noise["retention_auc_ci"][1]
    assert noise["expansion_auc_ci"][0] < 0.5 < noise["expansion_auc_ci"][1]

    confounded = corr["documents"]
    assert confounded["arr_rho"] > 0.2
    assert abs(confounded["arr_partial_rho"]) < 0.1
    assert confounded["confounded_by_tenure"] is True
    assert confounded["aligned"] is False

    assert corr["seats"]["aligned"] is True and corr["seats"]["retention_auc"] > 0.7
    assert corr["integrations"]["expansion_auc"] > 0.7

    seats = ask(database_url, weekly.config, "thresholds seats", capsys)
    assert abs(seats["activation"]["value"] - planted.ACTIVATION_CUTOFF) <= 1
    assert seats["activation"]["rate_above"] > seats["activation"]["rate_below"]
    integrations = ask(database_url, weekly.config, "thresholds integrations", capsys)
    assert abs(integrations["expansion"]["value"] - planted.EXPANSION_CUTOFF) <= 1
    assert integrations["activation"] is None  # integrations do not drive retention
    clicks = ask(database_url, weekly.config, "thresholds clicks", capsys)
    assert clicks["activation"] is None and clicks["expansion"] is None

    rec = ask(database_url, weekly.config, "recommend", capsys)
    assert rec["primary_metric"] == "seats"
    assert rec["gate"] == ["integrations"]
    assert rec["text"].startswith("Price per seat (seats): ")

    segments = ask(database_url, weekly.config, "segments", capsys)
    names = [s["name"] for s in segments["segments"]]
    assert names == ["High-LTV customers (>$10k ARR)", "Churned customers"]
    churned = segments["segments"][1]
    assert churned["means"]["seats"] < 6 < segments["segments"][0]["means"]["seats"]


def test_monthly_snapshots_widen_the_window(database_url: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    files = planted.generate(tmp_path, seed=2, monthly=True, n=900)
    _load(database_url, files)
    seats = ask(database_url, files.config, "thresholds seats", capsys)
    assert abs(seats["activation"]["value"] - planted.ACTIVATION_CUTOFF) <= 1
    corr = _by_metric(ask(database_url, files.config, "correlate", capsys))
    assert corr["seats"]["n"]["arr"] > 300  # monthly levels found, not empty windows


def test_no_churn_signal_means_no_retention_predictor(database_url: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    files = planted.generate(tmp_path, seed=3, n=900, churn_signal=False)
    _load(database_url, files)
    corr = ask(database_url, files.config, "correlate", capsys)
    for metric in corr["metrics"]:
        retention = metric["detail"]["retention"]
        assert retention["q"] >= 0.05, metric["metric"]
    seats = ask(database_url, files.config, "thresholds seats", capsys)
    assert seats["activation"] is None


@pytest.mark.skipif(not ravenstack.SOURCE.is_dir(),
                    reason=f"public dataset not found at {ravenstack.SOURCE}")
def test_public_data_without_signal_gets_no_recommendation(database_url: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    # RavenStack's churn is independent of usage, and its usage tracks revenue only
    # weakly (through the number of subscriptions): nothing there is worth pricing on.
    files = ravenstack.convert(tmp_path)
    for kind in ("accounts", "usage", "revenue"):
        assert main(["import", kind, str(files[kind]), "--database-url", database_url]) == 0
    config = tmp_path / "config.toml"
    # monthly totals, written only for months with usage: counts, where no row is zero
    config.write_text("".join(f'[[metrics]]\nname = "{name}"\nkind = "count"\n\n' for name in
                              ("errors", "feature_uses", "features_used", "usage_minutes")))
    corr = ask(database_url, config, "correlate", capsys)
    assert {m["metric"] for m in corr["metrics"]} == {"errors", "feature_uses",
                                                      "features_used", "usage_minutes"}
    for metric in corr["metrics"]:
        retention = metric["detail"]["retention"]
        assert retention["value"] is None or not (retention["value"] > 0.5
                                                  and retention["q"] < 0.05), metric["metric"]
    rec = ask(database_url, config, "recommend", capsys)
    assert rec["primary_metric"] is None and rec["gate"] == []
    assert rec["text"].startswith("No usage metric is aligned with value strongly enough")


def test_small_samples_say_insufficient_data(database_url: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    files = planted.generate(tmp_path, seed=4, n=20)
    _load(database_url, files)
    corr = ask(database_url, files.config, "correlate", capsys)
    for metric in corr["metrics"]:
        assert metric["arr_rho"] is None
        assert metric["detail"]["arr"]["note"].startswith("insufficient data:")
        assert "need 30" in metric["detail"]["arr"]["note"]
    rec = ask(database_url, files.config, "recommend", capsys)
    assert rec["primary_metric"] is None


def test_same_numbers_in_text_and_json(weekly_url: str, weekly: planted.PlantedFiles,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    database_url = weekly_url
    payload = ask(database_url, weekly.config, "thresholds seats", capsys)
    assert main(["ask", "thresholds seats", "--config", str(weekly.config),
                 "--database-url", database_url]) == 0
    text = capsys.readouterr().out
    assert f"activation: {payload['activation']['value']:g} " in text


def test_customer_and_simulate(weekly_url: str, weekly: planted.PlantedFiles,
                               capsys: pytest.CaptureFixture[str]) -> None:
    database_url = weekly_url
    customer = ask(database_url, weekly.config, "customer a00001", capsys)
    assert customer["account_id"] == "a00001"
    seats = {m["metric"]: m for m in customer["metrics"]}["seats"]
    assert seats["activation"] is not None and 0 <= seats["percentile"] <= 100
    sim = ask(database_url, weekly.config, "simulate seats", capsys)
    # MRR is 50 x seats plus age and expansion terms: re-pricing per seat moves little money
    assert sim["price_per_unit"] > 50
    assert sim["share_pay_more"] + sim["share_pay_less"] <= 1
    assert len(sim["top_increases"]) == 5


@pytest.mark.parametrize(("text", "hint"), [
    ("corelate", "Did you mean correlate"),
    ("thresholds seat", "Did you mean seats?"),
    ("thresholds", "'thresholds' needs METRIC. Metrics: seats, integrations"),
    ("customer a0000l", "unknown account 'a0000l'"),
    ("recommend now", "'recommend' takes no argument"),
])
def test_mistakes_get_usage_and_closest_names(weekly_url: str, weekly: planted.PlantedFiles,
                                              capsys: pytest.CaptureFixture[str], text: str,
                                              hint: str) -> None:
    capsys.readouterr()
    assert main(["ask", text, "--config", str(weekly.config),
                 "--database-url", weekly_url]) == 2
    err = capsys.readouterr().err
    assert hint in err and "usage: /valuemetric" in err
