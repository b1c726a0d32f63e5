"""PNG charts for Slack: value rate by usage level, where a picture says more than a table."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display: render straight to PNG bytes

import matplotlib.pyplot as plt

from analysis.correlate import ProxyTrend
from analysis.thresholds import Thresholds

_TITLES = {"retention": "Retention rate by early usage", "expansion": "Expansion rate by usage"}


def threshold_chart(metric: str, proxies: tuple[ProxyTrend, ...],
                    thresholds: Thresholds) -> bytes | None:
    """Retention and expansion rate per usage bin, with the cutoffs marked; None if no data."""
    panels = [p for p in proxies if p.proxy in _TITLES and p.bins]
    if not panels:
        return None
    cutoffs = {"retention": thresholds.activation.cutoff, "expansion": thresholds.expansion.cutoff}
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.4), squeeze=False)
    for ax, proxy in zip(axes[0], panels, strict=True):
        mids = [(b.lo + b.hi) / 2 for b in proxy.bins]
        rates = [100 * b.value for b in proxy.bins]
        widths = [max(b.hi - b.lo, 1e-9) for b in proxy.bins]
        ax.bar(mids, rates, width=[max(w, 0.6) for w in widths], color="#457b9d",
               edgecolor="white")
        cutoff = cutoffs[proxy.proxy]
        if cutoff is not None:
            ax.axvline(cutoff.value, color="#e63946", linestyle="--",
                       label=f"threshold {cutoff.value:g}")
            ax.legend(loc="lower right", frameon=False)
        ax.set_title(_TITLES[proxy.proxy], fontsize=11)
        ax.set_xlabel(metric)
        ax.set_ylabel("% of accounts")
        ax.set_ylim(0, 100)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
