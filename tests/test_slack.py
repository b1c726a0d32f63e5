"""The Slack bot over real HTTP, with requests signed as Slack signs them, against a fake
Slack Web API on 127.0.0.1 that records what the bot sent."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.server import serve

from analysis.db import ensure_schema, make_engine
from analysis.imports import import_csv
from bot import reports
from bot.app import create_app
from bot.config import (
    AccessSettings,
    Secrets,
    ServeSettings,
    Settings,
    SlackSettings,
    load_settings,
)
from bot.sender import make_web_client
from bot.server import make_http_server, stop_http_server
from tests import planted
from tests.fake_slack import FakeSlack

BOT_TOKEN = "xoxb-1111-2222-secretbottoken"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def sign(body: str, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def slash_body(text: str, response_url: str, user: str = "U0USER", channel: str = "C0CHAN") -> str:
    """A form-encoded slash command with every field Slack sends."""
    return urllib.parse.urlencode({
        "token": "deprecated-verification-token", "team_id": "T1", "team_domain": "acme",
        "channel_id": channel, "channel_name": "pricing", "user_id": user,
        "user_name": "pat", "command": "/valuemetric", "text": text,
        "api_app_id": "A1", "is_enterprise_install": "false", "response_url": response_url,
        "trigger_id": "123.456.abc",
    })


def post(url: str, body: str, *, signature: str | None = None,
         timestamp: int | None = None) -> tuple[int, str, float]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Slack-Request-Timestamp": str(timestamp)}
    headers["X-Slack-Signature"] = sign(body, timestamp) if signature is None else signature
    if signature == "":
        del headers["X-Slack-Signature"]
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(), time.monotonic() - started
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(), time.monotonic() - started


def check_block_kit_limits(payload: dict[str, Any]) -> None:
    assert payload["text"], "every message needs a plain-text fallback"
    blocks = payload["blocks"]
    assert 0 < len(blocks) <= 50
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))


@pytest.fixture(scope="module")
def planted_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    directory = tmp_path_factory.mktemp("slack")
    files = planted.generate(directory, seed=1, n=600)
    url = f"sqlite:///{directory / 'vm.db'}"
    engine = make_engine(url)
    ensure_schema(engine)
    for kind in ("accounts", "usage", "revenue"):
        import_csv(engine, kind, getattr(files, kind))
    engine.dispose()
    return url, files.config


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


@dataclasses.dataclass
class Bot:
    url: str
    fake: FakeSlack

    def ask(self, text: str, name: str = "r1", **kwargs: Any) -> tuple[int, str, float]:
        return post(self.url, slash_body(text, self.fake.response_url(name), **kwargs))

    def reply(self, name: str = "r1") -> dict[str, Any]:
        return self.fake.wait_for(f"/response/{name}")[0].body


def start_bot(settings: Settings, fake: FakeSlack) -> tuple[Bot, Any]:
    engine = make_engine(settings.database.url)
    app = create_app(settings, Secrets(BOT_TOKEN, SIGNING_SECRET, ""), engine,
                     make_web_client(BOT_TOKEN, fake.api_url))
    server = make_http_server(app, "127.0.0.1", 0)
    threading.Thread(target=server.run, daemon=True).start()
    return Bot(f"http://127.0.0.1:{server.effective_port}/slack/events", fake), server


@pytest.fixture
def bot_for(fake: FakeSlack) -> Iterator[Any]:
    servers: list[Any] = []

    def build(settings: Settings) -> Bot:
        bot, server = start_bot(settings, fake)
        servers.append(server)
        return bot

    yield build
    for server in servers:
        stop_http_server(server)


@pytest.fixture
def settings(planted_db: tuple[str, Path]) -> Settings:
    url, config = planted_db
    return load_settings(config, env={"VALUEMETRIC_DATABASE_URL": url})


@pytest.mark.parametrize(("text", "expect"), [
    ("", "valuemetric: what to charge for"),
    ("help", "/valuemetric thresholds METRIC"),
    ("metrics", "seats"),
    ("correlate", "Which usage predicts value"),
    ("segments", "Churned customers"),
    ("thresholds seats", "activation: *"),
    ("customer a00001", "a00001"),
    ("recommend", "Price per seat (seats)"),
    ("simulate seats", "would pay more"),
    ("digest", "weekly digest"),
    ("alerts", "No crossings yet"),
    ("corelate", "Did you mean correlate"),
])
def test_every_subcommand_answers_through_response_url(bot_for: Any, settings: Settings,
                                                       text: str, expect: str) -> None:
    bot = bot_for(settings)
    status, _, elapsed = bot.ask(text)
    assert status == 200 and elapsed < 3
    reply = bot.reply()
    assert reply["response_type"] == "ephemeral"
    check_block_kit_limits(reply)
    assert expect in json.dumps(reply["blocks"]) or expect in reply["text"]


def test_same_numbers_as_the_cli(bot_for: Any, settings: Settings) -> None:
    bot = bot_for(settings)
    bot.ask("thresholds seats")
    reply = json.dumps(bot.reply())
    context = reports.Context.load(make_engine(settings.database.url), settings)
    cutoff = context.thresholds("seats").activation.cutoff
    assert cutoff is not None
    assert f"activation: *{cutoff.value:g}*" in reply


def test_bad_missing_and_stale_signatures_get_401_and_run_nothing(bot_for: Any,
                                                                  settings: Settings) -> None:
    bot = bot_for(settings)
    body = slash_body("correlate", bot.fake.response_url())
    now = int(time.time())
    assert post(bot.url, body, signature="v0=" + "0" * 64)[0] == 401
    assert post(bot.url, body, signature="")[0] == 401
    assert post(bot.url, body, timestamp=now - 360, signature=sign(body, now - 360))[0] == 401
    assert post(bot.url, body, signature=sign(body, now, "another-secret"))[0] == 401
    time.sleep(0.5)
    assert bot.fake.calls_to("/response/r1") == []


def test_healthz(bot_for: Any, settings: Settings) -> None:
    bot = bot_for(settings)
    health = bot.url.replace("/slack/events", "/healthz")
    with urllib.request.urlopen(health, timeout=5) as response:
        assert response.status == 200 and response.read() == b"ok\n"


def test_six_slow_commands_are_all_acknowledged_in_time(
        bot_for: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    real_answer = reports.answer

    def slow_answer(*args: Any, **kwargs: Any) -> Any:
        time.sleep(4)  # longer than Slack's 3 s: only an ack-first design passes
        return real_answer(*args, **kwargs)

    monkeypatch.setattr(reports, "answer", slow_answer)
    bot = bot_for(settings)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda k: bot.ask("help", name=f"r{k}"), range(6)))
    assert all(status == 200 for status, _, _ in results)
    assert max(elapsed for _, _, elapsed in results) < 3
    for k in range(6):
        assert bot.fake.wait_for(f"/response/r{k}", timeout=30)


def test_allowlist_denies_after_the_ack_without_running_a_query(
        bot_for: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    monkeypatch.setattr(reports.Context, "load", lambda *a, **k: ran.append("query"))
    restricted = dataclasses.replace(settings, access=AccessSettings(
        allowed_users=["UALLOWED"], allowed_usergroups=["S1"]))
    bot = bot_for(restricted)
    status, body, elapsed = bot.ask("correlate", user="USTRANGER")
    assert status == 200 and body == "" and elapsed < 3  # the ack says nothing
    assert "not authorized" in bot.reply()["text"]
    assert ran == []
    monkeypatch.undo()
    status, body, _ = bot.ask("help", name="member", user="UGROUPMEMBER")  # in S1 per the fake
    assert status == 200
    assert "not authorized" not in json.dumps(bot.reply("member"))


def test_the_ack_comes_before_any_slack_or_database_call(
        bot_for: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    restricted = dataclasses.replace(settings, access=AccessSettings(allowed_usergroups=["S1"]))
    bot = bot_for(restricted)
    bot.fake.delay["/api/usergroups.users.list"] = 5  # Slack is slow to list the group
    real_load = reports.Context.load

    def slow_load(*args: Any, **kwargs: Any) -> Any:
        time.sleep(5)  # and so is the database
        return real_load(*args, **kwargs)

    monkeypatch.setattr(reports.Context, "load", slow_load)
    status, _, elapsed = bot.ask("help", user="UGROUPMEMBER")
    assert status == 200 and elapsed < 3
    assert bot.fake.wait_for("/response/r1", timeout=60)


def test_a_full_pool_answers_busy_and_every_ack_is_in_time(
        bot_for: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    real_answer = reports.answer

    def slow_answer(*args: Any, **kwargs: Any) -> Any:
        time.sleep(3)
        return real_answer(*args, **kwargs)

    monkeypatch.setattr(reports, "answer", slow_answer)
    small = dataclasses.replace(settings, serve=ServeSettings(workers=1, queue=1))
    bot = bot_for(small)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda k: bot.ask("help", name=f"b{k}"), range(6)))
    assert all(status == 200 and elapsed < 3 for status, _, elapsed in results)
    busy = [k for k, (_, body, _) in enumerate(results) if "busy" in body]
    answered = [k for k in range(6) if k not in busy]
    assert len(answered) == 2 and len(busy) == 4
    for k in answered:
        assert bot.fake.wait_for(f"/response/b{k}", timeout=30)
    assert all(bot.fake.calls_to(f"/response/b{k}") == [] for k in busy)


def test_slash_text_is_unescaped_before_parsing(bot_for: Any, tmp_path: Path) -> None:
    url, config = _hostile_dataset(tmp_path, metrics=2, name_length=0)
    bot = bot_for(load_settings(config, env={"VALUEMETRIC_DATABASE_URL": url}))
    typed = f"customer {HOSTILE} 1"  # an account name with & < and >
    escaped = typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    bot.ask(escaped)
    reply = json.dumps(bot.reply())
    assert "unknown account" not in reply and "h001" in reply


def test_share_only_where_configured(bot_for: Any, settings: Settings) -> None:
    shared = dataclasses.replace(settings, slack=SlackSettings(share_channels=["CSHARE"]))
    bot = bot_for(shared)
    bot.ask("recommend share", name="ok", channel="CSHARE")
    assert bot.reply("ok")["response_type"] == "in_channel"
    bot.ask("recommend share", name="no", channel="CRANDOM")
    reply = bot.reply("no")
    assert reply["response_type"] == "ephemeral"
    assert "sharing is not enabled in this channel" in json.dumps(reply["blocks"])


def test_rate_limited_response_is_retried_after_retry_after(bot_for: Any,
                                                            settings: Settings) -> None:
    bot = bot_for(settings)
    bot.fake.fail_next("/response/r1", 429, {"Retry-After": "1"})
    bot.ask("help")
    first, second = bot.fake.wait_for("/response/r1", count=2)
    assert second.at - first.at >= 0.9


def test_failed_response_url_falls_back_to_a_direct_message(bot_for: Any,
                                                            settings: Settings) -> None:
    bot = bot_for(settings)
    bot.fake.fail_next("/response/r1", 500, body=b"boom")
    bot.ask("help", user="U0PAT")
    (dm,) = bot.fake.wait_for("/api/chat.postMessage")
    assert dm.body["channel"] == "U0PAT"
    assert dm.headers["Authorization"] == f"Bearer {BOT_TOKEN}"
    check_block_kit_limits(dm.body)


HOSTILE = "<!channel> & <@U999|boss> <https://evil.example|click>"


def _hostile_dataset(directory: Path, metrics: int, name_length: int) -> tuple[str, Path]:
    accounts = ["account_id,name,plan,signup_date,churn_date"]
    usage = ["account_id,date,metric,value"]
    revenue = ["account_id,month,mrr"]
    for i in range(40):
        name = (HOSTILE + " " + "x" * name_length)[: max(name_length, len(HOSTILE))]
        churn = "2025-06-20" if i % 4 == 0 else ""
        accounts.append(f"h{i:03d},\"{name} {i}\",pro,2025-01-01,{churn}")
        for week in range(8):
            day = f"2025-05-{1 + week * 4:02d}" if week < 8 else ""
            for m in range(metrics):
                usage.append(f"h{i:03d},{day},metric_{m:03d},{(i * m + week) % 11}")
        revenue.append(f"h{i:03d},2025-05-01,{100 + i * 40}")
    for name, lines in (("accounts", accounts), ("usage", usage), ("revenue", revenue)):
        (directory / f"{name}.csv").write_text("\n".join(lines) + "\n")
    url = f"sqlite:///{directory / 'hostile.db'}"
    engine = make_engine(url)
    ensure_schema(engine)
    for kind in ("accounts", "usage", "revenue"):
        import_csv(engine, kind, directory / f"{kind}.csv")
    engine.dispose()
    config = directory / "config.toml"
    config.write_text("[analysis]\nbootstrap_resamples = 50\npermutations = 20\n"
                      "min_accounts = 10\nmin_class_size = 3\n")
    return url, config


def test_hostile_names_cannot_ping_or_link(bot_for: Any, tmp_path: Path) -> None:
    url, config = _hostile_dataset(tmp_path, metrics=2, name_length=0)
    bot = bot_for(load_settings(config, env={"VALUEMETRIC_DATABASE_URL": url}))
    bot.ask("customer h001")
    reply = bot.reply()
    text = json.dumps(reply)
    assert "<!channel>" not in text and "<@U999" not in text and "<https://" not in text
    assert "&lt;!channel&gt; &amp; &lt;@U999|boss&gt;" in text


@pytest.mark.parametrize("command", ["correlate", "metrics", "segments", "customer h002",
                                     "recommend", "digest", "help"])
def test_block_kit_limits_with_500_metrics_and_huge_names(bot_for: Any, tmp_path: Path,
                                                          command: str) -> None:
    url, config = _hostile_dataset(tmp_path, metrics=500, name_length=10_000)
    bot = bot_for(load_settings(config, env={"VALUEMETRIC_DATABASE_URL": url}))
    bot.ask(command)
    reply = bot.fake.wait_for("/response/r1", timeout=120)[0].body
    check_block_kit_limits(reply)
    assert "<!channel>" not in json.dumps(reply)


def test_serve_http_end_to_end_and_no_secret_in_logs(planted_db: tuple[str, Path],
                                                     fake: FakeSlack) -> None:
    url, config = planted_db
    env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "VALUEMETRIC_SLACK_API_URL": fake.api_url, "VALUEMETRIC_DATABASE_URL": url,
           "VALUEMETRIC_CONFIG": str(config)}
    env.pop("SLACK_APP_TOKEN", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--http", "--host", "127.0.0.1",
         "--port", "0"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        line, match = "", None
        for _ in range(50):  # start-up log lines come first
            line += process.stderr.readline()
            match = re.search(r"listening on (http://127\.0\.0\.1:\d+/slack/events)", line)
            if match:
                break
        assert match, line
        events = match.group(1)
        assert fake.calls_to("/api/auth.test"), "the bot checks its token at start-up"
        for k, text in enumerate(["help", "correlate", "thresholds seats"]):
            status, _, elapsed = post(events, slash_body(text, fake.response_url(f"e{k}")))
            assert status == 200 and elapsed < 3
            check_block_kit_limits(fake.wait_for(f"/response/e{k}")[0].body)
        assert post(events, slash_body("help", fake.response_url("bad")),
                    signature="v0=bad")[0] == 401
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=10)
    logged = line + errors
    assert "POST /slack/events" in logged
    assert BOT_TOKEN not in logged and SIGNING_SECRET not in logged


APP_TOKEN = "xapp-1-A1-3333-secretapptoken"


class FakeSocketMode:
    """Slack's side of a Socket Mode connection: sends one slash command, records the ack."""

    def __init__(self, command: dict[str, str]) -> None:
        self.command = command
        self.acks: list[tuple[float, dict[str, Any]]] = []
        self.server = serve(self._session, "127.0.0.1", 0)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/link"

    def _session(self, websocket: Any) -> None:
        websocket.send(json.dumps({"type": "hello", "num_connections": 1,
                                   "connection_info": {"app_id": "A1"}}))
        websocket.send(json.dumps({"envelope_id": "env-1", "type": "slash_commands",
                                   "payload": self.command,
                                   "accepts_response_payload": True}))
        sent = time.monotonic()
        for message in websocket:
            answer = json.loads(message)
            if answer.get("envelope_id") == "env-1":
                self.acks.append((time.monotonic() - sent, answer))


def test_serve_socket_mode_end_to_end(planted_db: tuple[str, Path], fake: FakeSlack) -> None:
    url, config = planted_db
    command = dict(urllib.parse.parse_qsl(slash_body("thresholds seats",
                                                     fake.response_url("sock"))))
    slack_side = FakeSocketMode(command)
    fake.socket_mode_url = slack_side.url
    env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN,
           "VALUEMETRIC_SLACK_API_URL": fake.api_url, "VALUEMETRIC_DATABASE_URL": url,
           "VALUEMETRIC_CONFIG": str(config)}
    env.pop("SLACK_SIGNING_SECRET", None)
    process = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--no-scheduler"],
                               env=env, stderr=subprocess.PIPE, text=True)
    try:
        reply = fake.wait_for("/response/sock", timeout=60)[0].body
    finally:
        process.terminate()
        _, logged = process.communicate(timeout=10)
        slack_side.server.shutdown()
    (opened,) = fake.calls_to("/api/apps.connections.open")[:1]
    assert opened.headers["Authorization"] == f"Bearer {APP_TOKEN}"
    (elapsed, _), *_ = slack_side.acks
    assert elapsed < 3
    check_block_kit_limits(reply)
    assert "activation: *" in json.dumps(reply["blocks"])
    assert APP_TOKEN not in logged and BOT_TOKEN not in logged


def test_serve_names_missing_secrets(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "--http"], env=env,
                            capture_output=True, text=True, timeout=60, check=False,
                            cwd=tmp_path)
    assert result.returncode == 1
    assert "SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET not set: HTTP mode needs it" in result.stderr


def test_manifest_lists_the_command_and_scopes(capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    assert main(["manifest", "--request-url", "https://vm.example.com/slack/events"]) == 0
    out = capsys.readouterr().out
    assert "command: /valuemetric" in out and "url: https://vm.example.com/slack/events" in out
    assert "socket_mode_enabled: false" in out
    for scope in ("commands", "chat:write", "files:write", "im:write", "usergroups:read",
                  "channels:history", "groups:history"):
        assert f"- {scope}\n" in out
    assert main(["manifest"]) == 0
    assert "socket_mode_enabled: true" in capsys.readouterr().out


def test_thresholds_chart_is_uploaded_to_the_askers_dm(bot_for: Any, settings: Settings) -> None:
    bot = bot_for(settings)
    bot.ask("thresholds seats", user="U0PAT")
    bot.reply()
    (opened,) = bot.fake.wait_for("/api/conversations.open")
    assert opened.body["users"] == "U0PAT"
    (upload,) = bot.fake.wait_for("/upload/F1")
    assert upload.body["raw_bytes"] > 1000 and upload.body["png"]
    (complete,) = bot.fake.wait_for("/api/files.completeUploadExternal")
    assert complete.body["channel_id"] == "D0DM"
    assert bot.fake.calls_to("/api/chat.postMessage") == []
