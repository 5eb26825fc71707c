"""Build one pipeline's asset graph from its :class:`PipelineSpec`.

    raw_documents -> parsed_documents -> document_chunks -> chunk_embeddings -> vector_index
                                    +-> quarantined_documents

Every DataFrame asset validates its output against its pandera schema and reports a blocking
``schema`` check, so a partition that breaks one never reaches Milvus; ``vector_index`` checks
what it left in Milvus. With a golden query set, ``retrieval_evaluation`` scores the live index.

Each asset is a thin wrapper: the work is done by the stage functions of ``sources``,
``parsing``, ``chunking``, ``embedding`` and ``index``, which know nothing about Dagster.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from dagster import Any as DagsterAny
from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    asset,
    define_asset_job,
)

from hyperion_pipelines.checks.schemas import (
    chunk_embeddings_schema,
    document_chunks_schema,
    parsed_documents_schema,
    raw_documents_schema,
)
from hyperion_pipelines.checks.validation import merged_reports, validate_frame
from hyperion_pipelines.chunking.pool import ChunkJob, chunk_parts
from hyperion_pipelines.dagster_internals import UnresolvedAssetJobDefinition
from hyperion_pipelines.deadline import Checkpoint, StepTimeout, deadline
from hyperion_pipelines.embedding.space import (
    check_chunk_size,
    collection_fingerprint,
    context_tokens,
    same_space_fingerprints,
    space_fingerprint,
)
from hyperion_pipelines.embedding.stage import embed_chunks
from hyperion_pipelines.index.deletion_guard import ALLOW_DELETIONS_TAG, judge_listing
from hyperion_pipelines.index.id_set import IdSet, encode_ids
from hyperion_pipelines.index.sync import sync_partition
from hyperion_pipelines.index.verification import reconcile_partition, self_retrieval
from hyperion_pipelines.orchestration.checks import (
    RECONCILIATION_CHECK,
    SELF_RETRIEVAL_CHECK,
    check_spec,
    reconciliation_result,
    schema_check_result,
    schema_check_spec,
    self_retrieval_result,
)
from hyperion_pipelines.orchestration.columns import DESCRIPTIONS, LINEAGE, TYPES
from hyperion_pipelines.orchestration.evaluation import build_evaluation
from hyperion_pipelines.orchestration.execution import (
    EMBEDDING_POOL,
    MILVUS_WRITE_POOL,
    ONE_DAY_PER_RUN,
    REMOTE_RETRY,
    stop_if_terminated,
)
from hyperion_pipelines.orchestration.io_manager import ParquetIOManager
from hyperion_pipelines.orchestration.metadata import (
    bucket_edges,
    column_lineage,
    fidelity_metadata,
    frame_metadata,
    histogram,
    mean,
    percentile,
    timing,
)
from hyperion_pipelines.orchestration.partitions import upload_day_partitions
from hyperion_pipelines.orchestration.resources.embedder import EmbedderResource
from hyperion_pipelines.orchestration.resources.milvus import MilvusResource
from hyperion_pipelines.orchestration.resources.sources import BlobStoreResource, DocumentSourceResource
from hyperion_pipelines.orchestration.resources.state import StateDatabaseResource
from hyperion_pipelines.parsing.sandbox import ParserPool
from hyperion_pipelines.parsing.stage import (
    OUTCOME_COLUMNS,
    PARSED_BULK,
    any_to_parse,
    fidelity_summary,
    parse_documents,
    unread_pages_note,
)
from hyperion_pipelines.settings import current_settings
from hyperion_pipelines.sources.base import SourceUnavailable, document_version
from hyperion_pipelines.sources.blob_store import BlobStore
from hyperion_pipelines.sources.landing import HELD, Recorded, is_held, land_documents, listing_defect, raw_frame
from hyperion_pipelines.spec import PipelineSpec
from hyperion_pipelines.state.manifest import ManifestRecord
from hyperion_pipelines.state.quarantine_ledger import QuarantineLedger, quarantine_frame, rejections_in
from hyperion_pipelines.step_outputs.parts import (
    StepValue,
    frame_slices,
    paired_parts,
    part_count,
    parts_of,
    values_for,
    whole,
)

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
class PipelineDefs:
    spec: PipelineSpec
    assets: list[AssetsDefinition]  # the partitioned ingestion graph
    job: UnresolvedAssetJobDefinition
    evaluation: AssetsDefinition | None = None  # retrieval_evaluation, when a golden set is configured
    evaluation_job: UnresolvedAssetJobDefinition | None = None

    @property
    def all_assets(self) -> list[AssetsDefinition]:
        return [*self.assets, *([self.evaluation] if self.evaluation else [])]

    @property
    def jobs(self) -> list[UnresolvedAssetJobDefinition]:
        return [self.job, *([self.evaluation_job] if self.evaluation_job else [])]

    def key(self, name: str) -> AssetKey:
        return AssetKey([*self.spec.key_prefix, name])


# The DataFrame assets return MaterializeResult(value=frame, check_results=...) with no return
# annotation: Dagster reads an annotation on an asset that also has check outputs as a tuple of
# outputs, and rejects it.


def _window(context: AssetExecutionContext) -> tuple[datetime, datetime]:
    window = context.partition_time_window
    return window.start.astimezone(UTC), window.end.astimezone(UTC)


def _schema_spec(
    prefix: list[str], name: str, partitions: PartitionsDefinition, model: str, what: str
) -> AssetCheckSpec:
    return schema_check_spec(AssetKey([*prefix, name]), partitions, model, what)


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


def held_ids(raw: pd.DataFrame) -> list[str]:
    """Documents held as indexed: their sub-folder could not be listed."""
    return raw.loc[is_held(raw), "document_id"].tolist()


def build_pipeline(spec: PipelineSpec) -> PipelineDefs:
    keys = spec.resources
    first_day = datetime.fromisoformat(spec.partitions_start).replace(tzinfo=UTC)
    partitions = upload_day_partitions(spec.partitions_start)
    prefix = list(spec.key_prefix)
    common = {
        "partitions_def": partitions,
        "group_name": spec.name,
        "key_prefix": prefix or None,
        "backfill_policy": ONE_DAY_PER_RUN,
        "owners": list(spec.owners),
    }
    asset_keys = {name: AssetKey([*prefix, name]) for name in ASSET_NAMES}

    def tags(name: str) -> dict[str, str]:
        return {"hyperion/stage": STAGES[name]}

    def table_metadata(name: str, frame: pd.DataFrame, preview: list[str], total_rows: int | None = None) -> dict:
        """Row count, column schema (described), preview and, for a derived frame, column lineage.
        ``frame``: the output, or its first part when it has ``total_rows`` in parts."""
        metadata = frame_metadata(frame, preview, DESCRIPTIONS.get(name), TYPES.get(name), total_rows)
        if name in LINEAGE:
            metadata["dagster/column_lineage"] = column_lineage(asset_keys, LINEAGE[name])
        return metadata

    def source_of(context: AssetExecutionContext) -> DocumentSourceResource:
        return getattr(context.resources, keys.source)

    def embedder_of(context: AssetExecutionContext) -> EmbedderResource:
        return getattr(context.resources, keys.embedder)

    def milvus_of(context: AssetExecutionContext) -> MilvusResource:
        return getattr(context.resources, keys.milvus)

    def blob_resource(context: AssetExecutionContext) -> BlobStoreResource:
        return getattr(context.resources, keys.blob_store)

    def blobs_of(context: AssetExecutionContext) -> BlobStore:
        return blob_resource(context).store()

    def state_of(context: AssetExecutionContext) -> StateDatabaseResource:
        return getattr(context.resources, keys.state)

    def ledger_of(context: AssetExecutionContext) -> QuarantineLedger:
        return state_of(context).ledger(spec.name)

    def outputs_of(context: AssetExecutionContext) -> ParquetIOManager:
        """Where the step writes its parts, and how many documents a part holds."""
        io = getattr(context.resources, "io_manager", None)
        return io if isinstance(io, ParquetIOManager) else ParquetIOManager()

    @contextmanager
    def step_limit(context: AssetExecutionContext) -> Iterator[Checkpoint]:
        """The step's deadline; running past it fails the step without a retry (a retry would
        run as long again)."""
        try:
            yield deadline(spec.limits.step_timeout_s, context.op_def.name)
        except StepTimeout as exc:
            raise Failure(description=str(exc), allow_retries=False) from exc

    def upstream(name: str) -> AssetIn:
        # Typed in Python (a DataFrame, or a day's output in parts); Dagster takes no union type.
        return AssetIn(key=AssetKey([*prefix, name]), dagster_type=DagsterAny)

    @asset(
        name="raw_documents",
        tags=tags("raw_documents"),
        description=(
            "Every document uploaded on the partition's day (UTC): stable id, source, media type "
            "sniffed from content, size, sha256 and upload time. Bytes are copied to the blob store."
        ),
        kinds={"python", "pandas"},
        required_resource_keys={keys.source, keys.blob_store, keys.state},
        retry_policy=REMOTE_RETRY,
        check_specs=[
            _schema_spec(prefix, "raw_documents", partitions, "RawDocuments", "unique ids, hashes of read documents")
        ],
        **common,
    )
    def raw_documents(context: AssetExecutionContext):
        stop_if_terminated(context)
        started = time.perf_counter()
        start, end = _window(context)
        day = context.partition_key
        recorded = state_of(context).manifest(spec.name).on_partition(day)
        allow_deletions = context.run.tags.get(ALLOW_DELETIONS_TAG) == "true"
        with source_of(context).open() as source:
            try:
                frame = land_documents(
                    source,
                    blobs_of(context),
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
        for why, count in frame.loc[is_held(frame), "landing_error"].value_counts().items():
            context.log.warning(f"{count} document(s) of {day} not listed now: {str(why).removeprefix(HELD + ': ')}")
        check = schema_check_result(validate_frame(frame, raw_documents_schema(), "document_id"), "RawDocuments")
        seconds = time.perf_counter() - started
        return MaterializeResult(
            value=frame,
            check_results=[check],
            metadata={
                **table_metadata("raw_documents", frame, ["source", "media_type", "size_bytes", "uploaded_at"]),
                "documents": len(frame) - held,
                # Indexed documents under a sub-folder that could not be listed: left as they are.
                "documents_held": held,
                "bytes": int(frame["size_bytes"].sum()),
                "media_types": MetadataValue.json(frame["media_type"].fillna("unread").value_counts().to_dict()),
                # Entries of the source's listing that named no placeable document (see the log).
                "listing_entries_skipped": len(skipped),
                **timing(seconds, len(frame), "documents"),
            },
        )

    @asset(
        name="parsed_documents",
        tags=tags("parsed_documents"),
        description=(
            "Text and structure (title, headings, page offsets) of each raw document, parsed in a "
            "child process under time and memory limits. A document that cannot be used is kept as "
            "a 'rejected' row with a reason code and message (see quarantined_documents). A document "
            "parsed before under the same parsing settings is reused, not parsed again."
        ),
        kinds={"python", "pandas"},
        ins={"raw_documents": upstream("raw_documents")},
        required_resource_keys={keys.blob_store, keys.embedder},
        check_specs=[
            _schema_spec(
                prefix, "parsed_documents", partitions, "ParsedDocuments", "status, reason codes, text and offsets"
            )
        ],
        **common,
    )
    def parsed_documents(context: AssetExecutionContext, raw_documents: pd.DataFrame):
        started = time.perf_counter()
        outputs = outputs_of(context)
        cache = blob_resource(context).parse_cache(spec.parsing)
        if any_to_parse(raw_documents, cache):
            # New text ahead, so chunks to embed: the model loads while this step parses (the
            # in-process executor hands later steps the same embedder).
            embedder_of(context).get().preload()
        schema = parsed_documents_schema(spec.parsing.limits.min_fidelity)
        writer = outputs.part_writer(context)
        reports, light, first = [], [], None
        workers = current_settings().parse_workers  # a setting of the host the step runs on
        with step_limit(context) as checkpoint, ParserPool(spec.parsing.limits, workers) as parsers:
            for part in frame_slices(raw_documents, outputs.part_documents):
                frame = parse_documents(part, blobs_of(context), spec.parsing, cache, checkpoint, parsers)
                writer.write(frame)
                reports.append(validate_frame(frame, schema, "document_id"))
                light.append(frame.drop(columns=list(PARSED_BULK)))
                first = frame if first is None else first
        value = writer.finish()
        frame = pd.concat(light, ignore_index=True)  # every column but the text: for the figures
        check = schema_check_result(merged_reports(reports), "ParsedDocuments")
        seconds = time.perf_counter() - started
        rejected = frame[frame["status"] == "rejected"]
        parsed_chars = frame.loc[frame["status"] == "parsed", "char_count"]
        for row in rejected.itertuples(index=False):
            context.log.warning(f"quarantined {row.source}: {row.reason}: {row.message}")
        for row in frame[frame["unread_pages"] > 0].itertuples(index=False):
            context.log.warning(unread_pages_note(row.source, row.unread_pages, context.partition_key))
        return MaterializeResult(
            value=value,
            check_results=[check],
            metadata={
                **table_metadata(
                    "parsed_documents",
                    first,
                    ["source", "status", "parser", "fidelity", "title", "char_count", "reason"],
                    total_rows=len(value),
                ),
                "parsed": int((frame["status"] == "parsed").sum()),
                "parse_reused": int(frame["reused"].sum()),
                "parsed_now": int(((frame["status"] == "parsed") & ~frame["reused"]).sum()),
                "rejected": len(rejected),
                "rejected_by_reason": MetadataValue.json(rejected["reason"].value_counts().to_dict()),
                "characters": int(frame["char_count"].sum()),
                # Of the documents parsed: a drop can mean a parser that now misses text.
                "characters_mean": MetadataValue.float(mean(parsed_chars)),
                "characters_p95": MetadataValue.float(percentile(parsed_chars, 95)),
                **fidelity_metadata(fidelity_summary(frame)),
                "parts": len(value.urls),
                "parser_processes": workers,
                "step_output_bytes": writer.bytes,
                **timing(seconds, len(frame), "documents"),
            },
        )

    @asset(
        name="quarantined_documents",
        tags=tags("quarantined_documents"),
        description=(
            "The dead-letter queue: every document of the partition that could not be indexed, with "
            "its reason code, message and when it was first quarantined. History lives in the "
            "quarantine ledger; a fixed document (new version, raised limit) is released when its "
            "partition is materialised again. `hyperion quarantine` lists it."
        ),
        kinds={"python", "pandas"},
        ins={"raw_documents": upstream("raw_documents"), "parsed_documents": upstream("parsed_documents")},
        required_resource_keys={keys.state},
        retry_policy=REMOTE_RETRY,  # the state database is a server (PostgreSQL) in production
        **common,
    )
    def quarantined_documents(context: AssetExecutionContext, raw_documents: pd.DataFrame, parsed_documents: StepValue):
        stop_if_terminated(context)
        started = time.perf_counter()
        ledger = ledger_of(context)
        parsed_documents = whole(parsed_documents, OUTCOME_COLUMNS)
        parsed_ids = parsed_documents.loc[parsed_documents["status"] == "parsed", "document_id"].tolist()
        update = ledger.record_partition(
            context.partition_key,
            rejections_in(parsed_documents),
            parsed_ids,
            run_id=context.run.run_id,
            kept_document_ids=held_ids(raw_documents),
        )
        frame = quarantine_frame(raw_documents, context.partition_key, ledger.entries(partition=context.partition_key))
        seconds = time.perf_counter() - started
        return MaterializeResult(
            value=frame,
            metadata={
                **table_metadata("quarantined_documents", frame, ["source", "reason", "message", "quarantined_at"]),
                "quarantined": len(frame),
                "newly_quarantined": update.new,
                "released": update.released,
                "by_reason": MetadataValue.json(frame["reason"].value_counts().to_dict()),
                **timing(seconds, len(frame), "documents"),
            },
        )

    @asset(
        name="document_chunks",
        tags=tags("document_chunks"),
        description=(
            "Token-aware chunks of each parsed document, measured with the embedding model's "
            "tokenizer, cut at heading, paragraph, sentence or word boundaries, each with the title "
            "and heading line the model embeds in front of it. Chunk ids are deterministic: "
            "document id, embedded content and embedding-space fingerprint."
        ),
        kinds={"python", "pandas"},
        ins={"parsed_documents": upstream("parsed_documents")},
        required_resource_keys={keys.embedder, keys.blob_store},
        retry_policy=REMOTE_RETRY,  # a remote embedder is asked for its dimension here
        check_specs=[
            _schema_spec(prefix, "document_chunks", partitions, "DocumentChunks", "ids, offsets, hashes, token bounds")
        ],
        **common,
    )
    def document_chunks(context: AssetExecutionContext, parsed_documents: StepValue):
        stop_if_terminated(context)
        started = time.perf_counter()
        outputs = outputs_of(context)
        embedder = embedder_of(context).get()
        check_chunk_size(spec, embedder.identity)
        outcomes = whole(parsed_documents, ["status", "reused"])
        if (~outcomes["reused"] & (outcomes["status"] == "parsed")).any():
            embedder.preload()  # as in parsed_documents, for a run that starts at this step
        fingerprint = space_fingerprint(spec, embedder.identity)
        cache = blob_resource(context).chunk_cache(fingerprint)
        schema = document_chunks_schema(spec.chunking.max_tokens)
        writer = outputs.part_writer(context)
        reports, tokens, chars, documents, first, reused = [], [], [], set(), None, 0
        job = ChunkJob(
            embedder.tokenizer, spec.chunking, fingerprint, cache, context_tokens(spec.chunking, embedder.identity)
        )
        # A day of one part is chunked here; a larger one by processes on every core.
        workers = current_settings().chunk_workers if part_count(parsed_documents) > 1 else 1
        for frame, hits in chunk_parts(parts_of(parsed_documents), job, workers):
            stop_if_terminated(context)
            reused += hits
            writer.write(frame)
            reports.append(validate_frame(frame, schema, "chunk_id"))
            # Per-row figures as arrays: millions of small Python objects kept across parts would
            # pin the interpreter's memory pages that each part's temporary objects were mixed into.
            tokens.append(frame["token_count"].to_numpy(dtype="int64"))
            chars.append(frame["text"].dropna().str.len().to_numpy(dtype="int64"))
            documents.update(frame["document_id"])
            first = frame if first is None else first
        value = writer.finish()
        check = schema_check_result(merged_reports(reports), "DocumentChunks")
        seconds = time.perf_counter() - started
        tokens = pd.Series(np.concatenate(tokens), dtype="int64")
        chars = np.concatenate(chars)
        chunks = len(value)
        return MaterializeResult(
            value=value,
            check_results=[check],
            metadata={
                **table_metadata(
                    "document_chunks",
                    first,
                    ["source", "chunk_index", "heading_path", "token_count", "text"],
                    total_rows=chunks,
                ),
                "chunks": chunks,
                "documents_chunked_now": int((outcomes["status"] == "parsed").sum()) - reused,
                "tokens": int(tokens.sum()),
                "tokens_mean": float(round(tokens.mean(), 1)) if chunks else 0.0,
                "tokens_max": int(tokens.max()) if chunks else 0,
                # Distributions: chunks far below max_tokens mean short sections or a cut that is too eager.
                "tokens_p50": MetadataValue.float(percentile(tokens, 50)),
                "tokens_p95": MetadataValue.float(percentile(tokens, 95)),
                "chars_mean": MetadataValue.float(mean(chars)),
                "chars_p95": MetadataValue.float(percentile(chars, 95)),
                "chunks_per_document": MetadataValue.float(round(chunks / len(documents), 2) if documents else 0.0),
                "token_histogram": histogram(tokens, bucket_edges(spec.chunking.max_tokens), "tokens", "chunks"),
                "fingerprint": fingerprint,
                "parts": len(value.urls),
                "chunker_processes": workers,
                "step_output_bytes": writer.bytes,
                **timing(seconds, chunks, "chunks"),
            },
        )

    @asset(
        name="chunk_embeddings",
        tags=tags("chunk_embeddings"),
        description=(
            "One vector per chunk from the embedding resource, in batches. Chunks whose id is "
            "already in the collection reuse the stored vector instead of being embedded again."
        ),
        kinds={"python", "pandas", "pytorch"},
        ins={"document_chunks": upstream("document_chunks")},
        required_resource_keys={keys.embedder, keys.milvus},
        retry_policy=REMOTE_RETRY,
        pool=EMBEDDING_POOL,
        check_specs=[
            _schema_spec(
                prefix,
                "chunk_embeddings",
                partitions,
                "ChunkEmbeddings",
                "one finite vector of the model's size per chunk",
            )
        ],
        **common,
    )
    def chunk_embeddings(context: AssetExecutionContext, document_chunks: StepValue):
        stop_if_terminated(context)
        started = time.perf_counter()
        outputs = outputs_of(context)
        embedder = embedder_of(context).get()
        identity = embedder.identity
        index = milvus_of(context).index(spec.index, context.log.warning)
        collection = index.ensure_collection(
            collection_fingerprint(spec, identity, index.retrieval), identity.dimension
        )
        same_space = [index.collection_name(f) for f in same_space_fingerprints(spec, identity, index.retrieval)]
        writer = outputs.part_writer(context)
        reports, first = [], None
        embedded = reused = 0
        seconds_embedding = 0.0
        with step_limit(context) as checkpoint:
            for chunks in parts_of(document_chunks):
                frame, stats = embed_chunks(
                    chunks,
                    embedder,
                    lambda part: index.reusable_vectors(collection, same_space, part),
                    batch_size=spec.embed_batch_size,
                    checkpoint=checkpoint,
                )
                writer.write(frame)
                schema = chunk_embeddings_schema(identity.dimension, identity.normalized, chunks["chunk_id"])
                reports.append(validate_frame(frame, schema, "chunk_id"))
                embedded, reused = embedded + stats.embedded, reused + stats.reused
                seconds_embedding += stats.seconds_embedding
                first = frame if first is None else first
        value = writer.finish()
        check = schema_check_result(merged_reports(reports), "ChunkEmbeddings")
        seconds = time.perf_counter() - started
        return MaterializeResult(
            value=value,
            check_results=[check],
            metadata={
                **table_metadata("chunk_embeddings", first, ["chunk_id", "reused"], total_rows=len(value)),
                "embedded": embedded,
                "reused": reused,
                "model": identity.model_name,
                "dimension": identity.dimension,
                "seconds_embedding": MetadataValue.float(round(seconds_embedding, 3)),
                "embedded_chunks_per_second": MetadataValue.float(
                    round(embedded / seconds_embedding, 2) if seconds_embedding > 0 else 0.0
                ),
                "parts": len(value.urls),
                "step_output_bytes": writer.bytes,
                **timing(seconds, len(value), "chunks"),
            },
        )

    vector_index_key = asset_keys["vector_index"]

    @asset(
        name="vector_index",
        tags=tags("vector_index"),
        description=(
            "The partition's chunks upserted into the Milvus collection of the current embedding "
            "space, then entries of this partition or its documents that are no longer current "
            "deleted. The live alias points at the collection. Records each document's indexed "
            "version in the index manifest, which the upload sensor compares with the source."
        ),
        kinds={"milvus"},
        ins={
            "raw_documents": upstream("raw_documents"),
            "parsed_documents": upstream("parsed_documents"),
            "document_chunks": upstream("document_chunks"),
            "chunk_embeddings": upstream("chunk_embeddings"),
        },
        required_resource_keys={keys.source, keys.embedder, keys.milvus, keys.state},
        retry_policy=REMOTE_RETRY,
        pool=MILVUS_WRITE_POOL,
        check_specs=[
            check_spec(
                RECONCILIATION_CHECK,
                vector_index_key,
                partitions,
                "The partition's entries in Milvus are exactly its current chunk ids: none missing, "
                "no orphans, no duplicates.",
            ),
            check_spec(
                SELF_RETRIEVAL_CHECK,
                vector_index_key,
                partitions,
                "A sample of the partition's chunks, searched by their own vectors, come back first.",
            ),
        ],
        **common,
    )
    def vector_index(
        context: AssetExecutionContext,
        raw_documents: pd.DataFrame,
        parsed_documents: StepValue,
        document_chunks: StepValue,
        chunk_embeddings: StepValue,
    ) -> MaterializeResult:
        stop_if_terminated(context)
        started = time.perf_counter()
        identity = embedder_of(context).get().identity
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
        index = milvus_of(context).index(spec.index, context.log.warning)
        collection = index.ensure_collection(
            collection_fingerprint(spec, identity, index.retrieval), identity.dimension
        )
        document_ids = parsed_documents["document_id"].tolist()
        held = held_ids(raw_documents)
        # Entries of documents held as they are (their sub-folder could not be listed) stay.
        kept_entries = index.ids_of_documents(collection, held) if held else []
        with step_limit(context) as checkpoint:
            report = sync_partition(
                index,
                collection,
                paired_parts(document_chunks, chunk_embeddings),
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
            manifest = state_of(context).manifest(spec.name)
            records = manifest_records(raw_documents, parsed_documents)
            dropped = manifest.record_partition(
                context.partition_key,
                records,
                run_id=context.run.run_id,
                keep=held,
                source_identity=source_of(context).identity(),
            )
        sampled = IdSet(*chunk_ids).sample(spec.index_checks.self_retrieval_sample)
        vectors = values_for(chunk_embeddings, sampled, "chunk_id", "vector")
        retrieval = self_retrieval(index, collection, sampled, np.asarray(vectors, dtype=np.float32))
        return MaterializeResult(
            metadata={
                "collection": collection,
                "alias": spec.index.alias,
                "live_collection": live,
                "upserted": report.upserted,
                "deleted": report.deleted,
                "unchanged": report.unchanged,
                "documents_removed": dropped,
                "removed_from_live_collection": removed_from_live,
                "documents": int((parsed_documents["status"] == "parsed").sum()),
                "collection_entries": report.total_entries,
                **timing(seconds, report.upserted, "entries"),
            },
            check_results=[
                reconciliation_result(reconciliation),
                self_retrieval_result(retrieval, spec.index_checks.self_retrieval_min_ratio),
            ],
        )

    assets = [raw_documents, parsed_documents, quarantined_documents, document_chunks, chunk_embeddings, vector_index]
    job = define_asset_job(
        name=f"ingest_{spec.name}",
        selection=[a.key for a in assets],
        tags={
            # The production run queue limits these runs (deploy/dagster.yaml): each loads the model.
            "hyperion/heavy": "true",
            # Enforced by run monitoring (dagster.yaml): a run past it is marked failed and alerted.
            **({"dagster/max_runtime": str(spec.limits.run_timeout_s)} if spec.limits.run_timeout_s else {}),
        },
        owners=list(spec.owners),
        description=(
            f"Ingest one upload day of the {spec.name} pipeline: land, parse (quarantining bad documents), "
            "chunk, embed, index, with every schema and index check."
        ),
    )
    evaluation = build_evaluation(spec, vector_index_key)
    return PipelineDefs(
        spec=spec,
        assets=assets,
        job=job,
        evaluation=evaluation[0] if evaluation else None,
        evaluation_job=evaluation[1] if evaluation else None,
    )
