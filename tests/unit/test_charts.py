"""The dashboard's SVG charts: escaped labels, figures in the titles, empty data."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from leadflow.web import charts

HOSTILE = '<script>alert("x")</script>'


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_bars_escape_labels_and_carry_the_figures() -> None:
    svg = charts.hbars([charts.Bar(HOSTILE, 1200, "40%"), charts.Bar("b", 600)], "Funnel")
    assert "<script>" not in svg
    root = parse(svg)
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")] or [
        t.text for t in root.iter("title")
    ]
    assert f"{HOSTILE}: 1,200 · 40%" in titles and "b: 600" in titles
    widths = [float(r.get("width", 0)) for r in root.iter("rect")]
    assert widths[0] == 2 * widths[1]  # bars are proportional


def test_empty_charts_say_so() -> None:
    for svg in (
        charts.hbars([], "x"),
        charts.vbars([], "x"),
        charts.lines([], [], "x"),
        charts.calibration([], "x"),
    ):
        parse(svg)
        assert "no data in this window" in svg


def test_lines_and_heatmap_and_calibration_are_well_formed() -> None:
    line = charts.lines(["w1", "w2", "w3"], [("MQLs", [1, 5, 3]), (HOSTILE, [0, 2, 2])], "t")
    root = parse(line)
    assert len(list(root.iter("polyline"))) == 2 and "<script>" not in line
    heat = charts.heatmap(["A", "B"], ["1", "2"], {("A", "1"): (0.5, 10)}, "m")
    assert "50%" in heat and "n=10" in heat and "\N{EN DASH}" in heat
    calib = charts.calibration([(0.1, 0.12, 100), (0.8, 0.7, 5)], "c")
    assert "predicted 10.0%, observed 12.0%, n=100" in calib


def test_axis_ceilings_are_round() -> None:
    assert [charts._nice(v) for v in (0, 0.3, 7, 13, 180, 2600)] == [1.0, 0.5, 10.0, 20.0,
                                                                      200.0, 5000.0]  # fmt: skip
