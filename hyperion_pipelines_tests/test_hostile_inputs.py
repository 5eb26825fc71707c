"""Hostile uploads through the real pipeline (sandboxed parser, packaged model, milvus-lite):
each bad file is quarantined with its reason, the rest is indexed, and the index holds exactly the
chunks of the good documents. Hostile backend document ids never lead outside the API or
HYPERION_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from hyperion_pipelines.definitions import build_definitions, default_spec
from hyperion_pipelines.defs.pipeline import build_pipeline
from hyperion_pipelines.defs.resources import build_resources
from hyperion_pipelines.ids import document_id
from hyperion_pipelines.parsing.document import REASONS
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.spec import BackendApiSource, PipelineSpec

from .backend_server import BackendServer, FakeBackend, StoredDocument
from .conftest import UPLOAD_DAY, UPLOAD_TIME
from .exact_index import expected_chunk_ids
from .hostile_corpus import MAX_DOCUMENT_BYTES, NOT_LISTED, OUTSIDE_SECRET, SCRIPT_MARKERS, write_corpus
from .test_backend_api import TOKEN
from .test_pipeline import index_entries

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
    parsed = result.output_for_node("parsed_documents")
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
        monkeypatch.setenv("HYPERION_BACKEND_URL", url)
        monkeypatch.setenv("HYPERION_BACKEND_TOKEN", TOKEN)
        settings = Settings.from_env()
        spec = default_spec(settings).model_copy(update={"source": BackendApiSource(kind="backend_api")})
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


def test_listing_entries_that_break_the_contract_are_quarantined_and_the_rest_indexed_exactly(
    hyperion_env: Settings, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = FakeBackend(token=TOKEN)
    for i in range(3):
        text = f"Document {i}: razor clams dig down through wet sand faster than most people can dig after them.\n"
        backend.add(StoredDocument(f"doc-{i}", f"doc-{i}.txt", text.encode() * 3, UPLOAD_TIME))
    when = UPLOAD_TIME.isoformat()
    backend.raw_entries = [
        {"id": "doc-size", "name": "size.txt", "size": -3, "uploaded_at": when},
        {"id": "y" * 513, "name": "long-id.txt", "size": 10, "uploaded_at": when},
        {"id": "doc-untimed", "name": "untimed.txt", "size": 10, "uploaded_at": "1st of never"},
    ]
    with BackendServer(backend) as url:
        monkeypatch.setenv("HYPERION_BACKEND_URL", url)
        monkeypatch.setenv("HYPERION_BACKEND_TOKEN", TOKEN)
        settings = Settings.from_env()
        spec = default_spec(settings).model_copy(update={"source": BackendApiSource(kind="backend_api")})
        result = materialize_partition(settings, spec, instance)
        again = materialize_partition(settings, spec, instance)

    # The two entries that name a document are quarantined unread, with what was wrong; the one
    # that cannot be placed in a day is skipped and counted; nothing of them was downloaded.
    quarantined = result.output_for_node("quarantined_documents")
    assert dict(zip(quarantined["source"], quarantined["reason"], strict=True)) == {
        "size.txt": "invalid_listing", "long-id.txt": "invalid_listing",
    }  # fmt: skip
    messages = dict(zip(quarantined["source"], quarantined["message"], strict=True))
    assert messages["size.txt"] == "size is not a non-negative whole number: -3"
    assert messages["long-id.txt"] == "id is empty or over 512 characters (513)"
    landed = result.asset_materializations_for_node("raw_documents")[0]
    assert landed.metadata["listing_entries_skipped"].value == 1
    assert not [path for path, _ in backend.requests if "doc-size" in path or "y" * 513 in path]
    # The rest of the day is indexed exactly; a re-run quarantines the same two, no more.
    documents = {document_id("backend", d.id): (d.name, d.name, d.content) for d in backend.documents.values()}
    assert set(index_entries(settings)) == expected_chunk_ids(spec, documents)
    assert sorted(ledger_reasons(settings, spec).items()) == [
        ("long-id.txt", "invalid_listing"), ("size.txt", "invalid_listing"),
    ]  # fmt: skip
    assert len(again.output_for_node("quarantined_documents")) == 2
