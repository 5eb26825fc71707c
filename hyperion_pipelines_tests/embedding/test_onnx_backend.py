"""The onnx embedding backend: a real export of the packaged model, loaded by the project's embedder."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hyperion_pipelines.cli import main
from hyperion_pipelines.components.declaration import PipelineDeclaration, PipelineDeclarationError, resolve_spec
from hyperion_pipelines.embedding import sentence_transformer
from hyperion_pipelines.embedding.onnx_export import (
    FP32_FILE,
    OnnxExport,
    OnnxExportError,
    default_export_dir,
    export_onnx,
    quantized_file_name,
    read_export,
)
from hyperion_pipelines.embedding.sentence_transformer import (
    SentenceTransformerEmbedder,
    length_batches,
    packaged_model_dir,
)
from hyperion_pipelines.embedding.space import space_fingerprint
from hyperion_pipelines.orchestration.resources import embedder_resource
from hyperion_pipelines.settings import Settings, SettingsError
from hyperion_pipelines.spec import PipelineSpec

INT8 = quantized_file_name("avx512_vnni")
SENTENCES = [
    "How often should a sourdough starter be fed, and with how much flour?",
    "Mountain bike tyres want less pressure than road tyres.",
    "Honeybees cluster together to keep the queen warm through the winter.",
    "The lighthouse keeper logged the weather every four hours.",
    "word " * 400,  # longer than the model's 256 tokens: both backends truncate alike
]


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> OnnxExport:
    """The packaged model exported once for this module: fp32 and int8 (avx512_vnni preset)."""
    return export_onnx(packaged_model_dir(), tmp_path_factory.mktemp("onnx") / "export", quantize=["avx512_vnni"])


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return SentenceTransformerEmbedder(backend="torch").embed(SENTENCES)


def onnx_embedder(export: OnnxExport, onnx_file: str) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(export.folder, backend="onnx", onnx_file=onnx_file)


def test_the_export_holds_the_graphs_and_the_model_files_but_not_the_torch_weights(export: OnnxExport) -> None:
    assert sorted(export.manifest["files"]) == sorted([FP32_FILE, INT8])
    assert export.quantization(FP32_FILE) is None and export.quantization(INT8) == "avx512_vnni"
    assert (export.folder / "tokenizer.json").is_file() and (export.folder / "1_Pooling" / "config.json").is_file()
    assert not list(export.folder.glob("*.safetensors"))
    assert export.manifest["fp32_min_cosine_vs_torch"] > 0.9999


@pytest.mark.parametrize(("onnx_file", "floor"), [(FP32_FILE, 0.9999), (INT8, 0.95)])
def test_onnx_vectors_agree_with_torch(
    export: OnnxExport, torch_vectors: np.ndarray, onnx_file: str, floor: float
) -> None:
    vectors = onnx_embedder(export, onnx_file).embed(SENTENCES)
    assert vectors.shape == torch_vectors.shape and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.sum(vectors * torch_vectors, axis=1).min() > floor


def test_batches_are_bounded_by_texts_and_padded_tokens_longest_first() -> None:
    lengths = [5, 300, 40, 40, 12, 256, 3, 40]
    batches = length_batches(lengths, max_texts=3, max_tokens=100)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert [[lengths[i] for i in batch] for batch in batches] == [[300], [256], [40, 40], [40, 12], [5, 3]]
    for batch in batches:  # padded to its first (longest) text; one text alone may exceed the budget
        assert len(batch) <= 3 and (len(batch) == 1 or lengths[batch[0]] * len(batch) <= 100)
    assert length_batches([], 64, 2048) == []
    with pytest.raises(ValueError, match="room for a text"):
        length_batches([1], 0, 2048)


class RecordingSession:
    """An ONNX Runtime session that records the shape of every batch it runs."""

    def __init__(self, session: Any, shapes: list[tuple[int, int]]) -> None:
        self.session, self.shapes = session, shapes

    def get_inputs(self) -> Any:
        return self.session.get_inputs()

    def run(self, outputs: Any, feed: dict[str, np.ndarray]) -> Any:
        self.shapes.append(feed["input_ids"].shape)
        return self.session.run(outputs, feed)


def test_batches_hold_at_most_the_token_budget_and_vectors_do_not_depend_on_them(
    export: OnnxExport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forty 200-token texts at 64 texts a batch run in batches of at most BATCH_TOKENS padded
    tokens, and their fp32 vectors equal those of each text alone, in order."""
    texts = [f"{i} " + " ".join(f"w{(i * 7 + j) % 97}" for j in range(120)) for i in range(40)] + SENTENCES
    embedder = onnx_embedder(export, FP32_FILE)
    shapes: list[tuple[int, int]] = []
    recording = [RecordingSession(session, shapes) for session in embedder.model._sessions]
    monkeypatch.setattr(embedder.model, "_sessions", recording)
    batched = embedder.embed(texts)
    assert sum(rows for rows, _ in shapes) == len(texts) and len(shapes) > 2
    assert all(rows * width <= sentence_transformer.BATCH_TOKENS or rows == 1 for rows, width in shapes)
    monkeypatch.setattr(sentence_transformer, "BATCH_TOKENS", 1)  # every text in a batch of its own
    shapes.clear()
    alone = embedder.embed(texts)
    assert [rows for rows, _ in shapes] == [1] * len(texts)
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    assert np.argmax(batched @ alone.T, axis=1).tolist() == list(range(len(texts)))


@pytest.mark.parametrize("cores", [1, 2, 3])
def test_sessions_side_by_side_give_the_vectors_of_one_session_in_the_texts_order(
    export: OnnxExport, cores: int
) -> None:
    """The int8 graph quantises activations per batch, so only the same batches can be compared:
    the batches are planned once and run on one session, then on ``cores`` sessions taking them
    as they finish; every text's vector is the same and in its place."""
    texts = [" ".join(f"t{(i * 13 + j) % 211}" for j in range(5 + (i * 37) % 150)) for i in range(60)]
    one = sentence_transformer.OnnxSentenceEncoder(export.folder, INT8, plan=(1, 1))
    several = sentence_transformer.OnnxSentenceEncoder(export.folder, INT8, plan=(cores, 1))
    assert len(several._sessions) == cores
    encodings = one.tokenize(texts)
    batches = sentence_transformer.length_batches([len(e.ids) for e in encodings], 64, 256)
    expected = one.run_batches(encodings, batches)
    np.testing.assert_array_equal(several.run_batches(encodings, batches), expected)
    alone = one.run_batches(encodings, [[i] for i in range(len(texts))])  # each text in its own batch
    assert np.argmax(expected @ alone.T, axis=1).tolist() == list(range(len(texts)))


def test_a_session_plan_bounds_the_sessions_and_leaves_at_most_a_few_cores_idle() -> None:
    plan = sentence_transformer.session_plan
    assert [plan(cores) for cores in (0, 1, 2, 8)] == [(1, 1), (1, 1), (2, 1), (8, 1)]
    assert [plan(cores) for cores in (12, 16, 9)] == [(6, 2), (8, 2), (4, 2)]
    for cores in range(1, 65):
        sessions, threads = plan(cores)
        assert sessions <= sentence_transformer.MAX_SESSIONS and sessions * threads <= cores
        assert cores - sessions * threads < threads  # fewer idle cores than a session's threads


def test_embedders_share_a_loaded_graph_until_its_file_changes(tmp_path: Path, export: OnnxExport) -> None:
    copy = tmp_path / "export"
    shutil.copytree(export.folder, copy)
    first, second = (SentenceTransformerEmbedder(copy, backend="onnx", onnx_file=INT8) for _ in range(2))
    assert first.model is second.model
    graph = copy / "onnx" / INT8
    os.utime(graph, ns=(graph.stat().st_atime_ns, graph.stat().st_mtime_ns + 1_000_000_000))
    assert SentenceTransformerEmbedder(copy, backend="onnx", onnx_file=INT8).model is not first.model


def test_fp32_shares_torchs_embedding_space_and_int8_has_its_own(export: OnnxExport) -> None:
    spec = PipelineSpec(name="documents")
    torch_identity = SentenceTransformerEmbedder(backend="torch").identity
    fp32 = onnx_embedder(export, FP32_FILE).identity
    int8 = onnx_embedder(export, INT8).identity
    assert fp32 == torch_identity
    assert space_fingerprint(spec, fp32) == space_fingerprint(spec, torch_identity)
    assert int8.model_name.startswith(torch_identity.model_name + "+onnx-qint8_avx512_vnni@")
    assert (int8.dimension, int8.max_tokens) == (torch_identity.dimension, torch_identity.max_tokens)
    assert space_fingerprint(spec, int8) != space_fingerprint(spec, torch_identity)


def test_a_missing_export_names_the_command_that_makes_it(tmp_path: Path, export: OnnxExport) -> None:
    embedder = SentenceTransformerEmbedder(backend="onnx", exports_root=tmp_path / "models")
    with pytest.raises(OnnxExportError, match=r"Run 'hyperion export-onnx'.*offline"):
        embedder.embed(["a text"])
    with pytest.raises(OnnxExportError, match="hyperion export-onnx"):
        _ = embedder.identity  # chunking needs the identity: it fails there first, with the same advice
    missing_file = onnx_embedder(export, quantized_file_name("avx2"))
    with pytest.raises(OnnxExportError, match="hyperion export-onnx --quantize int8 --quantize-config avx2"):
        missing_file.embed(["a text"])


def test_a_replaced_onnx_file_is_refused(tmp_path: Path, export: OnnxExport) -> None:
    copy = tmp_path / "export"
    shutil.copytree(export.folder, copy)
    shutil.copyfile(copy / "onnx" / FP32_FILE, copy / "onnx" / INT8)
    with pytest.raises(OnnxExportError, match="not the file 'hyperion export-onnx' wrote"):
        _ = SentenceTransformerEmbedder(copy, backend="onnx", onnx_file=INT8).identity


def test_backends_refuse_what_they_cannot_run(export: OnnxExport) -> None:
    with pytest.raises(ValueError, match="runs on the CPU"):
        SentenceTransformerEmbedder(backend="onnx", device="cuda")
    with pytest.raises(ValueError, match="is an ONNX export"):
        _ = SentenceTransformerEmbedder(export.folder, backend="torch").identity


def test_a_declared_pipeline_with_the_onnx_backend_resolves_and_embeds(
    hyperion_env: Settings, export: OnnxExport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYPERION_MODELS_DIR", str(hyperion_env.home / "models"))  # not the session's
    settings = Settings.from_env()
    target = default_export_dir(settings.models_dir, packaged_model_dir())
    target.parent.mkdir(parents=True)
    target.symlink_to(export.folder, target_is_directory=True)  # where 'hyperion export-onnx' puts it
    attributes = {"name": "fast", "embedding": {"kind": "local", "backend": "onnx", "onnx_file": INT8}}
    declared = PipelineDeclaration.model_validate(attributes).model_dump(exclude_unset=True)
    spec = resolve_spec(declared, settings)
    assert (spec.embedding.backend, spec.embedding.onnx_file) == ("onnx", INT8)
    resource = embedder_resource(spec, settings)
    assert (resource.backend, resource.onnx_file) == ("onnx", INT8)
    embedder = resource.get()
    assert "+onnx-qint8_avx512_vnni@" in embedder.identity.model_name
    assert embedder.embed(["is it ruined?"]).shape == (1, 384)


def test_the_deployment_setting_is_the_default_and_a_declaration_overrides_it(
    hyperion_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve_spec({"name": "plain"}, hyperion_env).embedding.backend == "auto"
    monkeypatch.setenv("HYPERION_EMBEDDING_BACKEND", f"onnx:{INT8}")
    settings = Settings.from_env()
    embedding = resolve_spec({"name": "plain"}, settings).embedding
    assert (embedding.backend, embedding.onnx_file) == ("onnx", INT8)
    assert embedder_resource(resolve_spec({"name": "plain"}, settings), settings).onnx_file == INT8
    assert resolve_spec({"name": "slow", "embedding": {"backend": "torch"}}, settings).embedding.backend == "torch"
    monkeypatch.setenv("HYPERION_EMBEDDING_BACKEND", "tensorrt")
    with pytest.raises(SettingsError, match="HYPERION_EMBEDDING_BACKEND"):
        Settings.from_env()
    with pytest.raises(PipelineDeclarationError, match="onnx_file"):
        resolve_spec({"name": "bad", "embedding": {"backend": "onnx", "onnx_file": "../model.onnx"}}, settings)


def test_export_onnx_command_keeps_an_export_that_has_the_files(
    export: OnnxExport, hyperion_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export-onnx", "--quantize", "int8", "--out", str(export.folder), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"folder": str(export.folder), "files": sorted([FP32_FILE, INT8]), "exported": False}


def test_auto_exports_the_int8_file_on_first_use_and_runs_it(tmp_path: Path, export: OnnxExport) -> None:
    root = tmp_path / "models"
    first = SentenceTransformerEmbedder(exports_root=root)
    assert (first.backend, first.onnx_file) == ("onnx", INT8)
    assert first.backend_note.startswith("onnx int8")
    made = read_export(default_export_dir(root, packaged_model_dir()))
    assert made is not None and sorted(made.manifest["files"]) == sorted([FP32_FILE, INT8])
    # the export is deterministic: the same files as the module's export, so the same space
    assert made.manifest["files"] == export.manifest["files"]
    explicit = SentenceTransformerEmbedder(export.folder, backend="onnx", onnx_file=INT8)
    assert first.identity == explicit.identity
    np.testing.assert_allclose(first.embed(SENTENCES), explicit.embed(SENTENCES), atol=1e-6)
    # a second process finds the export and does not make it again
    manifest = root / made.folder.name / "hyperion_onnx_export.json"
    written = manifest.stat().st_mtime_ns
    assert SentenceTransformerEmbedder(exports_root=root).identity == first.identity
    assert manifest.stat().st_mtime_ns == written


def test_auto_adds_the_int8_file_to_an_fp32_export(tmp_path: Path) -> None:
    root = tmp_path / "models"
    export_onnx(packaged_model_dir(), default_export_dir(root, packaged_model_dir()))  # 'hyperion export-onnx'
    embedder = SentenceTransformerEmbedder(exports_root=root)
    assert embedder.onnx_file == INT8
    assert sorted(embedder.export.manifest["files"]) == sorted([FP32_FILE, INT8])


def test_auto_runs_torch_where_the_export_fails_and_says_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the exports folder would be")
    embedder = SentenceTransformerEmbedder(exports_root=blocked)
    with caplog.at_level("WARNING", logger="hyperion_pipelines.embedding.backend_choice"):
        assert embedder.backend == "torch"
    assert "the int8 ONNX export" in embedder.backend_note and "failed" in embedder.backend_note
    assert any("failed" in record.getMessage() for record in caplog.records)
    assert embedder.identity == SentenceTransformerEmbedder(backend="torch").identity
    assert embedder.embed(["a text"]).shape == (1, 384)


def test_auto_runs_torch_without_onnx_runtime_and_on_a_gpu_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert SentenceTransformerEmbedder(device="cuda", exports_root=tmp_path).backend == "torch"
    import importlib.util

    from hyperion_pipelines.embedding import backend_choice

    real = importlib.util.find_spec
    monkeypatch.setattr(
        backend_choice.importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a)
    )
    embedder = SentenceTransformerEmbedder(exports_root=tmp_path / "models")
    assert embedder.backend == "torch" and "ONNX Runtime is not installed" in embedder.backend_note
    assert not (tmp_path / "models").exists()


def test_auto_runs_the_int8_file_of_an_export_named_as_the_model(export: OnnxExport) -> None:
    embedder = SentenceTransformerEmbedder(export.folder)
    assert (embedder.backend, embedder.onnx_file) == ("onnx", INT8)
