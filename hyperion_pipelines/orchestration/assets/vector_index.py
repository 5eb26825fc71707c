"""``vector_index``: sync the day's chunks into Milvus, check the result, record the manifest."""

# No "from __future__ import annotations": Dagster reads the asset function's annotations.
import time
from datetime import timedelta

import numpy as np
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Failure,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)

from hyperion_pipelines import run_metadata as rm
from hyperion_pipelines.checks.schemas import chunk_embeddings_schema, document_chunks_schema
from hyperion_pipelines.checks.validation import validate_frame
from hyperion_pipelines.embedding.space import collection_fingerprint
from hyperion_pipelines.index.id_set import IdSet, encode_ids
from hyperion_pipelines.index.sync import sync_partition
from hyperion_pipelines.index.verification import reconcile_partition, self_retrieval
from hyperion_pipelines.orchestration.assets.step import Step, asset_args, asset_key, partitions_of, upstream
from hyperion_pipelines.orchestration.checks import (
    RECONCILIATION_CHECK,
    SELF_RETRIEVAL_CHECK,
    check_spec,
    reconciliation_result,
    self_retrieval_result,
)
from hyperion_pipelines.orchestration.execution import MILVUS_WRITE_POOL, REMOTE_RETRY, stop_if_terminated
from hyperion_pipelines.orchestration.metadata import timing
from hyperion_pipelines.parsing.stage import OUTCOME_COLUMNS
from hyperion_pipelines.sources.base import document_version
from hyperion_pipelines.sources.landing import held_ids, is_held, listing_defect
from hyperion_pipelines.spec import PipelineSpec
from hyperion_pipelines.state.manifest import ManifestRecord
from hyperion_pipelines.step_outputs.parts import StepValue, paired_parts, values_for, whole


def manifest_records(raw: pd.DataFrame, parsed: pd.DataFrame) -> list[ManifestRecord]:
    """Each landed document with the version the index now reflects (indexed or quarantined)."""
    status = dict(zip(parsed["document_id"], parsed["status"], strict=True))
    raw = raw[~is_held(raw)]  # their manifest rows are kept as they are
    return [
        ManifestRecord(
            document_id=row.document_id,
            source_key=row.source,
            version=document_version(row.size_bytes, row.uploaded_at, listing_defect(row.landing_error)),
            status="indexed" if status.get(row.document_id) == "parsed" else "quarantined",
            sha256=row.sha256 if isinstance(row.sha256, str) else None,
            media_type=row.media_type if isinstance(row.media_type, str) else None,
        )
        for row in raw.itertuples(index=False)
    ]


def build_vector_index(spec: PipelineSpec) -> AssetsDefinition:
    keys = spec.resources

    @asset(
        description=(
            "The partition's chunks upserted into the Milvus collection of the current embedding "
            "space, then entries of this partition or its documents that are no longer current "
            "deleted. The live alias points at the collection. Records each document's indexed "
            "version in the index manifest, which the upload sensor compares with the source."
        ),
        kinds={"milvus"},
        ins={
            "raw_documents": upstream(spec, "raw_documents"),
            "parsed_documents": upstream(spec, "parsed_documents"),
            "document_chunks": upstream(spec, "document_chunks"),
            "chunk_embeddings": upstream(spec, "chunk_embeddings"),
        },
        required_resource_keys={
            keys.source,
            keys.embedder,
            keys.milvus,
            keys.state,
        },
        retry_policy=REMOTE_RETRY,
        pool=MILVUS_WRITE_POOL,
        check_specs=[
            check_spec(
                RECONCILIATION_CHECK,
                asset_key(spec, "vector_index"),
                partitions_of(spec),
                "The partition's entries in Milvus are exactly its current chunk ids: none missing, "
                "no orphans, no duplicates.",
            ),
            check_spec(
                SELF_RETRIEVAL_CHECK,
                asset_key(spec, "vector_index"),
                partitions_of(spec),
                "A sample of the partition's chunks, searched by their own vectors, come back first.",
            ),
        ],
        # The reconcile schedule writes a day every day, the sensor each day that changes: an index
        # untouched for longer means runs stopped (daemon, schedule, queue) or fail.
        freshness_policy=(
            FreshnessPolicy.time_window(fail_window=timedelta(hours=spec.index_checks.stale_after_hours))
            if spec.index_checks.stale_after_hours
            else None
        ),
        **asset_args(spec, "vector_index"),
    )
    def vector_index(
        context: AssetExecutionContext,
        raw_documents: pd.DataFrame,
        parsed_documents: StepValue,
        document_chunks: StepValue,
        chunk_embeddings: StepValue,
    ) -> MaterializeResult:
        step = Step(spec, context)
        stop_if_terminated(context)
        started = time.perf_counter()
        identity = step.embedder.get().identity
        # The upstream checks block this asset in a run that includes them; this guard also
        # covers a run of vector_index alone over stored upstream values. A first pass over the
        # parts, so that nothing is written when any part breaks its schema.
        chunk_schema = document_chunks_schema(spec.chunking.max_tokens)
        chunk_ids: list = []  # each part's, encoded (a day can have millions: see IdSet)
        for chunks, embeddings in paired_parts(document_chunks, chunk_embeddings):
            vector_schema = chunk_embeddings_schema(identity.dimension, identity.normalized, chunks["chunk_id"])
            for name, report in (
                ("document_chunks", validate_frame(chunks, chunk_schema, "chunk_id")),
                ("chunk_embeddings", validate_frame(embeddings, vector_schema, "chunk_id")),
            ):
                if not report.passed:
                    raise Failure(
                        description=f"{name} breaks its schema; nothing was written to Milvus",
                        metadata={"failure_cases": MetadataValue.md(report.markdown())},
                        allow_retries=False,
                    )
            chunk_ids.append(encode_ids(chunks["chunk_id"]))
        parsed_documents = whole(parsed_documents, OUTCOME_COLUMNS)
        index = step.milvus.index(spec.index, context.log.warning)
        collection = index.ensure_collection(
            collection_fingerprint(spec, identity, index.retrieval), identity.dimension
        )
        document_ids = parsed_documents["document_id"].tolist()
        held = held_ids(raw_documents)
        # Entries of documents held as they are (their sub-folder could not be listed) stay.
        kept_entries = index.ids_of_documents(collection, held) if held else []
        with step.limit() as checkpoint:
            report = sync_partition(
                index,
                collection,
                step.counted_parts(paired_parts(document_chunks, chunk_embeddings), "written", len(document_chunks)),
                partition_date=context.partition_key,
                document_ids=document_ids,
                checkpoint=checkpoint,
                keep_ids=kept_entries,
            )
        live = index.live_collection()
        if live is None:
            index.point_alias(collection)
            live = collection
        removed_from_live = 0
        if live != collection:
            # Mid re-index: searches still use the old collection, which this run cannot fill
            # (another model); documents deleted at the source must leave it all the same.
            at_source = raw_documents["document_id"].tolist()
            removed_from_live = index.remove_other_documents(live, partition_date=context.partition_key, keep=at_source)
            context.log.warning(
                f"alias {spec.index.alias} still points at {live}; this run wrote {collection} "
                f"(run 'hyperion reindex' to switch); {removed_from_live} entries of deleted documents "
                f"removed from {live}"
            )
        seconds = time.perf_counter() - started

        reconciliation = reconcile_partition(
            index,
            collection,
            IdSet(*chunk_ids, encode_ids(kept_entries)),
            partition_date=context.partition_key,
            document_ids=[*document_ids, *held],
        )
        # The manifest says "the index reflects these versions": only true when the entries match.
        # Left alone, the sensor still sees the day's changes as pending.
        dropped = 0
        if reconciliation.passed:
            manifest = step.state.manifest(spec.name)
            records = manifest_records(raw_documents, parsed_documents)
            dropped = manifest.record_partition(
                context.partition_key,
                records,
                run_id=context.run.run_id,
                keep=held,
                source_identity=step.source.identity(),
            )
        sampled = IdSet(*chunk_ids).sample(spec.index_checks.self_retrieval_sample)
        vectors = values_for(chunk_embeddings, sampled, "chunk_id", "vector")
        retrieval = self_retrieval(index, collection, sampled, np.asarray(vectors, dtype=np.float32))
        return MaterializeResult(
            metadata={
                rm.COLLECTION.key: collection,
                "alias": spec.index.alias,
                rm.LIVE_COLLECTION.key: live,
                rm.UPSERTED.key: report.upserted,
                rm.DELETED.key: report.deleted,
                "unchanged": report.unchanged,
                "documents_removed": dropped,
                "removed_from_live_collection": removed_from_live,
                "documents": int((parsed_documents["status"] == "parsed").sum()),
                rm.COLLECTION_ENTRIES.key: report.total_entries,
                **timing(seconds, report.upserted, "entries"),
            },
            check_results=[
                reconciliation_result(reconciliation),
                self_retrieval_result(retrieval, spec.index_checks.self_retrieval_min_ratio),
            ],
        )

    return vector_index
