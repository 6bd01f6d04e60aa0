"""From pages to dlt items: the run's plan, the walk (sequential or in windows of ``lastUpdatedAt``,
with read-ahead and first-sighting dedup), and each page turned into Arrow tables."""
