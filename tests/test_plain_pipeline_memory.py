"""A plain dlt pipeline (no load_profiles) gets the DuckDB memory bound of an initial export from the
source itself; merges and configured settings keep theirs."""

from __future__ import annotations

import dlt
import pytest

from algolia_profiles_source import algolia_profiles
from algolia_profiles_source.load.duckdb import GLOBAL_CONFIG_KEY
from tests.conftest import API_KEY, APP_ID


def settings_of(pipeline):
    with pipeline.sql_client() as client:
        return client.execute_sql(
            "SELECT current_setting('memory_limit'), current_setting('preserve_insertion_order')")[0]


@pytest.fixture
def plain(emulator, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # dlt's default DuckDB file lands in the working folder
    yield lambda: dlt.pipeline("plain_profiles", destination="duckdb", dataset_name="algolia",
                               pipelines_dir=str(tmp_path / "pipelines"))
    if dlt.secrets.get(GLOBAL_CONFIG_KEY) is not None:
        dlt.secrets[GLOBAL_CONFIG_KEY] = None


def source(emulator):
    return algolia_profiles(application_id=APP_ID, api_key=API_KEY, base_url=emulator.base_url, page_size=50)


def test_the_initial_export_of_a_plain_pipeline_loads_bounded_and_the_next_run_does_not(emulator, plain):
    pipeline = plain()
    pipeline.run(source(emulator))
    bound = dlt.secrets.get(GLOBAL_CONFIG_KEY)
    assert bound["preserve_insertion_order"] is False and bound["memory_limit"].endswith("MB")
    limit, ordered = settings_of(pipeline)  # the load's connection had the bound
    assert ordered is False and "MiB" in limit
    pipeline.run(source(emulator))  # a merge: what the first run set is gone
    assert dlt.secrets.get(GLOBAL_CONFIG_KEY) is None
    assert settings_of(pipeline)[1] is True


def test_a_configured_duckdb_setting_is_left_alone(emulator, plain, monkeypatch):
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", '{"threads": 1}')
    pipeline = plain()
    pipeline.run(source(emulator))
    assert dlt.secrets.get(GLOBAL_CONFIG_KEY) == '{"threads": 1}'  # the environment's, untouched
    assert settings_of(pipeline)[1] is True  # and no bound added to it
