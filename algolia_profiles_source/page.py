"""A page of ``GET /2/users``, parsed straight into Arrow.

Building Python dicts for a page (orjson) and then converting them to Arrow took three quarters of
the local cost of an export. Arrow's C++ JSON reader builds the columns directly, without a single
Python object per field, in about half the time orjson alone needs. A body that does not fit the
documented types (a score sent as a string, a profile that is not an object) is parsed again with
orjson into dicts, and :func:`.transform.page_to_tables` quarantines the records that break the
shape one by one. A body orjson cannot read (not JSON, or not UTF-8) is malformed (the session
retries it). Arrow also reads ``NaN`` and ``Infinity``, which orjson refuses: such a score is outside
1-20, so its affinity is quarantined instead of the page failing.

A page is therefore either an Arrow ``StructArray`` of profiles (the fast path) or a list of dicts;
the helpers below read both.
"""

from __future__ import annotations

import gc
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

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

Page = Union[pa.StructArray, List[Any]]


class MalformedBody(ValueError):
    """The body is not JSON orjson can read (truncated, HTML from a proxy, empty, not UTF-8)."""


def parse_users_body(content: bytes) -> Dict[str, Any]:
    """``{"users": page, "nextPageToken": token}`` of a ``GET /2/users`` body.

    ``users`` is a :data:`Page`: an Arrow ``StructArray`` when the body has the documented types, a
    list of dicts otherwise. A body that is JSON but not shaped like a page is returned as orjson
    parsed it, for the caller to reject with a message; a body that is not JSON raises
    :class:`MalformedBody`.
    """
    if not content:
        raise MalformedBody("empty body")
    parsed = _read_in_halves(content)
    if parsed is None:
        parsed = _read(content)
    if parsed is None:
        return parse_json(content)
    users, token = parsed
    try:
        users.validate(full=True)  # Arrow's reader lets invalid UTF-8 through; orjson does not
    except pa.ArrowInvalid:
        return parse_json(content)
    return {"users": users, "nextPageToken": token}


def _read(content: bytes) -> Optional[Tuple[pa.StructArray, Optional[str]]]:
    """The profiles and next-page token of a body shaped like a page, read by Arrow; ``None`` if
    Arrow cannot read it with the documented types."""
    try:
        table = pa_json.read_json(
            pa.BufferReader(content),
            # one block for the whole body: a block boundary may not fall inside the one object
            read_options=pa_json.ReadOptions(use_threads=False, block_size=len(content) + 1),
            parse_options=_PARSE_OPTIONS,
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.num_rows != 1 or table.column("users").null_count != 0:
        return None
    column = table.column("users")
    # one block, so one chunk: combine_chunks() would copy the whole page for nothing
    users = (column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()).flatten()
    return users, table.column("nextPageToken")[0].as_py()


# Arrow reads one JSON object on one thread: a page of 1,000 profiles (a few MB) is cut in two at a
# profile boundary and the halves are read on two cores, which shortens the reading thread of a walk
# (the critical path of an export). `},{"userID":` stands only between two objects of an array (a
# string holds no unescaped quote), but not necessarily two profiles of `users`: each half therefore
# gets a marker profile where it was cut, and the halves count only if the marker is the last profile
# of the first half and the first of the second (a cut anywhere else leaves a half with unbalanced
# brackets, or the marker in another array). Otherwise the whole body is read at once.
_PROFILE_BOUNDARY = b'},{"userID":'
_CUT_ID = "\x00algolia-profiles:cut"
_CUT_PROFILE = b'{"userID":"\\u0000algolia-profiles:cut"}'
_SPLIT_MIN_BYTES = 256 * 1024
_half_reader: Dict[int, ThreadPoolExecutor] = {}  # by process: a forked child has no pool thread


def _read_in_halves(content: bytes) -> Optional[Tuple[pa.StructArray, Optional[str]]]:
    if (os.cpu_count() or 1) < 2 or len(content) < _SPLIT_MIN_BYTES:
        return None
    cut = content.find(_PROFILE_BOUNDARY, len(content) // 2)
    if cut < 0:
        return None
    pool = _half_reader.get(os.getpid())
    if pool is None:
        pool = _half_reader.setdefault(
            os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="algolia-parse")
        )
    second = pool.submit(_read, b'{"users":[' + _CUT_PROFILE + content[cut + 1 :])
    first = _read(content[: cut + 2] + _CUT_PROFILE + b"]}")
    rest = second.result()
    if first is None or rest is None or (first[1] is not None and rest[1] is not None):
        return None
    head, tail = first[0], rest[0]
    if head.field("userID")[-1].as_py() != _CUT_ID or tail.field("userID")[0].as_py() != _CUT_ID:
        return None
    token = first[1] if first[1] is not None else rest[1]
    return pa.concat_arrays([head[:-1], tail[1:]]), token


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


def user_ids(page: Page) -> List[Optional[str]]:
    """The ``userID`` of each profile (``None`` where missing or not a string)."""
    if isinstance(page, pa.StructArray):
        return page.field("userID").to_pylist()
    return [_str_field(profile, "userID") for profile in page]


def timestamps(page: Page) -> List[Optional[str]]:
    """The ``lastUpdatedAt`` text of each profile (``None`` where missing or not a string)."""
    if isinstance(page, pa.StructArray):
        return page.field("lastUpdatedAt").to_pylist()
    return [_str_field(profile, "lastUpdatedAt") for profile in page]


def keep(page: Page, mask: List[bool]) -> Page:
    """The profiles of ``page`` where ``mask`` is true."""
    if isinstance(page, pa.StructArray):
        return page.filter(pa.array(mask, pa.bool_()))
    return [profile for profile, kept in zip(page, mask) if kept]


def _str_field(profile: Any, key: str) -> Optional[str]:
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
