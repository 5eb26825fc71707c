"""What every document asset of a pipeline shares: how it is declared, and what a step reaches.

:class:`Step` gives an asset's body its resources, typed, by the keys the pipeline's spec names
(``documents_embedder``, ``documents_milvus``, ...), its upload-day window and its time limit.
The ``asset_*`` helpers give each asset the same partitions, group, key prefix, backfill policy,
owners and stage tag, so that one pipeline's six assets cannot disagree on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pandas as pd
from dagster import Any as DagsterAny
from dagster import AssetCheckSpec, AssetExecutionContext, AssetIn, AssetKey, DailyPartitionsDefinition, Failure

from hyperion_pipelines.deadline import Checkpoint, StepTimeout, deadline
from hyperion_pipelines.orchestration.checks import schema_check_spec
from hyperion_pipelines.orchestration.columns import DESCRIPTIONS, LINEAGE, TYPES
from hyperion_pipelines.orchestration.execution import ONE_DAY_PER_RUN
from hyperion_pipelines.orchestration.io_manager import ParquetIOManager
from hyperion_pipelines.orchestration.metadata import column_lineage, frame_metadata
from hyperion_pipelines.orchestration.partitions import upload_day_partitions
from hyperion_pipelines.orchestration.resources.embedder import EmbedderResource
from hyperion_pipelines.orchestration.resources.milvus import MilvusResource
from hyperion_pipelines.orchestration.resources.sources import BlobStoreResource, DocumentSourceResource
from hyperion_pipelines.orchestration.resources.state import StateDatabaseResource
from hyperion_pipelines.progress import report
from hyperion_pipelines.sources.blob_store import BlobStore
from hyperion_pipelines.spec import PipelineSpec
from hyperion_pipelines.state.quarantine_ledger import QuarantineLedger

ASSET_NAMES = (
    "raw_documents", "parsed_documents", "quarantined_documents", "document_chunks", "chunk_embeddings",
    "vector_index",
)  # fmt: skip
# The ``hyperion/stage`` tag of each asset: filter the asset catalog by stage.
STAGES = {
    "raw_documents": "land", "parsed_documents": "parse", "quarantined_documents": "quarantine",
    "document_chunks": "chunk", "chunk_embeddings": "embed", "vector_index": "index",
}  # fmt: skip


@dataclass(frozen=True)
class Step:
    """One step's view of its pipeline: resources by the spec's keys, day window, time limit."""

    spec: PipelineSpec
    context: AssetExecutionContext

    def _resource(self, key: str) -> Any:
        return getattr(self.context.resources, key)

    @property
    def source(self) -> DocumentSourceResource:
        return self._resource(self.spec.resources.source)

    @property
    def embedder(self) -> EmbedderResource:
        return self._resource(self.spec.resources.embedder)

    @property
    def milvus(self) -> MilvusResource:
        return self._resource(self.spec.resources.milvus)

    @property
    def blob_store(self) -> BlobStoreResource:
        return self._resource(self.spec.resources.blob_store)

    @property
    def blobs(self) -> BlobStore:
        return self.blob_store.store()

    @property
    def state(self) -> StateDatabaseResource:
        return self._resource(self.spec.resources.state)

    @property
    def ledger(self) -> QuarantineLedger:
        return self.state.ledger(self.spec.name)

    @property
    def outputs(self) -> ParquetIOManager:
        """Where the step writes its parts, and how many documents a part holds."""
        io = getattr(self.context.resources, "io_manager", None)
        return io if isinstance(io, ParquetIOManager) else ParquetIOManager()

    @property
    def window(self) -> tuple[datetime, datetime]:
        """The partition's upload day, from its first moment to the next day's (UTC)."""
        window = self.context.partition_time_window
        return window.start.astimezone(UTC), window.end.astimezone(UTC)

    def progress(self, stage: str, done: int, total: int | None, unit: str) -> None:
        """How far the step is, for a watcher in this process (see ``hyperion_pipelines.progress``)."""
        report(self.context.partition_key, stage, done, total, unit)

    def counted_parts(
        self, parts: Iterable[tuple[pd.DataFrame, pd.DataFrame]], stage: str, total: int
    ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
        """``parts`` as they are, reporting the rows of those the consumer is done with."""
        done = 0
        for part in parts:
            yield part
            done += len(part[0])
            self.progress(stage, done, total, "chunks")

    @contextmanager
    def limit(self) -> Iterator[Checkpoint]:
        """The step's deadline; running past it fails the step without a retry (a retry would
        run as long again)."""
        try:
            yield deadline(self.spec.limits.step_timeout_s, self.context.op_def.name)
        except StepTimeout as exc:
            raise Failure(description=str(exc), allow_retries=False) from exc


@cache
def _partitions(start_date: str) -> DailyPartitionsDefinition:
    return upload_day_partitions(start_date)


def partitions_of(spec: PipelineSpec) -> DailyPartitionsDefinition:
    """The pipeline's upload-day partitions: one object for all its assets and checks."""
    return _partitions(spec.partitions_start)


def asset_key(spec: PipelineSpec, name: str) -> AssetKey:
    return AssetKey([*spec.key_prefix, name])


def asset_args(spec: PipelineSpec, name: str) -> dict[str, Any]:
    """The ``@asset`` arguments every document asset of ``spec`` shares."""
    return {
        "name": name,
        "tags": {"hyperion/stage": STAGES[name]},
        "partitions_def": partitions_of(spec),
        "group_name": spec.name,
        "key_prefix": list(spec.key_prefix) or None,
        "backfill_policy": ONE_DAY_PER_RUN,
        "owners": list(spec.owners),
    }


def upstream(spec: PipelineSpec, name: str) -> AssetIn:
    # Typed in Python (a DataFrame, or a day's output in parts); Dagster takes no union type.
    return AssetIn(key=asset_key(spec, name), dagster_type=DagsterAny)


def schema_spec(spec: PipelineSpec, name: str, model: str, what: str) -> AssetCheckSpec:
    """The blocking pandera ``schema`` check of the asset ``name``."""
    return schema_check_spec(asset_key(spec, name), partitions_of(spec), model, what)


def table_metadata(
    spec: PipelineSpec, name: str, frame: pd.DataFrame, preview: list[str], total_rows: int | None = None
) -> dict:
    """Row count, column schema (described), preview and, for a derived frame, column lineage.
    ``frame``: the output, or its first part when it has ``total_rows`` in parts."""
    metadata = frame_metadata(frame, preview, DESCRIPTIONS.get(name), TYPES.get(name), total_rows)
    if name in LINEAGE:
        keys = {other: asset_key(spec, other) for other in ASSET_NAMES}
        metadata["dagster/column_lineage"] = column_lineage(keys, LINEAGE[name])
    return metadata
