"""The HTTP session's retry backoff."""

from __future__ import annotations

from algolia_profiles_source.http.session import AlgoliaSession


def test_backoff_grows_has_jitter_and_a_floor():
    session = AlgoliaSession(backoff_base=1.0)
    for attempt in range(1, 12):
        wait = session._backoff(attempt)
        ceiling = min(60.0, 2 ** (attempt - 1))
        assert ceiling / 2 <= wait <= ceiling
    assert len({session._backoff(3) for _ in range(20)}) > 1
