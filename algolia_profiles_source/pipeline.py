"""The documented import path of :mod:`.load.pipeline`:
``from algolia_profiles_source.pipeline import load_profiles, make_pipeline``."""

from .load.pipeline import (
    DEFAULT_DATASET_NAME,
    DEFAULT_PIPELINE_NAME,
    LoadResult,
    load_profiles,
    make_pipeline,
    run_source,
)

__all__ = ["DEFAULT_DATASET_NAME", "DEFAULT_PIPELINE_NAME", "LoadResult", "load_profiles", "make_pipeline", "run_source"]
