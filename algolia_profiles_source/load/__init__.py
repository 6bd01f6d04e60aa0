"""Running the source in a dlt pipeline: the pipeline and its run, its state, DuckDB specifics,
the working folder's lock, reconciling deletions, and ``status`` / ``doctor``."""
