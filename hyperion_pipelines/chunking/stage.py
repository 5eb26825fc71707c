"""Chunk every parsed document of a partition into rows with deterministic ids."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter

import pandas as pd

from hyperion_pipelines.chunking.chunker import chunk_text
from hyperion_pipelines.chunking.tokenizer import TokenSpans
from hyperion_pipelines.ids import chunk_id, text_sha256
from hyperion_pipelines.parsing.document import Heading
from hyperion_pipelines.spec import ChunkingSpec

CHUNK_COLUMNS = [
    "chunk_id", "document_id", "source", "title", "document_sha256", "chunk_index", "text",
    "text_sha256", "char_start", "char_end", "token_count", "heading_path", "page",
]  # fmt: skip
HEADING_SEPARATOR = " > "


def chunk_documents(parsed: pd.DataFrame, tokenizer: TokenSpans, spec: ChunkingSpec, fingerprint: str) -> pd.DataFrame:
    rows = []
    for doc in parsed[parsed["status"] == "parsed"].itertuples(index=False):
        headings = [Heading(h["level"], h["text"], h["offset"]) for h in doc.headings]
        pages = list(doc.page_offsets)
        seen: Counter[str] = Counter()
        for chunk in chunk_text(
            doc.text, headings, tokenizer, max_tokens=spec.max_tokens, overlap_tokens=spec.overlap_tokens
        ):
            digest = text_sha256(chunk.text)
            occurrence = seen[digest]
            seen[digest] += 1
            rows.append(
                {
                    "chunk_id": chunk_id(
                        fingerprint=fingerprint,
                        document_id=doc.document_id,
                        chunk_text_sha256=digest,
                        occurrence=occurrence,
                    ),
                    "document_id": doc.document_id,
                    "source": doc.source,
                    "title": doc.title,
                    "document_sha256": doc.sha256,
                    "chunk_index": chunk.index,
                    "text": chunk.text,
                    "text_sha256": digest,
                    "char_start": chunk.char_start,
                    "char_end": chunk.char_end,
                    "token_count": chunk.token_count,
                    "heading_path": HEADING_SEPARATOR.join(chunk.heading_path),
                    "page": bisect_right(pages, chunk.char_start) if pages else None,
                }  # fmt: skip
            )
    frame = pd.DataFrame(rows, columns=CHUNK_COLUMNS)
    for column in ("chunk_index", "char_start", "char_end", "token_count"):
        frame[column] = frame[column].astype("int64")
    frame["page"] = frame["page"].astype("Int64")
    return frame
