"""The models' SQL: the trees a build runs, rendered for dbt.

Every SELECT here is the one :func:`..build.build_segments` runs: the trees come from
:func:`..models.model_statements`, :func:`..compiler.flags_select` and
:func:`..compiler.audience_select`, built against a :class:`~...warehouse.target.Target` whose tables
are placeholder identifiers (the name hex-encoded, so any table name survives rendering), rendered
for the destination's dialect, and the placeholders then replaced by ``{{ ref('...') }}`` (a table
some model creates) or ``{{ source('...', '...') }}`` (a table the pipeline loads, or a suppression
table). Instants are found the same way: the trees are built at sentinel instants, and each
timestamp literal at or just before the sentinel ``as_of`` becomes ``as_of`` (a dbt var, default
the run's start) minus the same number of seconds; the one at the sentinel ``built_at`` becomes the
run's start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlglot import exp

from ...tables import BUILDS, EVENTS, MEMBERS, MEMBERS_NEXT, STG_USERS, WORK_FLAGS
from ...warehouse import dialects
from ...warehouse.target import Target
from ..audience import AudienceFile
from ..compiler import CompileContext, audience_select, flags_select
from ..models import model_statements

SOURCE = "algolia"
FLAGS_MODEL = "segment_user_flags"

# Instants the trees are built at, far from any real one: a timestamp literal found in a tree at or
# up to a century before AS_OF is "as_of minus that much"; BUILT_AT is the run's start.
_AS_OF = datetime(2400, 1, 1, tzinfo=timezone.utc)
_BUILT_AT = datetime(2500, 1, 1, tzinfo=timezone.utc)
_AS_OF_TEXT = "__algolia_dbt_as_of__"
_BUILT_AT_TEXT = "__algolia_dbt_built_at__"
# the incremental model's own table, and the dbt run's id (the build_id of what it records)
_THIS = "__algolia_this__"
_RUN = "__algolia_dbt_invocation__"
_TABLE = re.compile(r"""[`"]?__algolia_t_([0-9a-f]+)__[`"]?""")

AS_OF_JINJA = '{{ var("as_of", run_started_at) }}'
BUILT_AT_JINJA = "{{ run_started_at }}"


def placeholder(name: str) -> exp.Table:
    """The identifier standing for the table ``name`` until rendering (the name hex-encoded)."""
    return exp.to_table(f"__algolia_t_{name.encode().hex()}__")


def placeholder_name(table: exp.Table) -> str | None:
    """The table name a placeholder stands for; None for any other table."""
    match = _TABLE.fullmatch(table.name) if not table.db else None
    return bytes.fromhex(match.group(1)).decode() if match else None


class Tables:
    """Names every table the trees read: placeholders while building, ``ref``/``source`` after rendering."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self.models: set[str] = set()
        # source name -> (schema, database or None, {table names})
        self.sources: dict[str, tuple[str, str | None, set[str]]] = {SOURCE: (dataset, None, set())}
        self._external: dict[str, tuple[str, str]] = {}

    def target(self, dialect: str) -> Target:
        def external(name: str) -> exp.Table:
            if "." in name:
                parts = name.split(".")
                table, schema, database = parts[-1], parts[-2], parts[-3] if len(parts) == 3 else None
                source = re.sub(r"[^A-Za-z0-9_]", "_", name.rsplit(".", 1)[0])
                self.sources.setdefault(source, (schema, database, set()))[2].add(table)
                self._external[name] = (source, table)
            return placeholder(name)

        return Target(dialect, placeholder, external)

    def jinja(self, name: str) -> str:
        if name in self.models:
            return "{{ ref('%s') }}" % name
        source, table = self._external.get(name, (SOURCE, name))
        if source == SOURCE:
            self.sources[SOURCE][2].add(table)
        return "{{ source('%s', '%s') }}" % (source, table)


def _instants(tree: exp.Expression) -> exp.Expression:
    """Replaces the sentinel instants of a tree by placeholders of ``as_of`` and the run's start."""
    def swap(node: exp.Expression) -> exp.Expression:
        if not (isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal) and node.this.is_string
                and node.to.is_type(exp.DataType.Type.TIMESTAMPTZ)):
            return node
        try:
            instant = datetime.fromisoformat(node.this.this)
        except ValueError:
            return node
        if instant == _BUILT_AT:
            return exp.cast(exp.Literal.string(_BUILT_AT_TEXT), exp.DataType.build("TIMESTAMPTZ"))
        before = _AS_OF - instant
        if timedelta(0) <= before <= timedelta(days=36525):
            as_of = exp.cast(exp.Literal.string(_AS_OF_TEXT), exp.DataType.build("TIMESTAMPTZ"))
            if not before:
                return as_of
            # seconds, not days: a day in the session's time zone can be 23 or 25 hours
            whole = before % timedelta(seconds=1) == timedelta(0)
            amount = int(before.total_seconds()) if whole else before // timedelta(microseconds=1)
            return exp.paren(exp.Sub(this=as_of, expression=exp.Interval(
                this=exp.Literal.number(amount), unit=exp.var("SECOND" if whole else "MICROSECOND"))))
        return node

    return tree.transform(swap)


def render(tree: exp.Expression, dialect: str, tables: Tables) -> str:
    """The SQL of ``tree`` for ``dialect``, its placeholders replaced by Jinja."""
    sql = _instants(tree).sql(dialect=dialect, pretty=True)
    sql = sql.replace(f"'{_AS_OF_TEXT}'", f"'{AS_OF_JINJA}'").replace(f"'{_BUILT_AT_TEXT}'", f"'{BUILT_AT_JINJA}'")
    sql = _TABLE.sub(lambda m: tables.jinja(bytes.fromhex(m.group(1)).decode()), sql)
    sql = sql.replace(_THIS, "{{ this }}").replace(_RUN, "{{ invocation_id }}")
    if "__algolia_" in sql:
        raise AssertionError(f"a placeholder survived rendering: {sql}")
    return sql


def _config(materialized: str, **extra: str) -> str:
    options = ", ".join([f"materialized='{materialized}'", *[f"{k}='{v}'" for k, v in extra.items()]])
    return "{{ config(%s) }}\n\n" % options


def audience_models(file: AudienceFile) -> dict[str, str]:
    """Each audience's model: ``audience__<name>``, lower case, ``-`` as ``_`` (numbered when two
    names meet)."""
    models: dict[str, str] = {}
    for audience in file.audiences:
        base = "audience__" + re.sub(r"[^A-Za-z0-9_]", "_", audience.name).lower()
        name, n = base, 2
        while name in models.values():
            name, n = f"{base}_{n}", n + 1
        models[audience.name] = name
    return models


@dataclass
class Models:
    """The project's SQL files (by path inside it) and what the YAML files describe of them."""

    files: dict[str, str]
    # the tables the SQL reads through source(): filled while rendering
    tables: Tables
    # the models over the loaded tables (staging views and marts), in build order
    loaded: list[str]
    # each audience's model
    audiences: dict[str, str]


def model_files(
    file: AudienceFile, dataset: str, dialect: str, folder: str, has_config: bool = True, has_history: bool = False,
) -> Models:
    """Every model's SQL, rendered for ``dialect``: the models over the loaded tables, the flags,
    each audience and their union under ``folder``, and the incremental history models.
    ``has_config``, ``has_history``: those loaded tables exist (the models over them are built as a
    build does)."""
    tables = Tables(dataset)
    target = tables.target(dialect)
    models: dict[str, tuple[str, exp.Expression]] = {}  # name -> (materialization, select)
    for statement in model_statements(target, has_config, has_history):
        tree = statement.tree
        if isinstance(tree, exp.Create) and tree.kind in ("VIEW", "TABLE") and isinstance(tree.this, exp.Table):
            name = placeholder_name(tree.this)
            if name is not None:
                models[name] = ("view" if tree.kind == "VIEW" else "table", tree.expression)
    tables.models.update(models)

    by_audience = audience_models(file)
    tables.models.update({FLAGS_MODEL, MEMBERS, EVENTS, BUILDS, *by_audience.values()})
    ctx = CompileContext(target, _AS_OF, users_cte=placeholder(STG_USERS).name, flags_cte=placeholder(FLAGS_MODEL).name,
                   members_ctes={name: placeholder(model).name for name, model in by_audience.items()})
    flags = flags_select(file, ctx)
    selects = {name: audience_select(a, i, file, ctx, _BUILT_AT)
               for i, a in enumerate(file.audiences) for name in [by_audience[a.name]]}
    for tree in [flags, *selects.values(), *[select for _, select in models.values()]]:
        for table in tree.find_all(exp.Table):
            if table.name in (WORK_FLAGS, MEMBERS_NEXT):
                raise AssertionError(f"the compiler read {table.name} instead of the context's model")

    out: dict[str, str] = {}
    for name, (materialized, select) in models.items():
        layer = "staging" if name.startswith("stg_") else "marts"
        out[f"{folder}/{layer}/{name}.sql"] = _config(materialized) + render(select, dialect, tables) + "\n"
    out[f"{folder}/audiences/{FLAGS_MODEL}.sql"] = _config("table") + render(flags, dialect, tables) + "\n"
    for name, select in selects.items():
        out[f"{folder}/audiences/{name}.sql"] = _config("table") + render(select, dialect, tables) + "\n"
    names = [a.name for a in file.audiences]
    out[f"{folder}/audiences/{MEMBERS}.sql"] = _config("table") + render(
        _members_select(list(by_audience.values())), dialect, tables) + "\n"
    out[f"{folder}/history/{EVENTS}.sql"] = _config("incremental") + _events_sql(names, dialect, tables)
    out[f"{folder}/history/{BUILDS}.sql"] = _config("incremental") + render(
        _builds_select(names), dialect, tables) + "\n"
    return Models(out, tables, list(models), by_audience)


def _members_select(models: list[str]) -> exp.Expression:
    columns = ("segment", "user_id", "score", "matched_affinities", "built_at")
    selects = [exp.select(*[exp.column(c, "m") for c in columns]).from_(
        exp.alias_(placeholder(model), "m", table=True)) for model in models]
    if not selects:
        return dialects.parse(
            "SELECT CAST(NULL AS TEXT) AS segment, CAST(NULL AS TEXT) AS user_id, CAST(NULL AS DOUBLE) AS score,"
            " CAST(NULL AS BIGINT) AS matched_affinities, CAST(NULL AS TIMESTAMPTZ) AS built_at WHERE 1 = 0"
        )
    return exp.union(*selects, distinct=False) if len(selects) > 1 else selects[0]


def _names(names: list[str]) -> exp.Expression:
    return exp.Tuple(expressions=[exp.Literal.string(n) for n in names] or [exp.null()])


def _events_sql(names: list[str], dialect: str, tables: Tables) -> str:
    """Who entered (a member now, not at the end of the last run) and exited (the reverse), as the
    build's ``membership events`` statement; the last run's members are those whose latest event
    is ``entered``. On the first run (or a full refresh) every member enters."""
    def select(previous: exp.Expression) -> exp.Expression:
        return dialects.parse(
            "SELECT n.segment, n.user_id, 'entered' AS event, :run AS build_id, :stamp AS built_at"
            " FROM :members AS n WHERE NOT EXISTS"
            " (SELECT 1 FROM (:previous) AS o WHERE o.segment = n.segment AND o.user_id = n.user_id)"
            " UNION ALL"
            " SELECT o.segment, o.user_id, 'exited' AS event, :run AS build_id, :stamp AS built_at"
            " FROM (:previous) AS o WHERE o.segment IN :names AND NOT EXISTS"
            " (SELECT 1 FROM :members AS n WHERE n.segment = o.segment AND n.user_id = o.user_id)",
            members=placeholder(MEMBERS), previous=previous, names=_names(names),
            run=exp.Literal.string(_RUN), stamp=dialects.timestamp(_BUILT_AT),
        )

    last = dialects.parse(
        "SELECT e.segment, e.user_id FROM (SELECT h.segment, h.user_id, h.event, ROW_NUMBER() OVER"
        " (PARTITION BY h.segment, h.user_id ORDER BY h.built_at DESC) AS rn FROM :this AS h) AS e"
        " WHERE e.rn = 1 AND e.event = 'entered'",
        this=exp.to_table(_THIS),
    )
    none = dialects.parse("SELECT CAST(NULL AS TEXT) AS segment, CAST(NULL AS TEXT) AS user_id WHERE 1 = 0")

    return ("{% if is_incremental() %}\n" + render(select(last), dialect, tables) + "\n{% else %}\n"
            + render(select(none), dialect, tables)
            + "\n{% endif %}\n")


def _builds_select(names: list[str]) -> exp.Expression:
    segments = [exp.select(exp.alias_(exp.Literal.string(n), "segment")) for n in names] or [
        exp.select(exp.alias_(exp.cast(exp.null(), "TEXT"), "segment")).where(exp.false())]
    return dialects.parse(
        "SELECT :run AS build_id, s.segment, COALESCE(m.members, 0) AS members,"
        " COALESCE(e.entered, 0) AS entered, COALESCE(e.exited, 0) AS exited, :stamp AS built_at"
        " FROM (:segments) AS s"
        " LEFT JOIN (SELECT segment, COUNT(*) AS members FROM :members GROUP BY segment) AS m ON m.segment = s.segment"
        " LEFT JOIN (SELECT segment, COUNT(CASE WHEN event = 'entered' THEN 1 END) AS entered,"
        " COUNT(CASE WHEN event = 'exited' THEN 1 END) AS exited FROM :events"
        " WHERE build_id = :run GROUP BY segment) AS e ON e.segment = s.segment",
        run=exp.Literal.string(_RUN), stamp=dialects.timestamp(_BUILT_AT),
        segments=exp.union(*segments, distinct=False) if len(segments) > 1 else segments[0],
        members=placeholder(MEMBERS), events=placeholder(EVENTS),
    )
