"""A self-contained HTML audience report: inline SVG charts and CSS, no script, no network at view time.

Sections: audience sizes and their change over builds (entered/exited), the overlap heat map,
score distributions per affinity name, the top values per affinity name, and profile freshness.
Every number is read from the models a segment build wrote; every text is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from collections.abc import Sequence

from sqlglot import exp

from ..exceptions import ConfigurationError, TableNotFoundError
from ..tables import BUILDS, CATALOG, OVERLAPS, SIZES, STG_AFFINITIES, STG_USERS
from ..warehouse.read import open_dataset

PALETTE = ("#2f6db5", "#e07b39", "#3a9e6a", "#c2464f", "#7b5ea7", "#9b7a3c", "#3aa6b9", "#b85c9e")


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
    return {"sizes": sizes, "history": history, "overlaps": overlaps, "catalog": catalog,
            "buckets": [(r["name"], r["bucket"], r["n"]) for r in buckets],
            "freshness": sorted((r["day"], r["n"]) for r in freshness if r["day"] is not None)}


def render(data: dict[str, Any]) -> str:
    sizes, history = data["sizes"], data["history"]
    built = sizes[0]["built_at"] if sizes else "never"
    sections = [
        _section("Audience sizes", "sizes", _bars([(r["segment"], r["members"]) for r in sizes]),
                 _table(sizes, ("segment", "members", "entered", "exited", "share_of_users"))),
        _section("Size over builds", "history", _lines(history)),
        _section("Overlaps (Jaccard)", "overlaps", _heatmap([r["segment"] for r in sizes], data["overlaps"])),
        _section("Score distribution per affinity", "scores", _score_histograms(data["buckets"])),
        _section("Top values per affinity", "top-values", _top_values(data["catalog"])),
        _section("Profile freshness (users by last update)", "freshness", _bars([(str(d), n) for d, n in data["freshness"]], rotate=True)),
    ]
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Audience report</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
h1 {{ margin-bottom: .2rem; }} h2 {{ margin-top: 2.2rem; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin-top: .8rem; }} td, th {{ padding: .2rem .7rem; border-bottom: 1px solid #eee; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }} .muted {{ color: #777; }} svg {{ display: block; margin-top: .6rem; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(350px, 1fr)); gap: 1rem; }}
</style></head><body>
<h1>Audience report</h1><p class="muted">Built {_e(built)} · generated {generated} · algolia-profiles</p>
{''.join(sections)}
</body></html>
"""


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


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_num(r.get(c)) if c != 'segment' else _e(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _bars(items: list[tuple[str, float]], rotate: bool = False, width: int = 1000) -> str:
    if not items:
        return '<p class="muted">no data</p>'
    height, top, label_space = 260, 20, 110 if rotate else 60
    peak = max(v for _, v in items) or 1
    step = (width - 60) / len(items)
    bars = []
    for i, (label, value) in enumerate(items):
        h = (height - top - label_space) * value / peak
        x = 50 + i * step
        y = height - label_space - h
        color = PALETTE[i % len(PALETTE)] if not rotate else PALETTE[0]
        bars.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(step * .75, 1):.1f}" height="{h:.1f}" fill="{color}"><title>{_e(label)}: {_num(value)}</title></rect>')
        if not rotate or i % max(1, len(items) // 15) == 0:
            transform = f' transform="rotate(-60 {x:.1f} {height - label_space + 12})"' if rotate else ""
            anchor = "end" if rotate else "start"
            bars.append(f'<text x="{x:.1f}" y="{height - label_space + 12}" font-size="11" text-anchor="{anchor}"{transform}>{_e(label)[:24]}</text>')
        if not rotate:
            bars.append(f'<text x="{x:.1f}" y="{y - 4:.1f}" font-size="11">{_num(value)}</text>')
    return f'<svg role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">{"".join(bars)}</svg>'


def _lines(history: list[dict[str, Any]], width: int = 1000, height: int = 260) -> str:
    builds = sorted({r["build_id"] for r in history})
    if not builds:
        return '<p class="muted">no builds</p>'
    series: dict[str, dict[str, int]] = {}
    for r in history:
        series.setdefault(r["segment"], {})[r["build_id"]] = r["members"]
    peak = max((v for s in series.values() for v in s.values()), default=1) or 1
    x_of = lambda i: 50 + (width - 200) * (i / max(1, len(builds) - 1))  # noqa: E731
    y_of = lambda v: height - 30 - (height - 60) * v / peak  # noqa: E731
    parts = []
    for n, (segment, points) in enumerate(sorted(series.items())):
        color = PALETTE[n % len(PALETTE)]
        coords = [(x_of(i), y_of(points[b])) for i, b in enumerate(builds) if b in points]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>' for x, y in coords]
        parts.append(f'<text x="{width - 140}" y="{20 + 16 * n}" font-size="12" fill="{color}">{_e(segment)}</text>')
    changes = [r for r in history if r["build_id"] == builds[-1]]
    table = _table(changes, ("segment", "members", "entered", "exited"))
    return f'<svg role="img" width="{width}" height="{height}">{"".join(parts)}</svg><p class="muted">{len(builds)} build(s); last build:</p>{table}'


def _heatmap(segments: list[str], overlaps: list[dict[str, Any]], cell: int = 56) -> str:
    if len(segments) < 2:
        return '<p class="muted">fewer than two audiences</p>'
    index = {s: i for i, s in enumerate(segments)}
    jaccard = {(r["segment_a"], r["segment_b"]): r["jaccard"] or 0.0 for r in overlaps}
    left, top = 170, 150
    size = left + cell * len(segments) + 10
    parts = []
    for a in segments:
        for b in segments:
            value = 1.0 if a == b else jaccard.get((a, b), jaccard.get((b, a), 0.0))
            shade = int(255 - 200 * math.sqrt(value))
            x, y = left + index[b] * cell, top + index[a] * cell
            parts.append(f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="rgb({shade},{shade},255)"><title>{_e(a)} × {_e(b)}: {value:.3f}</title></rect>')
            parts.append(f'<text x="{x + 6}" y="{y + cell / 2 + 4}" font-size="11">{value:.2f}</text>')
    for s, i in index.items():
        parts.append(f'<text x="{left - 6}" y="{top + i * cell + cell / 2 + 4}" font-size="12" text-anchor="end">{_e(s)[:22]}</text>')
        parts.append(f'<text x="{left + i * cell + cell / 2}" y="{top - 8}" font-size="12" transform="rotate(-45 {left + i * cell + cell / 2} {top - 8})">{_e(s)[:22]}</text>')
    return f'<svg role="img" width="{size}" height="{top + cell * len(segments) + 10}">{"".join(parts)}</svg>'


def _score_histograms(buckets: list[tuple[Any, Any, Any]]) -> str:
    by_name: dict[str, dict[int, int]] = {}
    for name, bucket, n in buckets:
        if name is not None and bucket is not None:
            by_name.setdefault(name, {})[int(bucket)] = int(n)
    charts = []
    for name, counts in sorted(by_name.items()):
        peak = max(counts.values()) or 1
        bars = "".join(
            f'<rect x="{10 + (s - 1) * 11}" y="{110 - 90 * counts.get(s, 0) / peak:.1f}" width="9" height="{90 * counts.get(s, 0) / peak:.1f}" fill="{PALETTE[0]}"><title>score {s}: {counts.get(s, 0):,}</title></rect>'
            for s in range(1, 21)
        )
        axis = '<text x="10" y="126" font-size="10">1</text><text x="212" y="126" font-size="10">20</text>'
        charts.append(f'<div><strong>{_e(name)}</strong><svg role="img" width="240" height="130">{bars}{axis}</svg></div>')
    return f'<div class="grid">{"".join(charts)}</div>' if charts else '<p class="muted">no affinities</p>'


def _top_values(catalog: list[dict[str, Any]], per_name: int = 5) -> str:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for row in catalog:
        by_name.setdefault(row["name"], []).append(row)
    blocks = []
    for name, rows in sorted(by_name.items()):
        rows = sorted(rows, key=lambda r: -r["users"])[:per_name]
        peak = rows[0]["users"] or 1
        items = "".join(
            f'<rect x="0" y="{i * 22}" width="{150 * r["users"] / peak:.1f}" height="16" fill="{PALETTE[1]}"/>'
            f'<text x="{156 * r["users"] / peak + 4:.1f}" y="{i * 22 + 12}" font-size="11">{_e(r["value"])[:28]} ({r["users"]:,}, avg {r["score_avg"]:.1f})</text>'
            for i, r in enumerate(rows)
        )
        blocks.append(f'<div><strong>{_e(name)}</strong><svg role="img" width="340" height="{22 * len(rows)}">{items}</svg></div>')
    return f'<div class="grid">{"".join(blocks)}</div>' if blocks else '<p class="muted">no affinities</p>'
