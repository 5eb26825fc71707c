"""Pandera schemas: the frames the stages make from the sample corpus pass, and each kind of bad
data fails with a report naming the check and the row."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest

from hyperion_pipelines.checks.schemas import (
    FRAME_MODELS,
    chunk_embeddings_schema,
    column_descriptions,
    document_chunks_schema,
    parsed_documents_schema,
    raw_documents_schema,
)
from hyperion_pipelines.checks.validation import SchemaReport, validate_frame
from hyperion_pipelines.chunking.stage import CHUNK_COLUMNS, chunk_documents
from hyperion_pipelines.embedding.sentence_transformer import SentenceTransformerEmbedder
from hyperion_pipelines.embedding.space import context_tokens, space_fingerprint
from hyperion_pipelines.embedding.stage import EMBEDDING_COLUMNS, embed_chunks
from hyperion_pipelines.orchestration.columns import DESCRIPTIONS
from hyperion_pipelines.orchestration.resources.embedder import SentenceTransformerResource
from hyperion_pipelines.parsing.stage import PARSED_COLUMNS, parse_documents
from hyperion_pipelines.sources.blob_store import BlobStore
from hyperion_pipelines.sources.landing import RAW_COLUMNS, land_documents
from hyperion_pipelines.sources.uploads_folder import UploadsFolder
from hyperion_pipelines.spec import PipelineSpec

from ..conftest import SAMPLE_CORPUS, UPLOAD_TIME, set_upload_time

SPEC = PipelineSpec(name="schemas")
MAX_TOKENS = SPEC.chunking.max_tokens
DAY_START = UPLOAD_TIME.replace(hour=0)
MAX_BYTES = 48 * 1024  # above every sample document


@dataclass(frozen=True)
class Frames:
    """One partition's frames, from landing to embeddings, and what their schemas are built from."""

    raw: pd.DataFrame
    parsed: pd.DataFrame
    chunks: pd.DataFrame
    embeddings: pd.DataFrame
    dimension: int
    normalized: bool


def run_stages(uploads: Path, blobs: BlobStore, day_start: datetime) -> Frames:
    embedder = SentenceTransformerResource().get()
    identity = embedder.identity
    raw = land_documents(UploadsFolder(uploads), blobs, day_start, day_start + timedelta(days=1), max_bytes=MAX_BYTES)
    parsed = parse_documents(raw, blobs, SPEC.parsing)
    chunks = chunk_documents(
        parsed,
        embedder.tokenizer,
        SPEC.chunking,
        space_fingerprint(SPEC, identity),
        context_tokens=context_tokens(SPEC.chunking, identity),
    )
    embeddings, _ = embed_chunks(chunks, embedder, lambda part: {}, batch_size=SPEC.embed_batch_size)
    return Frames(raw, parsed, chunks, embeddings, identity.dimension, identity.normalized)


@pytest.fixture(scope="module")
def partition(tmp_path_factory: pytest.TempPathFactory) -> Frames:
    """The sample corpus plus an empty and an oversized file (rejected read and unread), through
    every stage; embedding is the slow part, so it runs once for the module."""
    root = tmp_path_factory.mktemp("schemas")
    uploads = root / "uploads"
    shutil.copytree(SAMPLE_CORPUS, uploads)
    (uploads / "empty.md").write_bytes(b"")
    (uploads / "huge.txt").write_bytes(b"words " * (MAX_BYTES // 4))
    for path in uploads.rglob("*"):
        if path.is_file():
            set_upload_time(path)
    return run_stages(uploads, BlobStore(root / "blobs"), DAY_START)


def schemas(frames: Frames) -> dict[str, tuple[pd.DataFrame, pa.DataFrameSchema, str]]:
    """Each frame with its schema and id column."""
    return {
        "raw": (frames.raw, raw_documents_schema(), "document_id"),
        "parsed": (frames.parsed, parsed_documents_schema(), "document_id"),
        "chunks": (frames.chunks, document_chunks_schema(MAX_TOKENS), "chunk_id"),
        "embeddings": (
            frames.embeddings,
            chunk_embeddings_schema(frames.dimension, frames.normalized, frames.chunks["chunk_id"]),
            "chunk_id",
        ),
    }


# --- good data --------------------------------------------------------------------------------


def test_the_partition_covers_parsed_and_rejected_documents(partition: Frames) -> None:
    assert set(partition.parsed["status"]) == {"parsed", "rejected"}
    assert set(partition.parsed["reason"].dropna()) == {"empty", "too_large"}
    assert partition.raw["sha256"].isna().sum() == 1  # the oversized file is listed, never read
    assert len(partition.chunks) == len(partition.embeddings) > 0
    assert partition.parsed["page_offsets"].map(len).max() > 1  # the PDF
    assert partition.parsed["headings"].map(len).max() > 0


@pytest.mark.parametrize("kind", ["raw", "parsed", "chunks", "embeddings"])
def test_stage_output_passes_its_schema(partition: Frames, kind: str) -> None:
    frame, schema, id_column = schemas(partition)[kind]
    report = validate_frame(frame, schema, id_column)
    assert report.passed, report.markdown()
    assert (report.rows, report.failure_count, report.failing_rows) == (len(frame), 0, 0)
    assert report.failures_by_check == {} and report.failure_cases.empty
    assert report.markdown() == f"All {len(frame)} rows pass."


def test_an_empty_partition_passes(tmp_path: Path) -> None:
    (tmp_path / "uploads").mkdir()
    empty = run_stages(tmp_path / "uploads", BlobStore(tmp_path / "blobs"), DAY_START)
    for kind, (frame, schema, id_column) in schemas(empty).items():
        assert frame.empty, kind
        report = validate_frame(frame, schema, id_column)
        assert report.passed, (kind, report.markdown())


# --- bad data: each mutation breaks one rule and returns the id the report must name ---------

Mutation = Callable[[pd.DataFrame, str], tuple[pd.DataFrame, str]]
Picker = Callable[[pd.DataFrame], Any]


def first(frame: pd.DataFrame) -> Any:
    return frame.index[0]


def where(column: str, value: Any) -> Picker:
    return lambda frame: frame.index[frame[column] == value][0]


def longest_text(frame: pd.DataFrame) -> Any:
    return frame["char_count"].idxmax()


def last_chunk_of_a_long_document(frame: pd.DataFrame) -> Any:
    counts = frame.groupby("document_id")["chunk_index"].transform("size")
    return frame.index[(counts > 2) & (frame["chunk_index"] == counts - 1)][0]


def edit(column: str, value: Any, pick: Picker = first) -> Mutation:
    """Set one cell of the row ``pick`` chooses; ``value`` may be a function of that row."""

    def mutate(frame: pd.DataFrame, id_column: str) -> tuple[pd.DataFrame, str]:
        label = pick(frame)
        frame.at[label, column] = value(frame.loc[label]) if callable(value) else value
        return frame, frame.at[label, id_column]

    return mutate


def non_string(column: str, value: Any, pick: Picker = first) -> Mutation:
    """Put a non-string in a text column (as an ``object`` column, which a ``str`` one refuses)."""

    def mutate(frame: pd.DataFrame, id_column: str) -> tuple[pd.DataFrame, str]:
        label = pick(frame)
        frame[column] = frame[column].astype(object)
        frame.at[label, column] = value
        return frame, frame.at[label, id_column]

    return mutate


def duplicate_id(frame: pd.DataFrame, id_column: str) -> tuple[pd.DataFrame, str]:
    frame.at[frame.index[1], id_column] = frame.at[frame.index[0], id_column]
    return frame, frame.at[frame.index[0], id_column]


def drop_column(column: str) -> Mutation:
    return lambda frame, id_column: (frame.drop(columns=[column]), "")


def naive_upload_times(frame: pd.DataFrame, id_column: str) -> tuple[pd.DataFrame, str]:
    return frame.assign(uploaded_at=frame["uploaded_at"].dt.tz_localize(None)), ""  # a column failure: no row


def drop_row(frame: pd.DataFrame, id_column: str) -> tuple[pd.DataFrame, str]:
    return frame.drop(index=frame.index[0]), frame.at[frame.index[0], id_column]


def add_unknown_chunk(frame: pd.DataFrame, id_column: str) -> tuple[pd.DataFrame, str]:
    extra = frame.iloc[[0]].assign(chunk_id="f" * 32)
    return pd.concat([frame, extra], ignore_index=True), "f" * 32


def vector(change: Callable[[np.ndarray], Any]) -> Callable[[pd.Series], Any]:
    return lambda row: change(row["vector"].copy())  # never modify the fixture's arrays in place


def with_nan(values: np.ndarray) -> np.ndarray:
    values[3] = np.nan
    return values


HEX32 = "str_matches('^[0-9a-f]{32}$')"
RAW = {
    "duplicate document_id": (duplicate_id, "document_id: field_uniqueness"),
    "document_id not hex": (edit("document_id", "Z" * 32), f"document_id: {HEX32}"),
    "null source": (edit("source", None), "source: not_nullable"),
    "file_name not a string": (non_string("file_name", 42), "file_name: is a string"),
    "negative size": (edit("size_bytes", -1), "size_bytes: greater_than_or_equal_to(0)"),
    "read without sha256": (edit("sha256", None), "sha256 is present exactly when the document was read"),
    "unread with sha256": (
        edit("landing_error", "too_large: 9 bytes, limit 1"),
        "sha256 is present exactly when the document was read",
    ),
    "read without media_type": (edit("media_type", None), "media_type is present when the document was read"),
    "unknown landing reason": (edit("landing_error", "exploded: boom"), "landing_error: starts with a reason code"),
    "naive uploaded_at": (naive_upload_times, "uploaded_at: is timezone-aware"),
    "missing column": (drop_column("sha256"), "column_in_dataframe"),
}
PARSED = {
    "duplicate document_id": (duplicate_id, "document_id: field_uniqueness"),
    "unknown status": (edit("status", "done"), "status: isin(['parsed', 'rejected'])"),
    "unknown reason code": (edit("reason", "exploded", where("status", "rejected")), "reason: is a known reason code"),
    "rejected without reason": (
        edit("reason", None, where("status", "rejected")),
        "reason is given exactly when rejected",
    ),
    "parsed with reason": (
        edit("reason", "corrupt", where("status", "parsed")),
        "reason is given exactly when rejected",
    ),
    "parsed with empty text": (
        edit("text", " \n ", where("status", "parsed")),
        "parsed rows have non-blank text",
    ),
    "title not a string": (non_string("title", 3.5, where("status", "parsed")), "title: is a string"),
    "rejected with text": (edit("text", "stray", where("status", "rejected")), "rejected rows have no text"),
    "char_count mismatch": (edit("char_count", lambda row: row["char_count"] + 1), "char_count equals len(text)"),
    "heading offset beyond the text": (
        edit("headings", lambda row: [{"level": 1, "text": "Late", "offset": row["char_count"] + 5}], longest_text),
        "heading offsets lie within the text",
    ),
    "malformed heading": (
        edit("headings", [{"level": 0, "text": "Zero", "offset": 0}], longest_text),
        "headings: is a list of {level, text, offset} records",
    ),
    "page offset beyond the text": (
        edit("page_offsets", lambda row: [0, row["char_count"] + 1], longest_text),
        "page offsets lie within the text",
    ),
    "page offsets descending": (edit("page_offsets", [0, 20, 10], longest_text), "page offsets ascend"),
}
CHUNKS = {
    "duplicate chunk_id": (duplicate_id, "chunk_id: field_uniqueness"),
    "null document_id": (edit("document_id", None), "document_id: not_nullable"),
    "duplicate chunk_index": (
        edit("chunk_index", 0, last_chunk_of_a_long_document),
        "(document_id, chunk_index) is unique",
    ),
    "chunk_index gap": (
        edit("chunk_index", lambda row: row["chunk_index"] + 1, last_chunk_of_a_long_document),
        "chunk_index is contiguous from 0 in its document",
    ),
    "chunk over max_tokens": (edit("token_count", MAX_TOKENS + 1), f"token_count: at most {MAX_TOKENS} tokens"),
    "zero tokens": (edit("token_count", 0), "token_count: greater_than_or_equal_to(1)"),
    "blank text": (edit("text", "   "), "text: is not blank"),
    "heading_path not a string": (non_string("heading_path", 7), "heading_path: is a string"),
    "text_sha256 mismatch": (edit("text_sha256", "0" * 64), "text_sha256 is the sha256 of text"),
    "char_end off by one": (
        edit("char_end", lambda row: row["char_end"] + 1),
        "char_end - char_start equals len(text)",
    ),
    "char_start at char_end": (edit("char_start", lambda row: row["char_end"]), "char_start < char_end"),
    "negative char_start": (edit("char_start", -1), "char_start: greater_than_or_equal_to(0)"),
}
EMBEDDINGS = {
    "duplicate chunk_id": (duplicate_id, "chunk_id: field_uniqueness"),
    "vector too short": (edit("vector", vector(lambda v: v[:10])), "vector: has 384 values"),
    "vector not numeric": (edit("vector", "not a vector"), "vector: has 384 values"),
    "null vector": (edit("vector", None), "vector: not_nullable"),
    "NaN value": (edit("vector", vector(with_nan)), "vector: values are finite"),
    "infinite value": (edit("vector", vector(lambda v: np.full_like(v, np.inf))), "vector: values are finite"),
    "non-unit norm": (edit("vector", vector(lambda v: v * 2)), "vector: has unit norm (±0.001)"),
    "missing chunk id": (drop_row, "chunk_id: expected chunk id is missing"),
    "extra chunk id": (add_unknown_chunk, "chunk_id: is an expected chunk id"),
}
BAD_DATA = [
    pytest.param(kind, mutate, key, id=f"{kind}: {name}")
    for kind, table in {"raw": RAW, "parsed": PARSED, "chunks": CHUNKS, "embeddings": EMBEDDINGS}.items()
    for name, (mutate, key) in table.items()
]


def cases_of(report: SchemaReport, key: str) -> pd.DataFrame:
    """The report's failure cases of one check, keyed as in ``failures_by_check``."""
    cases = report.failure_cases
    pairs = zip(cases["column"], cases["check"], strict=True)
    return cases[[key in (check, f"{column}: {check}") for column, check in pairs]]


@pytest.mark.parametrize(("kind", "mutate", "key"), BAD_DATA)
def test_bad_data_fails_naming_the_check_and_the_row(partition: Frames, kind: str, mutate: Mutation, key: str) -> None:
    frame, schema, id_column = schemas(partition)[kind]
    bad, row_id = mutate(frame.copy(), id_column)
    report = validate_frame(bad, schema, id_column, max_cases=1000)
    assert not report.passed
    assert key in report.failures_by_check, report.failures_by_check
    named = cases_of(report, key)
    assert not named.empty, report.markdown()
    if key.endswith("expected chunk id is missing"):
        # No row holds a missing id: the case has no row id and names the id as its value.
        assert list(named[id_column]) == [""] and list(named["failure_case"]) == [repr(row_id)]
    else:
        assert row_id in set(named[id_column]), report.markdown()
    assert report.failure_count == sum(report.failures_by_check.values())


# --- the report -------------------------------------------------------------------------------


def test_vectors_render_short(partition: Frames) -> None:
    frame, schema, id_column = schemas(partition)["embeddings"]
    bad = frame.copy()
    bad["vector"] = [v * 2 for v in bad["vector"]]
    report = validate_frame(bad, schema, id_column)
    assert report.failures_by_check == {"vector: has unit norm (±0.001)": len(frame)}
    assert report.failing_rows == report.failure_count == len(frame)
    assert len(report.failure_cases) == 10
    for value in report.failure_cases["failure_case"]:
        assert value.startswith("array(384, [") and value.endswith(", …])") and len(value) <= 80


def test_a_frame_level_failure_is_one_case_showing_the_columns_it_reads(partition: Frames) -> None:
    frame, schema, id_column = schemas(partition)["chunks"]
    bad = frame.copy()
    bad.loc[bad.index[2], "char_end"] += 1
    report = validate_frame(bad, schema, id_column)
    assert report.failures_by_check == {"char_end - char_start equals len(text)": 1}
    (case,) = report.failure_cases.to_dict("records")
    assert case[id_column] == frame.at[frame.index[2], "chunk_id"]
    assert case["column"] == "char_start, char_end, text"
    assert case["failure_case"].startswith(f"char_start={frame.at[frame.index[2], 'char_start']}, char_end=")
    assert ", text='" in case["failure_case"] and case["failure_case"].endswith("…")  # long text is shortened


def test_the_first_cases_show_every_failing_check_and_markdown_counts_the_rest(partition: Frames) -> None:
    frame, schema, id_column = schemas(partition)["chunks"]
    bad = frame.assign(token_count=MAX_TOKENS + 1)
    bad.loc[bad.index[-1], "text_sha256"] = "0" * 64
    report = validate_frame(bad, schema, id_column, max_cases=3)
    assert report.failure_count == len(frame) + 1 and report.failing_rows == len(frame)
    assert set(report.failure_cases["check"]) == {f"at most {MAX_TOKENS} tokens", "text_sha256 is the sha256 of text"}
    assert list(report.failure_cases.columns) == [id_column, "column", "check", "failure_case"]
    markdown = report.markdown().splitlines()
    assert markdown[:2] == [f"| {id_column} | column | check | failure_case |", "| --- | --- | --- | --- |"]
    assert len(markdown) == 2 + 3 + 2 and markdown[-1] == f"…and {len(frame) + 1 - 3} more failure cases."


def test_markdown_escapes_table_syntax(partition: Frames) -> None:
    frame, schema, id_column = schemas(partition)["raw"]
    report = validate_frame(frame.assign(landing_error="no | such\nreason"), schema, id_column)
    assert "no \\| such" in report.markdown()


def test_extra_columns_are_allowed(partition: Frames) -> None:
    for kind, (frame, schema, id_column) in schemas(partition).items():
        assert validate_frame(frame.assign(added_later=1), schema, id_column).passed, kind


def test_bounds_come_from_the_factories(partition: Frames) -> None:
    chunks, embeddings = partition.chunks, partition.embeddings
    longest = int(chunks["token_count"].max())
    assert validate_frame(chunks, document_chunks_schema(longest), "chunk_id").passed
    assert not validate_frame(chunks, document_chunks_schema(longest - 1), "chunk_id").passed
    doubled = embeddings.assign(vector=[v * 2 for v in embeddings["vector"]])
    assert validate_frame(doubled, chunk_embeddings_schema(partition.dimension, normalized=False), "chunk_id").passed
    assert not validate_frame(embeddings, chunk_embeddings_schema(partition.dimension + 1, True), "chunk_id").passed
    # Without expected ids, a partial frame is fine.
    assert validate_frame(embeddings.iloc[1:], chunk_embeddings_schema(partition.dimension, True), "chunk_id").passed


class _ShortVectors(SentenceTransformerEmbedder):
    """The packaged model answering with one dimension fewer than its identity says (as a
    misconfigured embedding service would)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return super().embed(texts)[:, :-1]


def test_vectors_of_the_wrong_size_stop_embedding_with_a_clear_error(partition: Frames) -> None:
    chunks = partition.chunks.head(3)
    with pytest.raises(ValueError, match=r"shape \(3, 383\) for 3 texts; all-MiniLM-L6-v2@\S+ has 384 dimensions"):
        embed_chunks(chunks, _ShortVectors(), lambda part: {}, batch_size=SPEC.embed_batch_size)


@pytest.mark.parametrize(
    ("frame", "columns"),
    [
        ("raw_documents", RAW_COLUMNS),
        ("parsed_documents", PARSED_COLUMNS),
        ("document_chunks", CHUNK_COLUMNS),
        ("chunk_embeddings", EMBEDDING_COLUMNS),
    ],
)
def test_every_column_a_stage_writes_is_validated_and_described_in_its_model(frame: str, columns: list[str]) -> None:
    # One place says what a column is: its pandera field, whose description the UI shows.
    model_columns = FRAME_MODELS[frame].to_schema().columns
    assert list(model_columns) == list(columns)
    assert set(column_descriptions(FRAME_MODELS[frame])) == set(columns)
    assert DESCRIPTIONS[frame] == column_descriptions(FRAME_MODELS[frame])
