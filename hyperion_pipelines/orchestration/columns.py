"""What the columns of each DataFrame asset hold and which upstream columns they come from.

Descriptions and types go into the ``dagster/column_schema`` of a materialisation; lineage into
its ``dagster/column_lineage``, which the UI draws on the asset's column view. Lineage names the
upstream asset by its name in the graph (``raw_documents``...); the pipeline resolves the keys.
"""

from __future__ import annotations

DESCRIPTIONS: dict[str, dict[str, str]] = {
    "raw_documents": {
        "document_id": "Stable id of the document at its source.",
        "source": "Path or key of the document at its source.",
        "media_type": "Media type sniffed from the content; empty when the document could not be read.",
        "size_bytes": "Size of the uploaded document.",
        "sha256": "SHA-256 of the uploaded bytes (the blob store key).",
        "uploaded_at": "Upload time (UTC); its day is the partition.",
        "landing_error": "Why the document could not be copied, if it could not.",
    },
    "parsed_documents": {
        "status": "'parsed', or 'rejected' for a document quarantined instead.",
        "reason": "Reason code of a rejected document.",
        "message": "What went wrong with a rejected document.",
        "parser": "Extractor whose text was kept (pdfium, pypdf, tesseract, html, docx, markdown, text).",
        "fidelity": "Parse-fidelity score, 0-1: does the text read like the page (parsing.fidelity).",
        "ocr_pages": "Pages (or images) read with OCR; 0 when the text came from a text layer.",
        "unread_pages": "Scanned pages of a PDF left unread because OCR is not installed (the rest was read).",
        "text": "Extracted text.",
        "char_count": "Characters of extracted text.",
        "headings": "Heading records: level, text and character offset.",
        "page_offsets": "Character offset at which each page starts (paged formats).",
        "reused": "Parse reused from an earlier run under the same parsing settings.",
    },
    "quarantined_documents": {
        "reason": "Reason code.",
        "message": "What went wrong.",
        "quarantined_at": "When the document was first quarantined.",
    },
    "document_chunks": {
        "chunk_id": "Deterministic id: document id, embedded text (context and chunk) and embedding-space fingerprint.",
        "document_sha256": "SHA-256 of the document the chunk was cut from.",
        "chunk_index": "Position of the chunk in its document.",
        "text": "Chunk text.",
        "char_start": "Offset of the chunk's first character in the document text.",
        "char_end": "Offset just past the chunk's last character.",
        "token_count": "Tokens of the embedding model's tokenizer.",
        "heading_path": "Headings above the chunk, outermost first.",
        "context": "Title and heading line embedded in front of the chunk text (not stored in the index).",
        "page": "Page the chunk starts on (paged formats).",
    },
    "chunk_embeddings": {
        "vector": "Embedding of the chunk's context line and text.",
        "reused": "Vector read back from the collection instead of being computed again.",
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
