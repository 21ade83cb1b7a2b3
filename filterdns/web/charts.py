"""Charts drawn on the server as inline SVG: no JavaScript library, no CDN, and they show
with scripts off. Colours come from classes styled in console.css (CSP forbids inline
styles); every text is escaped. Each bar segment carries a ``<title>``, which browsers show
as a tooltip, and a ``data-tip`` that console.js shows on touch screens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 720
HEIGHT = 260
LEFT = 48  # room for the y-axis numbers
BOTTOM = 28  # room for the x-axis labels
TOP = 10
MAX_X_LABELS = 12


@dataclass(frozen=True, slots=True)
class Bar:
    """One position on the x axis."""

    label: str  # short axis label, e.g. "10:00"
    title: str  # full label for tooltips, e.g. "Mon 23 Nov 10:00-11:00"
    values: dict[str, int]  # series key -> count


@dataclass(frozen=True, slots=True)
class Series:
    key: str  # also the CSS class suffix: "s-<key>"
    label: str


def nice_ceiling(value: float) -> int:
    """The next round number at or above ``value`` (1, 2, 5 × 10^k), at least 1."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return int(step * magnitude)
    return int(10 * magnitude)


def _number(n: float) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:g}M"
    if n >= 1_000:
        return f"{n / 1_000:g}k"
    return f"{n:g}"


def stacked_bars(bars: Sequence[Bar], series: Sequence[Series], *, title: str) -> Markup:
    """A stacked bar chart with a legend, as a ``<figure>`` ready to place in a page."""
    plot_width = WIDTH - LEFT - 8
    plot_height = HEIGHT - TOP - BOTTOM
    totals = [sum(bar.values.get(s.key, 0) for s in series) for bar in bars]
    top = 4 * nice_ceiling(max(totals, default=0) / 4)  # four gridline steps of a round size
    slot = plot_width / max(len(bars), 1)
    bar_width = max(slot * 0.8, 1.0)
    grand_total = sum(totals)
    summary = f"{title}: {grand_total:,} in total" + "".join(
        f", {sum(bar.values.get(s.key, 0) for bar in bars):,} {s.label.lower()}" for s in series
    )
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(summary)}</title>",
    ]
    for i in range(5):  # gridlines at 0, 1/4 ... the top
        value = top * i / 4
        y = TOP + plot_height - plot_height * i / 4
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(value)}</text>')
    every = max(1, math.ceil(len(bars) / MAX_X_LABELS))
    for i, bar in enumerate(bars):
        x = LEFT + i * slot + (slot - bar_width) / 2
        y = TOP + plot_height
        for s in series:
            count = bar.values.get(s.key, 0)
            if not count:
                continue
            height = plot_height * count / top
            y -= height
            tip = escape(f"{bar.title}: {count:,} {s.label.lower()}")
            parts.append(
                f'<rect class="bar s-{escape(s.key)}" x="{x:.1f}" y="{y:.1f}" width="{bar_width:.1f}" '
                f'height="{height:.1f}" data-tip="{tip}"><title>{tip}</title></rect>'
            )
        if i % every == 0:
            parts.append(
                f'<text class="axis" x="{x + bar_width / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
                f"{escape(bar.label)}</text>"
            )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch s-{escape(s.key)}"></span>{escape(s.label)}</li>' for s in series
    )
    return Markup(
        f'<figure class="chart-figure">{"".join(parts)}'
        f'<figcaption><strong>{escape(title)}</strong><ul class="legend">{legend}</ul></figcaption></figure>'
    )
