"""Retrieval evaluation: metric values by hand, golden-set loading errors, and the shipped set end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from dagster import DagsterInstance

from hyperion_pipelines.embedding.sentence_transformer import SentenceTransformerEmbedder
from hyperion_pipelines.evaluation.golden import GoldenQuery, GoldenSetError, load_golden_queries
from hyperion_pipelines.evaluation.metrics import evaluate_run
from hyperion_pipelines.evaluation.retrieval import (
    collapse_to_documents,
    evaluate_golden_set,
    report_rows,
    retrieve_documents,
    score_retrievals,
)
from hyperion_pipelines.index.connection import connect
from hyperion_pipelines.index.milvus_index import MilvusIndex, SearchHit
from hyperion_pipelines.settings import Settings

from ..conftest import SAMPLE_CORPUS
from ..support.pipeline_runs import run_partition
from ..support.sample_pipeline import default_spec

SHIPPED = Path(__file__).resolve().parents[2] / "hyperion_pipelines" / "evaluation" / "sample_corpus_queries.jsonl"
DISCOUNT_2 = 1 / math.log2(3)  # the nDCG discount at rank 2 (rank 1 is undiscounted)


# -- metrics -------------------------------------------------------------------------------------
def test_binary_metrics_by_hand_with_cutoff_and_a_query_without_hits() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}, "q3": {"d": 1}, "q4": {"e": 1}}
    run = {
        "q1": ["x", "a", "y", "z"],  # relevant at rank 2
        "q2": ["b", "x", "y", "c"],  # one relevant at rank 1, the other cut off by k=3
        "q3": [],  # nothing retrieved
        # q4 missing from the run entirely
        "q9": ["d"],  # not a judged query: ignored
    }
    result = evaluate_run(qrels, run, k=3)

    scores = {s.query_id: (s.recall_at_k, s.reciprocal_rank, s.ndcg_at_k) for s in result.per_query}
    assert scores["q1"] == pytest.approx((1.0, 0.5, DISCOUNT_2))
    assert scores["q2"] == pytest.approx((0.5, 1.0, 1 / (1 + DISCOUNT_2)))
    assert scores["q3"] == scores["q4"] == (0.0, 0.0, 0.0)
    assert [s.query_id for s in result.per_query] == ["q1", "q2", "q3", "q4"]
    # Averages over all four queries: dropping the empty ones would double them.
    assert (result.k, result.queries) == (3, 4)
    assert result.recall_at_k == pytest.approx(1.5 / 4)
    assert result.mrr == pytest.approx(1.5 / 4)
    assert result.ndcg_at_k == pytest.approx((DISCOUNT_2 + 1 / (1 + DISCOUNT_2)) / 4)


def test_graded_metrics_by_hand() -> None:
    qrels = {"q1": {"a": 2, "b": 1}}
    run = {"q1": ["b", "x", "a"]}
    ideal = 2 + DISCOUNT_2  # a (gain 2) at rank 1, b (gain 1) at rank 2

    at_3 = evaluate_run(qrels, run, k=3)
    assert (at_3.recall_at_k, at_3.mrr) == (1.0, 1.0)  # grade 1 counts as relevant
    assert at_3.ndcg_at_k == pytest.approx((1 + 2 / math.log2(4)) / ideal)

    at_2 = evaluate_run(qrels, run, k=2)  # a falls out of the top 2
    assert (at_2.recall_at_k, at_2.mrr) == (0.5, 1.0)
    assert at_2.ndcg_at_k == pytest.approx(1 / ideal)


def test_rank_order_is_the_list_order_for_every_metric() -> None:
    # Scores are not given, so tied ids cannot be reordered (the providers break ties differently).
    forward = evaluate_run({"q": {"a": 1}}, {"q": ["b", "a"]}, k=2)
    assert (forward.mrr, forward.ndcg_at_k) == pytest.approx((0.5, DISCOUNT_2))
    repeated = evaluate_run({"q": {"a": 1}}, {"q": ["x", "x", "a"]}, k=2)  # repeats are dropped
    assert repeated.mrr == 0.5


@pytest.mark.parametrize(
    ("qrels", "k", "message"),
    [
        ({"q": {"a": 1}}, 0, "k must be a positive integer"),
        ({}, 3, "qrels are empty"),
        ({"q": {"a": 0}}, 3, "no relevant document"),
        ({"q": {}}, 3, "no relevant document"),
        ({"q": {"a": 1.5}}, 3, "must be integers"),
    ],
)
def test_evaluate_run_refuses_unusable_input(qrels: dict, k: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_run(qrels, {"q": ["a"]}, k=k)


# -- golden sets ---------------------------------------------------------------------------------
def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "golden.jsonl"
    path.write_text(text, encoding="utf-8")
    return path


def test_loads_lists_graded_objects_default_ids_and_skips_blank_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '\n{"query": " how do bees stay warm ", "relevant": ["reports/bees.pdf", "doc-123"]}\n'
        "   \n"
        '{"id": "river", "query": "trout", "relevant": {"reports/river.docx": 2, "notes/x.txt": 1}}\n',
    )
    assert load_golden_queries(path) == [
        GoldenQuery("q2", "how do bees stay warm", {"reports/bees.pdf": 1, "doc-123": 1}),
        GoldenQuery("river", "trout", {"reports/river.docx": 2, "notes/x.txt": 1}),
    ]


GOOD = '{"query": "q", "relevant": ["a"]}'


@pytest.mark.parametrize(
    ("lines", "line", "problem"),
    [
        ([GOOD, '{"query": "q", "relevant": ["a"]'], 2, "invalid JSON"),
        (["", "", "{oops}"], 3, "invalid JSON"),  # blank lines still count
        (['["q", "a"]'], 1, "expected a JSON object, got an array"),
        (['{"relevant": ["a"]}'], 1, "missing 'query'"),
        (['{"query": "  ", "relevant": ["a"]}'], 1, "'query' is empty"),
        (['{"query": 7, "relevant": ["a"]}'], 1, "'query' must be a string, got a number"),
        (['{"query": "q"}'], 1, "missing 'relevant'"),
        (['{"query": "q", "relevant": []}'], 1, "'relevant' is empty"),
        (['{"query": "q", "relevant": {}}'], 1, "'relevant' is empty"),
        (['{"query": "q", "relevant": "a"}'], 1, "'relevant' must be a list of items or an object"),
        (['{"query": "q", "relevant": ["a", 3]}'], 1, "relevant items must be strings"),
        (['{"query": "q", "relevant": ["a", ""]}'], 1, "relevant items must not be empty"),
        (['{"query": "q", "relevant": ["a", "a"]}'], 1, "lists 'a' twice"),
        (['{"query": "q", "relevant": {"a": 0}}'], 1, "grade of 'a' must be an integer >= 1, got 0"),
        (['{"query": "q", "relevant": {"a": 1.5}}'], 1, "grade of 'a' must be an integer >= 1, got 1.5"),
        (['{"query": "q", "relevant": {"a": true}}'], 1, "grade of 'a' must be an integer >= 1, got True"),
        (['{"query": "q", "relevant": {"a": "2"}}'], 1, "grade of 'a' must be an integer >= 1, got '2'"),
        (['{"id": 5, "query": "q", "relevant": ["a"]}'], 1, "'id' must be a non-empty string"),
        (['{"query": "q", "relevant": ["a"], "relevent": ["b"]}'], 1, "unknown key(s) 'relevent'"),
        (
            [GOOD.replace("{", '{"id": "x", '), GOOD.replace("{", '{"id": "x", ')],
            2,
            "duplicate id 'x' (first used on line 1)",
        ),
        ([GOOD, GOOD.replace("{", '{"id": "q1", ')], 2, "duplicate id 'q1'"),  # collides with a default id
    ],
)
def test_golden_set_errors_name_the_file_and_line(tmp_path: Path, lines: list[str], line: int, problem: str) -> None:
    path = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(GoldenSetError) as caught:
        load_golden_queries(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert problem in str(caught.value)


@pytest.mark.parametrize("text", ["", "\n  \n\n"])
def test_an_empty_golden_set_is_an_error(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(GoldenSetError, match="the golden set is empty"):
        load_golden_queries(path)


def test_a_missing_golden_set_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(GoldenSetError, match="cannot read"):
        load_golden_queries(tmp_path / "absent.jsonl")


def test_the_shipped_golden_set_names_sample_corpus_files() -> None:
    queries = load_golden_queries(SHIPPED)
    assert 10 <= len(queries) <= 14
    named = {item for q in queries for item in q.relevant}
    corpus = {p.relative_to(SAMPLE_CORPUS).as_posix() for p in SAMPLE_CORPUS.rglob("*") if p.is_file()}
    assert named <= corpus and len(corpus) == 8
    assert named == corpus  # every document is the answer to something


# -- retrieval, on fakes -------------------------------------------------------------------------
def hit(score: float, document_id: str, source: str) -> SearchHit:
    return SearchHit(score, f"{document_id}-chunk-{score}", {"document_id": document_id, "source": source})


class FakeEmbedder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.arange(len(texts), dtype=np.float32).reshape(-1, 1)


class FakeIndex:
    """Answers query number i (its vector) with ``rankings[i]``; records the limits and the query
    texts (for a hybrid collection's BM25 field) asked for."""

    def __init__(self, rankings: list[list[SearchHit]]) -> None:
        self.rankings = rankings
        self.limits: list[int] = []
        self.texts: list[str] = []

    def search(
        self, vectors: np.ndarray, *, limit: int, collection: str | None = None, texts: list[str] | None = None
    ) -> list[list[SearchHit]]:
        self.limits.append(limit)
        self.texts.extend(texts or [])
        return [self.rankings[int(v[0])][:limit] for v in vectors]


def test_chunks_collapse_to_documents_by_first_appearance_with_the_best_score() -> None:
    hits = [hit(0.9, "d1", "a.md"), hit(0.8, "d1", "a.md"), hit(0.7, "d2", "b.md"), hit(0.6, "d3", "c.md")]
    documents = collapse_to_documents(hits, k=2)
    assert [(d.document_id, d.source, d.score) for d in documents] == [("d1", "a.md", 0.9), ("d2", "b.md", 0.7)]


def test_relevant_items_match_by_document_id_or_source() -> None:
    rankings = [
        [hit(0.9, "d1", "a.md"), hit(0.8, "d1", "a.md"), hit(0.7, "d2", "b.md")],
        [hit(0.9, "d3", "c.md"), hit(0.8, "d2", "b.md")],
        [hit(0.9, "d4", "same.md"), hit(0.8, "d5", "same.md")],
    ]
    queries = [
        GoldenQuery("by-source", "one", {"b.md": 1}),
        GoldenQuery("by-id", "two", {"d2": 1, "d9": 1}),
        GoldenQuery("shared-path", "three", {"same.md": 1}),  # the path is credited once only
    ]
    embedder, index = FakeEmbedder(), FakeIndex(rankings)
    retrievals = retrieve_documents(index, embedder, queries, k=2)  # type: ignore[arg-type]
    assert embedder.calls == [["one", "two", "three"]] and index.limits == [10]
    assert index.texts == ["one", "two", "three"]  # each query's words go with its vector
    result = score_retrievals(queries, retrievals, k=2)
    scores = {s.query_id: (s.recall_at_k, s.reciprocal_rank) for s in result.per_query}
    assert scores == {"by-source": (1.0, 0.5), "by-id": (0.5, 0.5), "shared-path": (1.0, 1.0)}
    rows = report_rows(queries, retrievals, result)
    assert [(r["top_source"], r["missed"]) for r in rows] == [("a.md", []), ("c.md", ["d9"]), ("same.md", [])]


# -- end to end: the sample corpus in milvus-lite with the packaged model -------------------------
def wrong_golden_set(queries: list[GoldenQuery], path: Path) -> list[GoldenQuery]:
    """The shipped queries, each judged by a document unrelated to it."""
    unrelated = {
        "guides/sourdough-starter.md": "web/night-sky.html",
        "guides/bicycle-maintenance.md": "notes/lighthouse-keepers.txt",
        "notes/composting.txt": "reports/river-restoration.docx",
        "notes/lighthouse-keepers.txt": "guides/sourdough-starter.md",
        "web/tide-pools.html": "guides/bicycle-maintenance.md",
        "web/night-sky.html": "notes/composting.txt",
        "reports/honeybee-winter-survival.pdf": "web/night-sky.html",
        "reports/river-restoration.docx": "guides/sourdough-starter.md",
    }
    lines = []
    for q in queries:
        relevant = sorted({unrelated[item] for item in q.relevant} - set(q.relevant))
        lines.append(json.dumps({"id": q.query_id, "query": q.query, "relevant": relevant}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_golden_queries(path)


def test_shipped_golden_set_scores_high_on_the_sample_corpus(
    hyperion_env: Settings, sample_uploads: Path, tmp_path: Path
) -> None:
    with DagsterInstance.ephemeral() as instance:
        run_partition(hyperion_env, instance)
    queries = load_golden_queries(SHIPPED)
    wrong = wrong_golden_set(queries, tmp_path / "wrong.jsonl")
    embedder = SentenceTransformerEmbedder()
    client = connect(hyperion_env.milvus_uri)
    try:
        index = MilvusIndex(client, default_spec(hyperion_env).index)
        retrievals_10 = retrieve_documents(index, embedder, queries, k=10)
        at_3 = evaluate_golden_set(index, embedder, queries, k=3)
        wrong_10 = evaluate_golden_set(index, embedder, wrong, k=10)
        wrong_3 = evaluate_golden_set(index, embedder, wrong, k=3)
    finally:
        client.close()
    at_10 = score_retrievals(queries, retrievals_10, k=10)

    # The corpus has 8 documents, fewer than k=10: chunks collapse to all of them, so recall@10 is
    # 1.0 for any golden set naming corpus files. Ranking quality shows in MRR, nDCG and recall@3.
    assert all(len(r.documents) == 8 for r in retrievals_10)
    # Observed with the packaged all-MiniLM-L6-v2: recall@10 1.0, MRR 1.0, nDCG@10 0.989;
    # recall@3 0.964, MRR 1.0, nDCG@3 0.977 (only the two multi-document questions lose points).
    assert at_10.queries == len(queries) and at_10.recall_at_k == 1.0
    assert at_10.mrr >= 0.9 and at_10.ndcg_at_k >= 0.9
    assert at_3.recall_at_k >= 0.85 and at_3.mrr >= 0.9 and at_3.ndcg_at_k >= 0.85
    # Judged by unrelated documents, the same retrievals score low (observed: MRR 0.16,
    # nDCG@10 0.36, recall@3 0.14), so the thresholds above do tell good from bad.
    assert wrong_10.mrr <= 0.35 and wrong_10.ndcg_at_k <= 0.5
    assert wrong_3.recall_at_k <= 0.3 and wrong_3.ndcg_at_k <= 0.3
