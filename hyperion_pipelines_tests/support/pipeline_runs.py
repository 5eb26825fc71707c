"""A partition of the default pipeline materialised in-process, and the entries behind the live alias."""

from __future__ import annotations

from dagster import DagsterInstance, materialize

from hyperion_pipelines.definitions import build_definitions
from hyperion_pipelines.index.connection import connect
from hyperion_pipelines.orchestration.pipeline import build_pipeline
from hyperion_pipelines.run_metadata import metadata_by_asset
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.spec import IndexSpec

from ..conftest import UPLOAD_DAY
from .sample_pipeline import default_spec


def run_partition(settings: Settings, instance: DagsterInstance) -> dict[str, dict]:
    """Materialise every asset of the partition; return each asset's metadata values."""
    pipeline = build_pipeline(default_spec(settings))
    result = materialize(
        pipeline.assets, partition_key=UPLOAD_DAY, resources=build_definitions(settings).resources, instance=instance
    )
    assert result.success
    return metadata_by_asset(event.materialization for event in result.get_asset_materialization_events())


def index_entries(settings: Settings) -> dict[str, tuple[str, str]]:
    """Every entry behind the live alias: id -> (source, text)."""
    client = connect(settings.milvus_uri)
    try:
        collection = client.describe_alias(IndexSpec(alias="hyperion_documents").alias)["collection_name"]
        client.load_collection(collection)
        rows = client.query(collection, filter='id != ""', output_fields=["source", "text"], limit=16384)
        return {row["id"]: (row["source"], row["text"]) for row in rows}
    finally:
        client.close()
