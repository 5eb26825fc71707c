"""Chunker properties, measured with the real all-MiniLM-L6-v2 tokenizer."""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from hyperion_pipelines.chunking.cache import ChunkCache
from hyperion_pipelines.chunking.chunker import chunk_text
from hyperion_pipelines.chunking.context import context_line, embedding_input, fit_context
from hyperion_pipelines.chunking.pool import ChunkJob, chunk_parts
from hyperion_pipelines.chunking.stage import chunk_documents
from hyperion_pipelines.parsing.document import Heading
from hyperion_pipelines.parsing.text import parse_markdown
from hyperion_pipelines.spec import ChunkingSpec

from ..conftest import SAMPLE_CORPUS
from ..fixtures.expected_chunks import BEES_CHUNKS, BEES_HEADINGS, BEES_TEXT
from ..support.model_tokenizer import TOKENIZER

words = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N")), min_size=1, max_size=14)
sentence = st.lists(words, min_size=1, max_size=40).map(lambda ws: " ".join(ws) + ".")
paragraph = st.lists(sentence, min_size=1, max_size=8).map(" ".join)
documents = st.lists(paragraph, min_size=1, max_size=10).map("\n\n".join)


def check_invariants(text: str, chunks, max_tokens: int, overlap: int) -> None:
    assert chunks, "non-blank text gives at least one chunk"
    for i, chunk in enumerate(chunks):
        assert chunk.index == i
        assert text[chunk.char_start : chunk.char_end] == chunk.text  # offsets map back exactly
        assert chunk.text == chunk.text.strip() and chunk.text
        assert chunk.token_count == TOKENIZER.count(chunk.text) <= max_tokens
    for before, after in pairwise(chunks):
        assert after.char_start > before.char_start  # always progresses
        if after.heading_path == before.heading_path and after.char_start < before.char_end:
            assert TOKENIZER.count(text[after.char_start : before.char_end]) <= overlap
    covered = [False] * len(text)
    for chunk in chunks:
        covered[chunk.char_start : chunk.char_end] = [True] * (chunk.char_end - chunk.char_start)
    missed = [c for c, ok in zip(text, covered, strict=True) if not ok and not c.isspace()]
    assert not missed, f"text not in any chunk: {''.join(missed)[:80]!r}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=documents, max_tokens=st.integers(20, 120), overlap=st.integers(0, 9))
def test_chunks_respect_bounds_offsets_overlap_and_coverage(text: str, max_tokens: int, overlap: int) -> None:
    chunks = chunk_text(text, [], TOKENIZER, max_tokens=max_tokens, overlap_tokens=overlap)
    check_invariants(text, chunks, max_tokens, overlap)


def test_overlap_is_used_between_long_runs_of_sentences() -> None:
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(120))
    chunks = chunk_text(text, [], TOKENIZER, max_tokens=60, overlap_tokens=16)
    check_invariants(text, chunks, 60, 16)
    overlaps = [b.char_start < a.char_end for a, b in pairwise(chunks)]
    assert all(overlaps)
    # The overlap starts at a sentence boundary when one is in reach.
    assert all(c.text.startswith("Sentence number") for c in chunks)


def test_a_word_longer_than_a_chunk_is_still_cut_to_size() -> None:
    text = "prefix " + "x" * 3000 + " suffix"
    chunks = chunk_text(text, [], TOKENIZER, max_tokens=50, overlap_tokens=5)
    check_invariants(text, chunks, 50, 5)


def test_sections_follow_headings_and_keep_their_path() -> None:
    doc = parse_markdown((SAMPLE_CORPUS / "guides" / "sourdough-starter.md").read_bytes())
    chunks = chunk_text(doc.text, doc.headings, TOKENIZER, max_tokens=60, overlap_tokens=10)
    check_invariants(doc.text, chunks, 60, 10)
    paths = [c.heading_path for c in chunks]
    assert ("Keeping a Sourdough Starter Alive", "Reviving a neglected starter", "Common mistakes") in paths
    for chunk in chunks:  # no chunk spans two sections
        inside = [h for h in doc.headings if chunk.char_start < h.offset < chunk.char_end]
        assert not inside, (chunk.text[:60], inside)


def test_a_heading_without_body_joins_the_next_section() -> None:
    text = "# Title\n\n## Part one\n\nBody of part one."
    headings = [Heading(1, "Title", 0), Heading(2, "Part one", 9)]
    chunks = chunk_text(text, headings, TOKENIZER, max_tokens=50, overlap_tokens=0)
    assert [(c.text, c.heading_path) for c in chunks] == [(text, ("Title", "Part one"))]


def test_chunking_is_deterministic() -> None:
    doc = parse_markdown((SAMPLE_CORPUS / "guides" / "bicycle-maintenance.md").read_bytes())
    run = lambda: chunk_text(doc.text, doc.headings, TOKENIZER, max_tokens=40, overlap_tokens=8)  # noqa: E731
    assert run() == run()


def test_overlap_must_be_smaller_than_size() -> None:
    with pytest.raises(ValueError):
        chunk_text("text", [], TOKENIZER, max_tokens=10, overlap_tokens=10)


def test_the_chunk_cache_gives_back_the_same_chunks_per_text_headings_and_fingerprint(tmp_path: Path) -> None:
    parsed = parse_markdown((SAMPLE_CORPUS / "guides" / "sourdough-starter.md").read_bytes())
    chunks = chunk_text(parsed.text, parsed.headings, TOKENIZER, max_tokens=48, overlap_tokens=8)
    cache = ChunkCache(tmp_path, "fp1")
    assert cache.get(parsed.text, parsed.headings) is None
    cache.put(parsed.text, parsed.headings, chunks)
    assert cache.get(parsed.text, parsed.headings) == chunks and cache.hits == 1
    # Another text, other headings or another fingerprint (model, chunking settings) is a miss.
    assert cache.get(parsed.text + " More.", parsed.headings) is None
    assert cache.get(parsed.text, parsed.headings[1:]) is None
    assert ChunkCache(tmp_path, "fp2").get(parsed.text, parsed.headings) is None
    # A damaged or out-of-range entry is a miss, never wrong chunks.
    (entry,) = tmp_path.rglob("*.json")
    entry.write_text("[[0, 99999999, 3, []]]")
    assert cache.get(parsed.text, parsed.headings) is None
    entry.write_text("{not json")
    assert cache.get(parsed.text, parsed.headings) is None


def sample_parsed() -> pd.DataFrame:
    rows = []
    for path in sorted(SAMPLE_CORPUS.glob("*/*.md")):
        parsed = parse_markdown(path.read_bytes())
        headings = [{"level": h.level, "text": h.text, "offset": h.offset} for h in parsed.headings]
        rows.append(
            {"document_id": path.stem, "source": path.name, "sha256": "", "status": "parsed", "title": parsed.title,
             "text": parsed.text, "page_offsets": [], "headings": headings}
        )  # fmt: skip
    return pd.DataFrame(rows)


def test_chunk_documents_with_a_cache_gives_the_frame_it_gives_without(tmp_path: Path) -> None:
    frame = sample_parsed()
    rows = frame.to_dict("records")
    spec = ChunkingSpec(max_tokens=64, overlap_tokens=8)
    plain = chunk_documents(frame, TOKENIZER, spec, "fp", context_tokens=24)
    cache = ChunkCache(tmp_path, "fp")
    assert_frame_equal(chunk_documents(frame, TOKENIZER, spec, "fp", cache, context_tokens=24), plain)  # written
    assert_frame_equal(chunk_documents(frame, TOKENIZER, spec, "fp", cache, context_tokens=24), plain)  # read back
    assert cache.hits == len(rows)


def test_parts_chunked_in_worker_processes_give_the_frames_and_cache_hits_of_parts_chunked_here(
    tmp_path: Path,
) -> None:
    frame = sample_parsed()
    # Texts of their own in each part: which process sees a text first does not matter.
    parts = [
        frame.assign(document_id=frame["document_id"] + f"-{i}", text=frame["text"] + f"\n\nPart {i}.")
        for i in range(5)
    ]
    spec = ChunkingSpec(max_tokens=64, overlap_tokens=8)
    here = list(chunk_parts(parts, ChunkJob(TOKENIZER, spec, "fp", ChunkCache(tmp_path / "a", "fp"), 24), workers=1))
    job = ChunkJob(TOKENIZER, spec, "fp", ChunkCache(tmp_path / "b", "fp"), 24)
    # Five parts on two processes: more parts than fit in flight, results come back in order.
    spread = list(chunk_parts(parts, job, workers=2))
    assert len(spread) == len(here) == len(parts)
    for (ours, hits), (theirs, their_hits) in zip(spread, here, strict=True):
        assert_frame_equal(ours, theirs)
        assert hits == their_hits
    # The worker processes wrote the cache this process reads: every text is a hit now.
    again = list(chunk_parts(parts, job, workers=2))
    assert [hits for _, hits in again] == [len(frame)] * len(parts)
    assert_frame_equal(pd.concat([f for f, _ in again]), pd.concat([f for f, _ in here]))


def test_a_chunker_process_that_fails_fails_the_step_with_its_error() -> None:
    broken = sample_parsed().drop(columns=["headings"])
    job = ChunkJob(TOKENIZER, ChunkingSpec(max_tokens=64, overlap_tokens=8), "fp", None, 24)
    with pytest.raises(AttributeError, match="headings"):
        list(chunk_parts([sample_parsed(), broken], job, workers=2))


class OneAtATime:
    """The tokenizer without its batch call: every text tokenised on its own."""

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return TOKENIZER.token_spans(text)


def test_documents_tokenised_in_batches_give_the_chunks_of_documents_tokenised_one_by_one() -> None:
    frame = sample_parsed()
    copies = [frame.assign(document_id=frame["document_id"] + f"-{i}") for i in range(20)]
    frame = pd.concat(copies, ignore_index=True)
    assert len(frame) > 32  # more than one batch, and texts that repeat across documents
    spec = ChunkingSpec(max_tokens=64, overlap_tokens=8)
    batched = chunk_documents(frame, TOKENIZER, spec, "fp", context_tokens=24)
    assert_frame_equal(batched, chunk_documents(frame, OneAtATime(), spec, "fp", context_tokens=24))


def test_the_context_line_is_title_then_headings_without_repeating_the_title() -> None:
    assert context_line("Sourdough  Starter", ("Feeding", "Ratios")) == "Sourdough Starter > Feeding > Ratios"
    assert context_line("Sourdough Starter", ("Sourdough starter", "Feeding")) == "Sourdough starter > Feeding"
    assert context_line(None, ()) == "" and context_line("", ("Only heading",)) == "Only heading"


def test_the_context_line_is_cut_to_the_room_the_model_has() -> None:
    line = "A very long title " * 20
    fitted = fit_context(line, TOKENIZER, 10)
    assert TOKENIZER.count(fitted) == 10 and line.startswith(fitted)
    assert fit_context("Short title", TOKENIZER, 10) == "Short title"
    assert fit_context("Short title", TOKENIZER, 0) == ""


def test_a_chunk_id_covers_its_context_so_a_retitled_document_is_embedded_again() -> None:
    text = "Feed the starter twice a day with equal weights of flour and water."
    frame = pd.DataFrame(
        [{"document_id": "d", "source": "s", "sha256": "", "status": "parsed", "title": title, "text": text,
          "page_offsets": [], "headings": []} for title in ("Sourdough", "Bread")]
    )  # fmt: skip
    spec = ChunkingSpec(max_tokens=64, overlap_tokens=8)
    chunks = chunk_documents(frame, TOKENIZER, spec, "fp", context_tokens=16)
    assert chunks["context"].tolist() == ["Sourdough", "Bread"]
    assert chunks["text"].nunique() == 1 and chunks["chunk_id"].nunique() == 2
    # Without room for context the model embeds the text alone, and the id says so.
    bare = chunk_documents(frame, TOKENIZER, spec, "fp", context_tokens=0)
    assert bare["context"].tolist() == ["", ""] and bare["chunk_id"].nunique() == 1
    assert embedding_input("Sourdough", text) == f"Sourdough\n\n{text}" and embedding_input("", text) == text


class OneTokenPerWord:
    """A tokenizer whose counts can be done by hand: every run of non-space characters."""

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in re.finditer(r"\S+", text)]


def test_the_chunks_worked_out_by_hand_from_the_rules() -> None:
    headings = [Heading(level, text, offset) for level, text, offset in BEES_HEADINGS]
    chunks = chunk_text(BEES_TEXT, headings, OneTokenPerWord(), max_tokens=8, overlap_tokens=3)
    assert [(c.text, c.token_count, c.heading_path) for c in chunks] == BEES_CHUNKS
    assert [c.index for c in chunks] == list(range(len(BEES_CHUNKS)))
    assert all(BEES_TEXT[c.char_start : c.char_end] == c.text for c in chunks)


def test_token_counts_of_many_texts_match_one_at_a_time_across_slices() -> None:
    texts = ["1 2 3 4 5 6 7 8 9 10 11 12", "Incomprehensibilities", "", "x y z", "Honeybees cluster in winter"]
    one_at_a_time = [TOKENIZER.count(text) for text in texts]
    assert one_at_a_time == [12, 6, 0, 3, 6]
    assert TOKENIZER.count_many(texts, slice_size=2) == TOKENIZER.count_many(texts) == one_at_a_time


def test_a_chunks_token_count_and_its_context_lines_add_up_to_its_embedding_input() -> None:
    """What the embedding step orders its batches by (``embedding.stage.input_tokens``)."""
    spec = ChunkingSpec(max_tokens=64, overlap_tokens=8)
    chunks = chunk_documents(sample_parsed(), TOKENIZER, spec, "fp", context_tokens=24)
    assert len(chunks) > 10 and chunks["context"].str.len().gt(0).all()
    for row in chunks.itertuples():
        assert TOKENIZER.count(embedding_input(row.context, row.text)) == row.token_count + TOKENIZER.count(row.context)
