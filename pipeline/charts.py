"""Grouped bar charts as inline SVG for the simulation's comparison page.

NOTE: reconstructed from its uses in pipeline/simulate.py and tests/test_simulate.py after
this file was accidentally overwritten by the daily-report work (whose charts now live in
pipeline/report_charts.py); its author should compare it with the original version.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from html import escape

COLORS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9")


def _n(x: Decimal) -> str:
    return str(Decimal(x).quantize(Decimal("0.01"), ROUND_HALF_UP))


def grouped_bars(title: str, categories: list[str], series: dict[str, list], width: int = 560,
                 height: int = 200) -> str:
    """One group of bars per category, one bar per series; values are exact (Decimal or int)."""
    names = list(series)
    largest = max((Decimal(v) for values in series.values() for v in values), default=Decimal(0))
    top, bottom = 30, height - 20
    group = Decimal(width) / max(len(categories), 1)
    bar = group * Decimal("0.8") / max(len(names), 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
           f"<title>{escape(title)}</title>",
           f'<text x="0" y="12" font-size="12">{escape(title)}</text>']
    for i, name in enumerate(names):
        out.append(f'<rect x="{i * 90}" y="16" width="8" height="8" fill="{COLORS[i % len(COLORS)]}"/>'
                   f'<text x="{i * 90 + 12}" y="24" font-size="10">{escape(name)}</text>')
    for c, category in enumerate(categories):
        x0 = group * c + group * Decimal("0.1")
        for i, name in enumerate(names):
            value = series[name][c]
            h = Decimal(bottom - top) * Decimal(value) / largest if largest else Decimal(0)
            out.append(f'<rect x="{_n(x0 + bar * i)}" y="{_n(bottom - h)}" width="{_n(bar)}" height="{_n(h)}" '
                       f'fill="{COLORS[i % len(COLORS)]}" data-series="{escape(name)}" '
                       f'data-category="{escape(category)}" data-value="{escape(str(value))}">'
                       f"<title>{escape(category)} {escape(name)}: {escape(str(value))}</title></rect>")
        out.append(f'<text x="{_n(group * c + group / 2)}" y="{height - 5}" font-size="10" '
                   f'text-anchor="middle">{escape(category)}</text>')
    out.append("</svg>")
    return "\n".join(out)
