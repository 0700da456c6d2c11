"""Small SVG bar charts for the daily report: inline, deterministic, no plotting library.

Two shapes cover the report: horizontal bars (one row per label, optionally
stacked by series, optionally each row scaled to 100 %) and vertical columns
stacked by series (documents per day). Geometry is computed in Decimal and
written with two decimals, so the same data gives the same bytes everywhere;
every text is escaped, and each bar carries its exact value (`data-value`) and
a `<title>` for readers and tests.

Every chart has a title: the SVG's `<title>` and `aria-label` always, and with
`show_title=True` also a visible heading above the plot (for pages that do not
print their own heading over each chart, such as the simulation report); the
plot then moves down by `TITLE_HEIGHT` and keeps its geometry otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from markupsafe import Markup, escape

# colour-blind safe (Okabe-Ito), in series order
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
FONT = "DejaVu Sans, sans-serif"
_CENT = Decimal("0.01")
TITLE_HEIGHT = 22


@dataclass(frozen=True)
class Segment:
    """One piece of a bar: its series, exact value (an amount or a count) and the text shown for it."""

    series: str
    value: Decimal | int
    text: str


@dataclass(frozen=True)
class Row:
    label: str
    segments: tuple[Segment, ...]
    total_text: str = ""  # printed after the bar


def _n(x: Decimal) -> str:
    return str(Decimal(x).quantize(_CENT, ROUND_HALF_UP))


def _color(series: list[str], name: str) -> str:
    return PALETTE[series.index(name) % len(PALETTE)]


def _check(rows) -> None:
    for row in rows:
        for seg in row.segments:
            if seg.value < 0:
                raise ValueError(f"{row.label} / {seg.series}: bars need values >= 0, got {seg.value}")


def _legend(series: list[str], y: int) -> list[str]:
    out, x = [], 0
    for name in series:
        out.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{_color(series, name)}"/>')
        out.append(f'<text x="{x + 14}" y="{y + 9}" font-size="10">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return out


def _svg(width: int, height: int, title: str, body: list[str], show_title: bool = False) -> Markup:
    if show_title:  # the heading above, the plot below it, unchanged
        body = [f'<text class="chart-title" x="0" y="15" font-size="13" font-weight="bold">{escape(title)}</text>',
                f'<g transform="translate(0 {TITLE_HEIGHT})">', *body, "</g>"]
        height += TITLE_HEIGHT
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="{FONT}" role="img" aria-label="{escape(title)}">')
    return Markup("\n".join([head, f"<title>{escape(title)}</title>", *body, "</svg>"]))


def hbar_chart(rows: list[Row], series: list[str], *, title: str, normalize: bool = False,
               width: int = 640, label_width: int = 170, total_width: int = 110, bar_height: int = 16,
               show_title: bool = False) -> Markup:
    """Horizontal bars, one per row, segments stacked in `series` order.

    `normalize`: every row fills the width (shares of its own total), for rows whose
    values must not share a scale (amounts in different currencies).
    """
    _check(rows)
    plot = Decimal(width - label_width - total_width)
    largest = max((sum((s.value for s in r.segments), Decimal(0)) for r in rows), default=Decimal(0))
    legend = len(series) > 1
    top = 18 if legend else 0
    body = _legend(series, 0) if legend else []
    for i, row in enumerate(rows):
        y = top + i * (bar_height + 6)
        total = sum((s.value for s in row.segments), Decimal(0))
        scale_base = total if normalize else largest
        body.append(f'<text x="0" y="{y + bar_height - 4}" font-size="10">{escape(row.label)}</text>')
        x = Decimal(label_width)
        for seg in row.segments:
            w = plot * seg.value / scale_base if scale_base else Decimal(0)
            body.append(
                f'<rect class="bar" x="{_n(x)}" y="{y}" width="{_n(w)}" height="{bar_height}" '
                f'fill="{_color(series, seg.series)}" data-label="{escape(row.label)}" '
                f'data-series="{escape(seg.series)}" data-value="{escape(str(seg.value))}">'
                f"<title>{escape(row.label)} · {escape(seg.series)}: {escape(seg.text)}</title></rect>")
            x += w
        if row.total_text:
            body.append(f'<text x="{_n(x + 4)}" y="{y + bar_height - 4}" font-size="10">'
                        f"{escape(row.total_text)}</text>")
    height = top + max(len(rows), 1) * (bar_height + 6)
    return _svg(width, height, title, body, show_title)


def column_chart(columns: list[Row], series: list[str], *, title: str, width: int = 640, height: int = 180,
                 label_every: int = 5, show_title: bool = False) -> Markup:
    """Vertical columns (e.g. one per day) stacked by series, on one scale; every
    `label_every`-th label and the last are written under the axis."""
    _check(columns)
    top = 18
    bottom = height - 16
    plot_h = Decimal(bottom - top - 12)  # room for the largest total above its column
    largest = max((sum((s.value for s in c.segments), Decimal(0)) for c in columns), default=Decimal(0))
    step = Decimal(width) / max(len(columns), 1)
    bar_w = step * Decimal("0.7")
    body = _legend(series, 0)
    body.append(f'<line x1="0" y1="{bottom}" x2="{width}" y2="{bottom}" stroke="#999" stroke-width="0.5"/>')
    for i, col in enumerate(columns):
        x = step * i + (step - bar_w) / 2
        y = Decimal(bottom)
        for seg in col.segments:
            h = plot_h * seg.value / largest if largest else Decimal(0)
            y -= h
            body.append(
                f'<rect class="bar" x="{_n(x)}" y="{_n(y)}" width="{_n(bar_w)}" height="{_n(h)}" '
                f'fill="{_color(series, seg.series)}" data-label="{escape(col.label)}" '
                f'data-series="{escape(seg.series)}" data-value="{escape(str(seg.value))}">'
                f"<title>{escape(col.label)} · {escape(seg.series)}: {escape(seg.text)}</title></rect>")
        if col.total_text:
            body.append(f'<text x="{_n(x + bar_w / 2)}" y="{_n(y - 2)}" font-size="8" text-anchor="middle">'
                        f"{escape(col.total_text)}</text>")
        if i % label_every == 0 or i == len(columns) - 1:
            body.append(f'<text x="{_n(x + bar_w / 2)}" y="{height - 4}" font-size="8" text-anchor="middle">'
                        f"{escape(col.label)}</text>")
    return _svg(width, height, title, body, show_title)
