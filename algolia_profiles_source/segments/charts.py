"""The report's charts: Vega-Lite specifications written with Altair, drawn in the page.

Each function takes numbers from :func:`.report.collect` and returns a Vega-Lite specification (a
dict) or ``None`` when there is nothing to draw. The page draws them with the Vega, Vega-Lite and
vega-embed JavaScript that vl-convert-python ships (:func:`javascript`), inlined in the HTML: viewing
the report needs no network, and the charts get tooltips.

What every chart promises: axes with titles, dates on time axes (UTC), labels that are never cut
(no label limit; the rare value longer than ``LABEL_CHARS`` is shortened with an ellipsis and its
bar's tooltip holds the full text), one distinct colour per audience (:func:`palette`), and a
legend naming every audience of the last build. Audiences that earlier builds had and the last one
has not (retired) are drawn as grey dashed lines, left out of the colour legend, and named below the
chart.
"""

from __future__ import annotations

import colorsys
import functools
import math
import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any

import altair as alt
import vl_convert

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
RETIRED_COLOUR = "#8c8c8c"
LABEL_CHARS = 60
"""Axis labels longer than this many characters (affinity values) are shortened with an ellipsis;
audience names (64 characters at most) never are."""
SCORES = list(range(1, 21))
VALIDATE = False
"""Whether to check each specification against the Vega-Lite schema (the tests do; it takes seconds)."""
WIDTH = 1040
"""Pixels a chart may take, labels and legend included (the page is 1100 pixels wide at most)."""
# Tableau 10: distinct colours for up to ten audiences
TABLEAU10 = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
             "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
CONFIG = {
    "font": FONT,
    "view": {"stroke": None},
    "axis": {"labelLimit": 0, "titleLimit": 0, "titleFontSize": 12, "labelFontSize": 11, "titlePadding": 8},
    "legend": {"labelLimit": 0, "titleLimit": 0, "titleFontSize": 12, "labelFontSize": 11},
    "header": {"labelLimit": 0, "labelFontSize": 12, "labelFontWeight": "bold"},
    "title": {"fontSize": 13, "anchor": "start"},
}


@functools.lru_cache(maxsize=1)
def javascript() -> str:
    """Vega, Vega-Lite (the version Altair writes) and vega-embed in one script, as globals."""
    version = alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0]
    if version in vl_convert.get_vegalite_versions():
        bundle = vl_convert.javascript_bundle(vl_version=version)
    else:  # a vl-convert without that Vega-Lite: its newest
        bundle = vl_convert.javascript_bundle()
    # the bundle is inlined in a <script> element: it must not close it (it has no such text today)
    return re.sub(r"</(script)", r"<\\/\1", bundle, flags=re.IGNORECASE)


def palette(n: int) -> list[str]:
    """``n`` distinct colours: Tableau 10 up to ten; past ten, each next colour is the one farthest
    (in CIELAB) from those already chosen, among mid-light colours readable on white."""
    if n <= len(TABLEAU10):
        return list(TABLEAU10[:n])
    return list(_distinct_colours(n))


@functools.lru_cache(maxsize=8)
def _distinct_colours(n: int) -> tuple[str, ...]:
    candidates = {}
    for h in range(0, 360, 6):
        for s in (0.5, 0.7, 0.9):
            for v in (0.5, 0.7, 0.9):
                rgb = colorsys.hsv_to_rgb(h / 360, s, v)
                lab = _lab(rgb)
                if 30 <= lab[0] <= 78:  # not too dark to tell apart, not too light on white
                    candidates["#%02x%02x%02x" % tuple(round(c * 255) for c in rgb)] = lab
    chosen = {c: _lab(tuple(int(c[i:i + 2], 16) / 255 for i in (1, 3, 5))) for c in TABLEAU10}
    distance = {c: min(math.dist(lab, other) for other in chosen.values()) for c, lab in candidates.items()}
    while len(chosen) < n:
        if not distance:  # more audiences than candidate colours: still distinct, if barely
            candidates = {f"#{i:06x}": (0.0, 0.0, 0.0) for i in range(n * 2)}
            distance = {c: 0.0 for c in candidates if c not in chosen}
        best = max(distance, key=lambda c: (distance[c], c))
        chosen[best] = candidates[best]
        del distance[best]
        for c in distance:
            distance[c] = min(distance[c], math.dist(candidates[c], chosen[best]))
    return tuple(chosen)[:n]


def _lab(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    """sRGB (0-1) to CIELAB (D65)."""
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
    fx, fy, fz = (t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in (x, y, z))
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def audience_colours(audiences: Sequence[str]) -> alt.Scale:
    """The colour of each audience of the last build, the same in every chart."""
    names = sorted(audiences)
    return alt.Scale(domain=names, range=palette(len(names)))


def sizes_chart(sizes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Members per audience of the last build, largest first, with the share of users."""
    if not sizes:
        return None
    rows = [{"audience": r["segment"], "members": r["members"], "entered": r["entered"], "exited": r["exited"],
             "share": _round(r["share_of_users"]),
             "label": f"{r['members']:,}" + (f" ({_share(r['share_of_users'])})" if r["share_of_users"] is not None else "")}
            for r in sorted(sizes, key=lambda r: (-(r["members"] or 0), r["segment"]))]
    peak = max((r["members"] or 0) for r in rows) or 1
    width = _clamp(WIDTH - _widest([r["audience"] for r in rows]) - 40 - 90, 300, 640)
    data = {"sizes": rows}
    base = alt.Chart(alt.NamedData("sizes")).encode(
        y=alt.Y("audience:N", sort=None, title="audience"),
        x=alt.X("members:Q", title="members", scale=alt.Scale(domain=[0, peak * 1.2], nice=False),
                axis=alt.Axis(format=",d", tickMinStep=1, tickCount=8)),
        tooltip=[alt.Tooltip("audience:N"), alt.Tooltip("members:Q", format=","),
                 alt.Tooltip("share:Q", title="share of users", format=".2%"),
                 alt.Tooltip("entered:Q", title="entered in the last build", format=","),
                 alt.Tooltip("exited:Q", title="exited in the last build", format=",")],
    )
    bars = base.mark_bar().encode(color=alt.Color("audience:N", scale=audience_colours([r["audience"] for r in rows]),
                                                  legend=None))
    labels = base.mark_text(align="left", dx=4, fontSize=11).encode(text="label:N")
    return _spec((bars + labels).properties(width=width, height=alt.Step(22)), data)


def history_chart(history: list[dict[str, Any]], current: Sequence[str]) -> dict[str, Any] | None:
    """Members of each audience at each build, on a time axis; retired audiences grey and dashed.

    The legend lists every audience of the last build: on the right, one a line (the chart grows as
    tall as the legend), or below in columns when the names are long. Clicking an entry highlights
    that audience (shift-click adds one)."""
    if not history:
        return None
    live = sorted(set(current))
    rows = [{"audience": r["segment"], "built_at": _iso(r["built_at"]), "members": r["members"],
             "entered": r["entered"], "exited": r["exited"],
             "status": "current" if r["segment"] in live else "retired (not in the last build)"}
            for r in history]
    times = sorted({r["built_at"] for r in history})
    fmt = _time_format(times)
    if len(times) == 1:
        domain = [_iso(times[0] - timedelta(days=1)), _iso(times[0] + timedelta(days=1))]
        scale = alt.Scale(type="utc", domain=domain, nice=False)
    else:
        scale = alt.Scale(type="utc", nice=False, padding=24)
    lines = fmt.split("\n")
    label = ("[" + ", ".join(f"utcFormat(datum.value, {_js(part)})" for part in lines) + "]"
             if len(lines) > 1 else f"utcFormat(datum.value, {_js(fmt)})")
    legend_title = "audience"
    entry = _widest(live) + 30  # a symbol, a label, a gap
    width = _clamp(WIDTH - 70 - entry, 360, 720)
    if width >= 560 and len(live) <= 40:  # the legend on the right, one audience a line, as tall as it
        legend = alt.Legend(title=legend_title, orient="right", symbolType="circle", symbolSize=90)
        height = max(300, 17 * len(live))
    else:  # long names: the legend below, in as many columns as fit
        width = WIDTH - 70
        columns = _clamp((WIDTH - 40) // (max(_widest(live), 60) + 30), 1, 6)
        legend = alt.Legend(title=legend_title, orient="bottom", direction="vertical", columns=columns,
                            symbolType="circle", symbolSize=90, columnPadding=16)
        height = 320
    crowded = len(times) * (_text_px("2026-12-31") + 14) > width
    x = alt.X("built_at:T", title="build (UTC)", scale=scale,
              axis=alt.Axis(values=[_iso(t) for t in times], labelExpr=label, labelOverlap="greedy",
                            labelAngle=-40 if crowded else 0, labelAlign="right" if crowded else "center",
                            labelBaseline="top", grid=False))
    y = alt.Y("members:Q", title="members", scale=alt.Scale(zero=True), axis=alt.Axis(format=",d", tickMinStep=1))
    tooltip = [alt.Tooltip("audience:N"), alt.Tooltip("status:N"),
               alt.Tooltip("built_at:T", title="build", format="%Y-%m-%d %H:%M:%S UTC", formatType="utc"),
               alt.Tooltip("members:Q", format=","), alt.Tooltip("entered:Q", format=","),
               alt.Tooltip("exited:Q", format=",")]
    data = {"history": rows}
    base = alt.Chart(alt.NamedData("history")).encode(x=x, y=y, tooltip=tooltip)
    pick = alt.selection_point(fields=["audience"], bind="legend", name="audience_pick")
    point = alt.OverlayMarkDef(size=70 if len(times) <= 3 else 36, filled=True)
    current_layer = base.transform_filter(alt.datum.status == "current").mark_line(
        point=point, strokeWidth=2).encode(
        color=alt.Color("audience:N", scale=audience_colours(live), legend=legend),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.12)),
    ).add_params(pick).properties(name="current_audiences")  # named: the page is the same at every run
    layers = [current_layer]
    if any(r["status"] != "current" for r in rows):
        layers.insert(0, base.transform_filter(alt.datum.status != "current").mark_line(
            point=alt.OverlayMarkDef(size=24, filled=True, color=RETIRED_COLOUR), color=RETIRED_COLOUR,
            strokeDash=[5, 4], strokeWidth=1.5).encode(detail="audience:N"))
    return _spec(alt.layer(*layers).properties(width=width, height=height), data)


def overlap_chart(audiences: Sequence[str], overlaps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Jaccard index of every pair of audiences of the last build, as a heat map."""
    if len(audiences) < 2:
        return None
    names = sorted(audiences)
    known = set(names)
    cells = []
    for r in overlaps:
        a, b = r["segment_a"], r["segment_b"]
        if a not in known or b not in known:
            continue
        for row, col, of_row, of_col in ((a, b, r["pct_of_a"], r["pct_of_b"]), (b, a, r["pct_of_b"], r["pct_of_a"])):
            cells.append({"row": row, "column": col, "jaccard": _round(r["jaccard"] or 0.0), "overlap": r["overlap"],
                          "of_row": _round(of_row), "of_column": _round(of_col)})
    diagonal = [{"row": s, "column": s} for s in names]
    widest = _widest(names)
    room = WIDTH - widest - 40 - 90  # row labels and title, the colour legend
    step = _clamp(room // len(names), 14, 44)
    # column labels at 45 degrees reach right of the last column; upright when that leaves no room
    angle = -45 if len(names) * step + 0.72 * widest <= room else -90
    if angle == -90:
        step = _clamp(room // len(names), 14, 44)
    peak = max((c["jaccard"] for c in cells), default=0) or 1.0
    axis = dict(grid=False, ticks=False, domain=False, labelPadding=4)
    x = alt.X("column:N", sort=names, title="audience (column)",
              axis=alt.Axis(orient="top", labelAngle=angle, labelAlign="left", labelBaseline="middle", **axis))
    y = alt.Y("row:N", sort=names, title="audience (row)", axis=alt.Axis(**axis))
    data = {"cells": cells, "diagonal": diagonal}
    heat = alt.Chart(alt.NamedData("cells")).mark_rect(stroke="white", strokeWidth=1).encode(
        x=x, y=y,
        color=alt.Color("jaccard:Q", title="Jaccard", scale=alt.Scale(domain=[0, peak], range=["#f3f7fc", "#08306b"], interpolate="hcl"),
                        legend=alt.Legend(format=".2f", gradientLength=160)),
        tooltip=[alt.Tooltip("row:N", title="audience (row)"), alt.Tooltip("column:N", title="audience (column)"),
                 alt.Tooltip("jaccard:Q", title="Jaccard", format=".3f"),
                 alt.Tooltip("overlap:Q", title="members in both", format=","),
                 alt.Tooltip("of_row:Q", title="share of the row audience", format=".1%"),
                 alt.Tooltip("of_column:Q", title="share of the column audience", format=".1%")],
    )
    same = alt.Chart(alt.NamedData("diagonal")).mark_rect(color="#d4d4d4", stroke="white", strokeWidth=1).encode(
        x=x, y=y, tooltip=[alt.Tooltip("row:N", title="audience")])
    layers = [same, heat]
    if step >= 36:
        layers.append(alt.Chart(alt.NamedData("cells")).mark_text(fontSize=10).encode(
            x=x, y=y, text=alt.Text("jaccard:Q", format=".2f"),
            color=alt.condition(alt.datum.jaccard > peak * 0.6, alt.value("white"), alt.value("#222"))))
    return _spec(alt.layer(*layers).properties(width=alt.Step(step), height=alt.Step(step)), data)


def score_chart(buckets: list[tuple[Any, Any, Any]]) -> dict[str, Any] | None:
    """Users per score (rounded down, 1-20), one small chart per affinity name."""
    rows = [{"name": name, "score": int(bucket), "users": int(n)}
            for name, bucket, n in buckets if name is not None and bucket is not None]
    if not rows:
        return None
    chart = alt.Chart(alt.NamedData("scores")).mark_bar(color=TABLEAU10[0]).encode(
        x=alt.X("score:O", title="score (rounded down)", scale=alt.Scale(domain=SCORES),
                axis=alt.Axis(values=[1, 5, 10, 15, 20], labelAngle=0)),
        y=alt.Y("users:Q", title="users", axis=alt.Axis(format="~s", tickMinStep=1, tickCount=4)),
        tooltip=[alt.Tooltip("name:N", title="affinity"), alt.Tooltip("score:O"), alt.Tooltip("users:Q", format=",")],
    ).properties(width=190, height=110)
    facet = chart.facet(facet=alt.Facet("name:N", title=None, sort="ascending"), columns=4, spacing=20)
    return _spec(facet.resolve_scale(y="independent").resolve_axis(x="independent"), {"scores": rows})


def top_values_chart(catalog: list[dict[str, Any]], per_name: int = 5) -> dict[str, Any] | None:
    """The values with the most users, one small chart per affinity name (each with its scale)."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for row in catalog:
        if row["name"] is not None and row["value"] is not None:
            by_name.setdefault(row["name"], []).append(row)
    if not by_name:
        return None
    tops = {name: sorted(found, key=lambda r: (-(r["users"] or 0), r["value"]))[:per_name]
            for name, found in sorted(by_name.items())}
    widest = _widest([r["value"][:LABEL_CHARS] for top in tops.values() for r in top])
    columns = 2 if 2 * (widest + 40 + 300) + 30 <= WIDTH else 1
    width = _clamp((WIDTH - 40 * (columns - 1)) // columns - widest - 40, 200, 560)
    panels, data = [], {}
    for name, top in tops.items():
        rows = [{"name": name, "value": r["value"], "users": r["users"], "share": _round(r["share_of_users"]),
                 "score_avg": _round(r["score_avg"]),
                 "label": f"{r['users']:,}" + (f" · avg {r['score_avg']:.1f}" if _finite(r["score_avg"]) else "")}
                for r in top]
        peak = (top[0]["users"] or 0) or 1
        data[f"top_{len(data)}"] = rows
        base = alt.Chart(alt.NamedData(f"top_{len(data) - 1}")).encode(
            y=alt.Y("value:N", title="value", sort=None,  # most users first, as listed
                    axis=alt.Axis(labelExpr=f"truncate(datum.label, {LABEL_CHARS})")),
            x=alt.X("users:Q", title="users", scale=alt.Scale(domain=[0, peak * 1.45], nice=False),
                    axis=alt.Axis(format=",d", tickCount=4, tickMinStep=1)),
            tooltip=[alt.Tooltip("name:N", title="affinity"), alt.Tooltip("value:N"),
                     alt.Tooltip("users:Q", format=","), alt.Tooltip("share:Q", title="share of users", format=".1%"),
                     alt.Tooltip("score_avg:Q", title="average score", format=".1f")],
        )
        panels.append(alt.layer(base.mark_bar(color=TABLEAU10[1]),
                                base.mark_text(align="left", dx=3, fontSize=10).encode(text="label:N"))
                      .properties(title=name, width=width, height=alt.Step(18)))
    return _spec(alt.concat(*panels, columns=columns, spacing=40), data)


def freshness_chart(freshness: list[tuple[Any, Any]]) -> dict[str, Any] | None:
    """Users per day of their profile's last update."""
    rows = [{"day": _iso(d), "users": int(n)} for d, n in freshness]
    if not rows:
        return None
    chart = alt.Chart(alt.NamedData("freshness")).mark_bar(color=TABLEAU10[0]).encode(
        x=alt.X("utcyearmonthdate(day):T", title="last update (day, UTC)",
                axis=alt.Axis(labelExpr="utcFormat(datum.value, '%Y-%m-%d')", labelAngle=-40, labelAlign="right",
                              labelOverlap="greedy")),
        y=alt.Y("users:Q", title="users", axis=alt.Axis(format=",d", tickMinStep=1)),
        tooltip=[alt.Tooltip("utcyearmonthdate(day):T", title="day", format="%Y-%m-%d", formatType="utc"),
                 alt.Tooltip("users:Q", format=",")],
    )
    return _spec(chart.properties(width=WIDTH - 120, height=220), {"freshness": rows})


def movers_chart(movers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Top movers: per affinity (name: value), users who gained it (right) and lost it (left) over the
    period, the biggest net changes first."""
    rows = []
    for r in movers:
        label = f"{r['name']}: {r['value']}"
        for kind, users in (("entered", int(r["entered"] or 0)), ("left", -int(r["left_users"] or 0))):
            rows.append({"affinity": label, "kind": kind, "users": users, "net": int(r["net"] or 0),
                         "score_avg": _round(r.get("score_avg"))})
    if not rows:
        return None
    order = [f"{r['name']}: {r['value']}" for r in movers]
    widest = _widest([label[:LABEL_CHARS] for label in order])
    chart = alt.Chart(alt.NamedData("movers")).mark_bar().encode(
        y=alt.Y("affinity:N", title=None, sort=order, axis=alt.Axis(labelExpr=f"truncate(datum.label, {LABEL_CHARS})")),
        x=alt.X("users:Q", title="users (left of 0: lost the interest)", axis=alt.Axis(format=",d", tickMinStep=1)),
        color=alt.Color("kind:N", title=None, scale=alt.Scale(domain=["entered", "left"],
                                                             range=[TABLEAU10[0], TABLEAU10[1]])),
        tooltip=[alt.Tooltip("affinity:N"), alt.Tooltip("kind:N"), alt.Tooltip("users:Q", format=","),
                 alt.Tooltip("net:Q", title="net change", format="+,"),
                 alt.Tooltip("score_avg:Q", title="average score now", format=".1f")],
    )
    return _spec(chart.properties(width=_clamp(WIDTH - widest - 160, 240, 700), height=alt.Step(18)),
                 {"movers": rows})


def _spec(chart: alt.TopLevelMixin, data: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The chart as a Vega-Lite specification, its rows added as named datasets."""
    spec = chart.configure(**CONFIG).to_dict(validate=VALIDATE)
    spec.pop("$schema", None)  # the page says which library draws it: no URL in the report
    spec["datasets"] = {**spec.get("datasets", {}), **data}
    return spec


def _time_format(times: Sequence[datetime]) -> str:
    """The coarsest UTC format telling every build apart (a second line holds the time of day)."""
    for fmt in ("%Y-%m-%d", "%Y-%m-%d\n%H:%M", "%Y-%m-%d\n%H:%M:%S"):
        if len({_utc(t).strftime(fmt) for t in times}) == len(times):
            return fmt
    return "%Y-%m-%d\n%H:%M:%S.%L"


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _iso(value: Any) -> str:
    """Dates and times as ISO 8601 (naive times are UTC, as the warehouse stores them)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _js(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _round(value: Any, digits: int = 6) -> Any:
    """Floats rounded, so every warehouse's page is the same to the character."""
    return round(float(value), digits) if _finite(value) else None if isinstance(value, float) else value


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _clamp(value: float, low: int, high: int) -> int:
    return int(max(low, min(high, value)))


def _text_px(text: str, size: int = 11) -> float:
    """About how wide ``text`` is drawn in a sans-serif font (a generous estimate)."""
    width = 0.0
    for char in text:
        if char in "iljtfrI.,:;'|!() ":
            width += 0.32
        elif char in "mwMW@%":
            width += 0.9
        elif ord(char) > 0x2E80:  # CJK and other wide scripts
            width += 1.0
        elif char.isupper() or char.isdigit():
            width += 0.66
        else:
            width += 0.58
    return width * size


def _widest(labels: Sequence[str], size: int = 11) -> float:
    return max((_text_px(str(label), size) for label in labels), default=0.0)


def _share(value: float) -> str:
    return f"{value:.1%}" if value >= 0.001 else f"{value:.3g}"
