"""PNG charts for Slack: value rate by usage level, where a picture says more than a table.

Bars are usage bins of equal width whatever their range (a top decile spanning 20 to 900
users is one bar, not a wall), labelled with the range they cover and their number of
accounts, with a 95% Wilson interval. The threshold is drawn where it falls inside its
bin and labelled as the text prints it. Where survival analysis ran, a last panel shows
Kaplan-Meier retention curves by early-usage band with their 95% bands. Panels stack
vertically so the chart stays readable at phone width.
"""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")  # no display: render straight to PNG bytes

import matplotlib.pyplot as plt

from analysis.correlate import BinValue, ProxyTrend
from analysis.survival import KaplanMeierBand
from analysis.thresholds import Thresholds
from bot.render import qty

_TITLES = {"retention": "Stayed, by early {unit}", "expansion": "Expanded, by {unit}"}
BAR = "#457b9d"
CURVES = ("#e76f51", "#2a9d8f", "#264653")  # lowest band first
THRESHOLD = "#e63946"
Z95 = 1.959963984540054


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (stays inside [0, 1], sane for small n)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _range_label(b: BinValue | KaplanMeierBand) -> str:
    return qty(b.lo) if qty(b.lo) == qty(b.hi) else f"{qty(b.lo)}\u2013{qty(b.hi)}"


def _position(bins: tuple[BinValue, ...], value: float) -> float:
    """Where ``value`` falls on the equal-width axis: inside its bin, by linear share."""
    for i, b in enumerate(bins):
        if value <= b.hi:
            share = 0.0 if b.hi == b.lo else max(0.0, (value - b.lo) / (b.hi - b.lo))
            return i - 0.5 + share
    return len(bins) - 0.5


def _survival_panel(ax: plt.Axes, bands: tuple[KaplanMeierBand, ...], label: str) -> None:
    for band, colour in zip(bands, CURVES, strict=False):
        months = [t / 30.44 for t in band.times]
        ax.step(months, [100 * v for v in band.survival], where="post", color=colour,
                linewidth=2, label=f"{_range_label(band)} {label} (n={band.n})")
        ax.fill_between(months, [100 * v for v in band.ci_lower],
                        [100 * v for v in band.ci_upper], step="post", color=colour, alpha=0.15)
    ax.set_title(f"Still active, by early {label} (Kaplan-Meier)", fontsize=12, loc="left")
    ax.set_xlabel("months since signup", fontsize=9)
    ax.set_ylabel("% still active", fontsize=10)
    ax.set_ylim(0, 100)
    ax.set_xlim(left=0)
    ax.legend(loc="lower left", frameon=False, fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)


def threshold_chart(metric: str, proxies: tuple[ProxyTrend, ...], thresholds: Thresholds,
                    unit: str = "") -> bytes | None:
    """Retention and expansion rate per usage bin with the cutoffs marked, and retention
    curves by usage band when survival analysis ran; None if there is nothing to draw."""
    panels = [p for p in proxies if p.proxy in _TITLES and p.bins]
    bands = thresholds.survival_bands
    if not panels and not bands:
        return None
    cutoffs = {"retention": thresholds.activation.cutoff, "expansion": thresholds.expansion.cutoff}
    label = unit or metric.replace("_", " ")
    rows = len(panels) + bool(bands)
    fig, axes = plt.subplots(rows, 1, figsize=(6.4, 3.3 * rows), squeeze=False)
    for ax, proxy in zip(axes[:, 0], panels, strict=False):
        bins = proxy.bins
        xs = list(range(len(bins)))
        rates = [100 * b.value for b in bins]
        intervals = [wilson(b.value * b.n, b.n) for b in bins]
        lower = [r - 100 * lo for r, (lo, _) in zip(rates, intervals, strict=True)]
        upper = [100 * hi - r for r, (_, hi) in zip(rates, intervals, strict=True)]
        ax.bar(xs, rates, width=0.8, color=BAR, yerr=[lower, upper], capsize=3,
               error_kw={"elinewidth": 1, "ecolor": "#1d3557"})
        ax.set_xticks(xs, [f"{_range_label(b)}\nn={b.n}" for b in bins],
                      fontsize=8 if len(bins) > 5 else 9)
        cutoff = cutoffs[proxy.proxy]
        if cutoff is not None:
            x = _position(bins, cutoff.value)
            ax.axvline(x, color=THRESHOLD, linestyle="--", linewidth=1.6)
            ax.text(x, 97, f" threshold {qty(cutoff.value)}", color=THRESHOLD, fontsize=10,
                    ha="left" if x < len(bins) / 2 else "right", va="top", fontweight="bold")
        ax.set_title(_TITLES[proxy.proxy].format(unit=label), fontsize=12, loc="left")
        ax.set_xlabel(f"{label}: bands of about equal numbers of accounts", fontsize=9)
        ax.set_ylabel("% of accounts", fontsize=10)
        ax.set_ylim(0, 100)
        ax.set_xlim(-0.6, len(bins) - 0.4)
        ax.spines[["top", "right"]].set_visible(False)
    if bands:
        _survival_panel(axes[-1, 0], bands, label)
    fig.text(0.99, 0.005, "bars: 95% intervals (Wilson); shading: 95% bands", ha="right",
             va="bottom", fontsize=8, color="#555555")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()
