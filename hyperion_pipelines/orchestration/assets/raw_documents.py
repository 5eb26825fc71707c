"""``raw_documents``: land every document uploaded on the partition's day (ids, media types, bytes)."""

# No "from __future__ import annotations": Dagster reads the asset function's annotations.
import time
from datetime import UTC, datetime

from dagster import AssetExecutionContext, AssetsDefinition, Failure, MaterializeResult, MetadataValue, asset

from hyperion_pipelines import run_metadata as rm
from hyperion_pipelines.checks.schemas import raw_documents_schema
from hyperion_pipelines.checks.validation import validate_frame
from hyperion_pipelines.index.deletion_guard import ALLOW_DELETIONS_TAG, judge_listing
from hyperion_pipelines.orchestration.assets.step import Step, asset_args, schema_spec, table_metadata
from hyperion_pipelines.orchestration.checks import schema_check_result
from hyperion_pipelines.orchestration.execution import REMOTE_RETRY, stop_if_terminated
from hyperion_pipelines.orchestration.metadata import timing
from hyperion_pipelines.sources.base import SourceUnavailable
from hyperion_pipelines.sources.landing import HELD, Recorded, is_held, land_documents, raw_frame
from hyperion_pipelines.spec import PipelineSpec


def build_raw_documents(spec: PipelineSpec) -> AssetsDefinition:
    keys = spec.resources
    first_day = datetime.fromisoformat(spec.partitions_start).replace(tzinfo=UTC)

    @asset(
        description=(
            "Every document uploaded on the partition's day (UTC): stable id, source, media type "
            "sniffed from content, size, sha256 and upload time. Bytes are copied to the blob store."
        ),
        kinds={"python", "pandas"},
        required_resource_keys={keys.source, keys.blob_store, keys.state},
        retry_policy=REMOTE_RETRY,
        check_specs=[schema_spec(spec, "raw_documents", "RawDocuments", "unique ids, hashes of read documents")],
        **asset_args(spec, "raw_documents"),
    )
    def raw_documents(context: AssetExecutionContext):
        step = Step(spec, context)
        stop_if_terminated(context)
        started = time.perf_counter()
        start, end = step.window
        day = context.partition_key
        recorded = step.state.manifest(spec.name).on_partition(day)
        allow_deletions = context.run.tags.get(ALLOW_DELETIONS_TAG) == "true"
        with step.source.open() as source:
            try:
                frame = land_documents(
                    source,
                    step.blobs,
                    start,
                    end,
                    max_bytes=spec.parsing.limits.max_document_bytes,
                    recorded={
                        doc_id: Recorded(doc.source_key, doc.version, doc.source_identity)
                        for doc_id, doc in recorded.items()
                    },
                    keep_other_sources=not allow_deletions,
                )
            except SourceUnavailable as exc:
                if recorded:  # retried: a mount may come back
                    raise Failure(
                        description=f"{exc}; {len(recorded)} documents are indexed on {day} and were left as they "
                        "are (nothing was removed). Mount or restore the source, or point the pipeline at it.",
                    ) from exc
                context.log.warning(f"{exc}: nothing to land on {day}")
                frame = raw_frame([])
            skipped = source.skipped_entries
            refused = judge_listing(source, day, recorded, set(frame["document_id"]), spec.deletion_guard, first_day)
        for line in skipped:
            context.log.warning(line)
        if refused and not allow_deletions:
            raise Failure(description=refused, allow_retries=False)
        if refused:
            context.log.warning(f"removals confirmed by the run tag {ALLOW_DELETIONS_TAG}: {refused}")
        held = int(is_held(frame).sum())
        step.progress("landed", len(frame) - held, len(frame) - held, "documents")
        for why, count in frame.loc[is_held(frame), "landing_error"].value_counts().items():
            context.log.warning(f"{count} document(s) of {day} not listed now: {str(why).removeprefix(HELD + ': ')}")
        check = schema_check_result(validate_frame(frame, raw_documents_schema(), "document_id"), "RawDocuments")
        seconds = time.perf_counter() - started
        return MaterializeResult(
            value=frame,
            check_results=[check],
            metadata={
                **table_metadata(spec, "raw_documents", frame, ["source", "media_type", "size_bytes", "uploaded_at"]),
                rm.DOCUMENTS.key: len(frame) - held,
                # Indexed documents under a sub-folder that could not be listed: left as they are.
                "documents_held": held,
                "bytes": int(frame["size_bytes"].sum()),
                "media_types": MetadataValue.json(frame["media_type"].fillna("unread").value_counts().to_dict()),
                # Entries of the source's listing that named no placeable document (see the log).
                "listing_entries_skipped": len(skipped),
                **timing(seconds, len(frame), "documents"),
            },
        )

    return raw_documents
