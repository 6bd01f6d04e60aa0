"""Probe: the project's load and audience build on dlt's snowflake destination, executed by fakesnow
in this process (see tests/warehouses/snowflake_shims.py for what fakesnow needs rewritten).

One load and one build for the module: fakesnow re-translates every statement through ~70 sqlglot
transforms, so a build of the example audiences costs ~5 s whatever the data size.
"""

from __future__ import annotations

import tomllib
from typing import Any, Iterator, Tuple

import pytest

from algolia_profiles_source.demo import EXAMPLE_AUDIENCES
from algolia_profiles_source.emulator import Emulator
from algolia_profiles_source.segments import build_segments
from tests.conftest import API_KEY, APP_ID, assert_warehouse_equals_emulator, run
from tests.test_segments import NOW, add_injection_profile, expected, members_of
from tests.warehouses.fixtures import new_snowflake_pipeline, require_fakesnow


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Iterator[Tuple[Emulator, Any, Any]]:
    """(emulator, pipeline, build result): 600 profiles loaded by ``load_profiles`` into fakesnow,
    the example audiences built."""
    require_fakesnow()
    from tests.warehouses.snowflake_shims import fakesnow_snowflake

    root = tmp_path_factory.mktemp("snowflake")
    (root / "fakesnow").mkdir()
    with Emulator(app_id=APP_ID, api_key=API_KEY, n_users=600, seed=21, now=NOW) as emu, \
            fakesnow_snowflake(root / "fakesnow"):
        add_injection_profile(emu)
        pipeline = new_snowflake_pipeline(root / "pipelines")
        run(pipeline, emu, page_size=200)
        result = build_segments(pipeline, EXAMPLE_AUDIENCES, as_of=NOW)
        yield emu, pipeline, result


def test_snowflake_load_equals_the_emulator(built):
    emu, pipeline, _ = built
    assert_warehouse_equals_emulator(pipeline, emu)


def test_snowflake_example_audiences_match_the_oracle(built):
    emu, pipeline, result = built
    definitions = tomllib.loads(EXAMPLE_AUDIENCES.read_text())
    want = expected(emu, {**definitions, "settings": {"as_of": NOW}})
    assert members_of(pipeline) == want
    assert len(want) == len(definitions["audiences"]) and all(len(m) > 10 for m in want.values())
    # read back through the project's own reader: Snowflake returns unquoted identifiers upper-cased
    # in cursor.description (fakesnow too), the sizes must still be keyed by lower-case column names
    sizes = {row["segment"]: row["members"] for row in result.sizes}
    assert sizes == {name: len(members) for name, members in want.items()}

