"""Exactly once against an unreliable Slack: outages, lost answers, refusals, dead claimers
and processes killed at random moments. The fake Slack keeps each channel's messages, so
every check counts what the channel really shows."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from analysis import ledger
from analysis.db import make_engine
from analysis.schema import alert_state, deliveries
from bot import jobs as jobs_module
from bot.blocks import Message, to_message
from bot.cli import main
from bot.config import AccessSettings, Settings, load_settings
from bot.jobs import Jobs
from bot.server import stop_http_server
from tests import planted, test_scheduled
from tests.conftest import DATABASES, new_database
from tests.fake_slack import FakeSlack, block_problem
from tests.test_scheduled import ALERT_CONFIG, NOW, _add_week, _alert_dataset, jobs_for
from tests.test_slack import BOT_TOKEN, post, start_bot

# the scheduled tests' fixtures: a fake Slack, and settings on a planted dataset
fake = test_scheduled.fake
planted_files = test_scheduled.planted_files
planted_url = test_scheduled.planted_url
settings = test_scheduled.settings
alert_env = test_scheduled.alert_env

REFUSED = b'{"ok": false, "error": "%s"}'
DEAD_HOST_CLAIMER = "elsewhere:1234:deadbeef"


def _dead_pid() -> int:
    """A pid of this host that no process has (a child that has exited and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _stale(engine_url: str, kind: str, claimer: str, age: dt.timedelta) -> None:
    """Make every ``kind`` row look like ``claimer`` claimed it ``age`` ago and vanished."""
    engine = make_engine(engine_url)
    stamp = (NOW - age).astimezone(dt.UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.kind == kind).values(
            state=ledger.SENDING, claimed_by=claimer, claimed_at=stamp, updated_at=stamp,
            ts=None))
    engine.dispose()


def _headlines(fake: FakeSlack, channel: str) -> list[dict[str, object]]:
    return [m for m in fake.posted(channel) if not m["thread_ts"]]


# -- the digest -----------------------------------------------------------------------------


def test_slack_down_means_failed_then_posted_once_when_back(settings: Settings,
                                                            fake: FakeSlack) -> None:
    jobs = jobs_for(settings, fake)
    fake.refuse_connections()
    assert jobs.post_digest(NOW) == "failed"
    (row,) = ledger.latest(jobs.engine, "digest", "CDIGEST", state="failed")
    assert row.error is not None and "unreachable" in row.error
    assert row.stuck(NOW, jobs.lease)
    fake.accept_connections()
    assert jobs.catch_up(NOW + dt.timedelta(hours=1)) == "sent"
    assert jobs.catch_up(NOW + dt.timedelta(hours=2)) is None
    assert len(_headlines(fake, "CDIGEST")) == 1
    # nothing was in doubt, so the channel history was never needed
    assert fake.calls_to("/api/conversations.history") == []


def test_a_server_error_is_unknown_and_checked_before_posting_again(settings: Settings,
                                                                    fake: FakeSlack) -> None:
    jobs = jobs_for(settings, fake)
    fake.fail_next("/api/chat.postMessage", 500, body=b"upstream broke")
    assert jobs.post_digest(NOW) == "unknown"
    assert jobs.catch_up(NOW + dt.timedelta(minutes=10)) == "sent"
    assert len(fake.calls_to("/api/conversations.history")) == 1
    assert len(_headlines(fake, "CDIGEST")) == 1


def test_a_live_claim_is_left_alone_and_a_stale_one_reconciled(settings: Settings,
                                                               fake: FakeSlack) -> None:
    jobs = jobs_for(settings, fake)
    other = dataclasses.replace(jobs, claimer=DEAD_HOST_CLAIMER)
    claim = ledger.claim(other.engine, "digest", "CDIGEST", "2026-01-05T09:00:00+00:00",
                         DEAD_HOST_CLAIMER, NOW, jobs.lease)
    assert claim is not None and not claim.reconcile
    # a claimer on another host is trusted for its lease (10 minutes)
    assert jobs.post_digest(NOW + dt.timedelta(minutes=9)) == "already claimed"
    assert jobs.catch_up(NOW + dt.timedelta(minutes=9)) is None
    assert jobs.post_digest(NOW + dt.timedelta(minutes=11)) == "sent"
    assert len(_headlines(fake, "CDIGEST")) == 1


def test_a_dead_claimer_on_this_host_is_reconciled_at_once(settings: Settings,
                                                           fake: FakeSlack) -> None:
    jobs = jobs_for(settings, fake)
    dead = f"{ledger.claimer_name().split(':')[0]}:{_dead_pid()}:0badc0de"
    assert ledger.claimer_gone(dead)
    assert not ledger.claimer_gone(ledger.claimer_name())
    # it posted, then died before recording it: the post is found, not repeated
    assert jobs.post_digest(NOW) == "sent"
    _stale(settings.database.url, "digest", dead, dt.timedelta(seconds=5))
    assert jobs.catch_up(NOW) == "sent"
    assert len(_headlines(fake, "CDIGEST")) == 1
    (row,) = ledger.latest(jobs.engine, "digest", "CDIGEST")
    assert row.ts == _headlines(fake, "CDIGEST")[0]["ts"]
    assert row.summary, "the statistics the next digest compares against are kept"


def test_a_run_killed_between_headline_and_replies_finishes_the_thread(
        settings: Settings, fake: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    def three_messages(report: object) -> list[Message]:
        return [to_message(f"# Digest part {n}\n\npart {n} of 3") for n in range(3)]

    monkeypatch.setattr(jobs_module.render, "render_digest_thread", three_messages)
    jobs = jobs_for(settings, fake)
    posts = 0
    original = jobs.sender.post_tracked

    def lost_second_reply(*args: object, **kwargs: object) -> object:
        nonlocal posts
        posts += 1
        if posts == 3:  # the second reply: posted, the answer lost
            fake.fail_next("/api/chat.postMessage", 0)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jobs.sender, "post_tracked", lost_second_reply)
    monkeypatch.setenv("VALUEMETRIC_DATABASE_URL", settings.database.url)
    assert jobs.post_digest(NOW) == "unknown"
    assert main(["deliveries"]) == 1  # the lost reply is stuck
    assert jobs.retry_digest(NOW + dt.timedelta(minutes=1)) == "sent"
    assert jobs.retry_digest(NOW + dt.timedelta(minutes=2)) is None
    assert jobs.catch_up(NOW + dt.timedelta(minutes=2)) is None
    posted = fake.posted("CDIGEST")
    assert [str(m["text"]).split("\n")[0] for m in posted] == [
        f"Digest part {n}" for n in range(3)]
    headline_ts = posted[0]["ts"]
    assert [m["thread_ts"] for m in posted] == [None, headline_ts, headline_ts]
    assert fake.calls_to("/api/conversations.replies"), "the lost reply was looked up"
    assert main(["deliveries"]) == 0


@pytest.mark.parametrize("error", ["not_in_channel", "channel_not_found", "is_archived",
                                   "ratelimited"])
def test_a_fixable_refusal_is_retried_once_fixed(settings: Settings, fake: FakeSlack,
                                                 error: str) -> None:
    jobs = jobs_for(settings, fake)
    for _ in range(4 if error == "ratelimited" else 1):  # ratelimited: after our 3 retries
        if error == "ratelimited":
            fake.fail_next("/api/chat.postMessage", 429, {
                "Retry-After": "0", "Content-Type": "application/json"}, REFUSED % b"ratelimited")
        else:
            fake.fail_next("/api/chat.postMessage", 200,
                           {"Content-Type": "application/json"}, REFUSED % error.encode())
    assert jobs.post_digest(NOW) == "failed"
    (row,) = ledger.latest(jobs.engine, "digest", "CDIGEST", state="failed")
    assert error in (row.error or "")
    assert jobs.catch_up(NOW + dt.timedelta(hours=1)) == "sent"
    assert len(_headlines(fake, "CDIGEST")) == 1


def test_not_in_channel_until_the_bot_is_invited(settings: Settings, fake: FakeSlack) -> None:
    fake.joined = set()
    jobs = jobs_for(settings, fake)
    assert jobs.post_digest(NOW) == "failed"
    assert jobs.catch_up(NOW + dt.timedelta(hours=1)) == "failed"
    fake.joined = {"CDIGEST"}  # /invite @valuemetric
    assert jobs.catch_up(NOW + dt.timedelta(hours=2)) == "sent"
    assert len(_headlines(fake, "CDIGEST")) == 1


def test_history_unreadable_leaves_it_unknown_never_posts_blind(settings: Settings,
                                                                fake: FakeSlack) -> None:
    jobs = jobs_for(settings, fake)
    fake.fail_next("/api/chat.postMessage", 0)
    assert jobs.post_digest(NOW) == "unknown"
    fake.fail_next("/api/conversations.history", 200, {"Content-Type": "application/json"},
                   REFUSED % b"missing_scope")
    assert jobs.catch_up(NOW + dt.timedelta(minutes=1)) == "unknown"
    assert len(fake.calls_to("/api/chat.postMessage")) == 1
    assert jobs.catch_up(NOW + dt.timedelta(minutes=2)) == "sent"
    assert len(_headlines(fake, "CDIGEST")) == 1  # found in the history: only replies posted


def test_fake_slack_refuses_oversized_blocks_as_slack_does() -> None:
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2900}}
    assert block_problem([section] * 4) is None
    assert block_problem([section] * 5) == "msg_blocks_too_long"
    assert block_problem([{"type": "divider"}] * 51) == "invalid_blocks"
    long = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    assert block_problem([long]) == "invalid_blocks"


# -- alerts -----------------------------------------------------------------------------------


@pytest.fixture(params=DATABASES)
def alert_setup(request: pytest.FixtureRequest, tmp_path: Path,
                fake: FakeSlack) -> Iterator[tuple[Path, str, Settings]]:
    """40 accounts, all crossing seats >= 8 in week 1; alerts.max_per_run = 3."""
    with new_database(request.param, tmp_path) as url:
        config = tmp_path / "config.toml"
        config.write_text(ALERT_CONFIG.replace("hysteresis = 0.10",
                                               "hysteresis = 0.10\nmax_per_run = 3"))
        settings = load_settings(config, env={"VALUEMETRIC_DATABASE_URL": url})
        accounts = [f"a{i}" for i in range(40)]
        _alert_dataset(tmp_path, url, {a: [] for a in accounts})
        _add_week(tmp_path, url, 0, {a: 3.0 for a in accounts})
        _add_week(tmp_path, url, 1, {a: 9.0 + i / 10 for i, a in enumerate(accounts)})
        yield tmp_path, url, settings


def _alerted_accounts(fake: FakeSlack) -> list[str]:
    """Each account once per message that names it."""
    return [a for m in fake.posted("CALERT")
            for a in set(re.findall(r"Company (a\d+)\b", str(m["blocks"])))]


def _disarmed(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        armed = conn.execute(select(alert_state.c.armed)).scalars().all()
    engine.dispose()
    return sum(not a for a in armed)


def test_outage_during_alerts_strands_nothing(alert_setup: tuple[Path, str, Settings],
                                              fake: FakeSlack) -> None:
    _, url, settings = alert_setup
    jobs = jobs_for(settings, fake)
    fake.refuse_connections()
    outcomes = jobs.post_alerts(NOW)
    assert {o for _, o in outcomes} == {"failed"} and len(outcomes) == 40
    assert _disarmed(url) == 0  # a rule is disarmed only with its post sent
    fake.accept_connections()
    outcomes = jobs.post_alerts(NOW + dt.timedelta(hours=1))
    assert {o for _, o in outcomes} == {"sent"}
    assert jobs.post_alerts(NOW + dt.timedelta(hours=2)) == []
    assert sorted(_alerted_accounts(fake)) == sorted(f"a{i}" for i in range(40))


def test_a_roll_up_killed_while_claiming_is_finished_by_the_next_run(
        alert_setup: tuple[Path, str, Settings], fake: FakeSlack) -> None:
    _, _, settings = alert_setup
    jobs = jobs_for(settings, fake)
    # a first run claimed some crossings and died before posting (rules still armed)
    evaluation = jobs_module.reports.Context.load(jobs.engine, settings).alert_evaluation(NOW)
    dead = f"{ledger.claimer_name().split(':')[0]}:{_dead_pid()}:0badc0de"
    for crossing in evaluation.crossings[::3]:
        assert ledger.claim(jobs.engine, "alert", "CALERT", crossing.period, dead, NOW,
                            jobs.lease) is not None
    outcomes = jobs.post_alerts(NOW + dt.timedelta(minutes=1))
    assert {o for _, o in outcomes} == {"sent"} and len(outcomes) == 40
    assert sorted(_alerted_accounts(fake)) == sorted(f"a{i}" for i in range(40))
    assert jobs.post_alerts(NOW + dt.timedelta(minutes=2)) == []
    lease = jobs.lease
    assert not [d for d in ledger.unfinished(jobs.engine) if d.stuck(NOW, lease)]


def test_a_big_roll_up_is_split_within_slacks_limits(alert_setup: tuple[Path, str, Settings],
                                                     fake: FakeSlack,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _, url, settings = alert_setup
    jobs = jobs_for(settings, fake)
    monkeypatch.setattr(jobs_module, "ROLLUP_SIZE", 10)
    outcomes = jobs.post_alerts(NOW)
    assert {o for _, o in outcomes} == {"sent"}
    assert len(fake.posted("CALERT")) == 3 + 4  # 3 cards, 37 crossings in 4 roll-ups
    assert all(block_problem(m["blocks"]) is None for m in fake.posted("CALERT"))
    assert _disarmed(url) == 40


# -- processes killed at random moments ----------------------------------------------------


def _env(fake: FakeSlack, url: str, config: Path) -> dict[str, str]:
    return {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "VALUEMETRIC_DATABASE_URL": url,
            "VALUEMETRIC_SLACK_API_URL": fake.api_url, "VALUEMETRIC_CONFIG": str(config)}


def _run_killed(args: list[str], env: dict[str, str], kill_after: float) -> None:
    process = subprocess.Popen([sys.executable, "-m", "bot.cli", *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(kill_after)
    process.send_signal(signal.SIGKILL)
    process.wait()


def _deliveries_ok(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", "deliveries"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("database", DATABASES)
def test_digest_post_killed_at_random_moments_appears_once(
        database: str, planted_files: planted.PlantedFiles, tmp_path: Path,
        fake: FakeSlack) -> None:
    from analysis.db import ensure_schema
    from analysis.imports import import_csv

    with new_database(database, tmp_path) as url:
        engine = make_engine(url)
        ensure_schema(engine)
        for kind in ("accounts", "usage", "revenue"):
            import_csv(engine, kind, getattr(planted_files, kind))
        engine.dispose()
        env = _env(fake, url, planted_files.config)
        fake.delay["/api/chat.postMessage"] = 1.0  # a window to be killed while sending
        rng = random.Random(3)
        for _ in range(4):  # killed while importing, claiming, building or sending
            _run_killed(["digest", "--post", "--channel", "CDIGEST"], env,
                        rng.uniform(1.0, 8.0))
        fake.delay.clear()
        final = subprocess.run([sys.executable, "-m", "bot.cli", "digest", "--post",
                                "--channel", "CDIGEST"], env=env, capture_output=True,
                               text=True, timeout=180, check=False)
        assert final.returncode == 0, final.stderr
        assert len(_headlines(fake, "CDIGEST")) == 1
        listed = _deliveries_ok(env)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert "nothing stuck" in listed.stdout


@pytest.mark.parametrize("database", DATABASES)
def test_alerts_post_killed_at_random_moments_posts_each_crossing_once(
        database: str, tmp_path: Path, fake: FakeSlack) -> None:
    with new_database(database, tmp_path) as url:
        config = tmp_path / "config.toml"
        config.write_text(ALERT_CONFIG.replace("hysteresis = 0.10",
                                               "hysteresis = 0.10\nmax_per_run = 4"))
        accounts = [f"a{i}" for i in range(30)]
        _alert_dataset(tmp_path, url, {a: [] for a in accounts})
        _add_week(tmp_path, url, 0, {a: 3.0 for a in accounts})
        _add_week(tmp_path, url, 1, {a: 9.0 for a in accounts})
        env = _env(fake, url, config)
        fake.delay["/api/chat.postMessage"] = 0.4
        rng = random.Random(5)
        for _ in range(4):
            _run_killed(["alerts", "--post"], env, rng.uniform(1.0, 5.0))
        fake.refuse_connections()  # and one run while Slack is down
        down = subprocess.run([sys.executable, "-m", "bot.cli", "alerts", "--post"], env=env,
                              capture_output=True, text=True, timeout=180, check=False)
        fake.accept_connections()
        fake.delay.clear()
        assert down.returncode in (0, 1), down.stderr  # handled, not a crash
        final = subprocess.run([sys.executable, "-m", "bot.cli", "alerts", "--post"], env=env,
                               capture_output=True, text=True, timeout=180, check=False)
        assert final.returncode == 0, final.stdout + final.stderr
        assert sorted(_alerted_accounts(fake)) == sorted(accounts)
        listed = _deliveries_ok(env)
        assert listed.returncode == 0, listed.stdout + listed.stderr


# -- the `deliveries` command and clear start-up failures -----------------------------------


def test_deliveries_lists_the_ledger_and_fails_when_something_is_stuck(
        settings: Settings, fake: FakeSlack, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = jobs_for(settings, fake)
    monkeypatch.setenv("VALUEMETRIC_DATABASE_URL", settings.database.url)
    fake.fail_next("/api/chat.postMessage", 200, {"Content-Type": "application/json"},
                   REFUSED % b"not_in_channel")
    jobs.post_digest(NOW)
    assert main(["deliveries"]) == 1
    captured = capsys.readouterr()
    assert re.search(r"digest\s+CDIGEST\s+failed .*\(not_in_channel\)\s+<- stuck",
                     captured.out), captured.out
    assert "invite the bot" in captured.err
    jobs.post_digest(NOW)
    assert main(["deliveries"]) == 0
    assert "nothing stuck" in capsys.readouterr().out


def test_unreachable_database_is_one_line_with_the_password_hidden(
        capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://vm:hunter2@127.0.0.1:9/valuemetric"
    assert main(["deliveries", "--database-url", url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hunter2" not in err
    assert "postgresql://vm:***@127.0.0.1:9/valuemetric" in err and "Connection refused" in err


def test_revoked_token_stops_start_up_with_one_line(planted_url: str, fake: FakeSlack,
                                                    planted_files: planted.PlantedFiles) -> None:
    fake.fail_next("/api/auth.test", 200, {"Content-Type": "application/json"},
                   REFUSED % b"token_revoked")
    env = {**_env(fake, planted_url, planted_files.config), "SLACK_SIGNING_SECRET": "s"}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "--http", "--port",
                             "0", "--host", "127.0.0.1"], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "token_revoked" in result.stderr and "reinstall the app" in result.stderr
    assert BOT_TOKEN not in result.stderr


# -- alert buttons ------------------------------------------------------------------------


def _click(bot_url: str, fake: FakeSlack, card: dict[str, object], user: str, value: str,
           name: str) -> tuple[int, float]:
    payload = {"type": "block_actions", "user": {"id": user}, "team": {"id": "T1"},
               "api_app_id": "A1", "token": "x", "channel": {"id": "CALERT"},
               "trigger_id": "1.2.3", "container": {"type": "message",
                                                    "message_ts": card["ts"]},
               "message": {"ts": card["ts"], "text": card["text"], "blocks": card["blocks"]},
               "response_url": fake.response_url(name),
               "actions": [{"type": "button", "action_id": "vm_alert_snooze", "value": value,
                            "block_id": "vm_alert_actions"}]}
    status, _, elapsed = post(bot_url, urllib.parse.urlencode({"payload": json.dumps(payload)}))
    return status, elapsed


def test_buttons_obey_access_and_answer_problems_ephemerally(
        alert_setup: tuple[Path, str, Settings], fake: FakeSlack) -> None:
    _, _, settings = alert_setup
    jobs_for(settings, fake).post_alerts(NOW)
    card = fake.posted("CALERT")[0]
    actions = card["blocks"][-1]  # type: ignore[index]
    value = actions["elements"][0]["value"]
    restricted = dataclasses.replace(settings, access=AccessSettings(allowed_users=["UOK"]))
    bot, server = start_bot(restricted, fake)
    try:
        assert _click(bot.url, fake, card, "USTRANGER", value, "denied")[0] == 200
        denied = fake.wait_for("/response/denied")[0].body
        assert "not authorized" in denied["text"] and denied["response_type"] == "ephemeral"
        assert _click(bot.url, fake, card, "UOK", "999999", "unknown")[0] == 200
        unknown = fake.wait_for("/response/unknown")[0].body
        assert "no record of this alert" in unknown["text"]
        assert fake.calls_to("/api/chat.update") == []  # the card is unchanged
        status, elapsed = _click(bot.url, fake, card, "UOK", value, "ok")
        assert status == 200 and elapsed < 3
        (updated,) = fake.wait_for("/api/chat.update")
        assert "Snoozed for 30 days by <@UOK>" in json.dumps(updated.body["blocks"])
    finally:
        stop_http_server(server)


def test_a_headline_without_its_replies_is_reported_and_finished(
        settings: Settings, fake: FakeSlack, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(jobs_module.render, "render_digest_thread", lambda report: [
        to_message(f"# Digest part {n}\n\npart {n} of 3") for n in range(3)])
    monkeypatch.setenv("VALUEMETRIC_DATABASE_URL", settings.database.url)
    jobs = jobs_for(settings, fake)

    def killed(*args: object, **kwargs: object) -> list[str]:
        raise KeyboardInterrupt  # the process dies right after the headline

    with monkeypatch.context() as patch:
        patch.setattr(Jobs, "_deliver", killed)
        with pytest.raises(KeyboardInterrupt):
            jobs.post_digest(NOW)
    assert len(fake.posted("CDIGEST")) == 1
    assert main(["deliveries"]) == 1
    assert "thread replies missing" in capsys.readouterr().out
    assert jobs.retry_digest(NOW + dt.timedelta(hours=1)) == "sent"
    assert len(fake.posted("CDIGEST")) == 3
    assert main(["deliveries"]) == 0


def test_an_alert_whose_crossing_is_gone_is_dropped_not_stuck_and_fires_if_it_returns(
        alert_env: tuple[Path, str, Jobs], fake: FakeSlack) -> None:
    directory, url, jobs = alert_env
    _add_week(directory, url, 0, {"a0": 3.0, "a1": 3.0})
    _add_week(directory, url, 1, {"a0": 9.0, "a1": 3.0})
    fake.refuse_connections()
    assert [o for _, o in jobs.post_alerts(NOW)] == ["failed"]
    fake.accept_connections()
    _add_week(directory, url, 2, {"a0": 3.0, "a1": 3.0})  # back below before Slack returned
    assert jobs.post_alerts(NOW + dt.timedelta(hours=1)) == []
    (row,) = ledger.latest(jobs.engine, "alert", "CALERT", state=None)
    assert row.state == "dropped" and not row.stuck(NOW, jobs.lease)
    assert fake.posted("CALERT") == []
    _add_week(directory, url, 3, {"a0": 9.5, "a1": 3.0})  # it crosses again: alerted
    assert [o for _, o in jobs.post_alerts(NOW + dt.timedelta(weeks=1))] == ["sent"]
    assert len(fake.posted("CALERT")) == 1
