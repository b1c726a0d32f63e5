"""What people see in Slack: the digest headline and its thread, plain language, Slack's
limits, alert evidence, charts, the App Home tab and ``valuemetric doctor``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

import bot
from analysis.alerts import Crossing, Evidence, Rule, backtest, evaluate
from analysis.catalog import Metric
from analysis.db import make_engine
from bot import doctor, glossary, home, reports
from bot.blocks import block_text_length, to_messages
from bot.charts import threshold_chart, wilson
from bot.commands import COMMANDS, UsageError, parse
from bot.config import Settings, SlackSettings, load_settings
from bot.jobs import ROLLUP_SIZE
from bot.render import (
    AlertRenderer,
    AlertTemplateError,
    escape_mrkdwn,
    money,
    qty,
    render_digest_thread,
    render_slack,
    render_text,
)
from bot.sender import Sender, make_web_client
from bot.server import stop_http_server
from tests.fake_slack import FakeSlack
from tests.test_slack import planted_db as shared_planted_db  # noqa: F401 (a fixture)
from tests.test_slack import sign, start_bot

SLACK_TOTAL_TEXT = 12_000
NASTY = "Tyrell & Co <!channel> @here\nline two\x07 @Everyone"


def check_limits(blocks: list[dict[str, Any]], max_blocks: int = 50) -> None:
    assert 0 < len(blocks) <= max_blocks
    assert block_text_length(blocks) <= SLACK_TOTAL_TEXT
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "context":
            assert all(len(e["text"]) <= 2000 for e in block["elements"])


def texts(blocks: list[dict[str, Any]]) -> list[str]:
    out = []
    for block in blocks:
        if block["type"] in ("section", "header"):
            out.append(block["text"]["text"])
        elif block["type"] == "context":
            out += [e["text"] for e in block["elements"]]
    return out


def no_markup_leaks(blocks: list[dict[str, Any]]) -> None:
    for text in texts(blocks):
        for line in text.split("\n"):
            assert line.strip() != "---" and not line.startswith("~ "), line


@pytest.fixture(scope="module")
def planted_ctx(request: pytest.FixtureRequest) -> Iterator[reports.Context]:
    url, config = request.getfixturevalue("shared_planted_db")  # test_slack's database
    settings = load_settings(config, env={"VALUEMETRIC_DATABASE_URL": url})
    settings = dataclasses.replace(settings, slack=SlackSettings(digest_channel="CDIGEST",
                                                                 alert_channel="CALERT"))
    engine = make_engine(url)
    yield reports.Context.load(engine, settings)
    engine.dispose()


@pytest.fixture(scope="module")
def digest(planted_ctx: reports.Context) -> reports.Report:
    return reports.build_digest(planted_ctx, None, now=dt.datetime(2026, 1, 6, tzinfo=dt.UTC))


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


def lead(k: int, name: str = NASTY) -> reports.Lead:
    return reports.Lead(f"acct-{k}", f"{name} {k}", 1000.0 * k, "seats", 12.25, 10.0,
                        "learned expansion threshold", None, 0.31, 0.09)


# -- text from data cannot change a message's shape ----------------------------------------


def test_text_from_data_is_one_line_escaped_and_pings_nobody() -> None:
    safe = escape_mrkdwn(NASTY)
    assert "\n" not in safe and "\x07" not in safe
    assert "<" not in safe and "&amp;" in safe and "&lt;!channel&gt;" in safe
    assert not re.search(r"@(here|channel|everyone)\b", safe, re.IGNORECASE)
    assert "@\u2060here" in safe and "@\u2060Everyone" in safe


def test_markers_inside_a_paragraph_become_blocks_not_text() -> None:
    (message,) = to_messages("*Title*\nbody line\n---\n~ a note\nmore body")
    assert [b["type"] for b in message.blocks] == ["section", "divider", "context", "section"]
    no_markup_leaks(message.blocks)


def test_a_rollup_group_of_long_nasty_names_fits_one_message_largest_arr_first() -> None:
    renderer = AlertRenderer()
    crossings = [Crossing(Rule("learned:seats", "seats", 10.0, (), "learned"), f"acct-{k}",
                          f"{k:03d} {NASTY} " + "x" * 500, "team", None, 12.0, float(k * 100),
                          1, Evidence(40, 13, 5000, 250)) for k in range(ROLLUP_SIZE)]
    message = renderer.rollup(crossings)
    check_limits(message.blocks)
    assert "left out" not in json.dumps(message.blocks)
    shown = "\n".join(texts(message.blocks))
    order = [int(n) for n in re.findall(r"• \*(\d{3}) Tyrell", shown)]
    assert order == sorted(range(ROLLUP_SIZE), reverse=True)  # each once, largest ARR first
    assert "@here" not in shown and "@\u2060here" in shown


# -- the digest: headline first, details in the thread -------------------------------------


def test_digest_headline_fits_a_phone_screen_and_the_thread_carries_the_rest(
        digest: reports.Report) -> None:
    thread = render_digest_thread(digest)
    top, *replies = thread
    assert block_text_length(top.blocks) <= 1500 and len(top.blocks) <= 12
    headline = "\n".join(texts(top.blocks))
    assert "evidence" in headline and "Worth a call this week" in headline
    assert "Retention AUC" not in headline  # no statistics table up top
    joined = "\n".join(t for m in replies for t in texts(m.blocks))
    for part in ("How each metric predicts value", "Churned customers",
                 "Thresholds for seats", "This week's crossings", "What to charge for"):
        assert part in joined
    for message in thread:
        check_limits(message.blocks)
        no_markup_leaks(message.blocks)
        assert message.text
    charts = [m.chart for m in replies if m.chart is not None]
    assert charts and all(c.png.startswith(b"\x89PNG") for c in charts)
    # the chart goes with its thresholds: the reply carrying it is that metric's thresholds
    for message in replies:
        if message.chart is not None:
            metric = message.chart.filename.removeprefix("thresholds-").removesuffix(".png")
            assert f"Thresholds for {metric}" in "\n".join(texts(message.blocks))


def test_headline_stays_within_budget_with_many_long_leads_and_warnings(
        digest: reports.Report) -> None:
    d = digest.data
    crowded = dataclasses.replace(d, leads=tuple(lead(k, "N" * 200) for k in range(60)),
                                  warnings=tuple("W" * 400 for _ in range(12)))
    top, *replies = render_digest_thread(dataclasses.replace(digest, data=crowded))
    assert block_text_length(top.blocks) <= 1500 and len(top.blocks) <= 12
    assert "more in the thread" in "\n".join(texts(top.blocks))
    listed = "\n".join(t for m in replies for t in texts(m.blocks))
    assert all(f"{'N' * 200} {k}:" in listed for k in range(60))  # every crossing in the thread


def test_the_headline_says_in_words_what_changed(digest: reports.Report) -> None:
    d = digest.data
    before = d.statistics()
    primary = d.recommendation.primary
    before[primary] = {**before[primary], "retention_q": 1.0}  # last week: no signal
    changed = dataclasses.replace(d, previous=before)
    headline = "\n".join(texts(render_slack(dataclasses.replace(digest, data=changed)).blocks))
    assert f"*Since last week:* {primary} now predicts retention; nothing else moved." \
        in headline
    same = dataclasses.replace(d, previous=d.statistics())
    assert "*Since last week:* nothing moved." in "\n".join(
        texts(render_slack(dataclasses.replace(digest, data=same)).blocks))


def test_cli_digest_text_has_the_same_content(digest: reports.Report) -> None:
    text = render_text(digest)
    top = "\n".join(texts(render_slack(digest).blocks))  # /valuemetric digest: a preview
    assert "A preview of the channel message" in top
    primary = digest.data.recommendation.primary
    assert f"Charge per {digest.data.correlation.get(primary).metric.singular}" in text
    assert f"Charge per {digest.data.correlation.get(primary).metric.singular}" in top
    assert text.index("Worth a call this week") < text.index("== Which usage predicts value")


# -- plain language --------------------------------------------------------------------------


def test_each_statistic_is_glossed_once_per_message(digest: reports.Report) -> None:
    for message in render_digest_thread(digest):
        body = "\n".join(texts(message.blocks))
        for term in glossary.TERMS:
            assert body.count(f"(_{term.short}_)") <= 1
    correlation = "\n".join(texts(render_digest_thread(digest)[1].blocks))
    assert "(_" + glossary.lookup("AUC").short + "_)" in correlation  # type: ignore[union-attr]


def test_every_glossed_term_in_the_templates_is_in_the_glossary() -> None:
    root = Path(bot.__file__).parent / "templates"
    used = set()
    for path in root.rglob("*.j2"):
        used |= set(re.findall(r'g\("([^"]+)"\)', path.read_text()))
    assert used and all(glossary.lookup(name) for name in used), used
    # activation and expansion are glossed through the threshold's kind
    assert glossary.lookup("activation") and glossary.lookup("expansion")


@pytest.mark.parametrize("term", ["rho", "partial", "AUC", "q", "CI", "J", "PPV", "NPV", "lift",
                                  "hazard ratio", "concordance", "\u03c1", "c-index"])
def test_help_term_explains_it(planted_ctx: reports.Context, term: str) -> None:
    report = reports.answer(planted_ctx, parse(f"help {term}", planted_ctx.names()))
    assert report.kind == "term"
    text = "\n".join(texts(render_slack(report).blocks))
    assert report.data.long in text.replace("&amp;", "&")
    assert report.data.short in render_text(report)


def test_help_with_an_unknown_term_suggests_one(planted_ctx: reports.Context) -> None:
    with pytest.raises(UsageError, match="Did you mean AUC"):
        reports.answer(planted_ctx, parse("help auc2", planted_ctx.names()))
    assert "help [TERM]" in "\n".join(texts(render_slack(reports.answer(
        planted_ctx, parse("help", planted_ctx.names()))).blocks))


def test_money_and_counts_read_like_people_write_them() -> None:
    assert money(12_400.4) == "$12,400" and money(42.5) == "$42.50"
    assert money(-1500, "EUR") == "-€1,500" and money(2_000_000, "SEK") == "2,000,000 SEK"
    assert qty(23.25) == "23" and qty(3.333) == "3.33" and qty(2.25) == "2.25" and qty(4.0) == "4"


def test_money_follows_the_revenue_currency_and_event_counts_name_their_period(
        planted_ctx: reports.Context) -> None:
    settings = planted_ctx.settings
    euros = dataclasses.replace(settings, revenue=dataclasses.replace(settings.revenue,
                                                                      currency="EUR"))
    assert reports.revenue_currency(euros) == "EUR"
    assert money(12_400, reports.revenue_currency(euros)) == "€12,400"
    calls = Metric(name="api_calls", unit="API calls", events=["api_call"], period="week")
    assert reports.metric_unit(calls) == "API calls a week"
    assert reports.metric_unit(Metric(name="seats", unit="seats")) == "seats"


# -- alert evidence ---------------------------------------------------------------------------


def test_alert_card_sentence_comes_from_the_backtest_numbers() -> None:
    card = AlertRenderer().document(Crossing(
        Rule("learned:seats", "seats", 10.0, (), "learned"), "a1", "Acme", "team", None, 12.0,
        24_000.0, 1, Evidence(40, 14, 5000, 250)))
    assert "35% of this rule's 40 crossings were followed by an expansion within 90 days" in card
    assert "against 5% for accounts below it (the base rate): 7.0\u00d7 as often" in card
    assert "$24,000 ARR" in card
    few = AlertRenderer().document(Crossing(
        Rule("r", "seats", 10.0), "a1", "Acme", "team", None, 12.0, 24_000.0, 1,
        Evidence(3, 1, 5000, 250)))
    assert "only 3 times" in few and "%" not in few.split("Why it matters")[1]


def test_backtest_base_rate_matches_a_direct_count() -> None:
    rng = np.random.default_rng(4)
    dates = [dt.date(2025, 1, 6) + dt.timedelta(weeks=k) for k in range(20)]
    accounts = [f"a{i}" for i in range(80)]
    levels = {d: pd.Series(rng.integers(0, 20, len(accounts)).astype(float), index=accounts)
              for d in dates}
    increases = pd.DataFrame({"account_id": rng.choice(accounts, 60),
                              "month": [dt.date(2025, 1, 1) + dt.timedelta(days=int(x))
                                        for x in rng.integers(0, 300, 60)]})
    result = backtest(Rule("r", "m", 15.0), levels, pd.Series("team", index=accounts),
                      increases, 0.1, 90)
    below = expanded = 0
    for d in dates:
        for account, value in levels[d].items():
            if value < 15.0:
                below += 1
                months = pd.to_datetime(increases.loc[increases.account_id == account, "month"])
                expanded += bool(((months > pd.Timestamp(d))
                                  & (months <= pd.Timestamp(d) + pd.Timedelta(days=90))).any())
    assert (result.baseline, result.baseline_expanded) == (below, expanded)
    assert result.evidence.base_rate == pytest.approx(expanded / below)
    assert result.evidence.hit_rate == result.share_followed


def test_backtest_crossings_follow_the_live_arming_account_by_account() -> None:
    """The week-by-week replay over all accounts at once against the rule applied to each
    account in turn: first week above starts disarmed, hysteresis, plans, missing levels."""
    rng = np.random.default_rng(11)
    dates = [dt.date(2025, 1, 6) + dt.timedelta(weeks=k) for k in range(30)]
    accounts = [f"a{i}" for i in range(120)]
    plans = pd.Series(rng.choice(["team", "pro"], len(accounts)), index=accounts)
    levels = {}
    for d in dates:  # accounts come and go, a few levels are missing
        present = [a for a in accounts if rng.random() < 0.9]
        values = rng.normal(15, 3, len(present))
        values[rng.random(len(present)) < 0.05] = np.nan
        levels[d] = pd.Series(values, index=present)
    for rule in (Rule("r", "m", 16.0), Rule("p", "m", 14.0, ("pro",))):
        armed: dict[str, bool] = {}
        expected: list[tuple[str, pd.Timestamp]] = []
        for k, d in enumerate(dates):
            for account, value in zip(levels[d].index.astype(str), levels[d], strict=True):
                if rule.plans and plans[account] not in rule.plans:
                    continue
                above = value >= rule.threshold
                if account not in armed:
                    armed[account] = not (above and k == 0)
                if above and armed[account]:
                    expected.append((account, pd.Timestamp(d)))
                    armed[account] = False
                elif not above and value < rule.threshold * 0.9:
                    armed[account] = True
        increases = pd.DataFrame({  # a month after every third crossing
            "account_id": [a for a, _ in expected[::3]],
            "month": [(d + pd.Timedelta(days=30)).date() for _, d in expected[::3]]})
        result = backtest(rule, levels, plans, increases, 0.1, 90)
        months = pd.to_datetime(increases["month"])
        followed = sum(bool(((months > d) & (months <= d + pd.Timedelta(days=90))
                             & (increases["account_id"] == a)).any()) for a, d in expected)
        caught = sum(any(a == b and m - pd.Timedelta(days=90) <= d < m for b, d in expected)
                     for a, m in zip(increases["account_id"], months, strict=True))
        assert len(expected) > 50 and caught > 0
        assert (result.alerts, result.followed_by_expansion, result.expansions_caught) == (
            len(expected), followed, caught)


def test_alert_evidence_is_replayed_once_for_every_rule_that_fires(
        planted_ctx: reports.Context) -> None:
    """The rules that fire are replayed together (their metrics share each date's query),
    with the same track record each would have alone."""
    ds = planted_ctx.dataset
    metrics = [m for m in planted_ctx.names() if ds.current[m].gt(0).any()][:2]
    assert len(metrics) == 2
    rules = [Rule(f"r:{m}", m, float(ds.current[m][ds.current[m] > 0].min())) for m in metrics]
    asked: list[list[str]] = []

    def evidence(fired: list[Rule]) -> dict[str, Evidence]:
        asked.append([r.key for r in fired])
        return {r.key: Evidence(10 + i, i, 100, 5) for i, r in enumerate(fired)}

    quiet = pd.DataFrame(index=pd.Index([], name="key"))
    found = evaluate(ds, quiet, rules, {}, 0.1, dt.datetime(2026, 1, 6, tzinfo=dt.UTC),
                     evidence=evidence)
    assert asked == [[r.key for r in rules]]
    assert {c.rule.key for c in found.crossings} == set(asked[0])
    for c in found.crossings:
        assert c.evidence.crossings == 10 + asked[0].index(c.rule.key)

    together = {b.rule.key: b.evidence for b in planted_ctx.replay(rules)}
    for rule in rules:
        alone = reports.Context.load(planted_ctx.engine, planted_ctx.settings)
        assert alone.replay([rule])[0].evidence == together[rule.key]


# -- charts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (57, 140), (1, 3)])
def test_wilson_interval_matches_statsmodels(k: int, n: int) -> None:
    assert wilson(k, n) == pytest.approx(proportion_confint(k, n, method="wilson"), abs=1e-9)


def test_threshold_chart_adds_retention_curves_when_survival_ran(
        planted_ctx: reports.Context) -> None:
    from PIL import Image

    proxies = planted_ctx.correlation.get("seats").alignment.proxies
    thresholds = planted_ctx.thresholds("seats")
    assert thresholds.survival_bands
    with_curves = threshold_chart("seats", proxies, thresholds, "seats")
    without = threshold_chart("seats", proxies,
                              dataclasses.replace(thresholds, survival_bands=()), "seats")
    assert with_curves is not None and without is not None
    assert with_curves.startswith(b"\x89PNG")
    heights = [Image.open(io.BytesIO(png)).size[1] for png in (with_curves, without)]
    assert heights[0] > heights[1] * 1.3  # one more panel


# -- templates: broken or endless ones are caught at start-up ---------------------------------


def test_a_template_that_runs_forever_is_stopped_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "alerts").mkdir()
    (tmp_path / "alerts" / "alert.md.j2").write_text(
        "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}")
    started = time.monotonic()
    with pytest.raises(AlertTemplateError, match="longer than 1 s"):
        AlertRenderer(str(tmp_path)).validate()
    assert time.monotonic() - started < 5


def test_a_template_that_errors_is_reported_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "alerts").mkdir()
    (tmp_path / "alerts" / "rollup.md.j2").write_text("{{ crossings[0].nope.deeper }}")
    with pytest.raises(AlertTemplateError, match=r"rollup\.md\.j2"):
        AlertRenderer(str(tmp_path)).validate()


# -- App Home ---------------------------------------------------------------------------------


def test_home_tab_is_published_with_valid_blocks(planted_ctx: reports.Context,
                                                 fake: FakeSlack) -> None:
    sender = Sender(make_web_client("xoxb-test", fake.api_url))
    assert home.opened(lambda: planted_ctx, sender, "U0HOME")
    (call,) = fake.calls_to("/api/views.publish")
    assert call.body["user_id"] == "U0HOME"
    view = call.body["view"]
    assert view["type"] == "home"
    check_limits(view["blocks"], max_blocks=100)
    shown = "\n".join(texts(view["blocks"]))
    for part in ("Recommendation", "Thresholds of the leading metrics",
                 "Latest alerts and what was done", "Data freshness", "Usage up to"):
        assert part in shown
    no_markup_leaks(view["blocks"])
    # refresh republishes for everyone who opened it in this process
    assert home.refresh(planted_ctx.engine, planted_ctx.settings, sender) >= 1
    assert fake.calls_to("/api/views.publish")[-1].body["user_id"] in set(home.VIEWERS)


# -- doctor -----------------------------------------------------------------------------------


def doctor_settings(digest_channel: str, alert_channel: str = "") -> Settings:
    return dataclasses.replace(Settings(), slack=SlackSettings(
        digest_channel=digest_channel, alert_channel=alert_channel))


def test_doctor_passes_a_correct_install(fake: FakeSlack) -> None:
    fake.scopes = ",".join(doctor.manifest_scopes())
    fake.channels = {"C1": {"id": "C1", "name": "pricing", "is_member": True},
                     "C2": {"id": "C2", "name": "alerts", "is_member": False}}
    checks = doctor.run_checks(make_web_client("xoxb-test", fake.api_url),
                               doctor_settings("C1", "C2"))
    assert all(c.ok for c in checks), [c.line() for c in checks]
    assert doctor.log_checks(checks)


@pytest.mark.parametrize(("channel", "scopes", "problem", "fix"), [
    ({"name": "pricing", "is_member": False}, "chat:write", "not_in_channel",
     "/invite @valuemetric in #pricing"),
    ({"name": "secret", "is_member": False, "is_private": True}, None, "private",
     "/invite @valuemetric in #secret"),
    ({"name": "old", "is_archived": True, "is_member": True}, None, "archived", "unarchive #old"),
    (None, None, "channel not found", "set slack.digest_channel to a channel id"),
])
def test_doctor_names_each_channel_problem_and_its_fix(
        fake: FakeSlack, channel: dict[str, Any] | None, scopes: str | None, problem: str,
        fix: str) -> None:
    fake.scopes = scopes
    if channel is not None:
        fake.channels = {"C9": {"id": "C9", **channel}}
    checks = doctor.run_checks(make_web_client("xoxb-test", fake.api_url), doctor_settings("C9"))
    (bad,) = [c for c in checks if c.subject.startswith("slack.digest_channel")]
    assert not bad.ok and problem in bad.detail and fix in bad.fix


def test_doctor_reports_missing_scopes_and_a_revoked_token(fake: FakeSlack) -> None:
    fake.scopes = "commands,chat:write"
    checks = doctor.run_checks(make_web_client("xoxb-test", fake.api_url), Settings())
    (scopes,) = [c for c in checks if c.subject == "scopes"]
    assert not scopes.ok and "chat:write.public" in scopes.detail and "reinstall" in scopes.fix
    fake.fail_next("/api/auth.test", 200, {"Content-Type": "application/json"},
                   b'{"ok": false, "error": "token_revoked"}')
    (token,) = doctor.run_checks(make_web_client("xoxb-test", fake.api_url), Settings())
    assert not token.ok and "token_revoked" in token.detail and "SLACK_BOT_TOKEN" in token.fix


# -- manifest -----------------------------------------------------------------------------------


@pytest.mark.parametrize("request_url", ["", "https://vm.example.com/slack/events"])
def test_manifest_enables_home_and_lists_every_subcommand(request_url: str) -> None:
    from bot.render import ENV

    text = ENV.get_template("manifest.yaml.j2").render(request_url=request_url)
    hint = re.search(r'usage_hint: "([^"]+)"', text)
    assert hint is not None
    assert [w.split()[0] for w in hint.group(1).split(" | ")] == list(COMMANDS)
    assert "home_tab_enabled: true" in text and "- app_home_opened" in text
    assert "- chat:write.public" in text
    assert ("request_url: " + request_url in text.split("event_subscriptions:")[1]) \
        == bool(request_url)
    json.dumps(text)  # plain text, nothing unrenderable


def test_app_home_opened_over_signed_http_publishes_the_home_tab(
        planted_ctx: reports.Context, fake: FakeSlack) -> None:
    bot, server = start_bot(planted_ctx.settings, fake)
    try:
        body = json.dumps({
            "token": "deprecated", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
            "event_id": "Ev1", "event_time": int(time.time()),
            "event": {"type": "app_home_opened", "user": "U0OPENER", "channel": "D0HOME",
                      "tab": "home", "event_ts": f"{time.time():.6f}"}})
        timestamp = int(time.time())
        request = urllib.request.Request(bot.url, data=body.encode(), method="POST", headers={
            "Content-Type": "application/json", "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": sign(body, timestamp)})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        (call,) = fake.wait_for("/api/views.publish", timeout=60)
        assert call.body["user_id"] == "U0OPENER" and call.body["view"]["type"] == "home"
        check_limits(call.body["view"]["blocks"], max_blocks=100)
    finally:
        stop_http_server(server)


# -- first install: the fix from doctor, then the digest arrives, as a thread -----------------


def test_a_channel_missing_the_bot_gets_the_fix_then_the_digest_thread_with_its_chart(
        planted_ctx: reports.Context, fake: FakeSlack) -> None:
    from bot.jobs import Jobs

    settings = planted_ctx.settings
    fake.scopes = "commands,chat:write"  # installed from an old manifest
    fake.joined = set()
    fake.channels = {"CDIGEST": {"id": "CDIGEST", "name": "pricing"},
                     "CALERT": {"id": "CALERT", "name": "sales"}}
    client = make_web_client("xoxb-test", fake.api_url)
    jobs = Jobs(planted_ctx.engine, settings, Sender(client), claimer="first-install")
    now = dt.datetime(2026, 1, 5, 15, 0, tzinfo=dt.UTC)
    assert jobs.post_digest(now) == "failed"  # Slack: not_in_channel
    checks = {c.subject: c for c in doctor.run_checks(client, settings)}
    digest_check = checks["slack.digest_channel CDIGEST"]
    assert not digest_check.ok and "/invite @valuemetric in #pricing" in digest_check.fix
    assert not checks["scopes"].ok

    fake.joined = {"CDIGEST", "CALERT"}  # the admin followed the fix
    assert all(c.ok for c in doctor.run_checks(client, settings) if c.subject != "scopes")
    assert jobs.catch_up(now + dt.timedelta(minutes=5)) == "sent"
    posts = [c.body for c in fake.calls_to("/api/chat.postMessage") if c.body.get("ok", True)]
    headline, *replies = [p for p in posts if p["channel"] == "CDIGEST"][1:]  # [0] refused
    assert "thread_ts" not in headline or not headline["thread_ts"]
    assert block_text_length(headline["blocks"]) <= 1500 and len(headline["blocks"]) <= 12
    assert replies and all(r["thread_ts"] for r in replies)
    upload = fake.calls_to("/api/files.completeUploadExternal")
    assert upload and all(u.body.get("thread_ts") == replies[0]["thread_ts"] for u in upload)


def test_customer_compares_the_activation_cutoff_with_early_usage_not_the_current_level(
        ) -> None:
    from analysis.customer import Customer, CustomerMetric
    grown = CustomerMetric("seats", "seats", level=12.0, early_level=2.0, activation=5.0,
                           expansion=None, percentile=80.0, plan_percentile=60.0)
    young = dataclasses.replace(grown, metric="projects", unit="projects", early_level=None)
    customer = Customer(dt.date(2025, 6, 30), "a1", "Acme", "team", None, True, 12_000.0, 400,
                        None, (grown, young))
    for text in (render_slack(reports.Report("customer", customer.as_of, customer)).text,
                 render_text(reports.Report("customer", customer.as_of, customer))):
        assert "2 in its first weeks, below activation (5)" in text
        assert "early window not complete (activation 5)" in text
