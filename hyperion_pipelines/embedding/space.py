"""The embedding-space fingerprint of a pipeline: model identity plus parsing and chunking."""

from __future__ import annotations

from hyperion_pipelines.embedding.base import EmbedderIdentity
from hyperion_pipelines.ids import collection_fingerprint as _collection_fingerprint
from hyperion_pipelines.ids import earlier_hybrid_fingerprint, embedding_fingerprint
from hyperion_pipelines.spec import ChunkingSpec, PipelineSpec


def space_fingerprint(spec: PipelineSpec, identity: EmbedderIdentity) -> str:
    return embedding_fingerprint(
        model_name=identity.model_name,
        dimension=identity.dimension,
        normalized=identity.normalized,
        parsing=spec.parsing.fingerprint_fields(),
        chunking=spec.chunking.model_dump(mode="json"),
    )


def collection_fingerprint(spec: PipelineSpec, identity: EmbedderIdentity, retrieval: str) -> str:
    """The suffix of the pipeline's collection name: its embedding space and its retrieval as the
    server resolves it (``MilvusIndex.retrieval``: ``auto`` is hybrid or dense there). Chunk ids
    keep :func:`space_fingerprint`, so vectors do not depend on the BM25 field."""
    return _collection_fingerprint(space_fingerprint(spec, identity), retrieval)


def same_space_fingerprints(spec: PipelineSpec, identity: EmbedderIdentity, retrieval: str) -> list[str]:
    """The collections (by fingerprint) of the pipeline's embedding space under the other retrieval,
    and a hybrid one of an earlier BM25 input: their vectors are this space's, so a switch between
    dense and hybrid embeds nothing again."""
    space = space_fingerprint(spec, identity)
    own = collection_fingerprint(spec, identity, retrieval)
    kinds = ("dense", "hybrid", "hybrid-local")
    others = [_collection_fingerprint(space, r) for r in kinds] + [earlier_hybrid_fingerprint(space)]
    return [f for f in others if f != own]


def context_tokens(chunking: ChunkingSpec, identity: EmbedderIdentity) -> int:
    """Room for a chunk's context line: what the model embeds whole beyond ``max_tokens``."""
    return max(0, identity.max_tokens - chunking.max_tokens) if chunking.embed_context else 0


def check_chunk_size(spec: PipelineSpec, identity: EmbedderIdentity) -> None:
    """Chunks longer than the model's input would be silently truncated when embedded."""
    if spec.chunking.max_tokens > identity.max_tokens:
        raise ValueError(
            f"chunking.max_tokens={spec.chunking.max_tokens} exceeds what {identity.model_name} "
            f"embeds whole ({identity.max_tokens} tokens)"
        )
