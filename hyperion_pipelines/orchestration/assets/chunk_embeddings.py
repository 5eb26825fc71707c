"""``chunk_embeddings``: one vector per chunk, reusing the stored vectors of chunks already indexed."""

# No "from __future__ import annotations": Dagster reads the asset function's annotations.
import time

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue, asset

from hyperion_pipelines import run_metadata as rm
from hyperion_pipelines.checks.schemas import chunk_embeddings_schema
from hyperion_pipelines.checks.validation import merged_reports, validate_frame
from hyperion_pipelines.embedding.space import collection_fingerprint, same_space_fingerprints
from hyperion_pipelines.embedding.stage import embed_chunks
from hyperion_pipelines.orchestration.assets.step import Step, asset_args, schema_spec, table_metadata, upstream
from hyperion_pipelines.orchestration.checks import schema_check_result
from hyperion_pipelines.orchestration.execution import EMBEDDING_POOL, REMOTE_RETRY, stop_if_terminated
from hyperion_pipelines.orchestration.metadata import timing
from hyperion_pipelines.spec import PipelineSpec
from hyperion_pipelines.step_outputs.parts import StepValue, parts_of


def build_chunk_embeddings(spec: PipelineSpec) -> AssetsDefinition:
    keys = spec.resources

    @asset(
        description=(
            "One vector per chunk from the embedding resource, in batches. Chunks whose id is "
            "already in the collection reuse the stored vector instead of being embedded again."
        ),
        kinds={"python", "pandas", "pytorch"},
        ins={"document_chunks": upstream(spec, "document_chunks")},
        required_resource_keys={keys.embedder, keys.milvus},
        retry_policy=REMOTE_RETRY,
        pool=EMBEDDING_POOL,
        check_specs=[
            schema_spec(
                spec,
                "chunk_embeddings",
                "ChunkEmbeddings",
                "one finite vector of the model's size per chunk",
            )
        ],
        **asset_args(spec, "chunk_embeddings"),
    )
    def chunk_embeddings(context: AssetExecutionContext, document_chunks: StepValue):
        step = Step(spec, context)
        stop_if_terminated(context)
        started = time.perf_counter()
        outputs = step.outputs
        embedder = step.embedder.get()
        identity = embedder.identity
        context.log.info(f"embedding backend: {embedder.backend_note}")
        index = step.milvus.index(spec.index, context.log.warning)
        collection = index.ensure_collection(
            collection_fingerprint(spec, identity, index.retrieval), identity.dimension
        )
        same_space = [index.collection_name(f) for f in same_space_fingerprints(spec, identity, index.retrieval)]
        writer = outputs.part_writer(context)
        reports, first = [], None
        embedded = reused = 0
        seconds_embedding = 0.0
        with step.limit() as checkpoint:
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
                step.progress("embedded", embedded + reused, len(document_chunks), "chunks")
                seconds_embedding += stats.seconds_embedding
                first = frame if first is None else first
        value = writer.finish()
        check = schema_check_result(merged_reports(reports), "ChunkEmbeddings")
        seconds = time.perf_counter() - started
        return MaterializeResult(
            value=value,
            check_results=[check],
            metadata={
                **table_metadata(spec, "chunk_embeddings", first, ["chunk_id", "reused"], total_rows=len(value)),
                rm.EMBEDDED.key: embedded,
                rm.REUSED.key: reused,
                "model": identity.model_name,
                "embedding_backend": embedder.backend_note,
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

    return chunk_embeddings
