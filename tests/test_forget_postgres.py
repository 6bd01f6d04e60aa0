"""Erasure on a real PostgreSQL server: the same story as on DuckDB (``test_forget.py``), in one
transaction of Postgres's own."""

from __future__ import annotations

from tests.postgres_server import postgres_url  # noqa: F401  (session fixture)
from tests.test_forget import check_forget_lifecycle
from tests.test_postgres_load import pg_pipeline_factory  # noqa: F401  (fixture)


def test_forget_removes_every_row_and_keeps_the_users_out_on_postgres(emulator_factory, pg_pipeline_factory):  # noqa: F811
    check_forget_lifecycle(pg_pipeline_factory(), emulator_factory(n_users=30, seed=3))
