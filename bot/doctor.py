"""``valuemetric doctor``: is the Slack app set up so that digests and alerts arrive?

Checks the bot token (``auth.test``), the OAuth scopes it was granted (Slack returns them in
the ``x-oauth-scopes`` header), and each configured channel (``conversations.info``:
exists, not archived, the bot can post there). Every problem comes with its fix. ``serve``
runs the same checks at start-up and logs them (:func:`log_checks`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import Settings

REINSTALL = ("add it under OAuth & Permissions > Scopes (or paste `valuemetric manifest` into "
             "the app's manifest) and reinstall the app")
BAD_TOKEN = {"invalid_auth", "not_authed", "token_revoked", "account_inactive",
             "token_expired", "no_permission"}


@dataclass(frozen=True)
class Check:
    subject: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        return f"{mark} {self.subject}: {self.detail}" + (f"\n     fix: {self.fix}"
                                                          if self.fix else "")


def manifest_scopes() -> list[str]:
    """The bot scopes the shipped manifest asks for: what a correct install has."""
    from bot.render import ENV

    text = ENV.get_template("manifest.yaml.j2").render(request_url="")
    block = text.split("    bot:\n", 1)[1]
    scopes = []
    for line in block.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        if not stripped.startswith("- "):
            break
        scopes.append(stripped[2:].strip())
    return scopes


def _channels(settings: Settings) -> list[tuple[str, str]]:
    configured = [("slack.digest_channel", settings.slack.digest_channel),
                  ("slack.alert_channel", settings.slack.alert_channel)]
    return [(key, channel) for key, channel in configured if channel]


def check_channel(client: WebClient, key: str, channel: str, scopes: set[str]) -> Check:
    subject = f"{key} {channel}"
    try:
        info = client.conversations_info(channel=channel)["channel"]
    except SlackApiError as exc:
        error = str(exc.response.get("error"))
        if error == "channel_not_found":
            return Check(subject, False, "channel not found",
                         f"set {key} to a channel id (like C0123456789, from the channel's "
                         "details), not its name; for a private channel invite the bot first "
                         "(/invite @valuemetric)")
        if error == "missing_scope":
            return Check(subject, False, "cannot look at channels (missing scope "
                         f"{exc.response.get('needed') or 'channels:read'})", REINSTALL)
        return Check(subject, False, f"conversations.info failed: {error}",
                     "check the channel id and the app's scopes")
    name = f"#{info.get('name', channel)}"
    if info.get("is_archived"):
        return Check(subject, False, f"{name} is archived",
                     f"unarchive {name} or set {key} to another channel")
    if info.get("is_member"):
        return Check(subject, True, f"{name}: the bot is a member and can post")
    if info.get("is_private"):
        return Check(subject, False, f"{name} is private and the bot is not in it",
                     f"invite the bot: type /invite @valuemetric in {name}")
    if "chat:write.public" in scopes:
        return Check(subject, True, f"{name}: public, the bot can post (chat:write.public)")
    return Check(subject, False, f"the bot is not in {name} (Slack answers not_in_channel)",
                 f"invite the bot: type /invite @valuemetric in {name}, or add the "
                 f"chat:write.public scope: {REINSTALL}")


def run_checks(client: WebClient, settings: Settings) -> list[Check]:
    """Token, scopes and every configured channel; never raises for a Slack answer."""
    try:
        response = client.auth_test()
    except SlackApiError as exc:
        error = str(exc.response.get("error"))
        fix = ("copy the Bot User OAuth Token (xoxb-...) from OAuth & Permissions into "
               "SLACK_BOT_TOKEN; reinstall the app if it was revoked") if error in BAD_TOKEN \
            else "check SLACK_BOT_TOKEN and VALUEMETRIC_SLACK_API_URL"
        return [Check("token", False, f"auth.test refused the token: {error}", fix)]
    except OSError as exc:
        return [Check("token", False, f"cannot reach Slack: {exc}",
                      "check the network, a proxy, or VALUEMETRIC_SLACK_API_URL")]
    checks = [Check("token", True, f"bot {response.get('user_id')} in team "
                    f"{response.get('team_id')}")]
    header = {k.lower(): v for k, v in response.headers.items()}.get("x-oauth-scopes")
    scopes = {s.strip() for s in str(header or "").split(",") if s.strip()}
    if header is None:
        checks.append(Check("scopes", True, "Slack did not say which scopes the token has; "
                            "skipped"))
    else:
        missing = [s for s in manifest_scopes() if s not in scopes]
        checks.append(Check("scopes", not missing, "missing " + ", ".join(missing) if missing
                            else "every scope of the manifest granted",
                            REINSTALL.replace("add it", "add them") if missing else ""))
    checks += [check_channel(client, key, channel, scopes)
               for key, channel in _channels(settings)]
    if not _channels(settings):
        checks.append(Check("channels", True, "none configured (set slack.digest_channel and "
                            "slack.alert_channel to post the digest and alerts)"))
    return checks


def log_checks(checks: list[Check], logger: logging.Logger | None = None) -> bool:
    """Log each check (problems as warnings with their fix); True when all passed."""
    logger = logger or logging.getLogger(__name__)
    for check in checks:
        if check.ok:
            logger.info("doctor: %s: %s", check.subject, check.detail)
        else:
            logger.warning("doctor: %s: %s; fix: %s", check.subject, check.detail, check.fix)
    return all(c.ok for c in checks)
