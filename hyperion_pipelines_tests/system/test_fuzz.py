"""Bounded, derandomised fuzzing: the parsers on arbitrary and mutated real documents, and the
backend API client on whatever a (real, loopback) server answers.

A parser either returns a document whose offsets and headings are consistent, or raises
:class:`ParseError` with a known reason. The client either returns what the server said or raises
its own :class:`SourceError`; never a KeyError, TypeError or anything else unhandled.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hyperion_pipelines.parsing.document import REASONS, ParsedDocument, ParseError
from hyperion_pipelines.parsing.registry import parse_document
from hyperion_pipelines.sources.backend_api import BackendDocumentApi
from hyperion_pipelines.sources.base import SourceError
from hyperion_pipelines.sources.media_type import sniff_media_type
from hyperion_pipelines.spec import SUPPORTED_MEDIA_TYPES, ParsingLimits

from ..conftest import SAMPLE_CORPUS, UPLOAD_TIME
from ..support.backend_server import BackendServer, FakeBackend, Fault, StoredDocument

# Derandomised (the same examples every run), no example database, no deadline (timing is not
# asserted): CI runs exactly this, and the whole file takes well under a minute.
FUZZ = settings(derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def fuzz(examples: int) -> settings:
    return settings(FUZZ, max_examples=examples)


LIMITS = ParsingLimits()
FIXTURES = {
    name: (SAMPLE_CORPUS / relative).read_bytes()
    for name, relative in {
        "report.pdf": "reports/honeybee-winter-survival.pdf",
        "report.docx": "reports/river-restoration.docx",
        "page.html": "web/tide-pools.html",
        "guide.md": "guides/sourdough-starter.md",
        "notes.txt": "notes/composting.txt",
    }.items()
}
NAMES = st.sampled_from(["a.txt", "a.md", "a.html", "a.pdf", "a.docx", "a", "a.bin"])


def check_parse(content: bytes, name: str) -> ParsedDocument | None:
    """Sniff and parse like the pipeline does; assert the outcome is one of the two allowed."""
    media_type = sniff_media_type(content, name)
    try:
        parsed = parse_document(content, media_type, SUPPORTED_MEDIA_TYPES, limits=LIMITS, file_name=name)
    except ParseError as exc:
        assert exc.reason in REASONS and exc.message
        return None
    text = parsed.text
    assert text.strip() and "\r" not in text and "\x00" not in text
    assert parsed.page_offsets == sorted(parsed.page_offsets) and all(0 <= o <= len(text) for o in parsed.page_offsets)
    assert not parsed.page_offsets or parsed.page_offsets[0] == 0
    offsets = [h.offset for h in parsed.headings]
    assert offsets == sorted(offsets) and all(0 <= o <= len(text) for o in offsets)
    for heading in parsed.headings:
        assert heading.text.strip() and heading.level >= 1
        first_line = heading.text.split("\n")[0].strip()
        if parsed.parser in ("html", "docx"):  # offsets point at the heading's own text
            assert text[heading.offset :].startswith(heading.text)
        elif parsed.parser == "markdown":  # at the heading's line
            assert first_line in text[heading.offset :]
    return parsed


def _mutate(content: bytes, flips: list[tuple[float, int]], cut: float | None) -> bytes:
    data = bytearray(content)
    for where, value in flips:
        data[min(int(where * len(data)), len(data) - 1)] = value
    return bytes(data[: int(cut * len(data))] if cut is not None else data)


def _rezip(content: bytes, member: str, mutate) -> bytes:
    """The same DOCX with one member's bytes mutated and the archive rebuilt (valid CRCs), so the
    damage reaches the XML parser instead of stopping at the zip layer."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(content)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item.filename, mutate(data) if item.filename == member else data)
    return out.getvalue()


flips = st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=12)
cuts = st.none() | st.floats(0, 1)


@fuzz(300)
@given(content=st.binary(max_size=4096), name=NAMES)
def test_arbitrary_bytes_parse_or_are_refused_with_a_reason(content: bytes, name: str) -> None:
    check_parse(content, name)


@fuzz(300)
@given(fixture=st.sampled_from(sorted(FIXTURES)), flips=flips, cut=cuts, name=NAMES)
def test_mutated_real_documents_parse_or_are_refused_with_a_reason(
    fixture: str, flips: list, cut: float | None, name: str
) -> None:
    check_parse(_mutate(FIXTURES[fixture], flips, cut), name)


@fuzz(120)
@given(
    member=st.sampled_from(["word/document.xml", "word/styles.xml", "[Content_Types].xml", "docProps/core.xml"]),
    flips=flips,
    cut=cuts,
)
def test_docx_with_damaged_xml_inside_a_valid_zip(member: str, flips: list, cut: float | None) -> None:
    check_parse(_rezip(FIXTURES["report.docx"], member, lambda data: _mutate(data, flips, cut)), "report.docx")


def _zip_records(content: bytes) -> list[int]:
    """Offsets of the zip's local, central-directory and end records."""
    records = []
    for signature in (b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"):
        start = content.find(signature)
        while start >= 0:
            records.append(start)
            start = content.find(signature, start + 1)
    return sorted(records)


_DOCX_RECORDS = _zip_records(FIXTURES["report.docx"])


@fuzz(120)
@given(
    damage=st.lists(
        st.tuples(st.sampled_from(_DOCX_RECORDS), st.integers(4, 45), st.sampled_from([0, 1, 0x3F, 0x5E, 0x80, 0xFF])),
        min_size=1,
        max_size=4,
    ),
    name=st.sampled_from(["report.docx", "report.txt"]),
)
def test_docx_with_damaged_zip_records(damage: list[tuple[int, int, int]], name: str) -> None:
    """Bytes changed inside the archive's own records (versions, sizes, offsets, counts)."""
    content = bytearray(FIXTURES["report.docx"])
    for record, field, value in damage:
        content[min(record + field, len(content) - 1)] = value
    check_parse(bytes(content), name)


def test_every_byte_of_the_zip_directory_records_damaged_in_turn() -> None:
    """A systematic sweep beside the random one: each byte of the first central-directory record
    and of the end record set to 0xFF (a version byte so set once escaped media-type sniffing)."""
    docx = FIXTURES["report.docx"]
    central, end = docx.find(b"PK\x01\x02"), docx.rfind(b"PK\x05\x06")
    for position in [*range(central + 4, central + 46), *range(end + 4, end + 22)]:
        content = bytearray(docx)
        content[position] = 0xFF
        check_parse(bytes(content), "report.docx")


_TAGS = st.sampled_from(
    ["<h1>", "</h1>", "<h2 onclick='x()'>", "<p>", "</p>", "<script>", "</script>", "<style>", "<div>", "</div>",
     "<table><tr><td>", "</td></tr></table>", "<!--", "-->", "<br/>", "<title>", "</title>", "<![CDATA[", "]]>",
     "<svg>", "<body>", "<html>", "&amp;", "&#0;", "&#x10FFFF;", "\x00", "\r\n", "<h3>"]
)  # fmt: skip


@fuzz(100)
@given(
    parts=st.lists(_TAGS | st.text(max_size=40), max_size=40),
    encoding=st.sampled_from(["utf-8", "utf-16", "utf-32", "utf-8-sig"]),
)
def test_generated_html_parses_with_consistent_headings_and_no_script(parts: list[str], encoding: str) -> None:
    html = "<!DOCTYPE html><html><body><script>SCRIPT_MARKER()</script>" + "".join(parts)
    parsed = check_parse(html.encode(encoding, errors="surrogatepass"), "page.html")
    assert parsed is None or "SCRIPT_MARKER" not in parsed.text  # UTF-16 pages were once read as plain text


@fuzz(100)
@example(text="# \n\nTidal bores run upriver twice a day.\n\n##\n", encoding="utf-8", name="a.md")  # empty headings
@given(
    text=st.text(min_size=1, max_size=400),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32", "latin-1", "cp1251", "shift_jis", "gb18030"]),
    name=st.sampled_from(["a.txt", "a.md"]),
)
def test_text_in_any_encoding_parses_or_is_refused(text: str, encoding: str, name: str) -> None:
    try:
        content = text.encode(encoding)
    except UnicodeEncodeError:
        content = text.encode("utf-8", errors="surrogatepass")
    check_parse(content, name)


# -- the backend API client ------------------------------------------------------------------
TOKEN = "fuzz-token"
DAY_START = UPLOAD_TIME.replace(hour=0)
DAY_END = DAY_START + timedelta(days=1)
CONTENT = b"Lugworms leave coiled casts on sandy beaches at low tide. " * 4

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
VALID_ITEM = {"id": "doc-1", "name": "a.txt", "size": len(CONTENT), "uploaded_at": "2026-01-15T12:00:00Z"}
MISSING = "<missing>"
#: Per field, values a broken or hostile server sends (JSON ``Infinity`` is a float infinity).
HOSTILE_FIELDS = {
    "id": ["", "..", ".", "../../etc/passwd", "x" * 600, "\ud800", "%2e%2e%2f", 7, True, None],
    "name": ["", "../../a", "\ud800", 0],
    "size": [10**30, -1, 1e308, float("inf"), float("nan"), 1.5, "12", "x", True],
    "uploaded_at": ["2026-01-15T12:00:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "x", 0],
    "path": ["/etc/passwd", "\ud800", ["a"]],
}


@st.composite
def listing_items(draw: st.DrawFn) -> dict:
    """A valid entry with one or two fields replaced by a hostile value, any JSON, or removed."""
    item: dict = dict(VALID_ITEM)
    for field in draw(st.lists(st.sampled_from(sorted(HOSTILE_FIELDS)), min_size=1, max_size=2, unique=True)):
        value = draw(st.sampled_from([*HOSTILE_FIELDS[field], MISSING]) | json_values)
        if value == MISSING:
            item.pop(field, None)
        else:
            item[field] = value
    return item


listing_body = st.fixed_dictionaries(
    {"documents": st.lists(listing_items() | json_values, max_size=3)},
    optional={"next_page_token": st.none() | st.text(max_size=8) | json_values},
) | st.dictionaries(st.sampled_from(["documents", "deletions", "next_page_token"]), json_values)


def _encode(body: object) -> bytes:
    return json.dumps(body, allow_nan=True).encode()


def _page(**changes: object) -> bytes:
    return _encode({"documents": [{**VALID_ITEM, **changes}], "next_page_token": None})


raw_bodies = st.one_of(
    listing_body.map(_encode),
    json_values.map(_encode),
    st.binary(max_size=200),
    listing_body.map(_encode).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n])),  # truncated
)
lengths = st.none() | st.integers(0, 400)  # a Content-Length that may lie either way


@pytest.fixture(scope="module")
def backend_url():
    backend = FakeBackend(token=TOKEN)
    backend.add(StoredDocument("doc-1", "a.txt", CONTENT, UPLOAD_TIME, path="notes/a.txt"))
    with BackendServer(backend) as url:
        yield backend, url


def _client(url: str) -> BackendDocumentApi:
    return BackendDocumentApi(url, TOKEN, max_retries=1, backoff_base_s=0.001, backoff_max_s=0.01, timeout_s=5)


@fuzz(250)
# Each of these once escaped the client as OverflowError, UnicodeEncodeError or a dict token, or
# (id "..") fetched /content instead of the document: pinned so every run tries them.
@example(body=_page(size=float("inf")), length=None, status=200)
@example(body=_page(uploaded_at="0001-01-01T00:00:00+01:00"), length=None, status=200)
@example(body=_page(id="\ud800"), length=None, status=200)
@example(body=_page(id=".."), length=None, status=200)
@example(body=_encode({"documents": [], "next_page_token": {"offset": 2}}), length=None, status=200)
@example(body=b"[" * 100_000, length=None, status=200)  # RecursionError in the JSON decoder
@given(body=raw_bodies, length=lengths, status=st.sampled_from([200, 200, 200, 201, 204, 301, 400, 404, 418, 503]))
def test_listing_client_survives_any_response(backend_url, body: bytes, length: int | None, status: int) -> None:
    backend, url = backend_url
    backend.faults.clear()
    backend.inject(
        "/documents", *[Fault(status, body=body, content_type="application/json", content_length=length)] * 2
    )
    with _client(url) as api:
        try:
            refs, token = api.list_page(DAY_START, DAY_END)
        except SourceError:
            return
    # Accepted: what the page said, in the contract's types.
    assert token is None or isinstance(token, str)
    for ref in refs:
        assert isinstance(ref.key, str) and ref.key and isinstance(ref.size_bytes, int) and ref.size_bytes >= 0
        assert ref.uploaded_at.tzinfo is not None and ref.uri.startswith(url + "/documents/")
        assert httpx.URL(ref.uri).raw_path.count(b"/") == 3  # no dot segment resolved away
        ref.key.encode("utf-8")


@fuzz(100)
@example(body=CONTENT, length=None, status=503, retry_after="\u00b2")  # "²".isdigit(), but no float
@given(
    body=st.one_of(st.just(CONTENT), st.binary(max_size=300), st.integers(0, len(CONTENT)).map(lambda n: CONTENT[:n])),
    length=lengths,
    status=st.sampled_from([200, 200, 206, 404, 410, 500, 302]),
    retry_after=st.none() | st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=6),
)
def test_download_client_returns_the_exact_bytes_or_a_clear_error(
    backend_url, body: bytes, length: int | None, status: int, retry_after: str | None
) -> None:
    backend, url = backend_url
    backend.faults.clear()
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    fault = Fault(status, body=body, headers=headers, content_type="application/octet-stream", content_length=length)
    backend.inject("/documents/doc-1/content", fault)  # the retry gets the true content
    with _client(url) as api:
        ref = next(iter(api.list_documents(DAY_START, DAY_END)))
        try:
            content = api.read(ref)
        except SourceError:
            return
    assert content == CONTENT


@fuzz(80)
@example(body=_encode({"deletions": [{"id": "a", "deleted_at": "0001-01-01T00:00:00+01:00"}]}))
@given(body=raw_bodies)
def test_deletion_feed_client_survives_any_response(backend_url, body: bytes) -> None:
    backend, url = backend_url
    backend.faults.clear()
    backend.inject("/deletions", *[Fault(200, body=body, content_type="application/json")] * 2)
    with _client(url) as api:
        try:
            deleted, token = api.deleted_page(DAY_START, DAY_END)
        except SourceError:
            return
    assert token is None or isinstance(token, str)
    assert all(isinstance(d.key, str) and d.deleted_at.tzinfo is not None for d in deleted)
