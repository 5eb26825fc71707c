"""Chunk every parsed document of a partition into rows with deterministic ids."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pandas as pd

from hyperion_pipelines.chunking.cache import ChunkCache
from hyperion_pipelines.chunking.chunker import Chunk, chunk_text
from hyperion_pipelines.chunking.context import context_line, embedding_input, fit_context
from hyperion_pipelines.chunking.tables import table_header
from hyperion_pipelines.chunking.tokenizer import HuggingFaceTokenizer, KnownSpans, TokenSpans
from hyperion_pipelines.ids import chunk_id, text_sha256
from hyperion_pipelines.parsing.document import Heading
from hyperion_pipelines.spec import ChunkingSpec

CHUNK_COLUMNS = [
    "chunk_id", "document_id", "source", "title", "document_sha256", "chunk_index", "text",
    "text_sha256", "char_start", "char_end", "token_count", "heading_path", "context", "page",
]  # fmt: skip
HEADING_SEPARATOR = " > "
#: Documents tokenised in one batch: enough to keep every core busy, few enough that the token
#: spans held at once stay small (a few MB).
TOKENIZE_BATCH = 32


def chunk_documents(
    parsed: pd.DataFrame,
    tokenizer: TokenSpans,
    spec: ChunkingSpec,
    fingerprint: str,
    cache: ChunkCache | None = None,
    *,
    context_tokens: int,
) -> pd.DataFrame:
    """The chunks of every parsed document; a text chunked before under the same fingerprint
    takes its boundaries from ``cache`` instead of being tokenised again.

    ``context`` is the chunk's title and heading line, at most ``context_tokens`` tokens, which
    the model embeds in front of its text (see ``chunking.context``); the chunk id covers both.
    A chunk that starts in the body of a table gets the table's header row there too.
    """
    rows = []
    for doc, chunks in _chunked(parsed[parsed["status"] == "parsed"], tokenizer, spec, cache):
        pages = list(doc.page_offsets)
        seen: Counter[str] = Counter()
        contexts: dict[tuple[str, ...], str] = {}  # one per section, not per chunk
        for chunk in chunks:
            if chunk.heading_path not in contexts:
                line = context_line(doc.title, chunk.heading_path)
                contexts[chunk.heading_path] = fit_context(line, tokenizer, context_tokens)
            context = contexts[chunk.heading_path]
            header = table_header(doc.text, chunk.char_start)
            if header is not None:  # a table split across chunks: its header row comes along
                line = context_line(doc.title, chunk.heading_path)
                context = fit_context(f"{line}\n{header}" if line else header, tokenizer, context_tokens)
            digest = text_sha256(chunk.text)
            input_digest = text_sha256(embedding_input(context, chunk.text)) if context else digest
            occurrence = seen[input_digest]
            seen[input_digest] += 1
            rows.append(
                {
                    "chunk_id": chunk_id(
                        fingerprint=fingerprint,
                        document_id=doc.document_id,
                        chunk_text_sha256=input_digest,
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
                    "context": context,
                    "page": bisect_right(pages, chunk.char_start) if pages else None,
                }  # fmt: skip
            )
    frame = pd.DataFrame(rows, columns=CHUNK_COLUMNS)
    for column in ("chunk_index", "char_start", "char_end", "token_count"):
        frame[column] = frame[column].astype("int64")
    frame["page"] = frame["page"].astype("Int64")
    return frame


def _chunked(
    parsed: pd.DataFrame, tokenizer: TokenSpans, spec: ChunkingSpec, cache: ChunkCache | None
) -> Iterator[tuple[Any, list[Chunk]]]:
    """Each parsed document with its chunks: from ``cache`` when it has them, else
    chunked, the documents of a batch tokenised together when the tokenizer can (all cores)."""
    docs = list(parsed.itertuples(index=False))
    for lo in range(0, len(docs), TOKENIZE_BATCH):
        batch = docs[lo : lo + TOKENIZE_BATCH]
        headings = [[Heading(h["level"], h["text"], h["offset"]) for h in doc.headings] for doc in batch]
        found = [cache.get(doc.text, h) if cache is not None else None for doc, h in zip(batch, headings, strict=True)]
        spans = tokenizer
        missing = [doc.text for doc, chunks in zip(batch, found, strict=True) if chunks is None]
        if len(missing) > 1 and isinstance(tokenizer, HuggingFaceTokenizer):
            spans = KnownSpans(tokenizer, dict(zip(missing, tokenizer.token_spans_of_many(missing), strict=True)))
        for doc, h, chunks in zip(batch, headings, found, strict=True):
            if chunks is None:
                chunks = chunk_text(doc.text, h, spans, max_tokens=spec.max_tokens, overlap_tokens=spec.overlap_tokens)
                if cache is not None:
                    cache.put(doc.text, h, chunks)
            yield doc, chunks
