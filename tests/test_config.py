from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError, Secrets, load_settings, parse_settings, setting_paths

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def _paths_in(raw: Any, prefix: str = "") -> set[str]:
    found: set[str] = set()
    if isinstance(raw, dict):
        for key, value in raw.items():
            path = f"{prefix}.{key}" if prefix else key
            found.add(path)
            found |= _paths_in(value, path)
    elif isinstance(raw, list) and raw and all(isinstance(v, dict) for v in raw):
        found.add(f"{prefix}[]")
        for item in raw:
            found |= _paths_in(item, f"{prefix}[]")
    return found


def _documented(path: str, raw_text: str, present: set[str]) -> bool:
    if path in present:
        return True
    if ".*." in path:  # plans.NAME.key: any plan documents it
        head, tail = path.split(".*.")
        return any(p.startswith(head + ".") and p.endswith("." + tail) for p in present)
    # optional keys shown commented out, e.g. "# as_of = 2025-06-30"
    return f"# {path.rsplit('.', 1)[-1].removesuffix('[]')} =" in raw_text


def test_example_config_loads_and_documents_every_setting() -> None:
    settings = load_settings(EXAMPLE, env={})
    assert settings.metrics[0].name == "active_users"
    text = EXAMPLE.read_text()
    present = _paths_in(tomllib.loads(text))
    missing = [p for p in setting_paths() if not _documented(p, text, present)]
    assert not missing, f"config.example.toml does not document: {missing}"


def test_the_documentation_check_notices_a_missing_setting() -> None:
    text = EXAMPLE.read_text().replace("stale_after_days = 8", "")
    present = _paths_in(tomllib.loads(text))
    assert not _documented("digest.stale_after_days", text, present)


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings.database.url == "sqlite:///valuemetric.db"
    assert settings.analysis.window_days == 28
    assert [s.name for s in settings.segments] == ["High-LTV customers (>$10k ARR)",
                                                    "Churned customers"]


def test_config_toml_in_working_directory_and_env_overrides(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text("[analysis]\nwindow_days = 35\n")
    assert load_settings(env={}).analysis.window_days == 35
    other = tmp_path / "other.toml"
    other.write_text("[analysis]\nwindow_days = 14\n[database]\nurl = 'sqlite:///x.db'\n")
    settings = load_settings(env={"VALUEMETRIC_CONFIG": str(other),
                                  "VALUEMETRIC_DATABASE_URL": "sqlite:///y.db"})
    assert settings.analysis.window_days == 14
    assert settings.database.url == "sqlite:///y.db"


@pytest.mark.parametrize(("toml", "message"), [
    ("[analysis]\nwindw_days = 3\n",
     "analysis.windw_days: unknown key (did you mean 'window_days'?)"),
    ("[analysis]\nwindow_days = 'four'\n", "analysis.window_days: expected an integer, got 'four'"),
    ("[analysis]\nwindow_days = true\n", "analysis.window_days: expected an integer"),
    ("[analysis]\nalpha = 2\n", "analysis.alpha: must be between 0 and 1"),
    ("[analysis]\nas_of = 'yesterday'\n", "analysis.as_of: expected a date like 2025-01-31"),
    ("[[metrics]]\ncategory = 'seat'\n", "metrics[0].name: missing required value"),
    ("[[metrics]]\nname = 'x'\ncategory = 'seats'\n", "category 'seats' is not one of seat"),
    ("[[alerts.rules]]\nmetric = 'x'\n", "alerts.rules[0].above: missing required value"),
    ("[[metrics]]\nname = 'users'\n[[alerts.rules]]\nmetric = 'user'\nabove = 3\n",
     "alerts.rules[0].metric: unknown metric 'user' (did you mean 'users'?)"),
    ("[slack]\nbot_token = 'xoxb-1'\n", "slack.bot_token: secrets are not read from the config"),
    ("[digest]\ntimezone = 'Mars/Olympus'\n", "digest.timezone: unknown timezone 'Mars/Olympus'"),
    ("[plans.pro]\nlimits = { seats = 3 }\n", "plans.pro.rank: missing required value"),
    ("wat = 1\n", "wat: unknown key"),
])
def test_bad_settings_name_the_key_and_the_fix(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[analysis\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env={})
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(env={"VALUEMETRIC_CONFIG": str(tmp_path / "nope.toml")})


def test_typed_values() -> None:
    settings = parse_settings({"analysis": {"as_of": dt.date(2025, 1, 31), "alpha": 0.1},
                               "plans": {"pro": {"rank": 2, "limits": {"seats": 10}}}})
    assert settings.analysis.as_of == dt.date(2025, 1, 31)
    assert settings.plans["pro"].limits == {"seats": 10.0}


def test_secrets_come_from_the_environment_and_never_print() -> None:
    secrets = Secrets.from_env({"SLACK_BOT_TOKEN": "xoxb-secret", "SLACK_SIGNING_SECRET": "s3"})
    assert secrets.bot_token == "xoxb-secret"
    assert "xoxb-secret" not in repr(secrets) and "s3" not in repr(secrets)
