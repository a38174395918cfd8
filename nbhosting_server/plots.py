"""Plots as SVG, drawn here: a line (or step) chart over time, a bar chart, a heat map. No dependency, no script.

Each plot is a pure function from its data to an SVG document (a string) of a fixed size, readable at a glance:
a title, axes with round ticks, a legend, and a ``<title>`` on every bar and cell (the browser's tooltip). Each is
accessible (``role="img"``, an ``aria-label`` that sums it up) and escapes every text it is given (course, notebook
and student names are data). With nothing to draw, the plot says "No data yet".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from html import escape

from pydantic import BaseModel, ConfigDict, Field

#: the series' colours (Okabe-Ito: told apart with every common colour blindness)
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
WIDTH, HEIGHT = 720, 280
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 56, 16, 52, 34
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"'
DAY, HOUR = 86400, 3600


class Series(BaseModel):
    """One line: ``points`` are (seconds since the epoch, value), in time order."""

    model_config = ConfigDict(frozen=True)

    name: str
    points: list[tuple[float, float]] = Field(default_factory=list)


class Bar(BaseModel):
    """One bar: its label (a day, a reason) and its value; ``note``: more for its tooltip."""

    model_config = ConfigDict(frozen=True)

    label: str
    value: float
    note: str = ""


def number(value: float) -> str:
    """A figure for people: ``12``, ``2.5``, ``0.25``, ``1.2k``, ``3.4M``."""
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:.3g}M"
    if size >= 1e4:
        return f"{value / 1e3:.3g}k"
    if value == int(value):
        return str(int(value))
    return f"{value:.3g}"


def nice_ticks(low: float, high: float, *, count: int = 5, integer: bool = False) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering ``low`` .. ``high``, about ``count`` of them."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        high = low + 1
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(1.0, math.ceil(step))
    first = math.floor(low / step) * step
    ticks = [first]
    while ticks[-1] < high - 1e-9 * step:
        ticks.append(round(first + len(ticks) * step, 10))
    return ticks


def time_ticks(start: float, end: float, *, most: int = 8) -> list[tuple[float, str]]:
    """Ticks of a time axis (UTC) from ``start`` to ``end``: days (``Nov 26``) or, within two days, hours."""
    span = max(end - start, 1.0)
    if span <= 2 * DAY:
        step = next((h * HOUR for h in (1, 2, 3, 6, 12, 24) if span / (h * HOUR) <= most), DAY)
        fmt = "%H:%M"
    else:
        step = next((d * DAY for d in (1, 2, 7, 14, 28, 56, 91, 182, 364) if span / (d * DAY) <= most), 364 * DAY)
        fmt = "%b %d"
    first = math.ceil(start / min(step, DAY)) * min(step, DAY)  # days: from the first midnight, whatever the stride
    ticks: list[tuple[float, str]] = []
    t = first
    while t <= end:
        ticks.append((t, datetime.fromtimestamp(t, UTC).strftime(fmt)))
        t += step
    return ticks


def line_chart(
    title: str,
    series: Sequence[Series],
    *,
    y_label: str = "",
    step: bool = False,
    y_format: Callable[[float], str] = number,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """Lines over time, one per series (at most :data:`PALETTE`'s), with a legend; ``step``: each value holds until
    the next (counts per day, cumulative counts). One ``<polyline>`` per series, one point per value."""
    drawn = [s for s in series[: len(PALETTE)] if s.points]
    if not drawn:
        return empty_plot(title, width=width, height=height)
    xs = [x for s in drawn for x, _ in s.points]
    ys = [y for s in drawn for _, y in s.points]
    x0, x1 = min(xs), max(xs)
    if step:  # the last value holds for one more interval (a day's count fills its day)
        gaps = [b - a for s in drawn for (a, _), (b, _) in zip(s.points, s.points[1:], strict=False) if b > a]
        x1 += min(gaps) if gaps else DAY
    if x1 == x0:
        x0, x1 = x0 - DAY / 2, x1 + DAY / 2
    yticks = nice_ticks(min(0.0, min(ys)), max(ys), integer=all(y == int(y) for y in ys))
    frame = _Frame(width, height, x0, x1, yticks[0], yticks[-1])
    parts = [frame.y_axis(yticks, y_format, y_label), frame.time_axis(time_ticks(x0, x1))]
    for n, s in enumerate(drawn):
        points = [(frame.x(x), frame.y(y)) for x, y in s.points]
        if step:
            stepped = [points[0]]
            for (_, y_prev), (x, y) in zip(points, points[1:], strict=False):
                stepped += [(x, y_prev), (x, y)]
            stepped.append((frame.x(x1), points[-1][1]))
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in stepped)
        else:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        last = s.points[-1][1]
        parts.append(
            f'<g class="series" data-name="{escape(s.name)}" data-points="{len(points)}">'
            f"<title>{escape(s.name)}: {len(points)} values, the last {escape(y_format(last))}</title>"
            f'<polyline fill="none" stroke="{PALETTE[n]}" stroke-width="2" points="{path}"/></g>'
        )
    summary = "; ".join(
        f"{s.name}: last {y_format(s.points[-1][1])}, highest {y_format(max(y for _, y in s.points))}" for s in drawn
    )
    parts.append(_legend([s.name for s in drawn], width))
    return _svg(title, summary, width, height, parts)


def bar_chart(
    title: str,
    bars: Sequence[Bar],
    *,
    y_label: str = "",
    y_format: Callable[[float], str] = number,
    width: int = WIDTH,
    height: int = HEIGHT,
    color: str = PALETTE[0],
) -> str:
    """Bars in the order given (days, or categories), each with a tooltip; labels thinned to stay readable."""
    if not bars or all(b.value == 0 for b in bars):
        return empty_plot(title, width=width, height=height)
    values = [b.value for b in bars]
    yticks = nice_ticks(min(0.0, min(values)), max(values), integer=all(v == int(v) for v in values))
    frame = _Frame(width, height, 0, len(bars), yticks[0], yticks[-1])
    parts = [frame.y_axis(yticks, y_format, y_label)]
    slot = frame.plot_width / len(bars)
    every = max(1, math.ceil(len(bars) / max(1, int(frame.plot_width // 64))))
    zero = frame.y(0)
    for i, b in enumerate(bars):
        top = frame.y(b.value)
        x = frame.x(i) + slot * 0.12
        note = f" ({b.note})" if b.note else ""
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{min(top, zero):.1f}" width="{slot * 0.76:.1f}" '
            f'height="{abs(zero - top):.1f}" fill="{color}"><title>{escape(b.label)}: {escape(y_format(b.value))}'
            f"{escape(note)}</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text x="{frame.x(i) + slot / 2:.1f}" y="{frame.bottom + 16}" text-anchor="middle" font-size="11" '
                f'fill="#57606a">{escape(_clip(b.label, 14))}</text>'
            )
    biggest = max(bars, key=lambda b: b.value)
    summary = f"{len(bars)} bars; highest {biggest.label}: {y_format(biggest.value)}"
    return _svg(title, summary, width, height, parts)


def heat_map(
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float]],
    *,
    more_rows: int = 0,
    more_columns: int = 0,
    max_rows: int = 60,
    row_noun: str = "students",
    width: int = WIDTH,
) -> str:
    """A grid of ``values[row][column]`` (0: a pale cell; more: a darker blue), rows labelled on the left,
    columns on top; at most ``max_rows`` rows, the rest said as "N more". One ``<rect class="cell">`` per cell."""
    if not rows or not columns:
        return empty_plot(title, width=width, height=HEIGHT)
    shown = list(rows[:max_rows])
    hidden = more_rows + len(rows) - len(shown)
    label_width, header = 140, 110
    cell_w = max(3.0, min(28.0, (width - label_width - 110) / len(columns)))  # room for the slanted labels
    cell_h = 14.0 if len(shown) <= 40 else 10.0
    height = int(_MARGIN_TOP + header + cell_h * len(shown) + 44)
    top = _MARGIN_TOP + header
    highest = max((v for r in values[: len(shown)] for v in r), default=0) or 1
    parts = []
    label_every = max(1, math.ceil(11 / cell_w))
    for j, name in enumerate(columns):
        if j % label_every == 0:
            x = label_width + (j + 0.5) * cell_w
            parts.append(
                f'<text x="{x:.1f}" y="{top - 6}" font-size="10" fill="#57606a" transform="rotate(-50 {x:.1f} '
                f'{top - 6})">{escape(_clip(name, 22))}</text>'
            )
    for i, student in enumerate(shown):
        y = top + i * cell_h
        if cell_h >= 12 or i % 2 == 0:
            parts.append(
                f'<text x="{label_width - 6}" y="{y + cell_h - 3:.1f}" text-anchor="end" font-size="10" '
                f'fill="#1f2328">{escape(_clip(student, 20))}</text>'
            )
        for j, name in enumerate(columns):
            value = values[i][j] if i < len(values) and j < len(values[i]) else 0
            said = "not opened" if not value else f"opened {number(value)} time{'s' if value != 1 else ''}"
            parts.append(
                f'<rect class="cell" x="{label_width + j * cell_w:.1f}" y="{y:.1f}" width="{cell_w - 1:.1f}" '
                f'height="{cell_h - 1:.1f}" fill="{_shade(value, highest)}"><title>{escape(student)}, '
                f"{escape(name)}: {said}</title></rect>"
            )
    notes = []
    if hidden:
        notes.append(f"{hidden} more {row_noun} not shown")
    if more_columns:
        notes.append(f"{more_columns} more columns not shown")
    foot = top + cell_h * len(shown) + 18
    parts.append(
        f'<text x="{label_width}" y="{foot:.1f}" font-size="11" fill="#57606a">'
        f"{escape('; '.join(notes) or 'darker: opened more often')}</text>"
    )
    summary = f"{len(shown)} {row_noun} by {len(columns)} columns" + (f"; {hidden} more {row_noun}" if hidden else "")
    return _svg(title, summary, width, height, parts)


def empty_plot(title: str, *, width: int = WIDTH, height: int = HEIGHT) -> str:
    """The plot of nothing: its title, and "No data yet"."""
    text = (
        f'<text class="empty" x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" font-size="15" '
        'fill="#656d76">No data yet</text>'
    )
    return _svg(title, "no data yet", width, height, [text])


class _Frame:
    """The plot area inside the margins, and the scales from data to pixels."""

    def __init__(self, width: int, height: int, x0: float, x1: float, y0: float, y1: float) -> None:
        self.left, self.right = _MARGIN_LEFT, width - _MARGIN_RIGHT
        self.top, self.bottom = _MARGIN_TOP, height - _MARGIN_BOTTOM
        self.plot_width = self.right - self.left
        self.x0, self.x1, self.y0, self.y1 = x0, x1, y0, y1 if y1 > y0 else y0 + 1

    def x(self, value: float) -> float:
        return self.left + (value - self.x0) / (self.x1 - self.x0) * self.plot_width

    def y(self, value: float) -> float:
        return self.bottom - (value - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)

    def y_axis(self, ticks: list[float], fmt: Callable[[float], str], label: str) -> str:
        lines = []
        for t in ticks:
            y = self.y(t)
            lines.append(
                f'<line x1="{self.left}" x2="{self.right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d8dee4"/>'
                f'<text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#57606a">'
                f"{escape(fmt(t))}</text>"
            )
        if label:
            lines.append(
                f'<text x="{self.left}" y="{self.top - 8}" font-size="11" fill="#57606a">{escape(label)}</text>'
            )
        return '<g class="y-axis">' + "".join(lines) + "</g>"

    def time_axis(self, ticks: list[tuple[float, str]]) -> str:
        parts = [f'<line x1="{self.left}" x2="{self.right}" y1="{self.bottom}" y2="{self.bottom}" stroke="#8c959f"/>']
        for t, text in ticks:
            x = self.x(t)
            anchor = "end" if x > self.right - 24 else "middle"  # the last label stays inside the picture
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{self.bottom}" y2="{self.bottom + 4}" stroke="#8c959f"/>'
                f'<text x="{x:.1f}" y="{self.bottom + 16}" text-anchor="{anchor}" font-size="11" fill="#57606a">'
                f"{escape(text)}</text>"
            )
        return '<g class="x-axis">' + "".join(parts) + "</g>"


def _legend(names: list[str], width: int) -> str:
    x = width - _MARGIN_RIGHT
    items: list[str] = []
    for n, name in reversed(list(enumerate(names))):
        text = _clip(name, 24)
        x -= 7 * len(text) + 26
        items.append(
            f'<rect x="{x}" y="28" width="12" height="12" fill="{PALETTE[n]}"/>'
            f'<text x="{x + 16}" y="38" font-size="12" fill="#1f2328">{escape(text)}</text>'
        )
    return '<g class="legend">' + "".join(reversed(items)) + "</g>"


def _shade(value: float, highest: float) -> str:
    if value <= 0:
        return "#eef1f4"
    level = math.log1p(value) / math.log1p(highest) if highest > 1 else 1.0
    light, dark = (189, 215, 238), (8, 69, 148)
    r, g, b = (round(a + (z - a) * level) for a, z in zip(light, dark, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def _clip(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _svg(title: str, summary: str, width: int, height: int, parts: list[str]) -> str:
    label = escape(f"{title}: {summary}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="nbh-plot" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{label}" {_FONT}>'
        f"<title>{escape(title)}</title><desc>{escape(summary)}</desc>"
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>'
        f'<text x="{_MARGIN_LEFT}" y="22" font-size="14" font-weight="600" fill="#1f2328">'
        f"{escape(_clip(title, 60))}</text>" + "".join(parts) + "</svg>"
    )
