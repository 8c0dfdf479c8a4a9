"""Charts drawn as inline SVG on the server: no script, no CDN, readable without colour.

Every label is escaped; shapes carry a ``<title>`` so a pointer (or a screen reader) gets the
exact figure. Colours come from CSS classes (``static/app.css``), so the page's Content
Security Policy can forbid inline styles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    note: str = ""  # shown after the value (a rate, a share)


def _num(value: float) -> str:
    if abs(value) >= 1000 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"


def _svg(width: int, height: int, body: list[str], label: str) -> Markup:
    head = (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="xMidYMid meet">'
    )
    # Every piece of text in ``body`` went through ``escape`` where it was built.
    return Markup(head + f"<title>{escape(label)}</title>" + "".join(body) + "</svg>")  # noqa: S704


def hbars(bars: Sequence[Bar], label: str, width: int = 640, css: str = "c1") -> Markup:
    """Horizontal bars, one per row, the value and the note at the end of the bar."""
    row, gap, left, right = 30, 8, 150, 150
    height = max(len(bars), 1) * (row + gap) + gap
    top = max((b.value for b in bars), default=0) or 1
    body: list[str] = []
    for i, bar in enumerate(bars):
        y = gap + i * (row + gap)
        size = (width - left - right) * max(bar.value, 0) / top
        text = _num(bar.value) + (f" · {bar.note}" if bar.note else "")
        body.append(
            f'<g class="bar"><title>{escape(bar.label)}: {escape(text)}</title>'
            f'<text class="axis" x="{left - 10}" y="{y + row / 2 + 5}" '
            f'text-anchor="end">{escape(_clip(bar.label, 22))}</text>'
            f'<rect class="{css}" x="{left}" y="{y}" width="{max(size, 2):.1f}" '
            f'height="{row}" rx="4"/>'
            f'<text class="value" x="{left + size + 8:.1f}" y="{y + row / 2 + 5}">'
            f"{escape(text)}</text></g>"
        )
    if not bars:
        body.append(_empty(width, height))
    return _svg(width, height, body, label)


def vbars(bars: Sequence[Bar], label: str, width: int = 640, height: int = 260,
          percent: bool = False) -> Markup:  # fmt: skip
    """Vertical bars over labelled columns (deciles, weeks)."""
    left, bottom, top_pad = 44, 40, 16
    inner_w, inner_h = width - left - 10, height - bottom - top_pad
    top = _nice(max((b.value for b in bars), default=0))
    body = _yaxis(left, top_pad, inner_w, inner_h, top, percent)
    step = inner_w / max(len(bars), 1)
    for i, bar in enumerate(bars):
        h = inner_h * max(bar.value, 0) / top
        x = left + i * step + step * 0.15
        shown = f"{bar.value:.0%}" if percent else _num(bar.value)
        tip = f"{bar.label}: {shown}" + (f" · {bar.note}" if bar.note else "")
        body.append(
            f'<g class="bar"><title>{escape(tip)}</title>'
            f'<rect class="c1" x="{x:.1f}" y="{top_pad + inner_h - h:.1f}" '
            f'width="{step * 0.7:.1f}" height="{max(h, 1):.1f}" rx="3"/>'
            f'<text class="axis" x="{x + step * 0.35:.1f}" y="{height - bottom + 16}" '
            f'text-anchor="middle">{escape(_clip(bar.label, 10))}</text></g>'
        )
    if not bars:
        body.append(_empty(width, height))
    return _svg(width, height, body, label)


def lines(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    label: str,
    width: int = 640,
    height: int = 240,
) -> Markup:
    """One line per series over the same labelled x positions, with a legend."""
    left, bottom, top_pad = 44, 40, 24
    inner_w, inner_h = width - left - 16, height - bottom - top_pad
    top = _nice(max((v for _, values in series for v in values), default=0))
    body = _yaxis(left, top_pad, inner_w, inner_h, top, False)
    count = max(len(labels), 1)
    step = inner_w / max(count - 1, 1)
    every = max(1, math.ceil(count / 8))
    for i, text in enumerate(labels):
        if i % every == 0 or i == count - 1:
            body.append(
                f'<text class="axis" x="{left + i * step:.1f}" y="{height - bottom + 18}" '
                f'text-anchor="middle">{escape(text)}</text>'
            )
    for n, (name, values) in enumerate(series):
        css = f"s{n % 3 + 1}"
        points = [
            (left + i * step, top_pad + inner_h - inner_h * v / top) for i, v in enumerate(values)
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        if n == 0 and len(series) == 1 and points:
            area = f"{left:.1f},{top_pad + inner_h} {path} {points[-1][0]:.1f},{top_pad + inner_h}"
            body.append(f'<polygon class="area" points="{area}"/>')
        body.append(f'<polyline class="line {css}" points="{path}"/>')
        for (x, y), value, text in zip(points, values, labels, strict=False):
            body.append(
                f'<circle class="dot {css}" cx="{x:.1f}" cy="{y:.1f}" r="3.5">'
                f"<title>{escape(name)} · {escape(text)}: {escape(_num(value))}</title></circle>"
            )
        body.append(
            f'<rect class="{css}" x="{left + n * 150}" y="4" width="12" height="12" rx="2"/>'
            f'<text class="axis" x="{left + n * 150 + 18}" y="14">{escape(_clip(name, 18))}</text>'
        )
    if not labels:
        body.append(_empty(width, height))
    return _svg(width, height, body, label)


def heatmap(
    rows: Sequence[str],
    cols: Sequence[str],
    cells: dict[tuple[str, str], tuple[float | None, int]],
    label: str,
) -> Markup:
    """A grid of rates (0-1): darker is higher; each cell shows the rate and its count."""
    cell, left, top_pad = 92, 40, 30
    width, height = left + cell * len(cols) + 4, top_pad + cell * 0.6 * len(rows) + 4
    body: list[str] = []
    for j, col in enumerate(cols):
        body.append(
            f'<text class="axis" x="{left + j * cell + cell / 2}" y="20" '
            f'text-anchor="middle">{escape(col)}</text>'
        )
    for i, row in enumerate(rows):
        y = top_pad + i * cell * 0.6
        body.append(
            f'<text class="axis" x="{left - 10}" y="{y + cell * 0.3 + 5:.1f}" '
            f'text-anchor="end">{escape(row)}</text>'
        )
        for j, col in enumerate(cols):
            rate, n = cells.get((row, col), (None, 0))
            level = 0 if rate is None else min(5, 1 + int(rate * 10))
            shown = "\N{EN DASH}" if rate is None else f"{rate:.0%}"
            body.append(
                f"<g><title>{escape(row)}{escape(col)}: {escape(shown)} of {n:,}</title>"
                f'<rect class="heat h{level}" x="{left + j * cell + 2}" y="{y + 2:.1f}" '
                f'width="{cell - 4}" height="{cell * 0.6 - 4:.1f}" rx="4"/>'
                f'<text class="cell{" dark" if level >= 4 else ""}" '
                f'x="{left + j * cell + cell / 2}" y="{y + cell * 0.3:.1f}" '
                f'text-anchor="middle">{escape(shown)}</text>'
                f'<text class="cell small{" dark" if level >= 4 else ""}" '
                f'x="{left + j * cell + cell / 2}" y="{y + cell * 0.3 + 15:.1f}" '
                f'text-anchor="middle">n={n:,}</text></g>'
            )
    return _svg(int(width), int(height), body, label)


def calibration(points: Sequence[tuple[float, float, int]], label: str, size: int = 300) -> Markup:
    """Predicted (x) against observed (y) rates per bin, beside the diagonal of perfection."""
    pad, left = 30, 56
    inner = size - pad - left
    body = [
        f'<rect class="frame" x="{left}" y="{pad}" width="{inner}" height="{inner}"/>',
        f'<line class="diagonal" x1="{left}" y1="{pad + inner}" x2="{left + inner}" y2="{pad}"/>',
        f'<text class="axis" x="{left + inner / 2}" y="{size - 4}" '
        'text-anchor="middle">predicted</text>',
        f'<text class="axis" x="12" y="{pad + inner / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {pad + inner / 2})">observed</text>',
    ]
    for tick in (0, 0.5, 1):
        body.append(
            f'<text class="axis" x="{left + inner * tick}" y="{pad + inner + 14}" '
            f'text-anchor="middle">{tick:.0%}</text>'
            f'<text class="axis" x="{left - 6}" y="{pad + inner - inner * tick + 4}" '
            f'text-anchor="end">{tick:.0%}</text>'
        )
    path = []
    for predicted, observed, n in points:
        x, y = left + inner * predicted, pad + inner - inner * observed
        path.append(f"{x:.1f},{y:.1f}")
        radius = 3 + min(6.0, math.log10(max(n, 1)) * 1.5)
        body.append(
            f'<circle class="dot s1" cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}">'
            f"<title>predicted {predicted:.1%}, observed {observed:.1%}, n={n:,}</title></circle>"
        )
    if path:
        body.insert(2, f'<polyline class="line s1" points="{" ".join(path)}"/>')
    else:
        body.append(_empty(size, size))
    return _svg(size, size, body, label)


def _yaxis(left: int, top: int, width: float, height: float, scale: float,
           percent: bool) -> list[str]:  # fmt: skip
    out = []
    for k in range(5):
        value = scale * k / 4
        y = top + height - height * k / 4
        text = f"{value:.0%}" if percent else _num(value)
        out.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + width:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{text}</text>'
        )
    return out


def _nice(value: float) -> float:
    """A round ceiling for an axis (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def _empty(width: float, height: float) -> str:
    return (
        f'<text class="axis" x="{width / 2}" y="{height / 2}" text-anchor="middle">'
        "no data in this window</text>"
    )
