"""The report's SVG bar charts: exact geometry, escaping, valid XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal as D

import pytest

from pipeline.reporting.charts import Row, Segment, column_chart, hbar_chart

NS = {"svg": "http://www.w3.org/2000/svg"}


def _bars(svg) -> list[dict]:
    return [r.attrib for r in ET.fromstring(str(svg)).iterfind("svg:rect[@class='bar']", NS)]


def test_horizontal_bars_share_one_scale():
    svg = hbar_chart([Row("A", (Segment("x", D("50.00"), "50"),), "50"),
                      Row("B", (Segment("x", D("100.00"), "100"),), "100")], ["x"], title="t")
    # plot width = 640 - 170 (labels) - 110 (totals) = 360
    assert [(b["data-label"], b["x"], b["width"], b["data-value"]) for b in _bars(svg)] == [
        ("A", "170.00", "180.00", "50.00"), ("B", "170.00", "360.00", "100.00")]


def test_normalized_stacked_bars_fill_the_width_per_row():
    svg = hbar_chart([Row("EUR", (Segment("a", D("1.00"), ""), Segment("b", D("3.00"), ""))),
                      Row("USD", (Segment("b", 7, ""),))], ["a", "b"], title="t", normalize=True)
    assert [(b["data-label"], b["data-series"], b["x"], b["width"], b["fill"]) for b in _bars(svg)] == [
        ("EUR", "a", "170.00", "90.00", "#0072B2"), ("EUR", "b", "260.00", "270.00", "#E69F00"),
        ("USD", "b", "170.00", "360.00", "#E69F00")]  # a series keeps its colour in every row


def test_columns_stack_bottom_up_on_one_scale():
    svg = column_chart([Row("d1", (Segment("email", 1, ""), Segment("letter", 1, "")), "2"),
                        Row("d2", (Segment("email", 1, ""),), "1")], ["email", "letter"], title="t", label_every=1)
    # plot height = (180 - 16) - 18 - 12 = 134 for the largest total (2); columns 320 wide, bars 70 %
    assert [(b["data-label"], b["data-series"], b["x"], b["y"], b["width"], b["height"]) for b in _bars(svg)] == [
        ("d1", "email", "48.00", "97.00", "224.00", "67.00"),
        ("d1", "letter", "48.00", "30.00", "224.00", "67.00"),
        ("d2", "email", "368.00", "97.00", "224.00", "67.00")]


def test_empty_and_zero_charts_draw_nothing_wider_than_zero():
    assert _bars(hbar_chart([], ["x"], title="t")) == []
    assert [b["width"] for b in _bars(hbar_chart([Row("A", (Segment("x", 0, "0"),))], ["x"], title="t"))] == ["0.00"]
    assert [b["height"] for b in _bars(column_chart([Row("d", (Segment("x", 0, ""),))], ["x"], title="t"))] == ["0.00"]


def test_texts_are_escaped_and_values_must_not_be_negative():
    svg = str(hbar_chart([Row('<b>"L1" & co</b>', (Segment("x<", 1, "<i>"),), "<t>")], ["x<"], title="<T>"))
    ET.fromstring(svg)  # still well-formed
    assert "<b>" not in svg and "<i>" not in svg and "&lt;b&gt;&#34;L1&#34; &amp; co&lt;/b&gt;" in svg
    with pytest.raises(ValueError, match="A / x: bars need values >= 0"):
        hbar_chart([Row("A", (Segment("x", D("-1"), ""),))], ["x"], title="t")
