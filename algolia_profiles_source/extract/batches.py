"""Pages' Arrow tables gathered into fewer, bigger items for dlt.

dlt computes and validates a table schema for every Arrow item it extracts (its contract cache does
not apply to Arrow), a few milliseconds per item whatever its size. With one ``users`` and one
``user_affinities`` item per page of 1,000 profiles, that was a fifth of the local cost of an
export; items of about 100,000 rows spend it once per five pages.
"""

from __future__ import annotations


import pyarrow as pa

# rows (users + affinities) per item: about five pages of 1,000 profiles with 20 affinities each,
# some 15 MB of Arrow held before it is written
BATCH_ROWS = 100_000


class PageBatches:
    """Collects each page's ``(users, affinities)`` tables; :meth:`add` returns the gathered pair
    once it holds ``max_rows`` rows, :meth:`flush` what is left (both as lists of pairs)."""

    def __init__(self, max_rows: int = BATCH_ROWS) -> None:
        self.max_rows = max_rows
        self._users: list[pa.Table] = []
        self._affinities: list[pa.Table] = []
        self._rows = 0

    def add(self, users: pa.Table, affinities: pa.Table) -> list[tuple[pa.Table, pa.Table]]:
        """Adds a page; returns the batches that are complete (none, one, or two when the page's
        schema differs from the pending ones, which are then returned alone)."""
        done = []
        if self._users and (
            users.schema != self._users[0].schema or affinities.schema != self._affinities[0].schema
        ):
            done.append(self._take())
        self._users.append(users)
        self._affinities.append(affinities)
        self._rows += users.num_rows + affinities.num_rows
        if self._rows >= self.max_rows:
            done.append(self._take())
        return [batch for batch in done if batch is not None]

    def flush(self) -> list[tuple[pa.Table, pa.Table]]:
        """The pending tables as one batch (none if nothing is pending)."""
        batch = self._take()
        return [] if batch is None else [batch]

    def _take(self) -> tuple[pa.Table, pa.Table] | None:
        if not self._users:
            return None
        batch = (pa.concat_tables(self._users), pa.concat_tables(self._affinities))
        self._users, self._affinities, self._rows = [], [], 0
        return batch
