"""Plots drawn as SVG: well-formed, one mark per value, accessible, hostile names escaped, "No data yet" when
empty; and the statistics pages built from them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from nbhosting_core.coursestats import CourseStatistics, DayActivity, Distribution, LaunchDurations, ProgressMap
from nbhosting_core.eventstore import HostSample
from nbhosting_server.plots import Bar, Series, bar_chart, heat_map, line_chart, nice_ticks, time_ticks
from nbhosting_server.statspage import course_statistics_page, host_statistics_page, statistics_page

SVG = "{http://www.w3.org/2000/svg}"
DAY = 1_795_651_200.0  # 2026-11-26 00:00 UTC
HOSTILE = '<script>alert("x")</script> & \'w1/<b>.ipynb'


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img" and root.get("aria-label")
    assert root.find(f"{SVG}title") is not None and int(root.get("width", "0")) > 0
    return root


def test_a_line_chart_has_one_polyline_per_series_one_point_per_value_and_a_legend():
    series = [
        Series(name="students", points=[(DAY + n * 86400, n * 3) for n in range(10)]),
        Series(name="notebooks", points=[(DAY + n * 86400, n) for n in range(10)]),
    ]
    root = parse(line_chart("Per day", series, y_label="count"))
    lines = root.findall(f".//{SVG}polyline")
    assert [len(line.get("points", "").split()) for line in lines] == [10, 10]
    legend = root.find(f".//{SVG}g[@class='legend']")
    assert legend is not None and [t.text for t in legend.iter(f"{SVG}text")] == ["students", "notebooks"]
    days = [t.text for t in root.find(f".//{SVG}g[@class='x-axis']").iter(f"{SVG}text")]  # type: ignore[union-attr]
    assert days[0] == "Nov 26" and len(days) <= 8


def test_a_step_chart_holds_each_value_until_the_next():
    root = parse(line_chart("Cumulative", [Series(name="s", points=[(DAY, 1), (DAY + 86400, 4)])], step=True))
    points = root.find(f".//{SVG}polyline").get("points", "").split()  # type: ignore[union-attr]
    assert len(points) == 4  # start, hold, rise, hold through the last day
    assert points[0].split(",")[1] == points[1].split(",")[1]


def test_a_bar_chart_has_one_bar_per_value_each_with_its_tooltip():
    bars = [Bar(label=f"Nov {d}", value=d % 4) for d in range(1, 31)]
    root = parse(bar_chart("Opens", bars))
    rects = root.findall(f".//{SVG}rect[@class='bar']")
    assert len(rects) == 30
    assert rects[2].find(f"{SVG}title").text == "Nov 3: 3"  # type: ignore[union-attr]


def test_a_heat_map_has_a_cell_per_student_and_notebook_and_says_how_many_more():
    students = [f"s{n}" for n in range(80)]
    notebooks = [f"w{n}.ipynb" for n in range(12)]
    values = [[(i + j) % 3 for j in range(12)] for i in range(80)]
    svg = heat_map("Progress", students, notebooks, values, more_rows=20, max_rows=60)
    root = parse(svg)
    assert len(root.findall(f".//{SVG}rect[@class='cell']")) == 60 * 12
    assert "40 more students not shown" in svg
    assert int(root.get("height", "0")) < 1000  # fixed, bounded size


@pytest.mark.parametrize(
    "svg",
    [
        line_chart(HOSTILE, [Series(name=HOSTILE, points=[(DAY, 1), (DAY + 60, 2)])], y_label=HOSTILE),
        bar_chart(HOSTILE, [Bar(label=HOSTILE, value=3, note=HOSTILE)]),
        heat_map(HOSTILE, [HOSTILE], [HOSTILE], [[1]]),
    ],
)
def test_names_are_data_escaped_everywhere(svg):
    root = parse(svg)
    assert "<script" not in svg and "<b>" not in svg
    assert not list(root.iter(f"{SVG}script")) and not list(root.iter(f"{SVG}b"))
    assert HOSTILE in "".join(root.itertext())  # shown as text, as it is


@pytest.mark.parametrize(
    "svg",
    [
        line_chart("Nothing", []),
        line_chart("Nothing", [Series(name="s")]),
        bar_chart("Nothing", []),
        bar_chart("Nothing", [Bar(label="a", value=0)]),
        heat_map("Nothing", [], [], []),
    ],
)
def test_no_data_is_a_clear_picture(svg):
    root = parse(svg)
    assert root.find(f".//{SVG}text[@class='empty']").text == "No data yet"  # type: ignore[union-attr]


def test_ticks_are_round_and_cover_the_values():
    assert nice_ticks(0, 87) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0, 3, integer=True) == [0, 1, 2, 3]
    assert nice_ticks(0, 0.37) == [0, 0.1, 0.2, 0.3, 0.4]
    week = ["Nov 26", "Nov 27", "Nov 28", "Nov 29", "Nov 30", "Dec 01", "Dec 02"]
    assert [label for _, label in time_ticks(DAY, DAY + 6 * 86400)] == week
    assert [label for _, label in time_ticks(DAY + 3600, DAY + 30 * 86400)][:2] == ["Nov 27", "Dec 04"]  # weekly
    assert time_ticks(DAY, DAY + 12 * 3600)[1][1] == "02:00"


def a_course(days: int = 5) -> CourseStatistics:
    first = date(2026, 11, 22)
    return CourseStatistics(
        course=HOSTILE,
        generated=DAY,
        first_day=first,
        last_day=first + timedelta(days=days - 1),
        days=[
            DayActivity(
                day=first + timedelta(days=n),
                students=n,
                notebooks=n,
                opens=2 * n,
                cumulative_students=n * (n + 1) // 2,
                ready_durations=Distribution(count=n, median=2.0, p90=3.0, max=4.0) if n else Distribution(),
            )
            for n in range(days)
        ],
        total_students=10,
        total_notebooks=3,
        progress=ProgressMap(students=["alice", HOSTILE], notebooks=["a", HOSTILE], opened=[[1, 0], [2, 3]]),
        launches=[LaunchDurations(action="ready", durations=Distribution(count=4, median=2.0, p90=3.0, max=4.0))],
        failures=[],
        excluded_students=1,
    )


def test_the_course_page_shows_every_plot_and_escapes_the_course():
    body = course_statistics_page(a_course())
    html = statistics_page("Statistics", body).body.decode()
    assert html.count("<svg") == 6 and "<script" not in html
    assert "No data yet" in html  # no failure: its plot says so
    assert "start to answer" in html and "2.0 s" in html
    for svg in body.split("<figure>")[1:]:
        parse(svg[: svg.index("</svg>") + 6])


def test_the_host_page_plots_its_samples():
    samples = [
        HostSample(time=DAY + n * 300, running=n, kernels=2 * n, memory_bytes=n << 30, memory_total=16 << 30, load1=1.5)
        for n in range(20)
    ]
    body = host_statistics_page(samples)
    assert body.count("<svg") == 4 and "20 samples" in body
    assert host_statistics_page([]).count("No data yet") == 4
