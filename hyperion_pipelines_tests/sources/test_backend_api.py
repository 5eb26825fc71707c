"""The backend document API client and source, against a real HTTP server on loopback."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from dagster import materialize

from hyperion_pipelines.definitions import build_definitions
from hyperion_pipelines.orchestration.pipeline import build_pipeline
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.sources.backend_api import BackendApiError, BackendDocumentApi
from hyperion_pipelines.sources.base import DocumentGone, DocumentRef, DocumentSource
from hyperion_pipelines.sources.blob_store import BlobStore
from hyperion_pipelines.sources.landing import land_documents
from hyperion_pipelines.spec import BackendApiSource

from ..conftest import SAMPLE_CORPUS, UPLOAD_DAY, UPLOAD_TIME
from ..support.backend_server import TOKEN, BackendServer, FakeBackend, Fault, StoredDocument
from ..support.sample_pipeline import default_spec

DAY_START = datetime.fromisoformat(UPLOAD_DAY).replace(tzinfo=UTC)
DAY_END = DAY_START + timedelta(days=1)


@pytest.fixture
def backend() -> FakeBackend:
    backend = FakeBackend(token=TOKEN)
    for i, relative in enumerate(
        ["guides/sourdough-starter.md", "web/tide-pools.html", "reports/river-restoration.docx"]
    ):
        path = SAMPLE_CORPUS / relative
        backend.add(StoredDocument(f"doc-{i}", path.name, path.read_bytes(), UPLOAD_TIME, path=relative))
    # Uploaded the day before: must not be listed for UPLOAD_DAY.
    backend.add(StoredDocument("old", "old.txt", b"yesterday's news", UPLOAD_TIME - timedelta(days=1)))
    return backend


def client(url: str, **kwargs) -> BackendDocumentApi:
    return BackendDocumentApi(url, TOKEN, backoff_base_s=0.01, **kwargs)


def test_lists_a_day_across_pages_and_downloads_content(backend: FakeBackend) -> None:
    with BackendServer(backend) as url, client(url) as api:
        refs = list(api.list_documents(DAY_START, DAY_END))
        assert [r.key for r in refs] == ["doc-0", "doc-1", "doc-2"]  # two pages of two, one of one
        assert refs[0].display_path == "guides/sourdough-starter.md"
        assert refs[0].uploaded_at == UPLOAD_TIME
        assert api.read(refs[2]) == backend.documents["doc-2"].content
    assert all(auth == f"Bearer {TOKEN}" for _, auth in backend.requests)
    listing_calls = [p for p, _ in backend.requests if p == "/documents"]
    assert len(listing_calls) == 2


def test_5xx_and_timeouts_are_retried(backend: FakeBackend) -> None:
    backend.inject("/documents", Fault(503), Fault(502))
    backend.inject("/documents/doc-1/content", Fault(status=200, delay_s=1.0, body=b"late"), Fault(500))
    with BackendServer(backend) as url, client(url, timeout_s=0.3) as api:
        refs = list(api.list_documents(DAY_START, DAY_END))
        assert len(refs) == 3
        assert api.read(refs[1]) == backend.documents["doc-1"].content
    content_calls = [p for p, _ in backend.requests if p == "/documents/doc-1/content"]
    assert len(content_calls) == 3  # timed out, 500, then served


def test_persistent_failure_is_a_clear_error(backend: FakeBackend) -> None:
    backend.inject("/documents", *[Fault(503)] * 3)
    with (
        BackendServer(backend) as url,
        client(url, max_retries=2) as api,
        pytest.raises(BackendApiError, match="listing documents failed after 3 attempts: HTTP 503"),
    ):
        list(api.list_documents(DAY_START, DAY_END))


def test_auth_failure_is_not_retried(backend: FakeBackend) -> None:
    with (
        BackendServer(backend) as url,
        BackendDocumentApi(url, "wrong-token", backoff_base_s=0.01) as api,
        pytest.raises(BackendApiError, match="HTTP 401"),
    ):
        list(api.list_documents(DAY_START, DAY_END))
    assert len(backend.requests) == 1


def test_truncated_download_is_retried(backend: FakeBackend) -> None:
    content = backend.documents["doc-0"].content
    backend.inject("/documents/doc-0/content", Fault(status=200, body=content[:10]))
    with BackendServer(backend) as url, client(url) as api:
        ref = next(iter(api.list_documents(DAY_START, DAY_END)))
        assert api.read(ref) == content


def test_a_listing_that_pages_in_a_circle_is_an_error(backend: FakeBackend) -> None:
    page = b'{"documents": [], "next_page_token": "same"}'
    backend.inject("/documents", *[Fault(200, body=page)] * 3)
    with (
        BackendServer(backend) as url,
        client(url) as api,
        pytest.raises(BackendApiError, match="page token 'same' a second time"),
    ):
        list(api.list_documents(DAY_START, DAY_END))


def test_deleted_document_is_gone_and_ids_stay_inside_the_api(backend: FakeBackend) -> None:
    with BackendServer(backend) as url, client(url) as api:
        ref = next(iter(api.list_documents(DAY_START, DAY_END)))
        del backend.documents[ref.key]
        with pytest.raises(DocumentGone):
            api.read(ref)
        # Each id is one percent-quoted path segment; "." and ".." too, which an HTTP client would
        # otherwise resolve as dot segments (/documents/../content is /content).
        quoted = {
            "../../etc/passwd": "..%2F..%2Fetc%2Fpasswd", "/etc/passwd": "%2Fetc%2Fpasswd", "..": "%2E%2E",
            ".": "%2E", "%2e%2e%2f": "%252e%252e%252f", "a\nb": "a%0Ab",
        }  # fmt: skip
        for key, segment in quoted.items():
            with pytest.raises(DocumentGone):
                api.read(ref.__class__(**{**ref.__dict__, "key": key}))
            assert backend.requests[-1][0] == f"/documents/{segment}/content"


def test_raw_documents_lands_the_day_from_the_backend(backend: FakeBackend, hyperion_env, monkeypatch) -> None:
    backend.inject("/documents", Fault(503))
    with BackendServer(backend) as url:
        monkeypatch.setenv("HYPERION_BACKEND_URL", url)
        monkeypatch.setenv("HYPERION_BACKEND_TOKEN", TOKEN)
        settings = Settings.from_env()
        spec = default_spec(settings).model_copy(update={"source": BackendApiSource(kind="backend_api")})
        defs = build_definitions(settings, [spec])
        pipeline = build_pipeline(spec)
        result = materialize(
            [pipeline.assets[0]],
            partition_key=UPLOAD_DAY,
            resources={k: defs.resources[k] for k in ("documents_source", "blob_store", "state_db")},
        )
    assert result.success
    frame = result.output_for_node("raw_documents")
    assert frame["source"].tolist() == [
        "guides/sourdough-starter.md", "reports/river-restoration.docx", "web/tide-pools.html",
    ]  # fmt: skip
    assert frame["media_type"].tolist() == [
        "text/markdown",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "text/html",
    ]
    assert frame["sha256"].str.len().eq(64).all()


def test_retry_after_is_honoured_only_up_to_the_backoff_cap(backend: FakeBackend) -> None:
    backend.inject("/documents", Fault(429, headers={"Retry-After": "3600"}))
    with BackendServer(backend) as url, client(url, backoff_max_s=0.05) as api:
        started = time.monotonic()
        assert len(list(api.list_documents(DAY_START, DAY_END))) == 3
        assert time.monotonic() - started < 10  # not an hour


def test_a_document_listed_twice_lands_once(tmp_path) -> None:
    class Twice(DocumentSource):
        """A source whose listing repeats a document (as a page shifting under paging can)."""

        name = "twice"

        def list_documents(self, start, end):
            for minute in (1, 2):
                yield DocumentRef("k", "a.txt", "mem://k", "a.txt", 5, UPLOAD_TIME + timedelta(minutes=minute))

        def read(self, ref):
            return b"hello"

    frame = land_documents(Twice(), BlobStore(tmp_path), DAY_START, DAY_END, max_bytes=100)
    assert len(frame) == 1 and frame["uploaded_at"][0] == UPLOAD_TIME + timedelta(minutes=2)


def test_entries_that_break_the_contract_are_flagged_or_skipped_and_the_rest_listed(backend: FakeBackend) -> None:
    when = UPLOAD_TIME.isoformat()
    backend.raw_entries = [
        {"id": "bad-size", "name": "s.txt", "size": "many", "uploaded_at": when},
        {"id": "x" * 600, "name": "long.txt", "size": 5, "uploaded_at": when},
        {"id": "\ud800", "name": "surrogate.txt", "size": 5, "uploaded_at": when},
        {"id": "no-time", "name": "t.txt", "size": 5},
        {"id": "bad-time", "name": "t.txt", "size": 5, "uploaded_at": "yesterday"},
        7,
    ]
    backend.raw_deletions = [{"id": "", "deleted_at": when}, {"id": "doc-0"}, ["doc-1"]]
    backend.delete("doc-2", UPLOAD_TIME + timedelta(hours=1))
    with BackendServer(backend) as url, client(url) as api:
        refs = list(api.list_documents(DAY_START, DAY_END))
        again = list(api.list_documents(DAY_START, DAY_END))
        deleted, _ = api.deleted_page(DAY_START, DAY_END)
        skipped = api.skipped_entries
    good = [r for r in refs if r.defect is None]
    assert [r.key for r in good] == ["doc-0", "doc-1"]
    flagged = {r.name: r for r in refs if r.defect}
    assert set(flagged) == {"s.txt", "long.txt", "surrogate.txt"}
    assert flagged["s.txt"].key == "bad-size" and flagged["s.txt"].defect == "size is not a number: 'many'"
    assert flagged["long.txt"].defect == "id is empty or over 512 characters (600)"
    assert "surrogates not allowed" in flagged["surrogate.txt"].defect
    # An unusable id gets a key hashed from the entry: the same entry is the same document each time.
    for name in ("long.txt", "surrogate.txt"):
        assert flagged[name].key.startswith("invalid-entry-")
    assert [r.key for r in refs] == [r.key for r in again]
    # A deletion with a usable id but no usable time was still deleted, within its window.
    assert [(d.key, d.deleted_at) for d in deleted] == [("doc-2", UPLOAD_TIME + timedelta(hours=1)), ("doc-0", DAY_END)]
    assert len(skipped) == 2 * 3 + 2  # each listing skipped its 3 entries without a time, the feed 2
    assert skipped[0] == "listing entry skipped, no upload day can be given to it: uploaded_at is missing"
    assert any("entry is not an object: 7" in line for line in skipped)
    assert [line for line in skipped if line.startswith("deletion")] == [
        "deletion entry skipped: id is empty or over 512 characters (0)",
        "deletion entry skipped: id is missing",
    ]
    # A flagged entry's version names its defect: fixed at the source, it is a new version.
    fixed = DocumentRef(**{**flagged["s.txt"].__dict__, "defect": None})
    assert flagged["s.txt"].version.startswith(fixed.version + ":invalid-")


def test_entry_problems_are_quoted_short_and_sizes_stay_in_range(backend: FakeBackend) -> None:
    when = UPLOAD_TIME.isoformat()
    backend.raw_entries = [
        {"id": "huge", "name": "huge.txt", "size": 10**30, "uploaded_at": when},
        {"id": "late", "name": "late.txt", "size": 5, "uploaded_at": "x" * 5000},
    ]
    with BackendServer(backend) as url, client(url) as api:
        refs = {r.key: r for r in api.list_documents(DAY_START, DAY_END)}
        skipped = api.skipped_entries
    assert refs["huge"].defect == "size out of range: " + repr(10**30)
    assert len(skipped) == 1 and "'xxx" in skipped[0] and len(skipped[0]) < 200
