"""What a search says when the live collection is not the one the configuration writes (mid re-index)."""

from __future__ import annotations

from hyperion_pipelines.embedding.base import EmbedderIdentity
from hyperion_pipelines.embedding.space import collection_fingerprint, same_space_fingerprints
from hyperion_pipelines.index.milvus_index import MilvusIndex
from hyperion_pipelines.spec import PipelineSpec


def live_collection_note(index: MilvusIndex, spec: PipelineSpec, identity: EmbedderIdentity, live: str) -> str | None:
    """None when ``live`` is the configuration's collection; else why not, and what to run."""
    if live == index.collection_name(collection_fingerprint(spec, identity, index.retrieval)):
        return None
    same_vectors = {index.collection_name(f) for f in same_space_fingerprints(spec, identity, index.retrieval)}
    if live in same_vectors:
        # Only the retrieval differs (a dense index under a hybrid configuration, say): same vectors.
        return (
            f"searching {live}, a {index.kind(live)} collection of the same vectors; the configuration's "
            f"retrieval is {index.retrieval}: run 'hyperion reindex' to switch (nothing is embedded again)"
        )
    return (
        f"searching {live}, built with an earlier embedding configuration; queries are embedded with the "
        f"current one ({identity.model_name}): run 'hyperion reindex' to switch"
    )
