"""Settings: declared as data (dataclass fields with help text), loaded once, validated.

The TOML file only holds non-secret settings. Secrets (Slack tokens) come from the
environment, see :class:`Secrets`. Every problem names the key and the fix, e.g.::

    config.toml: analysis.windw_days: unknown key (did you mean 'window_days'?)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.catalog import CATEGORIES, Metric
from analysis.params import DEFAULT_SEGMENTS, AnalysisSettings, SegmentRule, setting
from analysis.sources import RevenueSettings, SourceSettings

DEFAULT_DATABASE_URL = "sqlite:///valuemetric.db"


class ConfigError(Exception):
    """A setting is unknown, missing or of the wrong type; the message says which and how to fix."""


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = setting(
        DEFAULT_DATABASE_URL,
        help="SQLAlchemy URL of the usage database; VALUEMETRIC_DATABASE_URL overrides it",
    )


@dataclass(frozen=True)
class SlackSettings:
    digest_channel: str = setting("", help="channel id for the weekly digest, e.g. C0123456789")
    alert_channel: str = setting("", help="channel id for expansion alerts")
    share_channels: list[str] = setting(
        help="channels where results with revenue may be shared on request", factory=list
    )


@dataclass(frozen=True)
class DigestSettings:
    day_of_week: str = setting("mon", help="cron day_of_week for the weekly digest")
    hour: int = setting(9, help="cron hour (in timezone)")
    minute: int = setting(0, help="cron minute")
    timezone: str = setting("UTC", help="IANA timezone the schedule is read in")
    catch_up_grace_days: int = setting(2, help="post a missed digest at start-up if this recent")
    stale_after_days: int = setting(8, help="warn when the newest usage is older than this")


@dataclass(frozen=True)
class AlertRule:
    metric: str = setting(help="metric name from the catalog")
    above: float = setting(help="alert when the level rises to at least this")
    plans: list[str] = setting(help="only accounts on these plans (empty: any)", factory=list)


@dataclass(frozen=True)
class AlertSettings:
    interval_minutes: int = setting(60, help="how often crossings are evaluated")
    hysteresis: float = setting(0.10, help="re-arm after the level falls this far below")
    learned_thresholds: bool = setting(True, help="alert on learned expansion thresholds")
    plan_limit_shares: list[float] = setting(
        help="alert at these shares of a plan limit", factory=lambda: [0.8, 1.0]
    )
    templates_dir: str = setting("", help="directory of templates overriding the shipped ones")
    max_per_run: int = setting(10, help="alert messages per evaluation; further crossings go "
                               "into one roll-up message")
    rules: list[AlertRule] = setting(help="explicit alert rules", factory=list)


@dataclass(frozen=True)
class Plan:
    rank: int = setting(help="tier order: higher includes lower (Starter 1, Team 2, ...)")
    limits: dict[str, float] = setting(help="metric -> included amount", factory=dict)


@dataclass(frozen=True)
class AccessSettings:
    allowed_users: list[str] = setting(help="user ids allowed (empty: everyone)", factory=list)
    allowed_channels: list[str] = setting(help="channel ids allowed (empty: any)", factory=list)
    allowed_usergroups: list[str] = setting(help="user group ids allowed", factory=list)


@dataclass(frozen=True)
class DeliverySettings:
    lease_seconds: int = setting(
        600, help="a claimed post whose claimer has not finished within this long is "
        "reconciled from the channel history by the next run")


@dataclass(frozen=True)
class ServeSettings:
    workers: int = setting(4, help="commands and button clicks answered at the same time")
    queue: int = setting(32, help="commands waiting for a worker; past this users are told "
                         "the bot is busy")
    http_threads: int = setting(8, help="HTTP mode: threads acknowledging Slack's requests")
    cache_seconds: int = setting(60, help="slash commands reuse one analysis for this long, so "
                                 "a burst of questions computes it once (answers may lag an "
                                 "import by this much); 0: a fresh analysis for every command")


@dataclass(frozen=True)
class PricingSettings:
    billed_on: str = setting("", help='what sets ARR today: "plan" (plan tiers), "flat" (one '
                             'price) or a metric name from [[metrics]] (priced per unit); empty: '
                             "detected from the data")


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings = setting(help="where usage lives", factory=DatabaseSettings)
    analysis: AnalysisSettings = setting(help="analysis windows", factory=AnalysisSettings)
    metrics: list[Metric] = setting(help="metric catalog (empty: every metric in the data)",
                                     factory=list)
    segments: list[SegmentRule] = setting(help="segments to compare",
                                           factory=lambda: list(DEFAULT_SEGMENTS))
    slack: SlackSettings = setting(help="channels", factory=SlackSettings)
    digest: DigestSettings = setting(help="weekly digest schedule", factory=DigestSettings)
    alerts: AlertSettings = setting(help="expansion alerts", factory=AlertSettings)
    plans: dict[str, Plan] = setting(help="plans by name, with limits", factory=dict)
    access: AccessSettings = setting(help="who may ask", factory=AccessSettings)
    delivery: DeliverySettings = setting(help="exactly-once scheduled posts",
                                         factory=DeliverySettings)
    serve: ServeSettings = setting(help="`valuemetric serve` capacity", factory=ServeSettings)
    pricing: PricingSettings = setting(help="how prices are set today",
                                       factory=PricingSettings)


    source: SourceSettings = setting(help="SQL over your own database instead of imported "
                                     "tables", factory=SourceSettings)
    revenue: RevenueSettings = setting(help="revenue currency, exchange rates and carry-forward",
                                       factory=RevenueSettings)


@dataclass(frozen=True)
class Secrets:
    """Secrets, from the environment only. ``repr`` hides them so they never reach a log."""

    bot_token: str = field(default="", repr=False)
    signing_secret: str = field(default="", repr=False)
    app_token: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: typing.Mapping[str, str] | None = None) -> Secrets:
        env = os.environ if env is None else env
        return cls(
            bot_token=env.get("SLACK_BOT_TOKEN", ""),
            signing_secret=env.get("SLACK_SIGNING_SECRET", ""),
            app_token=env.get("SLACK_APP_TOKEN", ""),
        )


# -- loading -----------------------------------------------------------------------------

_SECRET_KEYS = {"token", "bot_token", "app_token", "signing_secret", "secret", "password"}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            dt.date: "a date (YYYY-MM-DD)"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, where: str, source: str) -> Any:
    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{source}: {where}: expected {expected}, got {value!r}")

    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(value, inner, where, source)
    if origin is list:
        if not isinstance(value, list):
            raise fail(_type_name(tp))
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{where}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise fail("a table")
        _, item = typing.get_args(tp)
        return {k: _convert(v, item, f"{where}.{k}", source) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise fail("a table")
        return _build(tp, value, where, source)
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is dt.date:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise fail("a date like 2025-01-31")
    if tp is int and isinstance(value, bool):
        raise fail(_type_name(tp))
    if isinstance(value, tp):
        return value
    raise fail(_type_name(tp))


def _build(cls: Any, raw: dict[str, Any], prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            if key.lower() in _SECRET_KEYS or "token" in key.lower() or "secret" in key.lower():
                raise ConfigError(
                    f"{source}: {where}: secrets are not read from the config file; set "
                    "SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET or SLACK_APP_TOKEN in the environment"
                )
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = (f" (did you mean '{close[0]}'?)" if close
                    else f" (known keys: {', '.join(fields)})")
            raise ConfigError(f"{source}: {where}: unknown key{hint}")
        values[key] = _convert(value, hints[key], where, source)
    for name, f in fields.items():
        if (name not in values and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING):
            where = f"{prefix}.{name}" if prefix else name
            raise ConfigError(
                f"{source}: {where}: missing required value ({f.metadata.get('help', '')})"
            )
    try:
        return cls(**values)
    except ValueError as exc:  # raised by __post_init__ checks
        raise ConfigError(f"{source}: {prefix or 'top level'}: {exc}") from exc


def _check(settings: Settings, source: str) -> None:
    """Cross-field checks that a type alone cannot express."""
    names = [m.name for m in settings.metrics]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{source}: metrics: '{dupes[0]}' is listed twice; keep one entry")
    known = set(names)
    for i, rule in enumerate(settings.alerts.rules):
        if known and rule.metric not in known:
            close = difflib.get_close_matches(rule.metric, names, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "add it to [[metrics]]"
            raise ConfigError(
                f"{source}: alerts.rules[{i}].metric: unknown metric '{rule.metric}' ({hint})"
            )
    for name, plan in settings.plans.items():
        for metric in plan.limits:
            if known and metric not in known:
                raise ConfigError(
                    f"{source}: plans.{name}.limits.{metric}: unknown metric; "
                    "add it to [[metrics]] or fix the name"
                )
    billed_on = settings.pricing.billed_on
    if billed_on not in ("", "plan", "flat") and billed_on not in known:
        close = difflib.get_close_matches(billed_on, names, n=1)
        hint = (f"did you mean '{close[0]}'?" if close
                else 'use "plan", "flat" or a metric listed in [[metrics]]')
        raise ConfigError(f"{source}: pricing.billed_on: unknown metric '{billed_on}' ({hint})")
    a = settings.analysis
    for key in ("window_days", "early_days", "horizon_days", "expansion_lookback_days",
                "min_accounts", "min_class_size", "bootstrap_resamples", "min_events"):
        if getattr(a, key) < 1:
            raise ConfigError(f"{source}: analysis.{key}: must be at least 1")
    if not 0 < a.alpha < 1:
        raise ConfigError(f"{source}: analysis.alpha: must be between 0 and 1, e.g. 0.05")
    if settings.alerts.max_per_run < 1:
        raise ConfigError(f"{source}: alerts.max_per_run: must be at least 1")
    if settings.delivery.lease_seconds < 1:
        raise ConfigError(f"{source}: delivery.lease_seconds: must be at least 1, e.g. 600")
    for key in ("workers", "queue", "http_threads"):
        if getattr(settings.serve, key) < 1:
            raise ConfigError(f"{source}: serve.{key}: must be at least 1")
    if not 0 <= a.min_rho < 1:
        raise ConfigError(f"{source}: analysis.min_rho: must be from 0 up to 1, e.g. 0.2")
    if not 0.5 <= a.min_auc < 1:
        raise ConfigError(f"{source}: analysis.min_auc: must be from 0.5 up to 1, e.g. 0.6")
    _check_revenue(settings.revenue, source)
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(settings.digest.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"{source}: digest.timezone: unknown timezone '{settings.digest.timezone}' "
            "(use an IANA name such as 'Europe/Berlin')"
        ) from exc


def _check_revenue(revenue: RevenueSettings, source: str) -> None:
    if len(revenue.currency) != 3 or not revenue.currency.isalpha():
        raise ConfigError(f"{source}: revenue.currency: expected an ISO code such as \"USD\", "
                          f"got {revenue.currency!r}")
    for code, rate in revenue.rates.items():
        if rate <= 0:
            raise ConfigError(f"{source}: revenue.rates.{code}: must be above 0 (the value of "
                              f"one {code} in {revenue.currency}, e.g. 1.08)")
    if revenue.carry_forward_months < 0:
        raise ConfigError(f"{source}: revenue.carry_forward_months: must be 0 or more")


def parse_settings(raw: dict[str, Any], source: str = "<defaults>") -> Settings:
    settings: Settings = _build(Settings, raw, "", source)
    _check(settings, source)
    return settings


def load_settings(path: str | Path | None = None,
                  env: typing.Mapping[str, str] | None = None) -> Settings:
    """Load settings once at start-up.

    ``path`` wins, then ``VALUEMETRIC_CONFIG``, then ``./config.toml`` when present, else the
    built-in defaults. ``VALUEMETRIC_DATABASE_URL`` overrides ``database.url``.
    """
    env = os.environ if env is None else env
    chosen = path or env.get("VALUEMETRIC_CONFIG")
    if chosen is None and Path("config.toml").is_file():
        chosen = "config.toml"
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if chosen is not None:
        source = str(chosen)
        try:
            with open(chosen, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise ConfigError(
                f"{source}: file not found; copy config.example.toml there or unset "
                "VALUEMETRIC_CONFIG"
            ) from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    settings = parse_settings(raw, source)
    url = env.get("VALUEMETRIC_DATABASE_URL")
    if url:
        settings = dataclasses.replace(settings, database=DatabaseSettings(url=url))
    return settings


def setting_paths(cls: Any = Settings, prefix: str = "") -> list[str]:
    """Every settable key path, e.g. ``analysis.window_days`` or ``metrics[].name``."""
    paths: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if dataclasses.is_dataclass(tp):
            paths += setting_paths(tp, path)
        elif origin is list and args and dataclasses.is_dataclass(args[0]):
            paths += setting_paths(args[0], f"{path}[]")
        elif origin is dict and len(args) == 2 and dataclasses.is_dataclass(args[1]):
            paths += setting_paths(args[1], f"{path}.*")
        else:
            paths.append(path)
    return paths


__all__ = ["CATEGORIES", "ConfigError", "Metric", "Secrets", "Settings", "load_settings"]
