"""A self-contained HTML audience report: Vega-Lite charts drawn by script inlined in the page.

Sections: warnings (audiences of the last build that came out empty or changed size by more than
half since the build before), audience sizes and their change over builds (entered/exited), the overlap heat map,
score distributions per affinity name, the top values per affinity name, profile freshness, and,
when affinity history is loaded and its trend models built, the top movers.
Every number is read from the models a segment build wrote. The charts are Vega-Lite specifications
(:mod:`.charts`, written with Altair) drawn in the browser by the Vega, Vega-Lite and vega-embed
JavaScript that vl-convert-python ships, inlined in the page with the specifications: viewing it
needs no network, and the charts have tooltips. Every text is HTML-escaped, and the JSON cannot
close its script element.
"""

from __future__ import annotations

import html
import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from collections.abc import Sequence

from sqlglot import exp

from ..exceptions import ConfigurationError, TableNotFoundError
from ..tables import BUILDS, CATALOG, INTEREST_CHANGES, OVERLAPS, SIZES, STG_AFFINITIES, STG_USERS
from ..warehouse.read import open_dataset
from . import charts
from .checks import size_warnings


def write_report(pipeline: Any, path: str | Path, overwrite: bool = False) -> Path:
    """Writes the report to ``path``; refuses to replace an existing file unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigurationError(f"{str(path)!r} already exists: pass --overwrite to replace it")
    data = collect(pipeline)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(data), encoding="utf-8")
    return path


def collect(pipeline: Any) -> dict[str, Any]:
    """The numbers behind the charts, from the segment and model tables."""
    a = exp.column
    with open_dataset(pipeline) as dataset:
        try:
            sizes = dataset.rows(SIZES, order_by="segment")
        except TableNotFoundError:
            raise ConfigurationError("no segment build yet: run `algolia-profiles segments build` first") from None
        # every read in a total order: rows that tie (the audiences of one build, values with as
        # many users) come in the same order from every warehouse, and so does the page
        history = dataset.rows(BUILDS, order_by="built_at, segment")
        overlaps = dataset.rows(OVERLAPS, order_by="segment_a, segment_b")
        catalog = dataset.rows(CATALOG, order_by="name, value")
        bucket = exp.func("FLOOR", a("score"))
        buckets = dataset.rows(
            exp.select(a("name"), exp.alias_(bucket, "bucket"), exp.alias_(exp.func("COUNT", exp.Star()), "n"))
            .from_(dataset.table(STG_AFFINITIES)).group_by(a("name"), bucket).order_by(a("name"), bucket)
        )
        day = exp.cast(a("last_updated_at"), "DATE")
        freshness = dataset.rows(
            exp.select(exp.alias_(day, "day"), exp.alias_(exp.func("COUNT", exp.Star()), "n"))
            .from_(dataset.table(STG_USERS)).group_by(day)
        )
        movers = _movers(dataset)
    return {"sizes": sizes, "history": history, "overlaps": overlaps, "catalog": catalog,
            "buckets": [(r["name"], r["bucket"], r["n"]) for r in buckets],
            "freshness": sorted((r["day"], r["n"]) for r in freshness if r["day"] is not None),
            "movers": movers}


MOVERS_DAYS = 30
MOVERS = 12


def _movers(dataset: Any) -> list[dict[str, Any]] | None:
    """The affinities whose number of users changed most over the last 30 days of the history (days
    after the first, whose versions are all new), from ``affinity_interest_changes``; None without
    trend models."""
    try:
        first_last = dataset.rows(exp.select(
            exp.alias_(exp.func("MIN", exp.column("day")), "first"), exp.alias_(exp.func("MAX", exp.column("day")), "last"),
        ).from_(dataset.table(INTEREST_CHANGES)))
    except TableNotFoundError:
        return None
    first, last = (first_last[0]["first"], first_last[0]["last"]) if first_last else (None, None)
    if last is None:
        return []
    since = max(last - timedelta(days=MOVERS_DAYS - 1), first + timedelta(days=1))
    c = lambda name: exp.column(name, "c")  # noqa: E731
    net = exp.Sub(this=exp.func("SUM", c("entered")), expression=exp.func("SUM", c("left_users")))
    rows = dataset.rows(
        exp.select(c("name"), c("value"), exp.alias_(exp.func("SUM", c("entered")), "entered"),
                   exp.alias_(exp.func("SUM", c("left_users")), "left_users"), exp.alias_(net, "net"))
        .from_(exp.alias_(dataset.table(INTEREST_CHANGES), "c", table=True))
        .where(c("day") >= exp.cast(exp.Literal.string(since.isoformat()), "DATE"))
        .group_by(c("name"), c("value"))
    )
    rows = [r for r in rows if r["entered"] or r["left_users"]]
    rows.sort(key=lambda r: (-abs(r["net"]), -(r["entered"] + r["left_users"]), r["name"], r["value"]))
    return rows[:MOVERS]


def render(data: dict[str, Any]) -> str:
    """The page: headings, tables and one Vega-Lite chart per section, drawn by the inlined script."""
    sizes, history = data["sizes"], data["history"]
    current = [r["segment"] for r in sizes]
    built = sizes[0]["built_at"] if sizes else "never"
    builds = sorted({r["built_at"] for r in history})
    retired = sorted({r["segment"] for r in history} - set(current))
    specs: dict[str, dict[str, Any]] = {}

    def chart(key: str, spec: dict[str, Any] | None, empty: str) -> str:
        if spec is None:
            return f'<p class="muted">{_e(empty)}</p>'
        specs[key] = spec
        return f'<div class="chart-view" id="chart-{key}" data-chart="{key}" role="figure"></div>'

    last = [r for r in history if builds and r["built_at"] == builds[-1]]
    earlier = {r["segment"]: r["members"] for r in history if r["built_at"] != builds[-1]}  # the latest wins
    warnings = size_warnings(last, earlier)
    sections = [
        _section("Audience sizes", "sizes", chart("sizes", charts.sizes_chart(sizes), "no audiences"),
                 _table(sizes, ("segment", "members", "entered", "exited", "share_of_users"))),
        _section("Size over builds", "history", chart("history", charts.history_chart(history, current), "no builds"),
                 _history_notes(builds, current, retired) if builds else "", _table(last, ("segment", "members", "entered", "exited")) if last else ""),
        _section("Overlaps (Jaccard)", "overlaps",
                 chart("overlaps", charts.overlap_chart(current, data["overlaps"]), "fewer than two audiences")),
        _section("Score distribution per affinity", "scores",
                 chart("scores", charts.score_chart(data["buckets"]), "no affinities")),
        _section("Top values per affinity", "top-values",
                 chart("top-values", charts.top_values_chart(data["catalog"]), "no affinities")),
        _section("Profile freshness (users by last update)", "freshness",
                 chart("freshness", charts.freshness_chart(data["freshness"]), "no profiles")),
    ]
    if data.get("movers") is not None:  # trend models exist: affinity history is loaded
        sections.append(_section(
            f"Top movers (affinities gained and lost, last {MOVERS_DAYS} days of history)", "movers",
            chart("movers", charts.movers_chart(data["movers"]), "no affinity changed in that period"),
            _table(data["movers"], ("name", "value", "entered", "left_users", "net")) if data["movers"] else "",
        ))
    return _page(built, _warnings(warnings) + "".join(sections), specs)


def _history_notes(builds: list[Any], current: list[str], retired: list[str]) -> str:
    notes = f'<p class="muted">{len(builds)} build(s)'
    if len(builds) == 1:
        notes += " (one point per audience: the lines start with the next build)"
    if len(current) > 1:
        notes += "; click an audience in the legend to highlight it (shift-click for more)"
    if retired:
        notes += (f"; grey dashed: {len(retired)} retired audience(s), in earlier builds but not in"
                  f" the last one (left out of the legend): {_e(', '.join(retired))}")
    return notes + "; last build:</p>"


def _page(built: Any, body: str, specs: dict[str, dict[str, Any]]) -> str:
    """The HTML document around the sections, with the chart specifications and the scripts inlined."""
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Audience report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
{_STYLE}</style></head><body>
<h1>Audience report</h1><p class="muted">Built {_e(built)} · generated {generated} · algolia-profiles</p>
<noscript><p><strong>The charts need JavaScript</strong> (it is inside this file: no network is used). The tables show the numbers.</p></noscript>
{body}
<script type="application/json" id="chart-specs">{_json(specs)}</script>
<script type="module">{charts.javascript()}</script>
<script type="module">{_DRAW}</script>
</body></html>
"""


_STYLE = """body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin-top: .8rem; } td, th { padding: .2rem .7rem; border-bottom: 1px solid #eee; text-align: right; }
td:first-child, th:first-child { text-align: left; } .muted { color: #777; } summary { cursor: pointer; color: #555; margin-top: .6rem; }
.chart-view { margin-top: .6rem; overflow-x: auto; } .chart-view svg { display: block; }
.warnings { background: #fff4e5; border-left: 4px solid #e8590c; padding: .4rem 1rem; margin-top: 1rem; }
"""


# draws every chart with vega-embed (SVG, tooltips, no action menu); <html data-charts> tells when done
_DRAW = """
const specs = JSON.parse(document.getElementById("chart-specs").textContent);
const views = Array.from(document.querySelectorAll("[data-chart]"), (element) =>
  vegaEmbed(element, specs[element.dataset.chart], {mode: "vega-lite", renderer: "svg", actions: false})
    .catch((error) => { element.textContent = "This chart could not be drawn: " + error; throw error; }));
Promise.all(views).then(
  () => { document.documentElement.dataset.charts = "ready"; },
  (error) => { document.documentElement.dataset.charts = "failed"; console.error(error); });
"""


def _json(value: Any) -> str:
    """JSON to put inside a <script> element: no "<" that could close it, no NaN JSON lacks."""
    return json.dumps(_finite(value), ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                      allow_nan=False, default=str).replace("<", "\\u003c")


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _warnings(warnings: list[str]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
    return f'<section id="warnings" class="warnings" role="alert"><h2>Warnings</h2><ul>{items}</ul></section>\n'


def _section(title: str, key: str, *parts: str) -> str:
    return f'<section id="{key}" class="chart"><h2>{_e(title)}</h2>{"".join(parts)}</section>\n'


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1%}" if value <= 1 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else _e(value)


def _table(rows: list[dict[str, Any]], columns: Sequence[str], fold: int = 10) -> str:
    """The numbers as a table; folded (a click opens it) past ``fold`` rows."""
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_num(r.get(c)) if c != 'segment' else _e(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    table = f"<table><tr>{head}</tr>{body}</table>"
    return table if len(rows) <= fold else f"<details><summary>{len(rows)} rows</summary>{table}</details>"
