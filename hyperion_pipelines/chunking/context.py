"""What each chunk is embedded with: its document title and heading path in front of its text.

A chunk cut from the middle of a document rarely names what the document is about; embedded
alone, a search for the document's subject misses it. The context line ("Title > Section >
Subsection") goes into the model's input only; the stored text stays the chunk itself. It is
bounded by the room the model has beyond ``chunking.max_tokens``, so the input is never truncated.
"""

from __future__ import annotations

from collections.abc import Sequence

from hyperion_pipelines.chunking.tokenizer import TokenSpans

SEPARATOR = " > "


def context_line(title: str | None, heading_path: Sequence[str]) -> str:
    """``Title > H1 > H2``; the title is left out when the first heading already says it."""
    parts = [" ".join(part.split()) for part in heading_path if part and part.strip()]
    title = " ".join((title or "").split())
    if title and (not parts or parts[0].casefold() != title.casefold()):
        parts.insert(0, title)
    return SEPARATOR.join(parts)


def fit_context(context: str, tokenizer: TokenSpans, max_tokens: int) -> str:
    """``context`` cut after its ``max_tokens``-th token (nothing when there is no room)."""
    if max_tokens <= 0 or not context:
        return ""
    spans = tokenizer.token_spans(context)
    if len(spans) <= max_tokens:
        return context
    return context[: spans[max_tokens - 1][1]].rstrip()


def embedding_input(context: str, text: str) -> str:
    """The text the model embeds for a chunk."""
    return f"{context}\n\n{text}" if context else text
