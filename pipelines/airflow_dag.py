"""Example Airflow DAG (adapt and copy to your dags/ folder): hourly incremental load with dlt's
Airflow helper, which runs the source's resources as tasks and keeps the pipeline state in the
destination. Needs ``apache-airflow`` and ``algolia-profiles[bigquery]`` (or another destination).
Credentials come from dlt config (Airflow variables or environment), as everywhere else."""

from __future__ import annotations

import pendulum
from airflow.decorators import dag

from dlt.helpers.airflow_helper import PipelineTasksGroup


@dag(schedule="5 * * * *", start_date=pendulum.datetime(2026, 1, 1), catchup=False, max_active_runs=1)
def algolia_profiles_hourly() -> None:
    import dlt

    from algolia_profiles_source import algolia_profiles

    tasks = PipelineTasksGroup("algolia_profiles", use_data_folder=False, wipe_local_data=True)
    pipeline = dlt.pipeline(
        pipeline_name="algolia_profiles", destination="bigquery", dataset_name="algolia"
    )
    # one task for the whole source: the profiles walk is one resource with its own concurrency
    tasks.add_run(pipeline, algolia_profiles(), decompose="none", trigger_rule="all_done", retries=0)


algolia_profiles_hourly()
