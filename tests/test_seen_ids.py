"""Unit tests of :class:`SeenIds`, the exact on-disk set behind the dedup of concurrent walks."""

from __future__ import annotations

import random
import string

import pytest

from algolia_profiles_source.extract.seen_ids import SeenIds


@pytest.fixture(params=[1_000_000, 3], ids=["buffered", "flushed"])
def seen(request):
    """Small ``flush_at`` values move IDs to SQLite after every batch, so both stores are covered."""
    with SeenIds(flush_at=request.param) as ids:
        yield ids


def test_first_sighting_wins_within_and_across_batches(seen):
    assert seen.first_sightings(["a", "b", "a", "c", "b"]) == [True, True, False, True, False]
    assert seen.first_sightings(["c", "d", "a", "d", "e"]) == [False, True, False, False, True]
    assert seen.first_sightings(["e", "f"]) == [False, True]
    assert len(seen) == 6


def test_none_ids_always_pass_and_are_not_recorded(seen):
    assert seen.first_sightings([None, "a", None, "a"]) == [True, True, True, False]
    assert seen.first_sightings([None, None]) == [True, True]
    assert seen.first_sightings([]) == []
    assert len(seen) == 1


ODD_IDS = [
    "", " ", "'", '"', "a'b\"c", "%", "_", "?", "NULL", "null", "🦊", "🦊🦊", "e\u0301", "\u00e9", "Ä", "ä",
    "x" * 100_000, "x" * 100_001, "tab\tnew\nline", "nul\x00byte", "nul\x00bytf", "ID", "id",
]


def test_odd_ids_are_compared_exactly(seen):
    # case, Unicode normalization, embedded NULs and long common prefixes all stay distinct
    assert len(set(ODD_IDS)) == len(ODD_IDS)
    assert seen.first_sightings(ODD_IDS) == [True] * len(ODD_IDS)
    assert seen.first_sightings(list(reversed(ODD_IDS))) == [False] * len(ODD_IDS)
    assert seen.first_sightings(["X" * 100_000, "🦊 ", "e"]) == [True, True, True]


def test_matches_a_python_set_over_many_batches():
    rng = random.Random(7)
    pool = ["".join(rng.choices(string.ascii_letters, k=rng.randint(0, 6))) for _ in range(3000)]
    expected: set = set()
    with SeenIds(flush_at=500) as seen:  # more than 1000 IDs per lookup: chunked below SQLite's limit
        for _ in range(20):
            batch = [rng.choice(pool + [None]) for _ in range(rng.randint(0, 1500))]
            mask = []
            for user_id in batch:
                mask.append(user_id is None or user_id not in expected)
                if user_id is not None:
                    expected.add(user_id)
            assert seen.first_sightings(batch) == mask
        assert len(seen) == len(expected)


def test_close_is_idempotent_and_refuses_further_use():
    seen = SeenIds(flush_at=1)
    seen.first_sightings(["a", "b"])
    assert not seen.closed
    seen.close()
    seen.close()
    assert seen.closed
    with pytest.raises(ValueError, match="closed"):
        seen.first_sightings(["a"])
    with SeenIds() as other:
        assert other.first_sightings(["a"]) == [True]
    with pytest.raises(ValueError, match="closed"):
        other.first_sightings(["a"])


def test_a_concurrent_walk_closes_its_set_when_it_ends_and_when_it_fails(emulator_factory, pipeline_factory, monkeypatch):
    import algolia_profiles_source.extract.walk as walk_module
    from tests.conftest import run

    opened = []

    class Recorded(SeenIds):
        def __init__(self) -> None:
            super().__init__()
            opened.append(self)

    monkeypatch.setattr(walk_module, "SeenIds", Recorded)
    emu = emulator_factory(n_users=400)
    run(pipeline_factory(), emu, page_size=10, concurrency=4)
    with pytest.raises(Exception, match="max_pages=3"):
        run(pipeline_factory(), emu, page_size=10, max_pages=3, concurrency=4)
    assert len(opened) == 2 and all(seen.closed for seen in opened)


def test_a_disk_failure_is_a_clear_configuration_error(monkeypatch):
    import sqlite3

    from algolia_profiles_source.extract import seen_ids
    from algolia_profiles_source.exceptions import ConfigurationError

    def full_disk(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(seen_ids.sqlite3, "connect", full_disk)
    with pytest.raises(ConfigurationError, match="TMPDIR.*concurrency = 1"):
        seen_ids.SeenIds()
