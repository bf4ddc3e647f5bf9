"""Server-rendered SVG trajectory charts (pure: data in, markup out; no script, no inline style).

One chart per instrument of a client's episode: the scores by session joined by a line, the
instrument's clinical cutoff as a dashed line, the reliable-change band around the intake score as a
shaded band, and sessions a rule flagged marked (a larger, outlined point and a triangle above it).
Colours come from classes in the inbox's stylesheet, so the page needs no ``'unsafe-inline'``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 40


@dataclass(frozen=True)
class ChartData:
    """What one chart shows."""

    instrument: str
    domain: str
    points: Sequence[tuple[int, float]]
    """(session number, total), by session; sessions without a total are left out."""
    scale_min: float
    scale_max: float
    direction: str = "higher_is_worse"
    cutoff: float | None = None
    concern_when: str | None = None
    reliable_change: float | None = None
    flagged: frozenset[int] = field(default_factory=frozenset)
    """Sessions a rule flagged on this instrument."""
    focus_session: int | None = None
    """The session of the alert being read."""

    @property
    def intake(self) -> tuple[int, float] | None:
        """The first scored session of the episode, the band's centre."""
        return self.points[0] if self.points else None

    @property
    def band(self) -> tuple[float, float] | None:
        """Intake ± reliable change, clipped to the scale."""
        if self.intake is None or self.reliable_change is None:
            return None
        centre = self.intake[1]
        return (
            max(self.scale_min, centre - self.reliable_change),
            min(self.scale_max, centre + self.reliable_change),
        )


def chart_data(
    instrument: str,
    domain: str,
    points: Sequence[tuple[int, float]],
    scale: Mapping[str, Any],
    flagged: frozenset[int],
    focus_session: int | None,
) -> ChartData:
    """A :class:`ChartData` from a scored event's ``scale`` mapping (min, max, direction, cutoff…)."""
    return ChartData(
        instrument=instrument,
        domain=domain,
        points=sorted(points),
        scale_min=float(scale.get("min", 0.0)),
        scale_max=float(scale.get("max", 1.0)),
        direction=str(scale.get("direction", "higher_is_worse")),
        cutoff=_opt_float(scale.get("cutoff")),
        concern_when=scale.get("concern_when"),
        reliable_change=_opt_float(scale.get("reliable_change")),
        flagged=flagged,
        focus_session=focus_session,
    )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _fmt(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    out = []
    value = first
    while value <= hi + 1e-9:
        out.append(round(value, 6))
        value += step
    return out


def describe(data: ChartData) -> str:
    """A one-paragraph text equivalent of the chart (its ``<desc>``)."""
    if not data.points:
        return f"No {data.instrument} scores in this episode yet."
    parts = [
        f"{data.instrument} by session ({data.direction.replace('_', ' ')}): "
        + ", ".join(f"session {s} {_fmt(v)}" for s, v in data.points)
        + "."
    ]
    if data.cutoff is not None:
        parts.append(f"Clinical cutoff {_fmt(data.cutoff)}.")
    band = data.band
    if band is not None and data.intake is not None:
        parts.append(
            f"Reliable-change band {_fmt(band[0])} to {_fmt(band[1])} around the intake score "
            f"{_fmt(data.intake[1])}."
        )
    if data.flagged:
        parts.append("Flagged sessions: " + ", ".join(str(s) for s in sorted(data.flagged)) + ".")
    return " ".join(parts)


def render_chart(data: ChartData, chart_id: str) -> Markup:
    """The SVG of ``data``; ``chart_id`` makes its element ids unique on the page."""
    cid = escape(chart_id)
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    lo, hi = data.scale_min, data.scale_max
    if hi <= lo:
        hi = lo + 1
    sessions = [s for s, _ in data.points]
    first = min(sessions, default=1)
    last = max(sessions, default=1)
    if data.focus_session is not None:
        first, last = min(first, data.focus_session), max(last, data.focus_session)
    span = max(1, last - first)

    def x(session: int) -> float:
        if first == last:
            return LEFT + plot_w / 2
        return LEFT + (session - first) / span * plot_w

    def y(value: float) -> float:
        clipped = min(max(value, lo), hi)
        return TOP + (hi - clipped) / (hi - lo) * plot_h

    out: list[str] = [
        f'<svg class="chart" id="{cid}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{cid}-title {cid}-desc" preserveAspectRatio="xMidYMid meet" '
        f'xmlns="http://www.w3.org/2000/svg" data-instrument="{escape(data.instrument)}" '
        f'data-points="{len(data.points)}">',
        f'<title id="{cid}-title">{escape(data.instrument)} scores by session</title>',
        f'<desc id="{cid}-desc">{escape(describe(data))}</desc>',
        f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>',
    ]
    band = data.band
    if band is not None:
        top, bottom = y(band[1]), y(band[0])
        out.append(
            f'<rect class="band" x="{LEFT}" y="{top:.1f}" width="{plot_w}" height="{bottom - top:.1f}">'
            f"<title>Reliable-change band around intake: {_fmt(band[0])} to {_fmt(band[1])}</title></rect>"
        )
    for tick in _ticks(lo, hi):
        ty = y(tick)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}"/>')
        out.append(
            f'<text class="tick" x="{LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>'
        )
    step = max(1, math.ceil((last - first + 1) / 16))
    for session in range(first, last + 1, step):
        out.append(
            f'<text class="tick" x="{x(session):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
            f"{session}</text>"
        )
    out.append(
        f'<text class="axis-label" x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 4}" text-anchor="middle">'
        "Session</text>"
    )
    if data.cutoff is not None and lo <= data.cutoff <= hi:
        cy = y(data.cutoff)
        out.append(
            f'<line class="cutoff" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{cy:.1f}" y2="{cy:.1f}">'
            f"<title>Clinical cutoff {_fmt(data.cutoff)}</title></line>"
        )
        out.append(
            f'<text class="cutoff-label" x="{LEFT + plot_w - 4}" y="{cy - 5:.1f}" text-anchor="end">'
            f"cutoff {_fmt(data.cutoff)}</text>"
        )
    if data.focus_session is not None:
        fx = x(data.focus_session)
        out.append(f'<line class="focus" x1="{fx:.1f}" x2="{fx:.1f}" y1="{TOP}" y2="{TOP + plot_h}"/>')
    if len(data.points) > 1:
        coords = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in data.points)
        out.append(f'<polyline class="line" points="{coords}"/>')
    for session, value in data.points:
        px, py = x(session), y(value)
        flagged = session in data.flagged
        label = f"Session {session}: {_fmt(value)}" + (" (flagged)" if flagged else "")
        if flagged:
            out.append(
                f'<path class="flag-marker" d="M{px - 6:.1f},{py - 16:.1f} h12 l-6,9 z">'
                f"<title>{label}</title></path>"
            )
        css = "point flagged" if flagged else "point"
        radius = 6 if flagged else 4
        out.append(
            f'<circle class="{css}" cx="{px:.1f}" cy="{py:.1f}" r="{radius}" data-session="{session}" '
            f'data-value="{_fmt(value)}"><title>{label}</title></circle>'
        )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every interpolated text above is escaped or numeric
