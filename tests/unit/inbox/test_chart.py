"""The server-rendered SVG chart: points, cutoff line, reliable-change band, flagged sessions."""

from __future__ import annotations

import re

from services.inbox.chart import ChartData, chart_data, describe, render_chart

PHQ9_SCALE = {"min": 0, "max": 27, "direction": "higher_is_worse", "cutoff": 10, "reliable_change": 6}


def _svg(data: ChartData) -> str:
    return str(render_chart(data, "c0"))


def test_one_point_per_scored_session_and_flagged_ones_marked() -> None:
    data = chart_data(
        "PHQ-9", "outcome", [(1, 12), (2, 14), (3, 19), (5, 21)], PHQ9_SCALE, frozenset({3, 5}), 5
    )
    svg = _svg(data)
    assert len(re.findall(r'<circle class="point[ "]', svg)) == 4
    assert len(re.findall(r'<circle class="point flagged"', svg)) == 2
    assert svg.count('class="flag-marker"') == 2
    assert 'data-points="4"' in svg
    assert re.search(r'data-session="5" data-value="21"', svg)


def test_cutoff_line_sits_at_the_cutoff_and_the_band_around_intake() -> None:
    data = chart_data("PHQ-9", "outcome", [(1, 12), (2, 14)], PHQ9_SCALE, frozenset(), None)
    svg = _svg(data)
    plot_top, plot_h = 16, 260 - 16 - 40
    cutoff_y = float(re.search(r'<line class="cutoff" x1="\d+" x2="\d+" y1="([\d.]+)"', svg).group(1))  # type: ignore[union-attr]
    assert abs(cutoff_y - (plot_top + (27 - 10) / 27 * plot_h)) < 0.1
    band = re.search(r'<rect class="band" x="\d+" y="([\d.]+)" width="\d+" height="([\d.]+)"', svg)
    assert band is not None
    top, height = float(band.group(1)), float(band.group(2))
    assert abs(top - (plot_top + (27 - 18) / 27 * plot_h)) < 0.1, "intake 12 + 6"
    assert abs(top + height - (plot_top + (27 - 6) / 27 * plot_h)) < 0.1, "intake 12 - 6"
    assert data.band == (6.0, 18.0)


def test_band_is_clipped_to_the_scale_and_missing_parts_are_left_out() -> None:
    data = chart_data(
        "SRS",
        "alliance",
        [(1, 38)],
        {"min": 0, "max": 40, "cutoff": 36, "reliable_change": 5},
        frozenset(),
        None,
    )
    assert data.band == (33.0, 40.0)
    bare = chart_data("X-1", "outcome", [(1, 3)], {"min": 0, "max": 10}, frozenset(), None)
    svg = _svg(bare)
    assert 'class="cutoff"' not in svg and 'class="band"' not in svg and "polyline" not in svg


def test_text_equivalent_and_escaping() -> None:
    data = chart_data('<b>"x"</b>', "outcome", [(1, 12), (2, 19)], PHQ9_SCALE, frozenset({2}), 2)
    svg = _svg(data)
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    text = describe(data)
    assert "session 1 12, session 2 19" in text and "cutoff 10" in text and "Flagged sessions: 2" in text
    assert 'role="img"' in svg and 'aria-labelledby="c0-title c0-desc"' in svg


def test_an_empty_series_renders_an_empty_plot() -> None:
    data = chart_data("PHQ-9", "outcome", [], PHQ9_SCALE, frozenset(), None)
    svg = _svg(data)
    assert "<circle" not in svg and "No PHQ-9 scores" in svg
