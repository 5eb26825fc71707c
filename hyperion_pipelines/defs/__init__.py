"""The Dagster layer: partitions, the asset graph built from a pipeline spec, resources, jobs."""
