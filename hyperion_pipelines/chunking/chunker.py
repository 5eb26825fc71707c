"""Cut a parsed document into chunks of at most ``max_tokens`` model tokens.

Sections (by heading) are never merged into one chunk with text from another section, except a
heading with no body, which joins the section after it. Within a section the text is split at
the coarsest boundary that fits: paragraph, then line, then sentence, then word. Consecutive
chunks of a section share up to ``overlap_tokens`` tokens, starting at a sentence or word
boundary. Offsets always satisfy ``text[chunk.char_start:chunk.char_end] == chunk.text``.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from hyperion_pipelines.chunking.tokenizer import TokenSpans
from hyperion_pipelines.parsing.document import Heading

#: Raised whenever a change here can cut the same text differently: cached chunk boundaries
#: (``chunking.cache``) are kept per version.
CHUNKER_VERSION = 1

_SPLITTERS = (
    re.compile(r"\n[ \t]*\n\s*"),  # paragraphs
    re.compile(r"\n\s*"),  # lines
    re.compile(r"(?<=[.!?;:])[\"')\]]*\s+"),  # sentences (and clauses)
)
_SENTENCE_START = re.compile(r"(?<=[.!?])\s+(?=\S)")


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    char_start: int
    char_end: int
    token_count: int
    heading_path: tuple[str, ...]


@dataclass(frozen=True)
class _Section:
    start: int
    end: int
    path: tuple[str, ...]


class _Tokens:
    """Counts tokens in any character span in O(log n) from one tokenisation of the text."""

    def __init__(self, spans: Sequence[tuple[int, int]]):
        self.starts = [start for start, _ in spans]

    def count(self, a: int, b: int) -> int:
        return bisect_left(self.starts, b) - bisect_left(self.starts, a)

    def first_index(self, offset: int) -> int:
        return bisect_left(self.starts, offset)


def _sections(text: str, headings: Sequence[Heading]) -> list[_Section]:
    marks = sorted((h for h in headings if 0 <= h.offset < len(text)), key=lambda h: h.offset)
    sections: list[_Section] = []
    stack: list[Heading] = []
    if not marks or marks[0].offset > 0:
        sections.append(_Section(0, marks[0].offset if marks else len(text), ()))
    for i, heading in enumerate(marks):
        while stack and stack[-1].level >= heading.level:
            stack.pop()
        stack.append(heading)
        end = marks[i + 1].offset if i + 1 < len(marks) else len(text)
        sections.append(_Section(heading.offset, end, tuple(h.text for h in stack)))
    merged: list[_Section] = []
    carry: int | None = None
    for section in sections:
        start = section.start if carry is None else carry
        body = text[section.start : section.end].split("\n", 1)
        if section.path and (len(body) == 1 or not body[1].strip()) and section is not sections[-1]:
            carry = start  # heading without body: prepend it to the next section
            continue
        carry = None
        merged.append(_Section(start, section.end, section.path))
    return [s for s in merged if text[s.start : s.end].strip()]


def _split_words(tokens: _Tokens, text: str, a: int, b: int, limit: int) -> list[tuple[int, int]]:
    """Last resort: windows of ``limit`` tokens, cut before a token that starts a word."""
    pieces, start = [], a
    while tokens.count(start, b) > limit:
        first = tokens.first_index(start)
        cut = first + limit
        while cut > first + 1 and not text[tokens.starts[cut] - 1].isspace():
            cut -= 1  # do not cut inside a word...
        if cut == first + 1:
            cut = first + limit  # ...unless a single "word" is longer than the limit
        pieces.append((start, tokens.starts[cut]))
        start = tokens.starts[cut]
    pieces.append((start, b))
    return pieces


def _fit(tokens: _Tokens, text: str, a: int, b: int, limit: int, level: int = 0) -> list[tuple[int, int]]:
    """Split ``[a, b)`` into contiguous spans of at most ``limit`` tokens at the coarsest boundary."""
    if tokens.count(a, b) <= limit:
        return [(a, b)]
    if level == len(_SPLITTERS):
        return _split_words(tokens, text, a, b, limit)
    cuts = [m.end() for m in _SPLITTERS[level].finditer(text, a, b) if a < m.end() < b]
    bounds = [a, *cuts, b]
    pieces: list[tuple[int, int]] = []
    for lo, hi in pairwise(bounds):
        pieces.extend(_fit(tokens, text, lo, hi, limit, level + 1))
    return pieces


def _overlap_start(tokens: _Tokens, text: str, chunk_start: int, chunk_end: int, overlap: int) -> int | None:
    """Where the next chunk starts so it repeats at most ``overlap`` tokens: a sentence start if
    one lies in that window, else a word start."""
    end_index = tokens.first_index(chunk_end)
    first = max(tokens.first_index(chunk_start) + 1, end_index - overlap)
    if overlap <= 0 or first >= end_index:
        return None
    window_start = tokens.starts[first]
    sentence = _SENTENCE_START.search(text, window_start, chunk_end)
    if sentence and sentence.end() < chunk_end:
        return sentence.end()
    for index in range(first, end_index):
        if text[tokens.starts[index] - 1].isspace():
            return tokens.starts[index]
    return None


def _fitting_overlap(
    tokens: _Tokens, tokenizer: TokenSpans, text: str, chunk_start: int, chunk_end: int, overlap: int
) -> int | None:
    """:func:`_overlap_start`, re-counted on the repeated text alone: tokenised by itself, a span
    can take a token more than the document's tokenisation gives it (sub-word pieces at its edge),
    so later word starts are tried until the repeat fits ``overlap``."""
    candidate = _overlap_start(tokens, text, chunk_start, chunk_end, overlap)
    end = _trim(text, chunk_start, chunk_end)[1]
    while candidate is not None:
        start = _trim(text, candidate, end)[0]
        if start >= end or len(tokenizer.token_spans(text[start:end])) <= overlap:
            return candidate
        later = (i for i in range(tokens.first_index(candidate + 1), tokens.first_index(end)))
        candidate = next((tokens.starts[i] for i in later if text[tokens.starts[i] - 1].isspace()), None)
    return None


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def chunk_text(
    text: str,
    headings: Sequence[Heading],
    tokenizer: TokenSpans,
    *,
    max_tokens: int,
    overlap_tokens: int,
) -> list[Chunk]:
    if overlap_tokens >= max_tokens:
        raise ValueError("overlap_tokens must be smaller than max_tokens")
    tokens = _Tokens(tokenizer.token_spans(text))
    chunks: list[Chunk] = []
    for section in _sections(text, headings):
        pieces = _fit(tokens, text, section.start, section.end, max_tokens)
        i, start = 0, pieces[0][0]
        while i < len(pieces):
            j = i
            while j + 1 < len(pieces) and tokens.count(start, pieces[j + 1][1]) <= max_tokens:
                j += 1
            a, b = _trim(text, start, pieces[j][1])
            if a < b:
                chunks.append(Chunk(len(chunks), text[a:b], a, b, tokens.count(a, b), section.path))
            i = j + 1
            if i == len(pieces):
                break
            next_start = _fitting_overlap(tokens, tokenizer, text, start, pieces[j][1], overlap_tokens)
            fits = next_start is not None and tokens.count(next_start, pieces[i][1]) <= max_tokens
            start = next_start if fits else pieces[i][0]
    return chunks
