"""Deterministic ids: same inputs, same id; any defining change, a different one."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hyperion_pipelines.embedding.base import EmbedderIdentity
from hyperion_pipelines.embedding.space import check_chunk_size, space_fingerprint
from hyperion_pipelines.ids import chunk_id, document_id, text_sha256
from hyperion_pipelines.index.reconcile import rows_to_write
from hyperion_pipelines.spec import ChunkingSpec, PipelineSpec

MINILM = EmbedderIdentity("all-MiniLM-L6-v2", 384, True, 254)


def test_document_ids_are_stable_and_namespaced_by_source() -> None:
    assert document_id("uploads", "a/b.md") == document_id("uploads", "a/b.md")
    assert document_id("uploads", "a/b.md") != document_id("backend", "a/b.md")
    assert document_id("uploads", "a/b.md") != document_id("uploads", "a/c.md")
    assert len(document_id("uploads", "x")) == 32


def test_chunk_ids_depend_on_document_content_occurrence_and_space() -> None:
    base = dict(fingerprint="f1", document_id="d1", chunk_text_sha256=text_sha256("hello"), occurrence=0)
    same = chunk_id(**base)
    assert same == chunk_id(**base)
    for change in (
        {"fingerprint": "f2"}, {"document_id": "d2"}, {"chunk_text_sha256": text_sha256("hello!")}, {"occurrence": 1},
    ):  # fmt: skip
        assert chunk_id(**{**base, **change}) != same


def test_fingerprint_changes_with_model_chunking_and_parsing() -> None:
    spec = PipelineSpec(name="docs")
    fingerprint = space_fingerprint(spec, MINILM)
    assert fingerprint == space_fingerprint(PipelineSpec(name="other_name"), MINILM)  # names do not matter
    assert fingerprint != space_fingerprint(spec, EmbedderIdentity("bge-small", 384, True, 510))
    assert fingerprint != space_fingerprint(spec.model_copy(update={"chunking": ChunkingSpec(max_tokens=100)}), MINILM)
    parsing = spec.parsing.model_copy(update={"parser_version": "2"})
    assert fingerprint != space_fingerprint(spec.model_copy(update={"parsing": parsing}), MINILM)


def test_specs_reject_bad_values() -> None:
    with pytest.raises(ValidationError):
        ChunkingSpec(max_tokens=100, overlap_tokens=60)
    with pytest.raises(ValidationError):
        PipelineSpec(name="Bad Name")
    with pytest.raises(ValueError, match="exceeds"):
        check_chunk_size(PipelineSpec(name="docs", chunking=ChunkingSpec(max_tokens=400)), MINILM)


def test_models_in_same_named_folders_are_different_spaces(tmp_path) -> None:
    from hyperion_pipelines.embedding.sentence_transformer import model_name

    names = []
    for variant in ("a", "b"):
        folder = tmp_path / variant / "model"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text('{"hidden_size": 384}')
        (folder / "model.safetensors").write_bytes(variant.encode() * 1000)
        names.append(model_name(folder))
    assert names[0].startswith("model@") and names[0] != names[1]


def test_only_rows_the_index_lacks_or_holds_differently_are_written() -> None:
    stored = {
        "a": {"title": "Guide", "char_start": 0},
        "b": {"title": "Guide", "char_start": 120},
    }
    rows = [
        {"id": "a", "title": "Guide", "char_start": 0},  # identical: skipped
        {"id": "b", "title": "Guide", "char_start": 95},  # same text and vector, moved by an edit above it
        {"id": "c", "title": "Guide", "char_start": 300},  # new
    ]
    assert [r["id"] for r in rows_to_write(rows, stored, ["title", "char_start"])] == ["b", "c"]
