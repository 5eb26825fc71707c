"""``document_chunks``: token-aware chunks of each parsed document, with deterministic ids."""

# No "from __future__ import annotations": Dagster reads the asset function's annotations.
import time

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue, asset

from hyperion_pipelines import run_metadata as rm
from hyperion_pipelines.checks.schemas import document_chunks_schema
from hyperion_pipelines.checks.validation import merged_reports, validate_frame
from hyperion_pipelines.chunking.pool import ChunkJob, chunk_parts
from hyperion_pipelines.embedding.space import check_chunk_size, context_tokens, space_fingerprint
from hyperion_pipelines.orchestration.assets.step import Step, asset_args, schema_spec, table_metadata, upstream
from hyperion_pipelines.orchestration.checks import schema_check_result
from hyperion_pipelines.orchestration.execution import REMOTE_RETRY, stop_if_terminated
from hyperion_pipelines.orchestration.metadata import bucket_edges, histogram, mean, percentile, timing
from hyperion_pipelines.settings import current_settings
from hyperion_pipelines.spec import PipelineSpec
from hyperion_pipelines.step_outputs.parts import StepValue, part_count, parts_of, whole


def build_document_chunks(spec: PipelineSpec) -> AssetsDefinition:
    keys = spec.resources

    @asset(
        description=(
            "Token-aware chunks of each parsed document, measured with the embedding model's "
            "tokenizer, cut at heading, paragraph, sentence or word boundaries, each with the title "
            "and heading line the model embeds in front of it. Chunk ids are deterministic: "
            "document id, embedded content and embedding-space fingerprint."
        ),
        kinds={"python", "pandas"},
        ins={"parsed_documents": upstream(spec, "parsed_documents")},
        required_resource_keys={keys.embedder, keys.blob_store},
        retry_policy=REMOTE_RETRY,  # a remote embedder is asked for its dimension here
        check_specs=[schema_spec(spec, "document_chunks", "DocumentChunks", "ids, offsets, hashes, token bounds")],
        **asset_args(spec, "document_chunks"),
    )
    def document_chunks(context: AssetExecutionContext, parsed_documents: StepValue):
        step = Step(spec, context)
        stop_if_terminated(context)
        started = time.perf_counter()
        outputs = step.outputs
        embedder = step.embedder.get()
        check_chunk_size(spec, embedder.identity)
        outcomes = whole(parsed_documents, ["status", "reused"])
        if (~outcomes["reused"] & (outcomes["status"] == "parsed")).any():
            embedder.preload()  # as in parsed_documents, for a run that starts at this step
        fingerprint = space_fingerprint(spec, embedder.identity)
        cache = step.blob_store.chunk_cache(fingerprint)
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
            step.progress("chunked", sum(len(t) for t in tokens), None, "chunks")
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
                    spec,
                    "document_chunks",
                    first,
                    ["source", "chunk_index", "heading_path", "token_count", "text"],
                    total_rows=chunks,
                ),
                rm.CHUNKS.key: chunks,
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

    return document_chunks
