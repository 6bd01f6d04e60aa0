"""Pages turned into the ``users`` and ``user_affinities`` Arrow tables; malformed records quarantined."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pytest

from algolia_profiles_source.extract.transform import page_to_tables


def test_page_to_tables_flattens_types_and_tombstones_empty_profiles():
    users = [
        {"userID": "a+b/c=", "type": "basic", "lastUpdatedAt": "2026-11-01T10:00:00.123456789Z",
         "affinities": [
             {"name": "categories.lvl1", "value": "Outdoor > Camping, \"Tents\"", "indices": ["i1", "i2"],
              "score": 12.5, "lastUpdatedAt": "2026-11-01T12:00:00+02:00"},
             {"name": "brand", "value": "户外", "indices": ["i1"], "score": 3, "lastUpdatedAt": "2026-11-01T09:00:00Z"},
         ]},
        {"userID": "zero", "lastUpdatedAt": "2026-11-01T10:00:00Z", "affinities": []},
    ]
    tables = page_to_tables(users, load_id="123.4")
    users_table, affinities = tables.users, tables.affinities
    assert tables.rejected == []
    assert users_table.column("user_id").to_pylist() == ["a+b/c=", "zero"]
    assert users_table.column("type").to_pylist() == ["basic", None]
    assert users_table.column("affinity_count").to_pylist() == [2, 0]
    stamp = users_table.column("last_updated_at").to_pylist()[0]
    assert stamp == datetime(2026, 11, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)
    assert affinities.schema.field("score").type == pa.float64()
    assert affinities.column("score").to_pylist() == [12.5, 3.0, None]
    assert affinities.column("indices").to_pylist() == [["i1", "i2"], ["i1"], None]
    assert affinities.column("last_updated_at").to_pylist()[0] == datetime(2026, 11, 1, 10, tzinfo=timezone.utc)
    assert affinities.column("_deleted").to_pylist() == [None, None, True]
    assert set(affinities.column("_dlt_load_id").to_pylist()) == {"123.4"}


GOOD = {"userID": "ok", "lastUpdatedAt": "2026-11-01T10:00:00Z",
        "affinities": [{"name": "n", "value": "v", "score": 5, "indices": ["i"], "lastUpdatedAt": "2026-11-01T10:00:00Z"}]}


@pytest.mark.parametrize("bad, reason, loaded_affinities", [
    ({"lastUpdatedAt": "2026-11-01T10:00:00Z", "affinities": []}, "userID missing", 1),
    ({"userID": "x" * 130, "lastUpdatedAt": "2026-11-01T10:00:00Z", "affinities": []}, "userID missing", 1),
    ({"userID": "bad id!", "lastUpdatedAt": "2026-11-01T10:00:00Z", "affinities": []}, "userID missing", 1),
    ({"userID": "x", "lastUpdatedAt": "not a date", "affinities": []}, "lastUpdatedAt", 1),
    ({"userID": "x", "lastUpdatedAt": "2026-11-01T10:00:00Z", "affinities": [{"value": "v", "score": 3}]}, "affinity without name", 2),
    ({"userID": "x", "lastUpdatedAt": "2026-11-01T10:00:00Z",
      "affinities": [{"name": "n", "value": "v", "score": "high", "indices": []}]}, "not shaped like", 1),
    ({"userID": "x", "lastUpdatedAt": "2026-11-01T10:00:00Z",
      "affinities": [{"name": "n", "value": "v", "score": 25, "indices": []}]}, "score that is not a number from 1 to 20", 2),
    ("not an object", "not shaped like", 1),
])
def test_malformed_records_are_quarantined_not_loaded(bad, reason, loaded_affinities):
    tables = page_to_tables([GOOD, bad])
    assert len(tables.rejected) == 1 and reason in tables.rejected[0]["reason"]
    assert tables.rejected[0]["record"]  # the offending record, as JSON text, for inspection
    assert "ok" in tables.users.column("user_id").to_pylist()
    # the good profile always loads; a profile that only lost an affinity keeps a tombstone row
    assert tables.affinities.num_rows == loaded_affinities
