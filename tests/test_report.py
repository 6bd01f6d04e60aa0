"""The HTML audience report is self-contained and its charts render in a real (headless) Chromium.

Two reports are built from the emulator's data: one build of the five example audiences, and ten
daily builds of thirty generated audiences (one with a 64-character name; two more audiences only
in the first builds, so retired). Chromium draws each one with its network pointed nowhere; a
script added to a copy of the page reads what was drawn: every axis has a title, every audience of
the last build is in a legend, no label was shortened with an ellipsis or drawn outside its chart.
Set REPORT_SCREENSHOTS to a folder to keep the screenshots.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
import zlib
from datetime import date, datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from algolia_profiles_source.demo import EXAMPLE_AUDIENCES
from algolia_profiles_source.emulator import Emulator
from algolia_profiles_source.load.pipeline import make_pipeline
from algolia_profiles_source.segments import build as build_module
from algolia_profiles_source.segments import build_segments
from algolia_profiles_source.segments import charts
from algolia_profiles_source.segments.charts import palette
from algolia_profiles_source.segments.report import collect, render, write_report
from tests.conftest import API_KEY, APP_ID, run

SECTIONS = ("sizes", "history", "overlaps", "scores", "top-values", "freshness")
NOW = datetime(2026, 11, 28, tzinfo=timezone.utc)
LONG_NAME = "long_audience_name_that_must_never_be_cut_off_in_legends_or_axes"
RETIRED = ("retired_brand_fans", "retired-climbers")
# (affinity name, value) pairs of the emulator's shop the generated audiences pick from
PICKS = [(name, value) for name, values in {
    "category": ["Camping", "Hiking", "Running", "Toys", "Jeans", "Laptops", "Garden", "Skincare", "Books"],
    "brand": ["The North Face", "Nike", "LEGO", "Zara", "Apple", "IKEA", "Dior", "Patagonia"],
    "categories.lvl0": ["Outdoor", "Sports", "Kids", "Women", "Electronics", "Home", "Beauty"],
    "color": ["black", "white", "green", "pink"],
    "price_range": ["0 - 25", "100 - 200", "500+"],
    "size": ["M", "XS", "42"],
}.items() for value in values]


def thirty_audiences(retired: bool) -> dict:
    """30 audiences over the emulator's affinities: score thresholds, affinities and profiles
    updated within N days (so the sizes move as ``as_of`` moves), a 64-character name."""
    audiences = {}
    for i, (name, value) in enumerate(PICKS[:29]):
        slug = re.sub(r"[^a-z0-9]+", "_", f"{name} {value}".lower()).strip("_")
        affinity = {"affinity": name, "values": [value], "score": {"gte": 1 + (i % 4) * 3}}
        if i % 3 == 1:
            affinity["updated_within_days"] = 12 + i
        rule = {"all": [affinity, {"profile": {"updated_within_days": 20 + i}}]} if i % 3 == 2 else affinity
        audiences[f"{slug}-{i}" if i % 7 == 3 else slug] = {"rule": rule}
    audiences[LONG_NAME] = {"rule": {"affinity": "category", "values": ["Camping", "Hiking"], "updated_within_days": 25}}
    if retired:
        audiences[RETIRED[0]] = {"rule": {"affinity": "brand", "values": ["Patagonia"]}}
        audiences[RETIRED[1]] = {"rule": {"affinity": "category", "values": ["Climbing"], "score": {"gte": 10}}}
    assert len(audiences) == 30 + (2 if retired else 0) and len(LONG_NAME) == 64
    return {"audiences": audiences}


class _Clock(datetime):
    """Stands in for datetime in the build module: builds made seconds apart look a day apart."""

    current = NOW

    @classmethod
    def now(cls, tz=None):
        return cls.current


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """Two reports: 1 build / 5 audiences, and 10 daily builds / 30 audiences (+2 retired)."""
    root = tmp_path_factory.mktemp("reports")
    paths = {}
    emu = Emulator(app_id=APP_ID, api_key=API_KEY, n_users=500, seed=11, now=NOW).start()
    try:
        for case in ("one_build", "ten_builds"):
            pipeline = make_pipeline(pipeline_name=f"report_{case}", duckdb_path=str(root / f"{case}.duckdb"),
                                     pipelines_dir=str(root / "pipelines"))
            run(pipeline, emu, page_size=250)
            if case == "one_build":
                build_segments(pipeline, EXAMPLE_AUDIENCES)
            else:
                # dropping the retired audiences needs retire=True where build_segments asks for it
                retire = {"retire": True} if "retire" in inspect.signature(build_segments).parameters else {}
                with pytest.MonkeyPatch.context() as patch:
                    patch.setattr(build_module, "datetime", _Clock)
                    for day in range(10):
                        as_of = NOW - timedelta(days=9 - day)
                        _Clock.current = as_of + timedelta(hours=6, minutes=day)
                        build_segments(pipeline, thirty_audiences(retired=day < 4), as_of=as_of,
                                       models=day == 0, **retire)
            paths[case] = write_report(pipeline, root / case / "report.html")
            paths[case + "_data"] = collect(pipeline)
        with pytest.raises(Exception, match="already exists"):
            write_report(pipeline, paths["ten_builds"])
    finally:
        emu.stop()
    return paths


CASES = pytest.mark.parametrize("case", ["one_build", "ten_builds"])


@CASES
def test_report_is_self_contained_and_has_every_chart(reports, case, monkeypatch):
    monkeypatch.setattr(charts, "VALIDATE", True)  # every specification is valid Vega-Lite
    render(reports[case + "_data"])
    text = reports[case].read_text()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text), "the report must not load anything"
    assert not re.search(r"<script[^>]*\bsrc\s*=", text), "every script is inline"
    specs = json.loads(re.search(r'<script type="application/json" id="chart-specs">(.*?)</script>', text, re.S).group(1))
    assert not [key for key, spec in specs.items() if "$schema" in spec]  # no URL, even one never fetched
    for section in SECTIONS:
        assert f'id="{section}"' in text and f'data-chart="{section}"' in text and section in specs
    sizes = reports[case + "_data"]["sizes"]
    builds = 1 if case == "one_build" else 10
    assert len(sizes) == (5 if case == "one_build" else 30) and f"{builds} build(s)" in text
    assert ("outdoor_enthusiasts" if case == "one_build" else LONG_NAME) in text


def test_collect_keeps_its_data_contract(reports):
    data = reports["ten_builds_data"]
    assert set(data) >= {"sizes", "history", "overlaps", "catalog", "buckets", "freshness"}
    assert set(data["sizes"][0]) >= {"segment", "members", "entered", "exited", "share_of_users", "built_at", "build_id"}
    assert set(data["history"][0]) >= {"build_id", "segment", "members", "entered", "exited", "built_at"}
    assert len(data["history"]) == 10 * 30 + 4 * 2
    assert {r["segment"] for r in data["history"]} - {r["segment"] for r in data["sizes"]} == set(RETIRED)
    assert isinstance(data["buckets"][0], tuple) and isinstance(data["freshness"][0][0], date)


def test_palette_gives_distinct_colours_for_any_number_of_audiences():
    for n in (1, 5, 10, 11, 30, 64, 200):
        colours = palette(n)
        assert len(colours) == n == len(set(colours)), n
        assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours)
    assert palette(30)[:10] == palette(10)  # the first audiences keep their colours as more come


def test_text_cannot_break_out_of_the_page():
    """A value or name that looks like markup stays data: no "<" in the specifications' JSON."""
    built = datetime(2026, 11, 28, 6, tzinfo=timezone.utc)
    evil = "</script><script>alert(1)</script>"
    page = render({
        "sizes": [{"segment": "a", "members": 3, "entered": 3, "exited": 0, "share_of_users": 0.5,
                   "built_at": built, "build_id": "b1"}],
        "history": [{"build_id": "b1", "segment": "a", "members": 3, "entered": 3, "exited": 0, "built_at": built},
                    {"build_id": "b0", "segment": "a", "members": 2, "entered": 2, "exited": 0,
                     "built_at": built - timedelta(seconds=3)}],
        "overlaps": [], "catalog": [{"name": "brand", "value": evil, "users": 2, "share_of_users": 0.5, "score_avg": float("nan")}],
        "buckets": [("brand", 3.0, 2)], "freshness": [(date(2026, 11, 27), 2)],
    })
    assert evil not in page and "alert(1)" in page
    specs = page[page.index('id="chart-specs">'):]
    specs = specs[:specs.index("</script>")]
    assert "<" not in specs[len('id="chart-specs">'):]
    # builds seconds apart: the time axis says the date and the time to the second
    assert "%H:%M:%S" in specs and "%Y-%m-%d" in specs


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.environ.get("CI"):
        pytest.fail("Chromium is not installed: .ci/run installs Debian's chromium package")
    pytest.skip("Chromium is not installed (apt-get install chromium)")


def _flags(tmp_path) -> list[str]:
    # the proxy points at a closed port: were the page to fetch anything over the network, it would fail
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--proxy-server=127.0.0.1:9", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]


def _png_pixels_vary(path) -> bool:
    """Decodes the PNG's image data and checks that it is not one flat colour."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT":
            chunks.append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    return len(set(raw[1000:200000:7])) > 10


# Added to a copy of the page: once the charts are drawn (<html data-charts>), lists every text of a
# chart drawn outside its SVG, and every SVG wider than the page, into <pre id="layout-check">.
LAYOUT_CHECK = """
function check() {
  const problems = [];
  for (const view of document.querySelectorAll("[data-chart]")) {
    const svg = view.querySelector("svg");
    if (!svg) { problems.push(view.dataset.chart + ": nothing drawn"); continue; }
    const box = svg.getBoundingClientRect(), page = view.getBoundingClientRect();
    if (box.right > page.right + 1) problems.push(view.dataset.chart + ": wider than the page");
    for (const text of svg.querySelectorAll("text")) {
      const r = text.getBoundingClientRect();
      if (text.textContent && (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1))
        problems.push(view.dataset.chart + ": " + JSON.stringify(text.textContent) + " drawn outside the chart");
    }
  }
  const out = document.createElement("pre");
  out.id = "layout-check";
  out.textContent = JSON.stringify(problems);
  document.body.append(out);
}
(function wait() { if (document.documentElement.dataset.charts) check(); else setTimeout(wait, 50); })();
"""


class Drawn(HTMLParser):
    """What Vega drew in each chart: axis descriptions, legend labels, every text."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict[str, list[str]]] = {}
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.chart: str | None = None
        self.layout = ""

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        if "data-chart" in attrs:
            self.chart = attrs["data-chart"]
            self.charts[self.chart] = {"axes": [], "legend": [], "texts": [], "axis_titles": []}
        self.stack.append((tag, attrs))
        if self.chart and attrs.get("aria-roledescription") == "axis":
            self.charts[self.chart]["axes"].append(attrs.get("aria-label", ""))

    def handle_endtag(self, tag):
        while self.stack:
            open_tag, attrs = self.stack.pop()
            if "data-chart" in attrs:
                self.chart = None
            if open_tag == tag:
                break

    def handle_data(self, data):
        if self.stack and self.stack[-1][1].get("id") == "layout-check":
            self.layout += data
        if not self.chart or not any(tag in ("text", "tspan") for tag, _ in self.stack[-2:]):
            return
        drawn = self.charts[self.chart]
        drawn["texts"].append(data)
        classes = " ".join(attrs.get("class", "") for _, attrs in self.stack)
        if "role-legend-label" in classes:
            drawn["legend"].append(data)
        if "role-axis-title" in classes:
            drawn["axis_titles"].append(data)


@pytest.fixture(scope="module", params=["one_build", "ten_builds"])
def drawn(request, reports, tmp_path_factory):
    """One Chromium run per report: a screenshot, and the DOM once the charts are drawn."""
    case = request.param
    tmp_path = tmp_path_factory.mktemp(f"chromium_{case}")
    text = reports[case].read_text()
    end = text.rindex("</body>")
    checked = tmp_path / "report.html"
    checked.write_text(text[:end] + f"<script>{LAYOUT_CHECK}</script>" + text[end:])
    shot = tmp_path / f"report_{case}.png"
    # Chromium dumps the page once its virtual-time budget is spent; on a busy machine the charts may
    # not have settled by then, so a page that has not said "ready" or "failed" is drawn again with
    # a longer budget (a readiness poll, not a retry of a failure).
    for budget in (20_000, 60_000, 180_000):
        done = subprocess.run([_chromium(), *_flags(tmp_path), "--window-size=1200,6000", f"--screenshot={shot}",
                               f"--virtual-time-budget={budget}", "--dump-dom", checked.as_uri()],
                              capture_output=True, text=True, timeout=300)
        state = re.search(r'<html[^>]*\bdata-charts="(\w+)"', done.stdout)
        if state:
            break
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert state and state.group(1) == "ready", (
        f"charts {'were ' + state.group(1) if state else 'never settled'} (exit {done.returncode}); "
        f"console: {console or done.stderr[-2000:]}")
    if os.environ.get("REPORT_SCREENSHOTS"):
        keep = Path(os.environ["REPORT_SCREENSHOTS"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, keep / shot.name)
    dom = Drawn()
    dom.feed(done.stdout)
    return case, dom, shot, done.stderr


def test_report_renders_in_headless_chromium(drawn):
    case, dom, shot, log = drawn
    assert shot.exists() and shot.stat().st_size > 20_000, log[-2000:]
    assert _png_pixels_vary(shot)
    console = [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console  # no error, and no warning from Vega-Lite either
    assert set(dom.charts) == set(SECTIONS)


def test_charts_have_axis_titles_full_labels_and_every_audience_in_a_legend(drawn, reports):
    case, dom, _, _ = drawn
    for key, chart in dom.charts.items():
        axes = chart["axes"]
        assert any(a.startswith("X-axis") for a in axes) and any(a.startswith("Y-axis") for a in axes), (key, axes)
        assert all(" titled '" in a for a in axes), (key, [a for a in axes if " titled '" not in a])
        assert len(chart["axis_titles"]) == len(axes) and all(t.strip() for t in chart["axis_titles"]), key
        cut = [t for t in chart["texts"] if "…" in t or "..." in t]
        assert not cut, (key, cut)
    assert json.loads(dom.layout) == [], "texts drawn outside their chart, or charts wider than the page"
    audiences = {r["segment"] for r in reports[case + "_data"]["sizes"]}
    legends = set(dom.charts["history"]["legend"])
    assert audiences <= legends, audiences - legends
    assert not legends & set(RETIRED), "retired audiences are left out of the legend"
    assert audiences <= set(dom.charts["sizes"]["texts"])  # the sizes chart names every audience on its axis
    days = {f"2026-11-{day}" for day in range(19, 29)} if case == "ten_builds" else {str(date.today()), str(date.today() - timedelta(days=1))}  # built before midnight
    assert days & set(dom.charts["history"]["texts"]), "the time axis names the builds' days"
    if case == "ten_builds":
        assert all(name in reports[case].read_text() for name in RETIRED)  # named under the chart


def test_the_report_warns_of_empty_audiences_and_size_jumps():
    built = datetime(2026, 11, 28, 6, tzinfo=timezone.utc)
    before = built - timedelta(days=1)

    def row(segment, members, at):
        return {"build_id": str(at), "segment": segment, "members": members, "entered": 0, "exited": 0, "built_at": at}

    history = [row("steady", 100, before), row("jumped", 100, before), row("emptied", 40, before),
               row("steady", 110, built), row("jumped", 260, built), row("emptied", 0, built), row("new", 0, built)]
    page = render({"sizes": [dict(r, share_of_users=0.1) for r in history if r["built_at"] == built],
                   "history": history, "overlaps": [], "catalog": [], "buckets": [], "freshness": []})
    warnings = page[page.index('<section id="warnings"'):]
    warnings = warnings[:warnings.index("</section>")]
    assert re.findall(r"<li>(.*?)</li>", warnings) == [
        "audience &#x27;jumped&#x27; changed size by +160% since the last build (100 -&gt; 260 members;"
        " warning threshold 50%)",
        "audience &#x27;emptied&#x27; is empty: nobody matches it (it had 40 members)",
        "audience &#x27;new&#x27; is empty: nobody matches it",
    ]
    quiet = [r for r in history if r["segment"] == "steady"]
    assert 'id="warnings"' not in render({"sizes": [dict(quiet[-1], share_of_users=0.1)], "history": quiet, "overlaps": [], "catalog": [],
                                           "buckets": [], "freshness": []})
