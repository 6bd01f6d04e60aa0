"""Pytest fixtures for the emulated warehouses (import them into a test module or a conftest)::

    from tests.warehouses.fixtures import fakesnow_db, snowflake_pipeline_factory  # noqa: F401

``snowflake_pipeline_factory`` makes dlt pipelines on dlt's real ``snowflake`` destination, whose
connector calls land in fakesnow (in this process, DuckDB files under the test's tmp_path) through
``tests/warehouses/snowflake_shims.py``. The BigQuery server fixture is in
``tests/warehouses/bigquery_server.py``.

Without fakesnow / the Snowflake connector installed the tests are skipped (failed when ``CI`` is
set), naming what to install.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterator

import pytest

from algolia_profiles_source.pipeline import make_pipeline
from tests.availability import unavailable

SNOWFLAKE_REQUIREMENTS = (
    "'fakesnow==0.11.20' 'snowflake-connector-python>=3.12,<5' 'dlt[snowflake]>=1.31,<1.32' pandas"
)
SNOWFLAKE_DATABASE = "ALGOLIA_TEST"
#: dlt's native form of the credentials (also what ``DESTINATION__SNOWFLAKE__CREDENTIALS`` takes, for
#: the CLI's ``--destination snowflake``); fakesnow only uses the database
SNOWFLAKE_URL = f"snowflake://loader:unused-by-fakesnow@fakesnow/{SNOWFLAKE_DATABASE}"

_counter = itertools.count()


def snowflake_credentials() -> Any:
    """Credentials dlt accepts; fakesnow only uses ``database`` (and the schema dlt adds)."""
    from dlt.destinations.impl.snowflake.configuration import SnowflakeCredentials

    credentials = SnowflakeCredentials()
    credentials.parse_native_representation(SNOWFLAKE_URL)
    return credentials


def require_fakesnow() -> None:
    """Skips (fails in CI) the calling test when fakesnow or the Snowflake connector is missing."""
    try:
        import fakesnow  # noqa: F401
        import pandas  # noqa: F401  (the connector's fetch_arrow_all needs it)
        import snowflake.connector  # noqa: F401
        from dlt.destinations.impl.snowflake import sql_client  # noqa: F401
    except ImportError as error:
        unavailable("fakesnow", f"{error}; pip install {SNOWFLAKE_REQUIREMENTS}")


def new_snowflake_pipeline(pipelines_dir: Any, dataset_name: str = "") -> Any:
    """A pipeline on dlt's snowflake destination (call inside ``fakesnow_snowflake``)."""
    import dlt

    from tests.warehouses.snowflake_shims import DESTINATION_OPTIONS

    n = next(_counter)
    return make_pipeline(
        pipeline_name=f"test_snowflake_profiles_{n}",
        destination=dlt.destinations.snowflake(credentials=snowflake_credentials(), **DESTINATION_OPTIONS),
        dataset_name=dataset_name or f"algolia_{n}",
        pipelines_dir=str(pipelines_dir),
    )


@pytest.fixture
def fakesnow_db(tmp_path: Any) -> Iterator[Any]:
    """fakesnow patched in for the test; its DuckDB files live in the yielded folder."""
    require_fakesnow()
    from tests.warehouses.snowflake_shims import fakesnow_snowflake

    folder = tmp_path / "fakesnow"
    folder.mkdir()
    with fakesnow_snowflake(folder):
        yield folder


@pytest.fixture
def snowflake_pipeline_factory(fakesnow_db: Any, tmp_path: Any) -> Callable[..., Any]:
    """``create(dataset_name="")`` -> a pipeline on dlt's snowflake destination backed by fakesnow."""

    def create(dataset_name: str = "") -> Any:
        return new_snowflake_pipeline(tmp_path / "pipelines", dataset_name)

    return create
