"""Hostile uploads through the real pipeline (sandboxed parser, packaged model, milvus-lite):
each bad file is quarantined with its reason, the rest is indexed, and the index holds exactly the
chunks of the good documents. Hostile backend document ids never lead outside the API or
HYPERION_HOME."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from hyperion_pipelines.automation.change_feed import scan_feed
from hyperion_pipelines.components.declaration import resolve_built_spec
from hyperion_pipelines.definitions import build_definitions
from hyperion_pipelines.ids import document_id
from hyperion_pipelines.orchestration.pipeline import build_pipeline
from hyperion_pipelines.orchestration.resources import build_resources
from hyperion_pipelines.parsing.document import REASONS
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.spec import BackendApiSource, PipelineSpec
from hyperion_pipelines.step_outputs.parts import whole

from ..conftest import UPLOAD_DAY, UPLOAD_TIME
from ..support.backend_server import TOKEN, BackendServer, FakeBackend, StoredDocument
from ..support.exact_index import expected_chunk_ids, stored_ids
from ..support.hostile_corpus import MAX_DOCUMENT_BYTES, NOT_LISTED, OUTSIDE_SECRET, SCRIPT_MARKERS, write_corpus
from ..support.pipeline_runs import index_entries
from ..support.sample_pipeline import default_spec

FEED_START = UPLOAD_TIME.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
PARSE_MEMORY_MB = 256  # the smallest limit allowed: a bomb must be stopped by its reason under it


@pytest.fixture
def instance(hyperion_env: Settings):
    with DagsterInstance.ephemeral() as instance:
        yield instance


def materialize_partition(settings: Settings, spec: PipelineSpec, instance: DagsterInstance):
    result = materialize(
        build_pipeline(spec).assets,
        partition_key=UPLOAD_DAY,
        resources=build_definitions(settings, [spec]).resources,
        instance=instance,
        raise_on_error=False,
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def ledger_reasons(settings: Settings, spec: PipelineSpec) -> dict[str, str]:
    """The quarantine ledger's open entries for the day: source -> reason."""
    resource = build_resources(settings, spec)[spec.resources.state]
    with resource.process_config_and_initialize_cm() as state:
        return {e.source: e.reason for e in state.ledger(spec.name).entries(partition=UPLOAD_DAY)}


def backend_pipeline(url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, PipelineSpec]:
    """The default pipeline reading from the backend API served at ``url``."""
    monkeypatch.setenv("HYPERION_BACKEND_URL", url)
    monkeypatch.setenv("HYPERION_BACKEND_TOKEN", TOKEN)
    settings = Settings.from_env()
    spec = default_spec(settings).model_copy(update={"source": BackendApiSource(kind="backend_api")})
    return settings, resolve_built_spec(spec, settings)


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if not path.is_dir()}


def test_hostile_uploads_are_quarantined_with_their_reasons_and_the_rest_is_indexed_exactly(
    hyperion_env: Settings, instance: DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYPERION_MAX_DOCUMENT_BYTES", str(MAX_DOCUMENT_BYTES))
    monkeypatch.setenv("HYPERION_PARSE_MEMORY_MB", str(PARSE_MEMORY_MB))
    outside = tmp_path / "outside"
    outside.mkdir()
    corpus = write_corpus(hyperion_env.uploads_dir, outside=outside)
    settings = Settings.from_env()
    spec = default_spec(settings)
    assert spec.parsing.limits.memory_bytes == PARSE_MEMORY_MB * 1024 * 1024
    hostile = {relative: entry.reason for relative, entry in corpus.items() if entry.reason in REASONS}
    hidden = {relative for relative, entry in corpus.items() if entry.reason == NOT_LISTED}
    good = {relative: entry for relative, entry in corpus.items() if entry.reason is None}
    assert len(hostile) >= 25 and len(good) >= 25 and len(hostile) + len(good) + len(hidden) == len(corpus)

    result = materialize_partition(settings, spec, instance)

    # Every hostile file, and only those, is quarantined with exactly its reason: in the asset and
    # in the ledger. The bomb is refused for its size, not killed for memory under a 256 MiB cap.
    quarantined = result.output_for_node("quarantined_documents")
    assert dict(zip(quarantined["source"], quarantined["reason"], strict=True)) == hostile
    assert ledger_reasons(settings, spec) == hostile
    assert not {"parse_memory", "parser_crashed", "parse_timeout"} & set(quarantined["reason"])
    parsed = whole(result.output_for_node("parsed_documents"))
    assert set(parsed.loc[parsed["status"] == "parsed", "source"]) == set(good)
    assert len(parsed) == len(hostile) + len(good)  # dot-files (and the symlink) are not documents
    done = parsed[parsed["status"] == "parsed"]
    assert done["title"].str.strip().astype(bool).all()  # an empty "#" line is not a title
    assert all(h["text"].strip() for headings in done["headings"] for h in headings)

    # The index holds exactly the chunks of the good documents, computed from their bytes alone.
    entries = index_entries(settings)
    ids = {
        document_id("uploads", relative): (relative, relative.rsplit("/", 1)[-1], e.content)
        for relative, e in good.items()
    }
    assert set(entries) == expected_chunk_ids(spec, ids)
    text_of = {relative: " ".join(t for s, t in entries.values() if s == relative) for relative in good}
    for relative, entry in good.items():
        assert entry.phrase and entry.phrase in text_of[relative], relative
    indexed = " ".join(text_of.values())
    assert not [marker for marker in SCRIPT_MARKERS if marker in indexed]
    # The symlink out of the uploads folder and the hidden file are not documents at all.
    assert OUTSIDE_SECRET not in indexed and "links/passwd.txt" not in set(parsed["source"])
    assert not hidden & set(parsed["source"])


HOSTILE_IDS = {
    "../../etc/passwd": "passwd.txt",
    "/etc/shadow": "shadow.txt",
    "%2e%2e%2f%2e%2e%2fetc%2fhosts": "hosts.txt",
    "..": "dotdot.txt",
    ".": "dot.txt",
    "..\\..\\boot.ini": "boot.ini.txt",
    "a/../../b": "../../../escape.txt",
    "docs/./x?y=1#frag": "query.txt",
    "line\nbreak\x00nul": "/absolute/name.txt",
}


def test_hostile_backend_ids_stay_inside_the_api_and_hyperion_home(
    hyperion_env: Settings, instance: DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = FakeBackend(token=TOKEN)
    for i, (doc_id, name) in enumerate(HOSTILE_IDS.items()):
        text = f"Document {i} of the hostile ids: lugworms leave coiled casts on sandy beaches at low tide.\n"
        backend.add(StoredDocument(doc_id, name, text.encode() * 3, UPLOAD_TIME, path=f"../../{name}"))
    before = files_under(tmp_path.resolve())
    with BackendServer(backend) as url:
        settings, spec = backend_pipeline(url, monkeypatch)
        result = materialize_partition(settings, spec, instance)

    # Each id was fetched as one path segment of /documents/{id}/content, never another resource.
    fetched = [path for path, _ in backend.requests if path not in ("/documents", "/deletions")]
    assert len(fetched) == len(HOSTILE_IDS)
    assert all(p.startswith("/documents/") and p.endswith("/content") and p.count("/") == 3 for p in fetched)
    assert result.output_for_node("quarantined_documents").empty
    # Every document is indexed under its own id, exactly; its hostile name is only a label.
    entries = index_entries(settings)
    documents = {
        document_id("backend", doc_id): (f"../../{name}", name, backend.documents[doc_id].content)
        for doc_id, name in HOSTILE_IDS.items()
    }
    assert set(entries) == expected_chunk_ids(spec, documents)
    # Nothing was written outside HYPERION_HOME; the blob store holds only content-addressed files.
    home = hyperion_env.home
    assert {p for p in files_under(tmp_path.resolve()) - before if not p.is_relative_to(home)} == set()
    blobs = home / "blobs"
    # (beside them, the parse and chunk caches' entries, under their own folders)
    caches = ("_parsed", "_chunks")
    assert all(len(p.name) == 64 or p.relative_to(blobs).parts[0] in caches for p in files_under(blobs))


def pending_days(settings: Settings, spec: PipelineSpec) -> dict[str, list[str]]:
    """What the upload sensor's scan of the backend's feed finds waiting, from the start: day -> changes."""
    resources = build_resources(settings, spec)
    with (
        resources[spec.resources.state].process_config_and_initialize_cm() as state,
        resources[spec.resources.source].process_config_and_initialize_cm() as source,
        source.open() as feed,
    ):
        scan = scan_feed(feed, state.manifest(spec.name), {}, start=FEED_START, now=datetime.now(UTC), max_pages=50)
    return {day: sorted(item.split(":")[0] for item in changes.items) for day, changes in scan.pending.items()}


def test_listing_entries_that_break_the_contract_are_quarantined_and_the_rest_indexed_exactly(
    hyperion_env: Settings, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = FakeBackend(token=TOKEN)
    for i in range(3):
        text = f"Document {i}: razor clams dig down through wet sand faster than most people can dig after them.\n"
        backend.add(StoredDocument(f"doc-{i}", f"doc-{i}.txt", text.encode() * 3, UPLOAD_TIME))
    named = b"Document named: a lugworm's cast is the sand it has swallowed and passed.\n" * 3
    when = UPLOAD_TIME.isoformat()
    backend.raw_entries = [
        {"id": "doc-size", "name": "size.txt", "size": -3, "uploaded_at": when},
        {"id": "y" * 513, "name": "long-id.txt", "size": 10, "uploaded_at": when, "etag": 1},
        {"id": "doc-named", "name": None, "path": "named.txt", "size": len(named), "uploaded_at": when},
        {"id": "doc-untimed", "name": "untimed.txt", "size": 10, "uploaded_at": "1st of never"},
    ]
    with BackendServer(backend) as url:
        settings, spec = backend_pipeline(url, monkeypatch)
        result = materialize_partition(settings, spec, instance)
        backend.raw_entries[1]["etag"] = 2  # a field outside the contract changed: the same document
        again = materialize_partition(settings, spec, instance)
        # The sensor settles: the manifest holds what it sees, nothing is requested again.
        assert pending_days(settings, spec) == {}
        # The backend fixes the bad name: a new version of that document, so its day runs again.
        backend.raw_entries.pop(2)
        backend.add(StoredDocument("doc-named", "named.txt", named, UPLOAD_TIME, path="named.txt"))
        assert pending_days(settings, spec) == {UPLOAD_DAY: ["edited"]}
        fixed = materialize_partition(settings, spec, instance)
        assert pending_days(settings, spec) == {}

    # The entries that name a document are quarantined unread, with what was wrong; the one that
    # cannot be placed in a day is skipped and counted; none of them was downloaded.
    quarantined = result.output_for_node("quarantined_documents")
    assert dict(zip(quarantined["source"], quarantined["reason"], strict=True)) == {
        "size.txt": "invalid_listing", "long-id.txt": "invalid_listing", "named.txt": "invalid_listing",
    }  # fmt: skip
    messages = dict(zip(quarantined["source"], quarantined["message"], strict=True))
    assert messages == {
        "size.txt": "size is not a non-negative whole number: -3",
        "long-id.txt": "id is empty or over 512 characters (513)",
        "named.txt": "name is not a string: None",
    }
    landed = result.asset_materializations_for_node("raw_documents")[0]
    assert landed.metadata["listing_entries_skipped"].value == 1
    assert len(again.output_for_node("quarantined_documents")) == 3  # the same three, no more
    fetched = {path for path, _ in backend.requests if path not in ("/documents", "/deletions")}
    assert fetched == {f"/documents/doc-{i}/content" for i in (0, 1, 2, "named")}  # "named" once fixed
    # The index holds exactly the chunks of the good documents, each once, the fixed one included.
    assert fixed.output_for_node("quarantined_documents")["source"].tolist() == ["long-id.txt", "size.txt"]
    ids = stored_ids(settings)
    assert len(ids) == len(set(ids))
    documents = {
        document_id("backend", d.id): (d.path or d.name, d.name, d.content) for d in backend.documents.values()
    }
    assert set(ids) == expected_chunk_ids(spec, documents)
    assert sorted(ledger_reasons(settings, spec).items()) == [
        ("long-id.txt", "invalid_listing"), ("size.txt", "invalid_listing"),
    ]  # fmt: skip
