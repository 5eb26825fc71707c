"""Hyperion Pipelines: a Dagster code location that keeps a Milvus index of uploaded documents."""
