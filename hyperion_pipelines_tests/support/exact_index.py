"""The index checked against the source documents exactly: the chunk ids computed from the source
bytes alone (parsed and chunked in the test's process) against every entry stored behind the live
alias, as a list, so that an id stored twice shows."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

from hyperion_pipelines.chunking.stage import chunk_documents
from hyperion_pipelines.embedding.base import Embedder
from hyperion_pipelines.embedding.space import context_tokens, space_fingerprint
from hyperion_pipelines.ids import document_id
from hyperion_pipelines.index.connection import connect
from hyperion_pipelines.orchestration.resources.embedder import SentenceTransformerResource
from hyperion_pipelines.orchestration.resources.state import StateDatabaseResource
from hyperion_pipelines.parsing.document import ParseError
from hyperion_pipelines.parsing.registry import parse_document
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.sources.media_type import sniff_media_type
from hyperion_pipelines.spec import PipelineSpec

from ..conftest import set_upload_time
from .sample_pipeline import default_spec


def expected_chunk_ids(
    spec: PipelineSpec,
    documents: dict[str, tuple[str, str, bytes]],
    *,
    skip_unparseable: bool = False,
    embedder: Embedder | None = None,
) -> set[str]:
    """The chunk ids the index must hold for ``documents`` (document id -> (source, file name,
    bytes)), each parsed in this process and chunked with the model's tokenizer. A document that
    cannot be parsed is an error, unless ``skip_unparseable`` (a corpus that is not hand-picked,
    whose unparseable documents the pipeline quarantines). ``embedder``: the one the pipeline
    used, when not the packaged model (its identity enters the chunk ids)."""
    embedder = embedder or SentenceTransformerResource().get()
    rows = []
    for doc_id, (source, name, content) in documents.items():
        try:
            parsed = parse_document(content, sniff_media_type(content, name), spec.parsing.accepted_media_types)
        except ParseError:
            if skip_unparseable:
                continue
            raise
        rows.append(
            {
                "document_id": doc_id,
                "source": source,
                "sha256": "",
                "status": "parsed",
                "title": parsed.title,
                "text": parsed.text,
                "page_offsets": parsed.page_offsets,
                "headings": [{"level": h.level, "text": h.text, "offset": h.offset} for h in parsed.headings],
            }  # fmt: skip
        )
    fingerprint = space_fingerprint(spec, embedder.identity)
    chunks = chunk_documents(
        pd.DataFrame(rows),
        embedder.tokenizer,
        spec.chunking,
        fingerprint,
        context_tokens=context_tokens(spec.chunking, embedder.identity),
    )
    return set(chunks["chunk_id"])


def stored_ids(settings: Settings, alias: str = "hyperion_documents") -> list[str]:
    """Every entry id behind the live alias, duplicates kept."""
    client = connect(settings.milvus_uri)
    try:
        collection = client.describe_alias(alias)["collection_name"]
        client.load_collection(collection)
        iterator = client.query_iterator(collection, batch_size=4096, filter='id != ""', output_fields=["id"])
        ids: list[str] = []
        while batch := iterator.next():
            ids.extend(row["id"] for row in batch)
        iterator.close()
        return ids
    finally:
        client.close()


def upload_documents(uploads: Path) -> dict[str, tuple[str, str, bytes]]:
    """The documents of an uploads folder as the pipeline names them (hidden files are not)."""
    return {
        document_id("uploads", path.relative_to(uploads).as_posix()): (
            path.relative_to(uploads).as_posix(),
            path.name,
            path.read_bytes(),
        )
        for path in sorted(uploads.rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(uploads).parts)
    }


def assert_index_matches_uploads(settings: Settings, embedder: Embedder | None = None) -> int:
    """The live index holds exactly the chunks of the uploads folder's documents, each once;
    returns how many entries that is. ``embedder``: see :func:`expected_chunk_ids`."""
    ids = stored_ids(settings)
    duplicates = len(ids) - len(set(ids))
    assert duplicates == 0, f"{duplicates} ids stored more than once"
    expected = expected_chunk_ids(default_spec(settings), upload_documents(settings.uploads_dir), embedder=embedder)
    missing, orphans = expected - set(ids), set(ids) - expected
    assert not missing and not orphans, f"{len(missing)} missing, {len(orphans)} orphans of {len(expected)}"
    return len(ids)


def indexed_documents(settings: Settings, pipeline: str = "documents") -> dict:
    """The index manifest: the documents recorded as indexed, with their versions."""
    with StateDatabaseResource(url=settings.state_db_url).process_config_and_initialize_cm() as state:
        return state.manifest(pipeline).indexed()


_VOCABULARY = (
    "river glacier harbour orchard lantern meadow copper basalt falcon willow quarry beacon tide "
    "compass ember thistle granite canyon lichen prairie estuary summit marsh heron kiln loom "
    "anvil spindle cedar sorrel bramble plover fjord delta tundra mesa atoll lagoon reef dune"
)
WORDS = _VOCABULARY.split()


def generated_text(seed: int, sentences: int) -> str:
    """Deterministic prose-like text: ``sentences`` sentences of 8 to 16 words."""
    rng = random.Random(seed)
    out = []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 16))]
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


def write_generated_uploads(uploads: Path, count: int, sentences: int = 60) -> list[Path]:
    """``count`` text documents of ``sentences`` sentences each (about 4 chunks at 60), uploaded
    on the tests' upload day."""
    paths = []
    for i in range(count):
        path = uploads / f"generated/doc-{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"Document {i}\n\n{generated_text(i, sentences)}\n", encoding="utf-8")
        set_upload_time(path)
        paths.append(path)
    return paths
