"""A page of ``GET /2/users``, parsed straight into Arrow.

Building Python dicts for a page (orjson) and then converting them to Arrow took three quarters of
the local cost of an export. Arrow's C++ JSON reader builds the columns directly, without a single
Python object per field, in about the time orjson alone needs to build the dicts (half of it on
some days; the same on the benchmark's pages with escaped and non-ASCII values), leaving nothing to
convert. A body that does not fit the
documented types (a score sent as a string, a profile that is not an object) is parsed again with
orjson into dicts, and :func:`..extract.transform.page_to_tables` quarantines the records that break the
shape one by one. A body orjson cannot read (not JSON, or not UTF-8) is malformed (the session
retries it). Arrow also reads ``NaN`` and ``Infinity``, which orjson refuses: such a score is outside
1-20, so its affinity is quarantined instead of the page failing.

A page is therefore either an Arrow ``StructArray`` of profiles (the fast path) or a list of dicts;
the helpers below read both.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from typing import Any
from collections.abc import Iterator

import orjson
import pyarrow as pa
import pyarrow.json as pa_json

AFFINITY_STRUCT = pa.struct(
    [
        ("name", pa.string()),
        ("value", pa.string()),
        ("indices", pa.list_(pa.string())),
        ("score", pa.float64()),
        ("lastUpdatedAt", pa.string()),
    ]
)
PROFILE_STRUCT = pa.struct(
    [
        ("userID", pa.string()),
        ("type", pa.string()),
        ("lastUpdatedAt", pa.string()),
        ("affinities", pa.list_(AFFINITY_STRUCT)),
    ]
)
_BODY_SCHEMA = pa.schema([("users", pa.list_(PROFILE_STRUCT)), ("nextPageToken", pa.string())])
# fields the API may add later are ignored, as a dict reader would ignore them
_PARSE_OPTIONS = pa_json.ParseOptions(explicit_schema=_BODY_SCHEMA, unexpected_field_behavior="ignore")

Page = pa.StructArray | list[Any]


class MalformedBody(ValueError):
    """The body is not JSON orjson can read (truncated, HTML from a proxy, empty, not UTF-8)."""


def parse_users_body(content: bytes) -> dict[str, Any]:
    """``{"users": page, "nextPageToken": token}`` of a ``GET /2/users`` body.

    ``users`` is a :data:`Page`: an Arrow ``StructArray`` when the body has the documented types, a
    list of dicts otherwise. A body that is JSON but not shaped like a page is returned as orjson
    parsed it, for the caller to reject with a message; a body that is not JSON raises
    :class:`MalformedBody`.
    """
    if not content:
        raise MalformedBody("empty body")
    with _PARSING:
        return _parse_users_body(content)


# Pages parsed at once. A parse needs a few times the body's size; the walk's threads can receive
# many answers at the same instant (a rate-limit window opens), and parsing them all at once would
# raise the peak memory with the calls in flight. Two keep both cores busy.
_PARSING = threading.BoundedSemaphore(2)


def _parse_users_body(content: bytes) -> dict[str, Any]:
    try:
        table = pa_json.read_json(
            pa.BufferReader(content),
            # one block for the whole body: a block boundary may not fall inside the one object
            read_options=pa_json.ReadOptions(use_threads=False, block_size=len(content) + 1),
            parse_options=_PARSE_OPTIONS,
            # pages are parsed by the walk's threads, one per call in flight: Arrow's default pool
            # (mimalloc) keeps freed memory in a heap per thread, so memory would grow with them
            memory_pool=pa.system_memory_pool(),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        table = None
    if table is not None and table.num_rows == 1 and table.column("users").null_count == 0:
        column = table.column("users")
        # one block, so one chunk: combine_chunks() would copy the whole page for nothing
        users = (column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()).flatten(pa.system_memory_pool())
        try:
            users.validate(full=True)  # Arrow's reader lets invalid UTF-8 through; orjson does not
        except pa.ArrowInvalid:
            return parse_json(content)
        return {"users": users, "nextPageToken": table.column("nextPageToken")[0].as_py()}
    return parse_json(content)


def parse_json(content: bytes) -> Any:
    """Any JSON body, with orjson; raises :class:`MalformedBody` if it is not JSON."""
    if not content:
        raise MalformedBody("empty body")
    try:
        with gc_paused():
            return orjson.loads(content)
    except orjson.JSONDecodeError as error:
        raise MalformedBody(f"{error} ({len(content)} bytes)") from None


def is_page(users: Any) -> bool:
    return isinstance(users, (pa.StructArray, list))


def user_ids(page: Page) -> list[str | None]:
    """The ``userID`` of each profile (``None`` where missing or not a string)."""
    if isinstance(page, pa.StructArray):
        return page.field("userID").to_pylist()
    return [_str_field(profile, "userID") for profile in page]


def timestamps(page: Page) -> list[str | None]:
    """The ``lastUpdatedAt`` text of each profile (``None`` where missing or not a string)."""
    if isinstance(page, pa.StructArray):
        return page.field("lastUpdatedAt").to_pylist()
    return [_str_field(profile, "lastUpdatedAt") for profile in page]


def keep(page: Page, mask: list[bool]) -> Page:
    """The profiles of ``page`` where ``mask`` is true."""
    if isinstance(page, pa.StructArray):
        return page.filter(pa.array(mask, pa.bool_()))
    return [profile for profile, kept in zip(page, mask) if kept]


def _str_field(profile: Any, key: str) -> str | None:
    value = profile.get(key) if isinstance(profile, dict) else None
    return value if isinstance(value, str) else None


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pauses the cyclic garbage collector while a page's acyclic objects are built.

    A 1,000-profile page parsed to dicts allocates hundreds of thousands of objects, which triggers a
    full collection again and again: parsing runs about 3x faster without it. Reference counting
    still frees everything (parsed JSON has no cycles).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
