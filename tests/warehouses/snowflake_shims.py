"""Snowflake for the tests: dlt's snowflake destination and the project's Snowflake SQL executed by
fakesnow (Snowflake's Python connector API on top of DuckDB) in this process, with no account.

``fakesnow_snowflake(db_path)`` patches ``snowflake.connector.connect`` with ``fakesnow.patch`` and
routes every statement through :func:`rewrite` — the ONE place that turns SQL that real Snowflake
executes (and that dlt or the project sends) into SQL fakesnow 0.11.20 can execute. Each rewrite
below says what it changes and why; none of them changes what a statement means in Snowflake, they
only work around fakesnow's parser/translator. Nothing here is used by the product: if a rewrite is
ever needed for *real* Snowflake, that is a product bug, not something to add here.

Not provable with fakesnow (Snowflake's documentation is the reference there): how real Snowflake's
COPY of a parquet ``list<string>`` lands in a VARIANT column, NUMBER/Decimal result types, collation.

Statement flow (in this order):

1. ``connect(schema='"ALGOLIA"')``  -> ``schema='ALGOLIA'``            (:func:`unquote_connect_names`)
2. one batch of ``;``-separated statements -> one statement at a time  (:func:`split_statements`)
3. each statement: :data:`STATEMENT_REWRITES`, in order (the first only checks: it refuses what
   real Snowflake refuses and fakesnow would run, :func:`quoted_names_are_case_sensitive`).

Besides SQL: the destination must load parquet (:data:`DESTINATION_OPTIONS`), and the fake cursor
gets the connector's ``fetch_arrow_all`` / ``fetch_arrow_batches`` (:func:`fetch_arrow_all`).

Requires ``fakesnow==0.11.20`` and ``snowflake-connector-python<5`` (and pandas for
``fetch_arrow_all``); see ``tests/warehouses/fixtures.py``.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager, suppress
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union
from unittest import mock

#: statements seen by fakesnow after the rewrites, when ``ALGOLIA_PROFILES_FAKESNOW_LOG`` names a file
LOG_ENV = "ALGOLIA_PROFILES_FAKESNOW_LOG"


# --------------------------------------------------------------------------------------------------
# 1. connect()
# --------------------------------------------------------------------------------------------------


def _unquote_identifier(name: Optional[str]) -> Optional[str]:
    if isinstance(name, str) and len(name) >= 2 and name[0] == name[-1] == '"':
        return name[1:-1].replace('""', '"')
    return name


def unquote_connect_names(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """dlt passes ``schema=client.fully_qualified_dataset_name()``, i.e. ``'"ALGOLIA"'`` quoted (and
    may quote ``database``). Real Snowflake accepts a quoted identifier there. fakesnow's patched
    ``connect`` compares that text, quotes included, with the schema names it knows: it creates the
    schema but never selects it, dlt then finds no dataset and its ``CREATE SCHEMA`` fails
    (``Schema with name "ALGOLIA" already exists``). Unquote before fakesnow sees it."""
    fixed = dict(kwargs)
    for key in ("schema", "database"):
        if key in fixed:
            fixed[key] = _unquote_identifier(fixed[key])
    return fixed


# --------------------------------------------------------------------------------------------------
# 2. multi-statement batches
# --------------------------------------------------------------------------------------------------


def split_statements(sql: str) -> List[str]:
    """dlt sends several statements in one ``execute`` (``num_statements=0``: DDL of a schema update,
    the merge's delete + insert, ...); real Snowflake runs them all. fakesnow parses with
    ``sqlglot.parse_one`` and silently runs only the FIRST one (0.11.20 and 0.12.1, patch and
    server mode) — so a merge would delete and never insert. Split on the semicolons the sqlglot
    Snowflake tokenizer reports: it knows string literals (``'a;b'``, ``\\'`` escapes), quoted
    identifiers, ``$$`` strings and comments, which a regex would not. (Without it dlt's first
    schema update fails: ``Parser Error: syntax error at or near "CREATE"``.)"""
    from sqlglot.dialects.snowflake import Snowflake

    try:
        tokens = Snowflake().tokenize(sql)
    except Exception:  # noqa: BLE001 - not tokenizable (e.g. a PUT path): leave it to fakesnow
        return [sql]
    cuts = [t.start for t in tokens if t.token_type.name == "SEMICOLON"]
    parts: List[str] = []
    begin = 0
    for cut in cuts + [len(sql)]:
        part = sql[begin:cut].strip()
        if part:
            parts.append(part)
        begin = cut + 1
    return parts or [sql]


# --------------------------------------------------------------------------------------------------
# 3. one statement
# --------------------------------------------------------------------------------------------------

_PUT = re.compile(r"^\s*PUT\s+('(?:[^'\\]|\\.|'')*')\s+'(@(?:[^'\\]|\\.|'')*)'", re.IGNORECASE | re.DOTALL)


def put_stage_unquoted(sql: str) -> str:
    """dlt writes ``PUT 'file:///...' '@"ALGOLIA"."%USERS"/"<load_id>"'`` (the stage location as a
    string literal, which Snowflake allows). fakesnow's grammar wants the location as a bare
    ``@...`` word and fails on a literal (``'@"ALGOLIA"."%USERS"/"..."' does not start with @``):
    drop the literal's quotes."""
    found = _PUT.match(sql)
    if not found:
        return sql
    stage = found.group(2).replace("''", "'").replace("\\'", "'")
    return sql[: found.start(2) - 1] + stage + sql[found.end(2) + 1 :]


_PUT_OPTIONS = re.compile(r"(OVERWRITE\s*=\s*\w+)\s*,\s*(AUTO_COMPRESS\s*=\s*\w+)", re.IGNORECASE)
_FILE_FORMAT = re.compile(r"FILE_FORMAT\s*=\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)", re.IGNORECASE)


def options_without_commas(sql: str) -> str:
    """dlt separates copy options with commas (``OVERWRITE = TRUE, AUTO_COMPRESS = FALSE`` after PUT,
    ``FILE_FORMAT = (TYPE = 'PARQUET', BINARY_AS_TEXT = FALSE, ...)`` in COPY); Snowflake accepts
    commas or blanks between options, fakesnow's option parser only blanks (``AssertionError:
    SequenceProperties is not a Property``). Only the commas between ``KEY = value`` options are
    replaced (not those inside a value like ``NULL_IF = ('', 'x')``)."""
    sql = _PUT_OPTIONS.sub(r"\1 \2", sql)

    def blanks(found: "re.Match[str]") -> str:
        inner = re.sub(r",\s*(?=[A-Za-z_]+\s*=)", " ", found.group(1))
        return f"FILE_FORMAT = ({inner})"

    return _FILE_FORMAT.sub(blanks, sql)


_MATCH_BY = re.compile(r"MATCH_BY_COLUMN_NAME\s*=\s*'(\w+)'", re.IGNORECASE)


def match_by_column_name_unquoted(sql: str) -> str:
    """dlt writes ``MATCH_BY_COLUMN_NAME='CASE_INSENSITIVE'``; Snowflake takes the value quoted or
    not, fakesnow only unquoted (``MATCH_BY_COLUMN_NAME with ... Literal not implemented``)."""
    return _MATCH_BY.sub(r"MATCH_BY_COLUMN_NAME = \1", sql)


def array_contains_as_json_contains(sql: str) -> str:
    """The project's JSON-array membership test for Snowflake is
    ``ARRAY_CONTAINS(CAST(needle AS VARIANT), CAST(indices AS ARRAY))`` — valid Snowflake (value
    first, then the array). fakesnow keeps the VARIANT column as DuckDB JSON and translates it to
    list functions over JSON, which DuckDB's binder rejects (``No function matches ...
    'array_length(JSON)'``). Rewrite it to what the project's DuckDB dialect runs:
    ``JSON_CONTAINS(indices, TO_JSON(needle))``. Only statements containing ARRAY_CONTAINS are
    re-rendered (a sqlglot round trip, which the golden-SQL tests show to be lossless)."""
    if "ARRAY_CONTAINS" not in sql.upper():
        return sql
    import sqlglot
    from sqlglot import exp

    def unwrap(node: exp.Expression) -> exp.Expression:
        return node.this if isinstance(node, exp.Cast) else node

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.ArrayContains):
            array, needle = unwrap(node.this), unwrap(node.expression)
            return exp.Anonymous(
                this="JSON_CONTAINS", expressions=[array, exp.Anonymous(this="TO_JSON", expressions=[needle])]
            )
        return node

    tree = sqlglot.parse_one(sql, read="snowflake")
    return tree.transform(swap).sql(dialect="snowflake")


def _integer_valued(node: Any) -> bool:
    from sqlglot import exp

    if isinstance(node, exp.Paren):
        return _integer_valued(node.this)
    if isinstance(node, exp.Null):
        return True
    if isinstance(node, exp.Literal):
        return not node.is_string and node.is_int
    if isinstance(node, exp.Case):
        results = [branch.args.get("true") for branch in node.args.get("ifs") or []]
        default = node.args.get("default")
        return bool(results) and all(_integer_valued(r) for r in results) and (
            default is None or _integer_valued(default))
    return False


def integer_sums_stay_integers(sql: str) -> str:
    """fakesnow wraps the argument of every ``SUM`` in ``TRY_CAST(... AS DOUBLE)`` (its emulation of
    Snowflake's implicit text-to-number cast), so ``SUM(CASE WHEN c THEN 1 ELSE 0 END)`` returns
    FLOAT (``43.0``, which a table prints as ``43.00``) where Snowflake returns NUMBER(38,0) (an
    ``int`` from the connector). Cast such an argument — a CASE whose every result is an integer
    literal (or NULL) — to ``NUMBER(38, 0)`` first: in Snowflake that is the value and type it
    already has; fakesnow leaves an argument that is a cast alone. Only statements where a SUM
    changes are re-rendered (a sqlglot round trip, as in :func:`array_contains_as_json_contains`)."""
    if "SUM" not in sql.upper():
        return sql
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="snowflake")
    except Exception:  # noqa: BLE001 - not parsable by sqlglot (PUT, COPY options): no SUM to fix
        return sql
    changed = False
    for node in list(tree.find_all(exp.Sum)):
        if _integer_valued(node.this):
            node.set("this", exp.cast(node.this, exp.DataType.build("NUMBER(38, 0)", dialect="snowflake")))
            changed = True
    return tree.sql(dialect="snowflake") if changed else sql


def quoted_names_are_case_sensitive(sql: str) -> str:
    """Not a rewrite, a check. Snowflake matches a quoted identifier exactly: ``c."user_token"`` is
    not the column ``USER_TOKEN`` that ``CREATE TABLE c (user_token TEXT)`` (or dlt) makes, and
    Snowflake rejects the statement (``invalid identifier``). DuckDB, and so fakesnow, ignores the
    case of every identifier and runs it. dlt upper-cases every name it quotes, and the project's
    SQL quotes none in lower case, so a quoted identifier with a lower-case letter here is a
    statement real Snowflake would reject against tables made the usual way: it is refused. (A
    test that needs a name created quoted in lower case cannot run on fakesnow.)"""
    from snowflake.connector.errors import ProgrammingError
    from sqlglot.dialects.snowflake import Snowflake

    try:
        tokens = Snowflake().tokenize(sql)
    except Exception:  # noqa: BLE001 - not tokenizable (e.g. a PUT path): dlt's own statement
        return sql
    for token in tokens:
        if token.token_type.name == "IDENTIFIER" and token.text != token.text.upper():
            # Snowflake's own error: errno 904, SQLSTATE 42000 (dlt maps it to a terminal error)
            raise ProgrammingError(
                msg=f"SQL compilation error: invalid identifier '\"{token.text}\"' (quoted, so matched"
                " case-sensitively by Snowflake; fakesnow would have run it)",
                errno=904, sqlstate="42000",
            )
    return sql


#: every rewrite of one statement, in the order applied
STATEMENT_REWRITES: Tuple[Callable[[str], str], ...] = (
    quoted_names_are_case_sensitive,
    put_stage_unquoted,
    options_without_commas,
    match_by_column_name_unquoted,
    array_contains_as_json_contains,
    integer_sums_stay_integers,
)

#: what the destination factory must be given (not a SQL rewrite): fakesnow's COPY cannot load
#: JSON lines files by column name (it reads each line as one value: ``table PERSONALIZATION_CONFIG
#: has 14 columns but 1 values were supplied``); parquet works. (The profiles resource yields Arrow
#: tables, loaded from parquet anyway; this concerns the personalization_config dicts and dlt's state.)
DESTINATION_OPTIONS = {"preferred_loader_file_format": "parquet"}


def rewrite(sql: str) -> List[str]:
    """The statements fakesnow must run, in order, for what real Snowflake would run as ``sql``."""
    out = []
    for statement in split_statements(sql):
        for step in STATEMENT_REWRITES:
            statement = step(statement)
        out.append(statement)
    return out


# --------------------------------------------------------------------------------------------------
# the patch
# --------------------------------------------------------------------------------------------------


def _shimmed_execute(original: Callable[..., Any]) -> Callable[..., Any]:
    log_path = os.environ.get(LOG_ENV)

    def execute(self: Any, command: str, params: Union[Sequence[Any], Dict[Any, Any], None] = None,
                *args: Any, **kwargs: Any) -> Any:
        statements = rewrite(command)
        if len(statements) > 1 and params:
            # parameters would have to be split between the statements: dlt never does this
            raise NotImplementedError("a multi-statement batch with bound parameters")
        if log_path:
            with open(log_path, "a", encoding="utf-8") as log:
                for statement in statements:
                    log.write(statement.strip() + ";\n")
        result = self
        for statement in statements:
            result = original(self, statement, params, *args, **kwargs)
        return result

    return execute


def fetch_arrow_all(self: Any, force_return_table: bool = False, **_: Any) -> Any:
    """``SnowflakeCursor.fetch_arrow_all``, which fakesnow 0.11.20's cursor lacks in patch mode
    (``AttributeError``; it has ``fetch_pandas_all``). dlt's ``iter_arrow`` / ``arrow()`` on a
    Snowflake cursor call it. Like the connector: the rows not fetched yet, ``None`` when there are
    none unless ``force_return_table``. Unlike it: column types are DuckDB's (e.g. ``int32`` for an
    INT, where Snowflake returns NUMBER as ``int64``/decimal), so type checks need real Snowflake."""
    import pyarrow as pa
    import snowflake.connector

    if self._prefetch_hook is not None:
        self._prefetch_hook()
    table = self._arrow_table
    if table is None:
        raise snowflake.connector.NotSupportedError("No open result set")
    start = self._arrow_table_fetch_index or 0
    rest = table.slice(offset=start)
    self._arrow_table_fetch_index = table.num_rows
    if rest.num_rows == 0 and not force_return_table:
        return None
    return pa.Table.from_batches(rest.to_batches(), schema=rest.schema)


def fetch_arrow_batches(self: Any, **kwargs: Any) -> Iterator[Any]:
    """``SnowflakeCursor.fetch_arrow_batches`` (missing in fakesnow, see :func:`fetch_arrow_all`)."""
    table = fetch_arrow_all(self, **kwargs)
    if table is not None:
        yield table


@contextmanager
def fakesnow_snowflake(db_path: Union[str, "os.PathLike[str]"]) -> Iterator[None]:
    """Within the block, ``snowflake.connector.connect`` (which dlt calls) reaches fakesnow, whose
    databases are DuckDB files in ``db_path`` (an existing directory), with the rewrites above.

    Files dlt PUTs into table stages go to ``db_path/stages`` too: fakesnow copies them into a
    folder of its own (``fakesnow.transforms.stage.LOCAL_BUCKET_PATH``, made by ``mkdtemp`` at
    import and never removed), which is pointed here for the block."""
    import fakesnow
    import fakesnow.transforms.stage as fakesnow_stage
    import snowflake.connector
    from fakesnow.cursor import FakeSnowflakeCursor

    stages = os.path.join(os.fspath(db_path), "stages")
    os.makedirs(stages, exist_ok=True)
    try:
        with fakesnow.patch(db_path=db_path):
            patched = snowflake.connector.connect
            fake_connect = patched.side_effect

            def connect(*args: Any, **kwargs: Any) -> Any:
                return fake_connect(*args, **unquote_connect_names(kwargs))

            patched.side_effect = connect
            cursor = FakeSnowflakeCursor
            with mock.patch.object(cursor, "execute", _shimmed_execute(cursor.execute)), \
                    mock.patch.object(cursor, "fetch_arrow_all", fetch_arrow_all, create=True), \
                    mock.patch.object(cursor, "fetch_arrow_batches", fetch_arrow_batches, create=True), \
                    mock.patch.object(fakesnow_stage, "LOCAL_BUCKET_PATH", stages):
                yield
    finally:
        with suppress(OSError):  # fakesnow's own folder: empty, as it was never used
            os.rmdir(fakesnow_stage.LOCAL_BUCKET_PATH)


__all__ = [
    "DESTINATION_OPTIONS",
    "STATEMENT_REWRITES",
    "fakesnow_snowflake",
    "integer_sums_stay_integers",
    "quoted_names_are_case_sensitive",
    "rewrite",
    "split_statements",
    "unquote_connect_names",
]
