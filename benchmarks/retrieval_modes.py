"""Dense against hybrid retrieval (and each fusion) on the same index, in one run.

    .venv/bin/python benchmarks/retrieval_modes.py [--k 10]

Two corpora, each with its own queries: the sample corpus with its golden set (natural-language
questions, hand-judged, ``hyperion_pipelines/evaluation/sample_corpus_queries.jsonl``), and the
benchmark corpus (``benchmarks/corpus.py``: real pages of Debian's Python and Node.js manuals)
with two query styles made from it at run time: known-item queries (a page's title), and
keyword queries (the title's two rarest words across the corpus's titles, as a user types a
term). Each corpus is ingested once with the default configuration but ``retrieval: dense`` and
once with ``retrieval: hybrid`` (the second takes the first's vectors: nothing is embedded twice),
so every mode searches the same chunks and vectors. Every fusion setting is a query-time choice,
scored on the same hybrid collection. Results go to ``benchmarks/results/retrieval_modes.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' helpers (support/)
from corpus import fetch_corpus, known_item_queries  # noqa: E402
from pipeline_bench import REPO, Workspace  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "retrieval_modes.json"
FUSIONS: list[dict[str, Any]] = [
    {"fusion": "relative", "dense_weight": 0.75},
    {"fusion": "relative", "dense_weight": 0.5},
    {"fusion": "weighted", "dense_weight": 0.8},
    {"fusion": "rrf", "rrf_k": 60},
    {"fusion": "rrf", "rrf_k": 20},
    {"fusion": "weighted", "dense_weight": 0.7},
    {"fusion": "weighted", "dense_weight": 0.6},
    {"fusion": "weighted", "dense_weight": 0.5},
    {"fusion": "weighted", "dense_weight": 0.3},
]


def keyword_queries(known_items: list[dict]) -> list[dict]:
    """Each known item's two rarest title words (by how many titles hold them), in title order."""
    words = [[w.strip(".,:;()'\"").casefold() for w in q["query"].split()] for q in known_items]
    frequency = Counter(w for title in words for w in set(title) if w)
    queries = []
    for query, title in zip(known_items, words, strict=True):
        rare = sorted({w for w in title if len(w) > 2}, key=lambda w: (frequency[w], title.index(w)))[:2]
        if len(rare) == 2:
            ordered = sorted(rare, key=title.index)
            queries.append({"id": f"kw-{query['id']}", "query": " ".join(ordered), "relevant": query["relevant"]})
    return queries


def scores(result: Any) -> dict[str, float]:
    return {"recall_at_k": result.recall_at_k, "mrr": result.mrr, "ndcg_at_k": result.ndcg_at_k}


def evaluate_corpus(name: str, uploads: Path, query_sets: dict[str, list[dict]], scratch: Path, k: int) -> dict:
    from dagster import DagsterInstance, materialize

    from hyperion_pipelines.definitions import build_definitions
    from hyperion_pipelines.embedding.sentence_transformer import SentenceTransformerEmbedder
    from hyperion_pipelines.evaluation.golden import parse_golden_queries
    from hyperion_pipelines.evaluation.retrieval import evaluate_golden_set
    from hyperion_pipelines.index.connection import connect, release_local
    from hyperion_pipelines.index.milvus_index import MilvusIndex
    from hyperion_pipelines.orchestration.pipeline import build_pipeline
    from hyperion_pipelines.settings import Settings
    from hyperion_pipelines_tests.support.sample_pipeline import default_spec

    workspace = Workspace.create(scratch / name, uploads)
    os.environ.update(workspace.env())
    settings = Settings.from_env()
    default = default_spec(settings)
    dense, hybrid = (
        default.model_copy(update={"index": default.index.model_copy(update={"retrieval": mode})})
        for mode in ("dense", "hybrid")
    )
    collections: dict[str, str] = {}
    chunks = 0
    with DagsterInstance.ephemeral() as instance:
        for spec in (dense, hybrid):
            result = materialize(
                build_pipeline(spec).assets,
                partition_key="2026-01-15",
                resources=build_definitions(settings).resources,
                instance=instance,
            )
            assert result.success, f"ingest of {name} ({spec.index.retrieval}) failed"
            for event in result.get_asset_materialization_events():
                metadata = event.materialization.metadata
                if event.materialization.asset_key.path[-1] == "vector_index":
                    collections[spec.index.retrieval] = metadata["collection"].value
                    chunks = metadata["collection_entries"].value
    embedder = SentenceTransformerEmbedder(backend="torch")
    client = connect(settings.milvus_uri)
    modes: dict[str, dict[str, Any]] = {}
    try:
        for style, lines in query_sets.items():
            queries = parse_golden_queries([json.dumps(line) for line in lines], name=style)
            row = {"queries": len(queries)}
            index = MilvusIndex(client, dense.index)
            row["dense"] = scores(evaluate_golden_set(index, embedder, queries, k, collections["dense"]))
            for fusion in FUSIONS:
                index = MilvusIndex(client, hybrid.index.model_copy(update=fusion))
                label = "hybrid " + " ".join(f"{key}={value}" for key, value in fusion.items())
                row[label] = scores(evaluate_golden_set(index, embedder, queries, k, collections["hybrid"]))
            modes[style] = row
    finally:
        client.close()
        release_local(settings.milvus_uri)
    shutil.rmtree(workspace.home, ignore_errors=True)
    return {"documents": sum(1 for p in uploads.rglob("*") if p.is_file()), "chunks": chunks, "styles": modes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/hyperion-retrieval-modes"))
    args = parser.parse_args()
    from hyperion_pipelines.settings import SAMPLE_CORPUS_DIR, SAMPLE_GOLDEN_QUERIES

    corpus = REPO / "benchmarks" / ".cache" / "corpus" / "docs"
    if not corpus.exists():
        fetch_corpus(corpus)
    sample_queries = [json.loads(line) for line in SAMPLE_GOLDEN_QUERIES.read_text().splitlines() if line.strip()]
    known = known_item_queries(corpus)
    result = {
        "k": args.k,
        "model": "all-MiniLM-L6-v2 (torch, CPU)",
        "corpora": {
            "sample": evaluate_corpus("sample", SAMPLE_CORPUS_DIR, {"questions": sample_queries}, args.scratch, args.k),
            "manuals": evaluate_corpus(
                "manuals", corpus, {"known_item": known, "keywords": keyword_queries(known)}, args.scratch, args.k
            ),
        },
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for corpus_name, row in result["corpora"].items():
        for style, modes in row["styles"].items():
            print(f"{corpus_name} / {style} ({modes['queries']} queries)")
            for mode, value in modes.items():
                if mode != "queries":
                    print(f"  {mode:<40} " + "  ".join(f"{m} {v:.3f}" for m, v in value.items()))


if __name__ == "__main__":
    main()
