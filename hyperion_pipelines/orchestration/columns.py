"""What the columns of each DataFrame asset hold and which upstream columns they come from.

Descriptions (from the pandera models, ``checks/schemas.py``) and types go into the
``dagster/column_schema`` of a materialisation; lineage into
its ``dagster/column_lineage``, which the UI draws on the asset's column view. Lineage names the
upstream asset by its name in the graph (``raw_documents``...); the pipeline resolves the keys.
"""

from __future__ import annotations

from hyperion_pipelines.checks.schemas import FRAME_MODELS, column_descriptions

# The four frames' columns are described where they are validated (the pandera models); the
# quarantine frame has no model.
DESCRIPTIONS: dict[str, dict[str, str]] = {
    **{name: column_descriptions(model) for name, model in FRAME_MODELS.items()},
    "quarantined_documents": {
        "reason": "Reason code.",
        "message": "What went wrong.",
        "quarantined_at": "When the document was first quarantined.",
    },
}

# What an ``object`` column holds, where it is not text.
TYPES: dict[str, dict[str, str]] = {
    "parsed_documents": {"headings": "list[heading]", "page_offsets": "list[int]"},
    "chunk_embeddings": {"vector": "list[float]"},
}

# A document is rejected unread for what landing saw: its media type, its size, a failed copy.
_LANDED = [("raw_documents", "media_type"), ("raw_documents", "size_bytes"), ("raw_documents", "landing_error")]

LINEAGE: dict[str, dict[str, list[tuple[str, str]]]] = {
    "parsed_documents": {
        "document_id": [("raw_documents", "document_id")],
        "source": [("raw_documents", "source")],
        "media_type": [("raw_documents", "media_type")],
        "sha256": [("raw_documents", "sha256")],
        "status": _LANDED,
        "reason": _LANDED,
    },
    "quarantined_documents": {
        "document_id": [("parsed_documents", "document_id")],
        "source": [("parsed_documents", "source")],
        "reason": [("parsed_documents", "reason")],
        "message": [("parsed_documents", "message")],
        "media_type": [("raw_documents", "media_type")],
        "size_bytes": [("raw_documents", "size_bytes")],
        "uploaded_at": [("raw_documents", "uploaded_at")],
    },
    "document_chunks": {
        "chunk_id": [("parsed_documents", "document_id"), ("parsed_documents", "text"), ("parsed_documents", "title")],
        "document_id": [("parsed_documents", "document_id")],
        "source": [("parsed_documents", "source")],
        "title": [("parsed_documents", "title")],
        "document_sha256": [("parsed_documents", "sha256")],
        "chunk_index": [("parsed_documents", "text")],
        "text": [("parsed_documents", "text")],
        "text_sha256": [("parsed_documents", "text")],
        "char_start": [("parsed_documents", "text")],
        "char_end": [("parsed_documents", "text")],
        "token_count": [("parsed_documents", "text")],
        "heading_path": [("parsed_documents", "headings")],
        "context": [("parsed_documents", "title"), ("parsed_documents", "headings")],
        "page": [("parsed_documents", "page_offsets")],
    },
    "chunk_embeddings": {
        "chunk_id": [("document_chunks", "chunk_id")],
        "vector": [("document_chunks", "text"), ("document_chunks", "context")],
        "reused": [("document_chunks", "chunk_id")],
    },
}
