"""Quality gates in the running pipeline: blocking schema checks, index checks, retrieval quality."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dagster import AssetCheckSeverity, AssetKey, DagsterInstance, materialize

from hyperion_pipelines.definitions import build_definitions
from hyperion_pipelines.embedding.sentence_transformer import SentenceTransformerEmbedder
from hyperion_pipelines.evaluation.metrics import EvaluationResult
from hyperion_pipelines.evaluation.thresholds import assess
from hyperion_pipelines.index.connection import connect
from hyperion_pipelines.index.milvus_index import MilvusIndex
from hyperion_pipelines.index.verification import reconcile_partition, self_retrieval
from hyperion_pipelines.orchestration.pipeline import build_pipeline
from hyperion_pipelines.settings import SAMPLE_GOLDEN_QUERIES, Settings
from hyperion_pipelines.spec import EvaluationSpec, IndexSpec
from hyperion_pipelines.step_outputs.parts import whole

from ..conftest import REPO, UPLOAD_DAY, set_upload_time
from ..support.embedding_server import EmbeddingService, serve_embeddings
from ..support.pipeline_runs import run_partition
from ..support.sample_pipeline import default_spec

POISON = "POISONED-BY-THE-EMBEDDER"


@pytest.fixture
def instance(hyperion_env: Settings):
    with DagsterInstance.ephemeral() as instance:
        yield instance


def check_evaluations(result) -> dict[tuple[str, str], object]:
    return {
        (e.event_specific_data.asset_key.path[-1], e.event_specific_data.check_name): e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_a_partition_failing_its_schema_never_reaches_milvus(
    hyperion_env: Settings, sample_uploads: Path, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    poisoned = sample_uploads / "notes" / "poisoned.txt"
    poisoned.write_text(f"A perfectly normal note about compost heaps. {POISON} and its worms.\n", encoding="utf-8")
    set_upload_time(poisoned)
    with serve_embeddings(EmbeddingService(nan_marker=POISON)) as url:
        monkeypatch.setenv("HYPERION_EMBEDDER", "openai")
        monkeypatch.setenv("HYPERION_OPENAI_BASE_URL", url)
        settings = Settings.from_env()
        pipeline = build_pipeline(default_spec(settings))
        result = materialize(
            pipeline.assets,
            partition_key=UPLOAD_DAY,
            resources=build_definitions(settings).resources,
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    checks = check_evaluations(result)
    assert checks[("document_chunks", "schema")].passed
    failed = checks[("chunk_embeddings", "schema")]
    assert not failed.passed and failed.severity == AssetCheckSeverity.ERROR
    metadata = {k: v.value for k, v in failed.metadata.items()}
    assert metadata["failing_rows"] == 1 and metadata["failures"] >= 1
    assert "finite" in json.dumps(metadata["failures_by_check"])
    chunks = whole(result.output_for_node("document_chunks"))
    poisoned_id = chunks.loc[chunks["text"].str.contains(POISON), "chunk_id"].item()
    assert poisoned_id in metadata["failure_cases"]  # the failure table names the chunk
    # Nothing was written: no materialisation of vector_index, no collection behind the alias.
    materialized = {e.materialization.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert "vector_index" not in materialized
    client = connect(settings.milvus_uri)
    try:
        assert "hyperion_documents" not in client.list_aliases().get("aliases", [])
    finally:
        client.close()


def test_index_checks_pass_after_a_run_and_catch_what_is_wrong(
    hyperion_env: Settings, sample_uploads: Path, instance: DagsterInstance
) -> None:
    metadata = run_partition(hyperion_env, instance)
    chunks = metadata["document_chunks"]["chunks"]

    client = connect(hyperion_env.milvus_uri)
    try:
        index = MilvusIndex(client, IndexSpec(alias="hyperion_documents"))
        collection = index.live_collection()
        rows = client.query(collection, filter='id != ""', output_fields=["id", "document_id", "vector"], limit=16384)
        assert len(rows) == chunks
        ids = [row["id"] for row in rows]
        documents = sorted({row["document_id"] for row in rows})
        report = reconcile_partition(index, collection, ids, partition_date=UPLOAD_DAY, document_ids=documents)
        assert report.passed and report.found == report.expected == chunks

        # One expected chunk missing and one stray entry (a crashed writer's leftovers, say).
        full = client.query(collection, ids=[rows[0]["id"]], output_fields=["*"])[0]
        if not index.scores_bm25_locally(collection):
            full.pop("sparse", None)  # Milvus's BM25 function computes it from the text on insert
        client.insert(collection, [{**full, "id": "f" * 32}])
        report = reconcile_partition(
            index, collection, [*ids, "e" * 32], partition_date=UPLOAD_DAY, document_ids=documents
        )
        assert not report.passed
        assert report.missing == ["e" * 32] and report.orphans == ["f" * 32]

        # Self-retrieval: every stored vector finds itself; a vector that is not stored does not.
        vectors = np.asarray([row["vector"] for row in rows[:5]], dtype=np.float32)
        assert self_retrieval(index, collection, ids[:5], vectors).found_first == 5
        unseen = SentenceTransformerEmbedder().embed(["an unrelated sentence about submarine cables"])
        miss = self_retrieval(index, collection, ["d" * 32], unseen)
        assert miss.found_first == 0 and miss.misses[0].own_score is None
        # An identical copy stored under other ids (repeated boilerplate) still counts as found.
        copies = [{**full, "id": f"{i:032x}"} for i in range(8)]
        client.insert(collection, copies)
        repeated = self_retrieval(index, collection, [rows[0]["id"]], vectors[:1])
        assert repeated.found_first == 1
    finally:
        client.close()


def test_vector_index_reports_its_checks(hyperion_env: Settings, sample_uploads: Path, instance) -> None:
    settings = hyperion_env
    pipeline = build_pipeline(default_spec(settings))
    result = materialize(
        pipeline.assets, partition_key=UPLOAD_DAY, resources=build_definitions(settings).resources, instance=instance
    )
    checks = check_evaluations(result)
    assert {name for asset, name in checks if asset == "vector_index"} == {"matches_chunks", "self_retrieval"}
    reconciliation = {k: v.value for k, v in checks[("vector_index", "matches_chunks")].metadata.items()}
    chunks = len(whole(result.output_for_node("document_chunks")))
    assert reconciliation == {"expected": chunks, "found": chunks, "missing": 0, "orphans": 0, "duplicates": 0}
    retrieval = {k: v.value for k, v in checks[("vector_index", "self_retrieval")].metadata.items()}
    assert retrieval["sampled"] == min(chunks, 32) and retrieval["found_first"] == retrieval["sampled"]
    assert all(check.passed for check in checks.values())


def wrong_golden_set(path: Path) -> Path:
    """The bundled golden set with every query pointed at an unrelated document."""
    lines = [json.loads(line) for line in SAMPLE_GOLDEN_QUERIES.read_text(encoding="utf-8").splitlines() if line]
    sources = sorted({s for line in lines for s in line["relevant"]})
    for line in lines:
        line["relevant"] = [next(s for s in sources if s not in line["relevant"] and s.split("/")[0] != "web")]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("golden", "expected"),
    [("bundled", "passed"), ("wrong", AssetCheckSeverity.ERROR)],
)
def test_retrieval_evaluation_records_metrics_and_gates_on_thresholds(
    hyperion_env: Settings,
    sample_uploads: Path,
    instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    golden: str,
    expected,
) -> None:
    path = SAMPLE_GOLDEN_QUERIES if golden == "bundled" else wrong_golden_set(tmp_path / "wrong.jsonl")
    monkeypatch.setenv("HYPERION_GOLDEN_QUERIES", str(path))
    settings = Settings.from_env()
    run_partition(settings, instance)
    defs = build_definitions(settings)
    result = defs.resolve_job_def("evaluate_documents").execute_in_process(instance=instance, raise_on_error=False)
    event = result.get_asset_materialization_events()[0].materialization
    metadata = {k: v.value for k, v in event.metadata.items()}
    assert metadata["queries"] == 14 and metadata["k"] == 10
    quality = check_evaluations(result)[("retrieval_evaluation", "retrieval_quality")]
    if expected == "passed":
        assert quality.passed and metadata["mrr"] >= 0.9 and metadata["ndcg_at_k"] >= 0.9
    else:
        assert not quality.passed and quality.severity == expected and metadata["mrr"] < 0.4
        assert "below fail threshold" in quality.description
    # The metrics are recorded in the instance, where the UI plots their history.
    history = instance.fetch_materializations(AssetKey("retrieval_evaluation"), limit=10).records
    assert len(history) == 1 and history[0].asset_materialization.metadata["mrr"].value == metadata["mrr"]


def test_ingest_scores_the_golden_set_and_eval_scores_any_set(
    hyperion_env: Settings, sample_uploads: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "hyperion_pipelines.cli", *args], capture_output=True, text=True, cwd=REPO
        )

    monkeypatch.setenv("HYPERION_GOLDEN_QUERIES", str(SAMPLE_GOLDEN_QUERIES))
    ingest = cli("ingest", "--date", UPLOAD_DAY, "--json")
    assert ingest.returncode == 0, ingest.stderr
    evaluation = json.loads(ingest.stdout)["evaluation"]
    assert evaluation["check"] == "passed" and evaluation["queries"] == 14 and evaluation["mrr"] >= 0.9

    done = cli("eval", str(SAMPLE_GOLDEN_QUERIES), "-k", "3", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["k"] == 3 and report["queries"] == 14 and len(report["per_query"]) == 14
    assert report["recall_at_k"] > 0.85 and report["mrr"] > 0.9 and report["ndcg_at_k"] > 0.85
    text = cli("eval", str(SAMPLE_GOLDEN_QUERIES))
    assert text.returncode == 0 and "recall@10" in text.stdout and "MRR" in text.stdout

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "fine", "relevant": ["a.md"]}\n{"query": "no relevant"}\n', encoding="utf-8")
    refused = cli("eval", str(bad))
    assert refused.returncode == 2 and f"{bad}:2" in refused.stderr and "relevant" in refused.stderr


@pytest.mark.parametrize(
    ("recall", "mrr", "ndcg", "level"),
    [(0.95, 0.9, 0.9, "pass"), (0.7, 0.9, 0.9, "warn"), (0.95, 0.5, 0.3, "fail"), (0.8, 0.6, 0.6, "pass")],
)
def test_quality_thresholds_warn_then_fail(recall: float, mrr: float, ndcg: float, level: str) -> None:
    result = EvaluationResult(k=10, queries=3, recall_at_k=recall, mrr=mrr, ndcg_at_k=ndcg, per_query=())
    assessment = assess(result, EvaluationSpec())
    assert assessment.level == level
    assert all(b.value < b.threshold for b in assessment.breaches)
    assert (level == "pass") == (assessment.summary() == "every metric is at or above its warn threshold")
