"""Pandera schemas of the frames the stages produce: raw, parsed, chunked and embedded documents.

Each model states what every row must satisfy: types, nulls, unique ids, ranges and rules across
columns. Bounds that come from configuration (chunk size, model dimension, the chunk ids to expect)
are added by the ``*_schema`` factories. Schemas are not strict: a stage may gain columns without
breaking its schema, never lose one.

Text columns carry no pandera dtype: pandas 3 stores text as ``str``, but an empty partition or an
all-null column comes out as ``object``, so an "is a string" check on the values replaces it.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.api.base.checks import CheckResult
from pandera.backends.pandas.checks import PandasCheckBackend
from pandera.typing import Series

from hyperion_pipelines.ids import text_sha256
from hyperion_pipelines.parsing.document import REASONS
from hyperion_pipelines.sources.landing import HELD

HEX32 = r"^[0-9a-f]{32}$"
HEX64 = r"^[0-9a-f]{64}$"
STATUSES = ("parsed", "rejected")
NORM_TOLERANCE = 1e-3

#: Key of ``Check.statistics`` listing the columns a row-level check reads; a report shows those
#: values for a failing row instead of the whole row (pandera hands back every column of it).
SHOWN_COLUMNS = "columns"


# --- value helpers (vectorised where the frames can be large) ---------------------------------


def _is_str(series: pd.Series) -> pd.Series | bool:
    if isinstance(series.dtype, pd.StringDtype):
        return True  # a str column holds nothing else
    return series.map(lambda value: isinstance(value, str)).astype(bool)


def _str_len(series: pd.Series) -> pd.Series:
    """Length of each string; NaN for nulls and non-strings (other checks report those)."""
    return series.map(lambda value: len(value) if isinstance(value, str) else np.nan).astype(float)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _int_list(value: Any) -> list[int] | None:
    """``value`` as a list of ints, or None when it is not a sequence of ints."""
    if not isinstance(value, list | tuple | np.ndarray) or not all(_is_int(v) for v in value):
        return None
    return [int(v) for v in value]


def _heading_offsets(value: Any) -> list[int] | None:
    """Offsets of well-formed heading records, or None when ``value`` is not a list of them."""
    if not isinstance(value, list | tuple | np.ndarray):
        return None
    offsets = []
    for heading in value:
        if not (
            isinstance(heading, Mapping)
            and _is_int(heading.get("level"))
            and heading["level"] >= 1
            and isinstance(heading.get("text"), str)
            and _is_int(heading.get("offset"))
        ):
            return None
        offsets.append(int(heading["offset"]))
    return offsets


def _rowwise(frame: pd.DataFrame, columns: list[str], test: Callable[..., bool]) -> pd.Series:
    return pd.Series(
        [bool(test(*values)) for values in zip(*(frame[c] for c in columns), strict=True)],
        index=frame.index,
        dtype=bool,
    )


def _vector_length(value: Any) -> int:
    """Length of a 1-D numeric vector; -1 for anything else (so no dimension matches it)."""
    if not isinstance(value, np.ndarray | list | tuple):
        return -1
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nested lists
        return -1
    return int(array.shape[0]) if array.ndim == 1 and array.dtype.kind in "fiu" else -1


def _vector_lengths(series: pd.Series) -> pd.Series:
    return series.map(_vector_length).astype("int64")


def _vector_blocks(series: pd.Series) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Positions of the rows whose vectors share a length, with those vectors stacked into one
    float64 matrix: numpy works per block, not per row. Non-vectors are left out (the length
    check reports them)."""
    lengths, values = _vector_lengths(series).to_numpy(), series.to_numpy()
    for length in np.unique(lengths[lengths >= 0]):
        positions = np.flatnonzero(lengths == length)
        yield positions, np.stack([np.asarray(values[p], dtype=np.float64) for p in positions])


def _finite_rows(series: pd.Series) -> pd.Series:
    ok = np.ones(len(series), dtype=bool)
    for positions, matrix in _vector_blocks(series):
        ok[positions] = np.isfinite(matrix).all(axis=1)
    return pd.Series(ok, index=series.index)


def _unit_norm_rows(series: pd.Series, dimension: int, tolerance: float) -> pd.Series:
    ok = np.ones(len(series), dtype=bool)
    for positions, matrix in _vector_blocks(series):
        if matrix.shape[1] != dimension:
            continue  # the length check's failure, not this one's
        finite = np.isfinite(matrix).all(axis=1)
        norms = np.linalg.norm(np.where(np.isfinite(matrix), matrix, 0.0), axis=1)
        ok[positions] = ~finite | (np.abs(norms - 1.0) <= tolerance)  # non-finite: the finite check's
    return pd.Series(ok, index=series.index)


def _string_columns(*columns: str) -> Any:
    """The "is a string" check on ``columns`` (their dtype alone cannot say it; see above)."""

    def strings(cls: Any, series: pd.Series) -> pd.Series | bool:
        return _is_str(series)

    return pa.check(*columns, name="is a string")(strings)


def _row_check(name: str, *columns: str) -> Callable[[Callable[..., pd.Series]], Any]:
    """A frame-level check of one bool per row, reading only ``columns``: a report shows those."""

    def decorate(check: Callable[..., pd.Series]) -> Any:
        @functools.wraps(check)
        def guarded(cls: type, frame: pd.DataFrame) -> pd.Series | bool:
            if not set(columns) <= set(frame.columns):
                return True  # pandera reports the missing column itself; a KeyError here would add noise
            return check(cls, frame)

        return pa.dataframe_check(name=name, statistics={SHOWN_COLUMNS: list(columns)})(guarded)

    return decorate


# --- models -----------------------------------------------------------------------------------


class RawDocuments(pa.DataFrameModel):
    """``land_documents``: one row per document uploaded in the partition."""

    document_id: Series[Any] = pa.Field(
        unique=True, str_matches=HEX32, description="Stable id of the document at its source."
    )
    source: Series[Any] = pa.Field(
        str_length={"min_value": 1}, description="Path or key of the document at its source."
    )
    source_uri: Series[Any] = pa.Field(
        description="Where the source serves the document (a file URI, or the backend's URL)."
    )
    file_name: Series[Any] = pa.Field(description="The document's file name as uploaded.")
    media_type: Series[Any] = pa.Field(
        nullable=True, description="Media type sniffed from the content; empty when the document could not be read."
    )
    size_bytes: Series[int] = pa.Field(ge=0, description="Size of the uploaded document.")
    sha256: Series[Any] = pa.Field(
        nullable=True, str_matches=HEX64, description="SHA-256 of the uploaded bytes (the blob store key)."
    )
    uploaded_at: Series[Any] = pa.Field(description="Upload time (UTC); its day is the partition.")
    landing_error: Series[Any] = pa.Field(
        nullable=True, description="Why the document could not be copied, if it could not."
    )

    class Config:
        name = "RawDocuments"
        strict = False

    strings = _string_columns(
        "document_id", "source", "source_uri", "file_name", "media_type", "sha256", "landing_error"
    )

    @pa.check("uploaded_at", name="is timezone-aware")
    def timezone_aware(cls, series: pd.Series) -> bool:
        return isinstance(series.dtype, pd.DatetimeTZDtype)

    @pa.check("landing_error", name="starts with a reason code")
    def landing_reason(cls, series: pd.Series) -> pd.Series:
        # parse_documents turns "reason: message" into a rejected row with that reason; "held: ..."
        # rows (a sub-folder that could not be listed) are left out of parsing.
        known = {*REASONS, HELD}
        return series.map(lambda value: isinstance(value, str) and value.partition(": ")[0] in known).astype(bool)

    @_row_check("sha256 is present exactly when the document was read", "sha256", "landing_error")
    def sha256_when_read(cls, frame: pd.DataFrame) -> pd.Series:
        return frame["sha256"].notna() == frame["landing_error"].isna()

    @_row_check("media_type is present when the document was read", "media_type", "landing_error")
    def media_type_when_read(cls, frame: pd.DataFrame) -> pd.Series:
        return frame["media_type"].notna() | frame["landing_error"].notna()


class ParsedDocuments(pa.DataFrameModel):
    """``parse_documents``: one row per raw document, parsed or rejected with a reason code."""

    document_id: Series[Any] = pa.Field(
        unique=True, str_matches=HEX32, description="Stable id of the document at its source."
    )
    source: Series[Any] = pa.Field(description="Path or key of the document at its source.")
    media_type: Series[Any] = pa.Field(nullable=True, description="Media type sniffed from the content.")
    sha256: Series[Any] = pa.Field(
        nullable=True, str_matches=HEX64, description="SHA-256 of the uploaded bytes (the blob store key)."
    )
    status: Series[Any] = pa.Field(
        isin=list(STATUSES), description="'parsed', or 'rejected' for a document quarantined instead."
    )
    reason: Series[Any] = pa.Field(nullable=True, description="Reason code of a rejected document.")
    message: Series[Any] = pa.Field(nullable=True, description="What went wrong with a rejected document.")
    parser: Series[Any] = pa.Field(
        nullable=True,
        description="Extractor whose text was kept (pdfium, pypdf, tesseract, html, docx, markdown, text).",
    )
    title: Series[Any] = pa.Field(
        nullable=True, description="Title found in the document (its metadata or first heading)."
    )
    text: Series[Any] = pa.Field(nullable=True, description="Extracted text.")
    char_count: Series[int] = pa.Field(ge=0, description="Characters of extracted text.")
    headings: Series[Any] = pa.Field(description="Heading records: level, text and character offset.")
    page_offsets: Series[Any] = pa.Field(description="Character offset at which each page starts (paged formats).")
    reused: Series[bool] = pa.Field(description="Parse reused from an earlier run under the same parsing settings.")
    fidelity: Series[float] = pa.Field(
        nullable=True,
        ge=0,
        le=1,
        description="Parse-fidelity score, 0-1: does the text read like the page (parsing.fidelity).",
    )
    ocr_pages: Series[int] = pa.Field(
        ge=0, description="Pages (or images) read with OCR; 0 when the text came from a text layer."
    )
    unread_pages: Series[int] = pa.Field(
        ge=0, description="Scanned pages of a PDF left unread because OCR is not installed (the rest was read)."
    )

    class Config:
        name = "ParsedDocuments"
        strict = False

    strings = _string_columns(
        "document_id", "source", "media_type", "sha256", "status", "reason", "message", "parser", "title", "text"
    )

    @pa.check("reason", name="is a known reason code")
    def known_reason(cls, series: pd.Series) -> pd.Series:
        return series.isin(list(REASONS))

    @pa.check("headings", name="is a list of {level, text, offset} records", element_wise=True)
    def heading_records(cls, value: Any) -> bool:
        return _heading_offsets(value) is not None

    @pa.check("page_offsets", name="is a list of integers", element_wise=True)
    def page_offset_ints(cls, value: Any) -> bool:
        return _int_list(value) is not None

    @_row_check("reason is given exactly when rejected", "status", "reason")
    def reason_when_rejected(cls, frame: pd.DataFrame) -> pd.Series:
        status, has_reason = frame["status"], frame["reason"].notna()
        # Rows with an unknown status are the status check's failure.
        return ((status == "rejected") & has_reason) | ((status == "parsed") & ~has_reason) | ~status.isin(STATUSES)

    @_row_check("parsed rows have a fidelity score, rejected rows none", "status", "fidelity")
    def fidelity_when_parsed(cls, frame: pd.DataFrame) -> pd.Series:
        return (frame["status"] == "parsed") == frame["fidelity"].notna()

    @_row_check("parsed rows have non-blank text", "status", "text")
    def parsed_have_text(cls, frame: pd.DataFrame) -> pd.Series:
        nonblank = frame["text"].map(lambda text: isinstance(text, str) and bool(text.strip())).astype(bool)
        return (frame["status"] != "parsed") | nonblank

    @_row_check("rejected rows have no text", "status", "text")
    def rejected_have_none(cls, frame: pd.DataFrame) -> pd.Series:
        return (frame["status"] != "rejected") | frame["text"].isna() | (frame["text"] == "")

    @_row_check("char_count equals len(text)", "char_count", "text")
    def char_count_matches(cls, frame: pd.DataFrame) -> pd.Series:
        return frame["char_count"] == _str_len(frame["text"]).fillna(0)

    # Offsets are compared with char_count, which the check above ties to len(text).
    @_row_check("heading offsets lie within the text", "headings", "char_count")
    def headings_within(cls, frame: pd.DataFrame) -> pd.Series:
        return _rowwise(
            frame,
            ["headings", "char_count"],
            lambda headings, length: all(0 <= o <= length for o in _heading_offsets(headings) or []),
        )

    @_row_check("page offsets lie within the text", "page_offsets", "char_count")
    def pages_within(cls, frame: pd.DataFrame) -> pd.Series:
        return _rowwise(
            frame,
            ["page_offsets", "char_count"],
            lambda pages, length: all(0 <= o <= length for o in _int_list(pages) or []),
        )

    @_row_check("page offsets ascend", "page_offsets")
    def pages_ascend(cls, frame: pd.DataFrame) -> pd.Series:
        def ascending(pages: Any) -> bool:
            offsets = _int_list(pages) or []
            return all(a < b for a, b in zip(offsets, offsets[1:], strict=False))

        return frame["page_offsets"].map(ascending).astype(bool)


class DocumentChunks(pa.DataFrameModel):
    """``chunk_documents``: the token-bounded chunks of every parsed document."""

    chunk_id: Series[Any] = pa.Field(
        unique=True,
        str_matches=HEX32,
        description="Deterministic id: document id, embedded text (context and chunk) and embedding-space fingerprint.",
    )
    document_id: Series[Any] = pa.Field(str_matches=HEX32, description="Id of the document the chunk was cut from.")
    source: Series[Any] = pa.Field(description="Path or key of that document at its source.")
    title: Series[Any] = pa.Field(nullable=True, description="That document's title.")
    document_sha256: Series[Any] = pa.Field(
        str_matches=HEX64, description="SHA-256 of the document the chunk was cut from."
    )
    chunk_index: Series[int] = pa.Field(ge=0, description="Position of the chunk in its document.")
    text: Series[Any] = pa.Field(description="Chunk text.")
    text_sha256: Series[Any] = pa.Field(str_matches=HEX64, description="SHA-256 of the chunk text.")
    char_start: Series[int] = pa.Field(ge=0, description="Offset of the chunk's first character in the document text.")
    char_end: Series[int] = pa.Field(description="Offset just past the chunk's last character.")
    token_count: Series[int] = pa.Field(ge=1, description="Tokens of the embedding model's tokenizer.")
    heading_path: Series[Any] = pa.Field(description="Headings above the chunk, outermost first.")
    context: Series[Any] = pa.Field(
        description="Title and heading line embedded in front of the chunk text (not stored in the index)."
    )
    page: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=1, description="Page the chunk starts on (paged formats).")

    class Config:
        name = "DocumentChunks"
        strict = False

    strings = _string_columns(
        "chunk_id",
        "document_id",
        "source",
        "title",
        "document_sha256",
        "text",
        "text_sha256",
        "heading_path",
        "context",
    )

    @pa.check("text", name="is not blank")
    def text_not_blank(cls, series: pd.Series) -> pd.Series:
        return series.map(lambda text: not isinstance(text, str) or bool(text.strip())).astype(bool)

    @_row_check("(document_id, chunk_index) is unique", "document_id", "chunk_index")
    def index_unique(cls, frame: pd.DataFrame) -> pd.Series:
        return ~frame.duplicated(["document_id", "chunk_index"], keep=False)

    @_row_check("chunk_index is contiguous from 0 in its document", "document_id", "chunk_index")
    def index_contiguous(cls, frame: pd.DataFrame) -> pd.Series:
        # With (document_id, chunk_index) unique and chunk_index >= 0, every index below its
        # document's chunk count means the indices are exactly 0..n-1.
        counts = frame.groupby("document_id", dropna=False, sort=False)["chunk_index"].transform("size")
        return frame["chunk_index"] < counts

    @_row_check("text_sha256 is the sha256 of text", "text_sha256", "text")
    def sha256_matches(cls, frame: pd.DataFrame) -> pd.Series:
        return _rowwise(
            frame,
            ["text", "text_sha256"],
            lambda text, digest: not isinstance(text, str) or text_sha256(text) == digest,
        )

    @_row_check("char_start < char_end", "char_start", "char_end")
    def offsets_ordered(cls, frame: pd.DataFrame) -> pd.Series:
        return frame["char_start"] < frame["char_end"]

    @_row_check("char_end - char_start equals len(text)", "char_start", "char_end", "text")
    def offsets_span_text(cls, frame: pd.DataFrame) -> pd.Series:
        lengths = _str_len(frame["text"])
        return lengths.isna() | (frame["char_end"] - frame["char_start"] == lengths)


class ChunkEmbeddings(pa.DataFrameModel):
    """``embed_chunks``: one vector (a float array in an object column) per chunk."""

    chunk_id: Series[Any] = pa.Field(
        unique=True, str_matches=HEX32, description="Id of the chunk (document_chunks.chunk_id)."
    )
    vector: Series[Any] = pa.Field(description="Embedding of the chunk's context line and text.")
    reused: Series[bool] = pa.Field(description="Vector read back from the collection instead of being computed again.")

    class Config:
        name = "ChunkEmbeddings"
        strict = False

    strings = _string_columns("chunk_id")

    @pa.check("vector", name="values are finite")
    def finite(cls, series: pd.Series) -> pd.Series:
        return _finite_rows(series)


# --- expected values: a check whose failure cases are values absent from the column ----------


class _AbsentValuesCheck(pa.Check):
    """A column check whose function returns the expected values the column lacks.

    Pandera's checks can only fail rows that exist; here each absent value is a failure case of
    its own (with no row index), so a report names every missing id.
    """


class _AbsentValuesBackend(PandasCheckBackend):
    def postprocess(self, check_obj: pd.Series, check_output: Any) -> CheckResult:
        absent = list(check_output)
        cases = pd.Series(absent, index=pd.Index([None] * len(absent), dtype=object), dtype=object)
        return CheckResult(
            check_output=pd.Series(True, index=check_obj.index),  # no present row is at fault
            check_passed=not absent,
            checked_object=check_obj,
            failure_cases=cases if absent else None,
        )


# Column checks are handed the frame and the column's name, so register for both.
_AbsentValuesCheck.register_backend(pd.DataFrame, _AbsentValuesBackend)
_AbsentValuesCheck.register_backend(pd.Series, _AbsentValuesBackend)


# --- factories --------------------------------------------------------------------------------


def _extended(
    model: type[pa.DataFrameModel], column_checks: Mapping[str, list[pa.Check]] | None = None
) -> pa.DataFrameSchema:
    # to_schema() returns one cached object per model: extend a copy, never the shared schema.
    schema = copy.deepcopy(model.to_schema())
    for column, checks in (column_checks or {}).items():
        if checks:
            schema = schema.update_column(column, checks=[*schema.columns[column].checks, *checks])
    return schema


def raw_documents_schema() -> pa.DataFrameSchema:
    return _extended(RawDocuments)


def parsed_documents_schema(min_fidelity: float = 0.0) -> pa.DataFrameSchema:
    """Parsed documents; every one kept scores at least the pipeline's ``min_fidelity``."""
    gate = pa.Check.ge(min_fidelity, ignore_na=True, error=f"fidelity at least min_fidelity {min_fidelity:g}")
    return _extended(ParsedDocuments, {"fidelity": [gate]})


def document_chunks_schema(max_tokens: int) -> pa.DataFrameSchema:
    """Chunks, each of at most ``max_tokens`` tokens (the chunking spec's bound)."""
    # error=, not name=: pandera reports a built-in check by its error text.
    at_most = pa.Check.le(max_tokens, error=f"at most {max_tokens} tokens")
    return _extended(DocumentChunks, {"token_count": [at_most]})


def chunk_embeddings_schema(
    dimension: int, normalized: bool, expected_chunk_ids: Collection[str] | None = None
) -> pa.DataFrameSchema:
    """Vectors of ``dimension`` values, of unit norm when the model ``normalized`` them, and when
    ``expected_chunk_ids`` is given, exactly one vector per expected chunk: none missing, none extra."""
    vector_checks = [
        pa.Check(lambda series: _vector_lengths(series) == dimension, name=f"has {dimension} values"),
    ]
    if normalized:
        vector_checks.append(
            pa.Check(
                lambda series: _unit_norm_rows(series, dimension, NORM_TOLERANCE),
                name=f"has unit norm (±{NORM_TOLERANCE:g})",
            )
        )
    id_checks: list[pa.Check] = []
    if expected_chunk_ids is not None:
        expected = frozenset(expected_chunk_ids)
        id_checks = [
            pa.Check(lambda series: series.isin(expected), name="is an expected chunk id"),
            _AbsentValuesCheck(
                lambda series: sorted(expected.difference(series.dropna())),
                name="expected chunk id is missing",
                ignore_na=False,  # pandera drops failure cases with a null index when ignoring nulls
            ),
        ]
    return _extended(ChunkEmbeddings, {"vector": vector_checks, "chunk_id": id_checks})


#: The pandera model of each DataFrame asset: where its columns are validated and described.
FRAME_MODELS: dict[str, type[pa.DataFrameModel]] = {
    "raw_documents": RawDocuments,
    "parsed_documents": ParsedDocuments,
    "document_chunks": DocumentChunks,
    "chunk_embeddings": ChunkEmbeddings,
}


def column_descriptions(model: type[pa.DataFrameModel]) -> dict[str, str]:
    """Each column of ``model`` with the description its field gives."""
    return {name: column.description for name, column in model.to_schema().columns.items() if column.description}
