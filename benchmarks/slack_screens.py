"""Screenshots of every Slack message valuemetric sends, to look at before shipping.

Renders each message type from a demo company (or ``--database-url`` with ``--config``),
turns its Block Kit into an HTML approximation of Slack's look, and screenshots it with
Debian's ``chromium`` at desktop width and at phone width (390 px), beside the charts::

    python benchmarks/slack_screens.py --out /tmp/screens

Prints one line per PNG written. Not a test: the point is a person looking at them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import html
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from analysis.db import ensure_schema, make_engine
from analysis.imports import import_csv
from bot import demo, home, reports
from bot.blocks import Message
from bot.commands import parse
from bot.config import DatabaseSettings, load_settings
from bot.render import AlertRenderer, alert_renderer, render_digest_thread, render_slack

EMOJI = {"white_check_mark": "✅", "x": "❌", "grey_question": "❔", "warning": "⚠️",
         "zzz": "💤", "no_entry_sign": "🚫"}
WIDTHS = {"desktop": 900, "phone": 390}


def mrkdwn_to_html(text: str) -> str:
    # the text is already entity-escaped mrkdwn: only turn Slack's marks into tags
    text = re.sub(r":([a-z_]+):", lambda m: EMOJI.get(m.group(1), m.group(0)), text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"<b>\1</b>", text)
    text = re.sub(r"(?<![\w_])_([^_\n]+)_(?![\w_])", r"<i>\1</i>", text)
    text = re.sub(r"&lt;@(\w+)&gt;|<@(\w+)>", r'<span class="mention">@\1\2</span>', text)
    return text.replace("\n", "<br>")


def block_html(block: dict[str, Any]) -> str:
    kind = block["type"]
    if kind == "header":
        return f'<div class="header">{html.escape(block["text"]["text"])}</div>'
    if kind == "divider":
        return "<hr>"
    if kind == "context":
        return '<div class="context">' + " ".join(
            mrkdwn_to_html(e["text"]) for e in block["elements"]) + "</div>"
    if kind == "section":
        return f'<div class="section">{mrkdwn_to_html(block["text"]["text"])}</div>'
    if kind == "actions":
        return '<div class="actions">' + "".join(
            f'<span class="button">{html.escape(e.get("text", {}).get("text", "") or e.get("placeholder", {}).get("text", ""))}</span>'  # noqa: E501
            for e in block["elements"]) + "</div>"
    return f"<pre>{html.escape(str(block))}</pre>"


STYLE = """
body { font-family: 'DejaVu Sans', Lato, sans-serif; font-size: 15px; color: #1d1c1d;
       margin: 0; padding: 12px; background: #fff; }
.msg { display: flex; gap: 8px; margin-bottom: 14px; }
.avatar { width: 36px; height: 36px; border-radius: 4px; background: #1d3557; flex: none; }
.name { font-weight: bold; } .app { font-size: 10px; background: #ddd; padding: 1px 3px; }
.body { min-width: 0; flex: 1; line-height: 1.46; overflow-wrap: anywhere; }
.header { font-size: 18px; font-weight: 900; margin: 4px 0 6px; }
.section { margin: 4px 0; } .context { color: #616061; font-size: 12px; margin: 4px 0; }
code { background: #f6f6f6; border: 1px solid #ddd; color: #e01e5a; font-size: 12px; }
hr { border: 0; border-top: 1px solid #ddd; }
.actions .button { display: inline-block; border: 1px solid #bbb; border-radius: 4px;
                   padding: 3px 10px; margin: 4px 6px 0 0; font-weight: bold; }
.mention { background: #e8f5fa; color: #1264a3; } .thread { border-left: 3px solid #ddd;
           padding-left: 10px; margin-left: 20px; } .file { color: #616061; font-size: 12px; }
"""


def page(messages: list[Message], thread: bool) -> str:
    parts = []
    for k, message in enumerate(messages):
        inner = "".join(block_html(b) for b in message.blocks)
        if message.chart is not None:
            inner += f'<div class="file">📎 {html.escape(message.chart.filename)}</div>'
        wrapper = "thread" if thread and k else ""
        parts.append(f'<div class="{wrapper}"><div class="msg"><div class="avatar"></div>'
                     f'<div class="body"><span class="name">valuemetric</span> '
                     f'<span class="app">APP</span><br>{inner}</div></div></div>')
    return f"<html><head><meta charset='utf-8'><style>{STYLE}</style></head><body>" \
           + "".join(parts) + "</body></html>"


def screenshot(chromium: str, html_path: Path, png: Path, width: int, height: int) -> None:
    """A tall viewport, then the white space below the last message cropped away."""
    from PIL import Image, ImageChops

    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--hide-scrollbars",
                    f"--window-size={width},{height}", f"--screenshot={png}",
                    html_path.as_uri()], check=True, capture_output=True, timeout=120)
    with Image.open(png) as image:
        rgb = image.convert("RGB")
    box = ImageChops.difference(rgb, Image.new("RGB", rgb.size, "white")).getbbox()
    if box:
        rgb.crop((0, 0, width, min(height, box[3] + 12))).save(png)


def estimated_height(messages: list[Message], width: int) -> int:
    chars = sum(len(str(b)) for m in messages for b in m.blocks)
    return min(16_000, 400 + int(chars * (60 if width < 500 else 25) / 100))


def collect(url: str, config: Path | None) -> dict[str, tuple[list[Message], bool]]:
    settings = load_settings(config, env={}) if config else load_settings(None, env={})
    settings = dataclasses.replace(settings, database=DatabaseSettings(url=url))
    engine = make_engine(url)
    ctx = reports.Context.load(engine, settings)
    metric = ctx.recommendation.primary or ctx.names()[0]
    account = str(ctx.dataset.active.sort_values("arr").index[-1])
    out: dict[str, tuple[list[Message], bool]] = {}
    for text in ("help", "help AUC", "metrics", "correlate", "segments", f"thresholds {metric}",
                 f"customer {account}", "recommend", f"simulate {metric}", "alerts"):
        report = reports.answer(ctx, parse(text, ctx.names()))
        out[text.split()[0] + ("-term" if text == "help AUC" else "")] = (
            [render_slack(report)], False)
    digest = reports.build_digest(ctx, None, warnings=(
        "3 accounts have no revenue at the as-of date", "usage of exports stops on 2026-10-01"))
    out["digest-thread"] = (render_digest_thread(digest), True)
    renderer = alert_renderer(settings)
    crossings = list(digest.data.alerts.crossings) if digest.data.alerts else []
    if crossings:
        out["alert-card"] = ([renderer.message(crossings[0], 1)], False)
        out["rollup"] = ([AlertRenderer().rollup((crossings * 3)[:25])], False)
    view = home.home_view(home.build_home(ctx), reports.style_of(ctx))
    out["app-home"] = ([Message("home", view["blocks"])], False)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="slack-screens", help="directory for the PNGs")
    parser.add_argument("--database-url", help="use this database instead of a demo")
    parser.add_argument("--config", type=Path, help="settings for --database-url")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs chromium: apt-get install -y chromium")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url
        if url is None:
            url = f"sqlite:///{tmp}/demo.db"
            engine = make_engine(url)
            ensure_schema(engine)
            files = demo.generate(Path(tmp), n_accounts=600, seed=3)
            for kind in ("accounts", "usage", "revenue"):
                import_csv(engine, kind, getattr(files, kind))
        for name, (messages, thread) in collect(url, args.config).items():
            html_path = Path(tmp) / f"{name}.html"
            html_path.write_text(page(messages, thread))
            for label, width in WIDTHS.items():
                png = out / f"{name}-{label}.png"
                screenshot(chromium, html_path, png, width, estimated_height(messages, width))
                print(png)
            for message in messages:
                if message.chart is not None:
                    png = out / message.chart.filename
                    png.write_bytes(message.chart.png)
                    print(png)
    print(f"rendered at {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
