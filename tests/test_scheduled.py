"""Weekly digest and expansion alerts: exactly once, with injected clocks and a fake Slack."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import urllib.parse
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from analysis import ledger
from analysis.db import ensure_schema, make_engine
from analysis.imports import import_csv
from analysis.schema import alert_state
from bot.config import DigestSettings, Settings, SlackSettings, load_settings
from bot.jobs import Jobs, digest_trigger, fire_times
from bot.render import SAMPLE_CROSSING, AlertRenderer, AlertTemplateError
from bot.sender import Sender, make_web_client
from bot.server import stop_http_server
from tests import planted
from tests.conftest import DATABASES, new_database
from tests.fake_slack import Call, FakeSlack
from tests.test_slack import BOT_TOKEN, check_block_kit_limits, post, start_bot

NOW = dt.datetime(2026, 1, 5, 15, 0, tzinfo=dt.UTC)  # a Monday, after 09:00 UTC


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def planted_files(tmp_path_factory: pytest.TempPathFactory) -> planted.PlantedFiles:
    return planted.generate(tmp_path_factory.mktemp("sched"), seed=1, n=500)


@pytest.fixture(scope="module", params=DATABASES)
def planted_url(request: pytest.FixtureRequest, planted_files: planted.PlantedFiles,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with new_database(request.param, tmp_path_factory.mktemp("db")) as url:
        engine = make_engine(url)
        ensure_schema(engine)
        for kind in ("accounts", "usage", "revenue"):
            import_csv(engine, kind, getattr(planted_files, kind))
        engine.dispose()
        yield url


@pytest.fixture
def settings(planted_url: str, planted_files: planted.PlantedFiles) -> Iterator[Settings]:
    base = load_settings(planted_files.config, env={"VALUEMETRIC_DATABASE_URL": planted_url})
    yield dataclasses.replace(base, slack=SlackSettings(digest_channel="CDIGEST",
                                                         alert_channel="CALERT"))
    engine = make_engine(planted_url)  # each test starts with an empty ledger
    with engine.begin() as conn:
        conn.execute(ledger.deliveries.delete())
        conn.execute(alert_state.delete())
    engine.dispose()


def headline_posts(fake: FakeSlack) -> list[Call]:
    """chat.postMessage calls of channel messages (a digest's thread replies left out)."""
    return [c for c in fake.calls_to("/api/chat.postMessage") if not c.body.get("thread_ts")]


def jobs_for(settings: Settings, fake: FakeSlack, name: str = "instance-1") -> Jobs:
    return Jobs(make_engine(settings.database.url), settings,
                Sender(make_web_client(BOT_TOKEN, fake.api_url)), claimer=name)


def test_digest_is_posted_once_when_the_job_runs_twice(settings: Settings,
                                                       fake: FakeSlack) -> None:
    jobs = jobs_for(settings, fake)
    assert jobs.post_digest(NOW) == "sent"
    assert jobs.post_digest(NOW + dt.timedelta(minutes=5)) == "already claimed"
    (call,) = headline_posts(fake)
    assert call.body["channel"] == "CDIGEST"
    check_block_kit_limits(call.body)
    (row,) = ledger.latest(jobs.engine, "digest", "CDIGEST")
    (message,) = [m for m in fake.posted("CDIGEST") if not m["thread_ts"]]
    assert row.state == "sent" and row.ts == message["ts"]
    assert row.period == "2026-01-05T09:00:00+00:00"
    assert message["metadata"] == {"event_type": "valuemetric_delivery",
                                   "event_payload": {"delivery": row.id}}


def test_three_instances_sharing_one_database_post_once(settings: Settings,
                                                        fake: FakeSlack) -> None:
    instances = [jobs_for(settings, fake, f"instance-{k}") for k in range(3)]
    barrier = threading.Barrier(3)
    outcomes: list[str] = []

    def run(jobs: Jobs) -> None:
        barrier.wait()
        outcomes.append(jobs.post_digest(NOW))

    threads = [threading.Thread(target=run, args=(j,)) for j in instances]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(outcomes) == ["already claimed", "already claimed", "sent"]
    assert len(headline_posts(fake)) == 1


def test_the_next_digest_shows_changes_since_the_previous(settings: Settings,
                                                          fake: FakeSlack) -> None:
    jobs = jobs_for(settings, fake)
    jobs.post_digest(NOW)
    assert jobs.post_digest(NOW + dt.timedelta(days=7)) == "sent"
    first, second = headline_posts(fake)
    # the headline says what changed in words; the numbers are in the thread
    assert "Since last week" not in json.dumps(first.body["blocks"])
    assert "*Since last week:* nothing moved." in json.dumps(second.body["blocks"])


def test_catch_up_posts_the_latest_missed_digest_once(settings: Settings, fake: FakeSlack,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    jobs = jobs_for(settings, fake)
    down_until = NOW + dt.timedelta(days=15, hours=2)  # missed 01-05, 01-12 and 01-19
    assert jobs.catch_up(down_until) == "sent"
    assert jobs.catch_up(down_until + dt.timedelta(minutes=1)) is None
    assert len(headline_posts(fake)) == 1
    (row,) = ledger.latest(jobs.engine, "digest", "CDIGEST")
    assert row.period == "2026-01-19T09:00:00+00:00"
    assert "digest of 2026-01-05T09:00:00+00:00 was missed" in caplog.text


def test_catch_up_skips_misses_older_than_the_grace(settings: Settings, fake: FakeSlack,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    jobs = jobs_for(settings, fake)
    assert jobs.catch_up(NOW + dt.timedelta(days=3)) is None
    assert headline_posts(fake) == []
    assert "older than the 2-day grace" in caplog.text


@pytest.mark.parametrize(("zone", "days", "utc_hours"), [
    ("America/New_York", ("2026-03-02", "2026-03-09"), (14, 13)),  # DST starts 03-08
    ("America/New_York", ("2026-10-26", "2026-11-02"), (13, 14)),  # DST ends 11-01
    ("Europe/Berlin", ("2026-03-23", "2026-03-30"), (8, 7)),  # DST starts 03-29
    ("Europe/Berlin", ("2026-10-19", "2026-10-26"), (7, 8)),  # DST ends 10-25
])
def test_weekly_trigger_keeps_local_time_across_dst(zone: str, days: tuple[str, str],
                                                    utc_hours: tuple[int, int]) -> None:
    settings = Settings(digest=DigestSettings(day_of_week="mon", hour=9, minute=0,
                                              timezone=zone))
    start = dt.datetime.fromisoformat(days[0]).replace(tzinfo=dt.UTC) - dt.timedelta(days=1)
    times = fire_times(digest_trigger(settings), start, start + dt.timedelta(days=9))
    assert [t.astimezone(zoneinfo.ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M") for t in times] == [
        f"{days[0]} 09:00", f"{days[1]} 09:00"]
    assert tuple(t.astimezone(dt.UTC).hour for t in times) == utc_hours


def test_connection_reset_after_slack_accepted_is_found_in_the_channel_not_posted_twice(
        settings: Settings, fake: FakeSlack) -> None:
    jobs = jobs_for(settings, fake)
    fake.fail_next("/api/chat.postMessage", 0)  # posted, then the answer is lost
    assert jobs.post_digest(NOW) == "unknown"
    (row,) = ledger.latest(jobs.engine, "digest", "CDIGEST", state="unknown")
    assert row.ts is None
    assert jobs.post_digest(NOW + dt.timedelta(minutes=1)) == "sent"  # found by its metadata
    assert len(headline_posts(fake)) == 1
    (history,) = fake.calls_to("/api/conversations.history")
    assert history.body["include_all_metadata"] in ("1", "true", True)
    (message,) = [m for m in fake.posted("CDIGEST") if not m["thread_ts"]]
    (row,) = ledger.latest(jobs.engine, "digest", "CDIGEST")
    assert row.ts == message["ts"]


def test_connection_dropped_before_slack_handled_it_is_posted_by_the_next_run(
        settings: Settings, fake: FakeSlack) -> None:
    jobs = jobs_for(settings, fake)
    fake.drop_next("/api/chat.postMessage")
    assert jobs.post_digest(NOW) == "unknown"  # the request was written: it may be posted
    assert jobs.post_digest(NOW + dt.timedelta(minutes=1)) == "sent"
    assert len([m for m in fake.posted("CDIGEST") if not m["thread_ts"]]) == 1


def test_refused_post_is_failed_and_claimed_again_later(settings: Settings,
                                                        fake: FakeSlack) -> None:
    jobs = jobs_for(settings, fake)
    fake.fail_next("/api/chat.postMessage", 200, {"Content-Type": "application/json"},
                   b'{"ok": false, "error": "not_in_channel"}')
    assert jobs.post_digest(NOW) == "failed"
    assert jobs.post_digest(NOW) == "sent"
    assert len(headline_posts(fake)) == 2


def test_rate_limited_post_is_retried_after_retry_after(settings: Settings,
                                                       fake: FakeSlack) -> None:
    jobs = jobs_for(settings, fake)
    fake.fail_next("/api/chat.postMessage", 429, {"Retry-After": "1"})
    assert jobs.post_digest(NOW) == "sent"
    first, second = headline_posts(fake)
    assert second.at - first.at >= 0.9


def test_broken_alert_template_fails_at_start_up(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "alerts").mkdir()
    (tmp_path / "alerts" / "alert.md.j2").write_text("# {{ c.acount_id }}\n")
    with pytest.raises(AlertTemplateError, match=r"alerts/alert.md.j2: .*acount_id"):
        AlertRenderer(str(tmp_path)).validate()
    (tmp_path / "alerts" / "alert.md.j2").write_text("{{ c.__class__.__mro__ }}\n")
    with pytest.raises(AlertTemplateError):
        AlertRenderer(str(tmp_path)).validate()  # the sandbox refuses
    (tmp_path / "alerts" / "alert.md.j2").write_text("# {{ c.name }} is growing\n")
    AlertRenderer(str(tmp_path)).validate()
    # data in templates is escaped for mrkdwn, overridden templates included
    rendered = AlertRenderer(str(tmp_path)).document(SAMPLE_CROSSING)
    assert "Acme &lt;Corp&gt; &amp; Co is growing" in rendered



def test_alert_shows_the_level_as_precisely_as_the_threshold() -> None:
    # a level of 2.25 at a threshold of 2.25 once read "2.2 >= 2.25"
    crossing = dataclasses.replace(
        SAMPLE_CROSSING, level=2.25,
        rule=dataclasses.replace(SAMPLE_CROSSING.rule, threshold=2.25))
    rendered = AlertRenderer().document(crossing)
    assert "reached *2.25 seats*" in rendered and "of 2.25." in rendered


# -- alerts on a dataset whose crossings are planted week by week ----------------------------

WEEK0 = dt.date(2025, 6, 2)  # a Monday


def _alert_dataset(directory: Path, url: str, levels: dict[str, list[float]]) -> None:
    """Accounts with one weekly 'seats' snapshot per listed level, oldest first."""
    accounts = ["account_id,name,plan,signup_date,churn_date"]
    accounts += [f"{a},Company {a},team,2025-01-01," for a in levels]
    revenue = ["account_id,month,mrr"] + [f"{a},2025-05-01,100" for a in levels]
    (directory / "accounts.csv").write_text("\n".join(accounts) + "\n")
    (directory / "revenue.csv").write_text("\n".join(revenue) + "\n")
    engine = make_engine(url)
    ensure_schema(engine)
    import_csv(engine, "accounts", directory / "accounts.csv")
    import_csv(engine, "revenue", directory / "revenue.csv")
    engine.dispose()


def _add_week(directory: Path, url: str, week: int, levels: dict[str, float]) -> None:
    day = WEEK0 + dt.timedelta(weeks=week)
    rows = ["account_id,date,metric,value"] + [f"{a},{day},seats,{v}" for a, v in levels.items()]
    path = directory / f"usage-{week}.csv"
    path.write_text("\n".join(rows) + "\n")
    engine = make_engine(url)
    import_csv(engine, "usage", path)
    engine.dispose()


ALERT_CONFIG = """
[analysis]
window_days = 7
[[metrics]]
name = "seats"
category = "seat"
[slack]
alert_channel = "CALERT"
[alerts]
learned_thresholds = false
hysteresis = 0.10
[[alerts.rules]]
metric = "seats"
above = 8
"""


@pytest.fixture(params=DATABASES)
def alert_env(request: pytest.FixtureRequest, tmp_path: Path,
              fake: FakeSlack) -> Iterator[tuple[Path, str, Jobs]]:
    with new_database(request.param, tmp_path) as url:
        config = tmp_path / "config.toml"
        config.write_text(ALERT_CONFIG)
        settings = load_settings(config, env={"VALUEMETRIC_DATABASE_URL": url})
        _alert_dataset(tmp_path, url, {f"a{i}": [] for i in range(12)})
        yield tmp_path, url, jobs_for(settings, fake)


def _alerted(fake: FakeSlack) -> list[str]:
    return [json.dumps(c.body["blocks"]) for c in headline_posts(fake)]


def test_alert_fires_once_stays_quiet_while_above_and_again_after_rearming(
        alert_env: tuple[Path, str, Jobs], fake: FakeSlack) -> None:
    directory, url, jobs = alert_env
    others = {f"a{i}": 2.0 for i in range(1, 12)}
    for week, level in enumerate([5, 10, 9, 7.5, 7, 9]):
        _add_week(directory, url, week, {"a0": level, **others})
        outcomes = jobs.post_alerts(NOW + dt.timedelta(weeks=week))
        fired = [o for _, o in outcomes]
        expected = {1: ["sent"], 5: ["sent"]}.get(week, [])  # 7.5 is inside the 10% margin
        assert fired == expected, (week, level)
    posts = _alerted(fake)
    assert len(posts) == 2
    assert "Company a0" in posts[0] and "10 seats" in posts[0]
    for call in headline_posts(fake):
        check_block_kit_limits(call.body)
        assert call.body["blocks"][-1]["type"] == "actions"


def test_planted_crossings_give_exactly_the_planted_alerts(
        alert_env: tuple[Path, str, Jobs], fake: FakeSlack) -> None:
    directory, url, jobs = alert_env
    before = {f"a{i}": 3.0 for i in range(12)} | {"a10": 12.0, "a11": 12.0}  # already above
    after = dict(before) | {"a2": 9.0, "a5": 8.0, "a7": 15.0}  # the planted crossings
    _add_week(directory, url, 0, before)
    _add_week(directory, url, 1, after)
    outcomes = jobs.post_alerts(NOW)
    assert sorted(c.account_id for c, o in outcomes if o == "sent") == ["a2", "a5", "a7"]
    assert jobs.post_alerts(NOW + dt.timedelta(hours=1)) == []
    assert len(headline_posts(fake)) == 3


def test_a_busy_run_posts_the_largest_accounts_and_one_roll_up(
        alert_env: tuple[Path, str, Jobs], fake: FakeSlack) -> None:
    directory, url, jobs = alert_env
    capped = dataclasses.replace(jobs, settings=dataclasses.replace(
        jobs.settings, alerts=dataclasses.replace(jobs.settings.alerts, max_per_run=2)))
    # a9 and a1 pay most: they get their own alerts; a6, a3 and a8 share a roll-up
    revenue = directory / "revenue-june.csv"
    revenue.write_text("account_id,month,mrr\n" + "".join(
        f"a{i},2025-06-01,{mrr}\n" for i, mrr in enumerate([100, 900, 100, 150, 100, 100,
                                                             800, 100, 120, 990, 100, 100])))
    engine = make_engine(url)
    import_csv(engine, "revenue", revenue)
    engine.dispose()
    _add_week(directory, url, 0, {f"a{i}": 3.0 for i in range(12)})
    _add_week(directory, url, 1, {f"a{i}": 3.0 for i in range(12)}
              | {a: 9.0 for a in ("a1", "a3", "a6", "a8", "a9")})
    outcomes = capped.post_alerts(NOW)
    assert [(c.account_id, o) for c, o in outcomes] == [
        ("a9", "sent"), ("a1", "sent"), ("a6", "sent"), ("a3", "sent"), ("a8", "sent")]
    posts = headline_posts(fake)
    assert len(posts) == 3
    rollup = json.dumps(posts[2].body["blocks"])
    assert "3 more accounts crossed expansion thresholds" in rollup
    assert all(f"Company {a}" in rollup for a in ("a3", "a6", "a8"))
    assert all(b["type"] != "actions" for b in posts[2].body["blocks"])
    check_block_kit_limits(posts[2].body)
    # each crossing has its own ledger row, so none fires again
    assert capped.post_alerts(NOW + dt.timedelta(hours=1)) == []
    recent = ledger.latest(make_engine(url), "alert", "CALERT", limit=10)
    assert len(recent) == 5 and len({d.ts for d in recent}) == 3


def test_an_alert_slack_refused_is_posted_by_the_next_run(
        alert_env: tuple[Path, str, Jobs], fake: FakeSlack) -> None:
    directory, url, jobs = alert_env
    _add_week(directory, url, 0, {f"a{i}": 3.0 for i in range(12)})
    _add_week(directory, url, 1, {f"a{i}": 3.0 for i in range(12)} | {"a4": 9.0})
    fake.fail_next("/api/chat.postMessage", 200, {"Content-Type": "application/json"},
                   b'{"ok": false, "error": "not_in_channel"}')
    assert [o for _, o in jobs.post_alerts(NOW)] == ["failed"]
    assert [o for _, o in jobs.post_alerts(NOW + dt.timedelta(hours=1))] == ["sent"]
    assert jobs.post_alerts(NOW + dt.timedelta(hours=2)) == []
    assert len(headline_posts(fake)) == 2


def test_the_digest_lists_the_weeks_posted_alerts(alert_env: tuple[Path, str, Jobs],
                                                  fake: FakeSlack) -> None:
    # alerts run hourly, so by digest time the week's crossings have all been posted
    directory, url, jobs = alert_env
    _add_week(directory, url, 0, {f"a{i}": 3.0 for i in range(12)})
    _add_week(directory, url, 1, {f"a{i}": 3.0 for i in range(12)} | {"a4": 9.0, "a5": 9.0})
    fake.fail_next("/api/chat.postMessage", 200, {"Content-Type": "application/json"},
                   b'{"ok": false, "error": "channel_not_found"}')  # the first post is refused
    outcomes = {c.account_id: o for c, o in jobs.post_alerts(NOW)}
    assert outcomes == {"a4": "failed", "a5": "sent"}
    digest_jobs = dataclasses.replace(jobs, settings=dataclasses.replace(
        jobs.settings, slack=dataclasses.replace(jobs.settings.slack, digest_channel="CDIGEST")))
    assert digest_jobs.post_digest(NOW + dt.timedelta(days=1)) == "sent"
    (digest,) = [c for c in headline_posts(fake)
                 if c.body["channel"] == "CDIGEST"]
    text = json.dumps(digest.body["blocks"], ensure_ascii=False)
    assert "*Company a5* · $" in text and "9 seats, past 8" in text
    assert "No account crossed" not in text
    # a week later it is last week's news
    assert digest_jobs.post_digest(NOW + dt.timedelta(days=8)) == "sent"
    later = json.dumps(headline_posts(fake)[-1].body["blocks"])
    assert "Company a5" not in later


def test_alert_buttons_store_the_choice_and_update_the_message(
        alert_env: tuple[Path, str, Jobs], fake: FakeSlack) -> None:
    directory, url, jobs = alert_env
    _add_week(directory, url, 0, {"a0": 3.0, "a1": 3.0})
    _add_week(directory, url, 1, {"a0": 9.0, "a1": 9.5})
    jobs.post_alerts(NOW)
    posts = headline_posts(fake)
    assert len(posts) == 2
    bot, server = start_bot(jobs.settings, fake)
    try:
        for k, (post_call, choice) in enumerate(zip(posts, ["snooze", "not_a_fit"],
                                                    strict=True)):
            ts = fake.posted("CALERT")[k]["ts"]
            actions_block = post_call.body["blocks"][-1]
            if choice == "snooze":
                element = actions_block["elements"][0]
                action = {"type": "button", "action_id": element["action_id"],
                          "value": element["value"], "block_id": "vm_alert_actions"}
            else:
                element = actions_block["elements"][2]
                action = {"type": "static_select", "action_id": element["action_id"],
                          "block_id": "vm_alert_actions",
                          "selected_option": element["options"][1]}
            payload = {"type": "block_actions", "user": {"id": "U0CSM"},
                       "team": {"id": "T1"}, "api_app_id": "A1", "token": "x",
                       "channel": {"id": "CALERT"}, "trigger_id": "1.2.3",
                       "container": {"type": "message", "message_ts": ts},
                       "message": {"ts": ts, "text": post_call.body["text"],
                                   "blocks": post_call.body["blocks"]},
                       "response_url": fake.response_url(f"a{k}"), "actions": [action]}
            body = urllib.parse.urlencode({"payload": json.dumps(payload)})
            status, _, elapsed = post(bot.url, body)
            assert status == 200 and elapsed < 3
        updates = fake.wait_for("/api/chat.update", count=2)
    finally:
        stop_http_server(server)
    texts = sorted(json.dumps(u.body["blocks"]) for u in updates)
    assert any("Snoozed for 30 days by <@U0CSM>" in t for t in texts)
    assert any("Not a fit (wrong timing), by <@U0CSM>" in t for t in texts)
    assert all('"type": "actions"' not in t for t in texts)
    rows = {d.period.split("|")[1]: d for d in ledger.latest(jobs.engine, "alert", "CALERT",
                                                               state=None, limit=10)}
    assert rows["a0"].action == "snoozed" and rows["a0"].action_user == "U0CSM"
    assert rows["a1"].action == "not_a_fit" and rows["a1"].action_reason == "wrong timing"
    with jobs.engine.connect() as conn:
        snoozed = conn.execute(select(alert_state.c.snoozed_until).where(
            alert_state.c.account_id == "a0")).scalar_one()
    assert snoozed is not None


def test_cli_digest_post_runs_concurrently_once(planted_files: planted.PlantedFiles,
                                                tmp_path: Path, fake: FakeSlack) -> None:
    import os
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    ensure_schema(engine)
    for kind in ("accounts", "usage", "revenue"):
        import_csv(engine, kind, getattr(planted_files, kind))
    env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "VALUEMETRIC_DATABASE_URL": url,
           "VALUEMETRIC_SLACK_API_URL": fake.api_url, "VALUEMETRIC_CONFIG":
           str(planted_files.config)}
    processes = [subprocess.Popen([sys.executable, "-m", "bot.cli", "digest", "--post",
                                   "--channel", "CDIGEST"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=180) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    assert sorted(out.strip() for out, _ in outputs) == [
        "digest: already claimed", "digest: already claimed", "digest: sent"]
    assert len(headline_posts(fake)) == 1
