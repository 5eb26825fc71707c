"""Embedding backends side by side: torch, ONNX fp32 and ONNX int8 on the same chunk texts.

    .venv/bin/python benchmarks/embedding_backends.py [--corpus DIR]... [--queries FILE]... [--json PATH]

Texts: the model inputs (context line and chunk text) of the bundled sample corpus (parsed and
chunked as the pipeline does, 200/32 tokens) plus those of every ``--corpus`` folder.
Throughput: ``embed`` of those texts (repeated up to ``--min-texts``, so that batches are full),
batch size 64, after one untimed warm-up pass; the backends take turns within each of the 3
rounds (so load from other processes hits all of them alike) and the median round counts.
Quality: document-level nDCG@10 (plus recall and MRR) of brute-force cosine search over each
backend's own chunk vectors, on the golden queries (default: the sample corpus' set), a document
ranked by its best chunk.

A backend is worth recommending when it is at least 1.5x as fast as torch and loses at most 2 %
of torch's nDCG@10 (relative). The ONNX files are exported offline into a scratch folder first
(``--export-dir`` keeps and reuses them). ``measure_backends`` is what ``run.py`` calls.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from hyperion_pipelines.chunking.chunker import chunk_text
from hyperion_pipelines.chunking.context import context_line, embedding_input, fit_context
from hyperion_pipelines.chunking.tokenizer import HuggingFaceTokenizer
from hyperion_pipelines.embedding.onnx_export import (
    FP32_FILE,
    OnnxExport,
    export_onnx,
    quantized_file_name,
    read_export,
)
from hyperion_pipelines.embedding.sentence_transformer import SentenceTransformerEmbedder, packaged_model_dir
from hyperion_pipelines.embedding.space import context_tokens
from hyperion_pipelines.evaluation.golden import GoldenQuery, load_golden_queries, qrels_of
from hyperion_pipelines.evaluation.metrics import EvaluationResult, evaluate_run
from hyperion_pipelines.parsing.document import ParseError
from hyperion_pipelines.parsing.registry import parse_document
from hyperion_pipelines.settings import SAMPLE_CORPUS_DIR, SAMPLE_GOLDEN_QUERIES
from hyperion_pipelines.sources.media_type import sniff_media_type
from hyperion_pipelines.spec import SUPPORTED_MEDIA_TYPES, ChunkingSpec

REPO = Path(__file__).resolve().parents[1]
MIN_SPEEDUP = 1.5
MAX_NDCG_DROP = 0.02  # relative to torch's nDCG@10
BASELINE = "torch"


def variants(presets: Sequence[str] = ("avx512_vnni",)) -> dict[str, tuple[str, str]]:
    """Name -> (backend, ONNX file); one int8 variant per quantisation preset."""
    chosen = {BASELINE: ("torch", FP32_FILE), "onnx-fp32": ("onnx", FP32_FILE)}
    for preset in presets:
        name = "onnx-int8" if preset == "avx512_vnni" else f"onnx-int8-{preset}"
        chosen[name] = ("onnx", quantized_file_name(preset))
    return chosen


# --- texts ---------------------------------------------------------------------------------------


def corpus_chunks(folders: Sequence[Path], chunking: ChunkingSpec | None = None) -> tuple[list[str], list[str]]:
    """The model inputs of the chunks (context line and text, as the pipeline embeds them) and,
    for each, its document (the file's path within its folder, the way golden sets name
    documents). Unparseable files are skipped, as the pipeline quarantines them."""
    chunking = chunking or ChunkingSpec()
    tokenizer = HuggingFaceTokenizer.from_model_dir(packaged_model_dir())
    room = context_tokens(chunking, SentenceTransformerEmbedder(backend="torch").identity)
    texts: list[str] = []
    doc_ids: list[str] = []
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
            content = path.read_bytes()
            try:
                parsed = parse_document(content, sniff_media_type(content, path.name), SUPPORTED_MEDIA_TYPES)
            except ParseError:
                continue
            chunks = chunk_text(
                parsed.text,
                parsed.headings,
                tokenizer,
                max_tokens=chunking.max_tokens,
                overlap_tokens=chunking.overlap_tokens,
            )
            texts.extend(
                embedding_input(
                    fit_context(context_line(parsed.title, chunk.heading_path), tokenizer, room), chunk.text
                )
                for chunk in chunks
            )
            doc_ids.extend([path.relative_to(folder).as_posix()] * len(chunks))
    return texts, doc_ids


def load_queries(paths: Sequence[Path]) -> list[GoldenQuery]:
    """Queries of every file; ids are prefixed by the file's name when there are several files."""
    queries: list[GoldenQuery] = []
    for path in paths:
        for query in load_golden_queries(path):
            query_id = f"{path.stem}:{query.query_id}" if len(paths) > 1 else query.query_id
            queries.append(GoldenQuery(query_id, query.query, query.relevant))
    return queries


# --- exports and embedders -----------------------------------------------------------------------


@contextmanager
def onnx_export(export_dir: Path | None, presets: Sequence[str]) -> Iterator[OnnxExport]:
    """The packaged model's export with every preset: reused from ``export_dir`` when complete,
    else made there (or in a scratch folder removed afterwards)."""
    wanted = [FP32_FILE, *(quantized_file_name(preset) for preset in presets)]
    if export_dir is not None:
        existing = read_export(export_dir)
        if existing is None or not all(name in existing.manifest["files"] for name in wanted):
            existing = export_onnx(packaged_model_dir(), export_dir, quantize=presets)
        yield existing
        return
    with tempfile.TemporaryDirectory(prefix="hyperion-onnx-") as scratch:
        yield export_onnx(packaged_model_dir(), Path(scratch) / "export", quantize=presets)


def embedders(
    export: OnnxExport, chosen: dict[str, tuple[str, str]], batch_size: int
) -> dict[str, SentenceTransformerEmbedder]:
    """One project embedder per variant, exactly as a pipeline builds it."""
    return {
        name: SentenceTransformerEmbedder(
            export.folder if backend == "onnx" else None, batch_size=batch_size, backend=backend, onnx_file=onnx_file
        )
        for name, (backend, onnx_file) in chosen.items()
    }


# --- measurements --------------------------------------------------------------------------------


def repeated(texts: Sequence[str], at_least: int, at_most: int | None = None) -> list[str]:
    """``texts`` cycled to ``at_least`` items: a small corpus would not even fill one batch. Over
    ``at_most``, an even spread of them by length (short and long texts alike), so a large
    corpus is timed on a sample that costs what the whole would, per text."""
    if at_most is not None and len(texts) > at_most:
        by_length = sorted(texts, key=len)
        step = len(by_length) / at_most
        return [by_length[int(i * step)] for i in range(at_most)]
    return list(itertools.islice(itertools.cycle(texts), max(at_least, len(texts))))


def timed_rounds(models: dict[str, SentenceTransformerEmbedder], texts: list[str], rounds: int) -> dict[str, Any]:
    """Wall and CPU seconds of ``embed(texts)`` per backend and round, after a warm-up pass each.
    Backends take turns (in a rotating order) so that a busy machine slows all of them alike."""
    names = list(models)
    for name in names:
        models[name].embed(texts[:256])  # warm-up: model load, ONNX Runtime's first allocations
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            started, started_cpu = time.perf_counter(), time.process_time()
            models[name].embed(texts)
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)
    return {"wall": wall, "cpu": cpu}


def document_ranking(scores: np.ndarray, doc_ids: Sequence[str], k: int) -> list[str]:
    """The first ``k`` distinct documents of a chunk ranking (a document scores its best chunk)."""
    ranked: list[str] = []
    for index in np.argsort(-scores, kind="stable"):
        if doc_ids[index] not in ranked:
            ranked.append(doc_ids[index])
            if len(ranked) == k:
                break
    return ranked


def retrieval_quality(
    model: SentenceTransformerEmbedder,
    chunk_vectors: np.ndarray,
    doc_ids: Sequence[str],
    queries: Sequence[GoldenQuery],
    k: int,
) -> EvaluationResult:
    """Brute-force cosine search (vectors are unit length) over the backend's own chunk vectors."""
    scores = model.embed([q.query for q in queries]) @ chunk_vectors.T
    run = {q.query_id: document_ranking(row, doc_ids, k) for q, row in zip(queries, scores, strict=True)}
    return evaluate_run(qrels_of(queries), run, k)


def _cosines(vectors: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    cosine = np.sum(vectors * reference, axis=1)
    return {"min": round(float(cosine.min()), 6), "mean": round(float(cosine.mean()), 6)}


def measure_backends(
    texts: Sequence[str],
    doc_ids: Sequence[str],
    queries: Sequence[GoldenQuery],
    *,
    batch_size: int = 64,
    rounds: int = 3,
    k: int = 10,
    min_texts: int = 512,
    max_timed: int | None = None,
    presets: Sequence[str] = ("avx512_vnni",),
    export_dir: Path | None = None,
) -> dict[str, Any]:
    """Throughput and nDCG@k of every backend variant on ``texts`` (chunks of the documents
    ``doc_ids``) and ``queries`` (whose ``relevant`` items are those document ids)."""
    if len(texts) != len(doc_ids) or not texts:
        raise ValueError("texts and doc_ids must be non-empty and of the same length")
    timed = repeated(texts, min_texts, max_timed)
    load_before = os.getloadavg()
    with onnx_export(export_dir, presets) as export:
        models = embedders(export, variants(presets), batch_size)
        timings = timed_rounds(models, timed, rounds)
        vectors = {name: model.embed(list(texts)) for name, model in models.items()}
        quality = {name: retrieval_quality(model, vectors[name], doc_ids, queries, k) for name, model in models.items()}
        identities = {name: model.identity.model_name for name, model in models.items()}
    result = {
        "texts": len(texts),
        "documents": len(set(doc_ids)),
        "timed_texts": len(timed),
        "queries": len(queries),
        "batch_size": batch_size,
        "rounds": rounds,
        "k": k,
        "machine": _machine(load_before),
        "variants": _variants_summary(timings, vectors, quality, identities, len(timed)),
    }
    result["recommended"] = _recommended(result["variants"])
    return result


def _variants_summary(
    timings: dict[str, Any],
    vectors: dict[str, np.ndarray],
    quality: dict[str, EvaluationResult],
    identities: dict[str, str],
    timed_texts: int,
) -> dict[str, dict[str, Any]]:
    rate = {name: timed_texts / statistics.median(seconds) for name, seconds in timings["wall"].items()}
    baseline_ndcg = quality[BASELINE].ndcg_at_k
    summary = {}
    for name, scores in quality.items():
        change = (scores.ndcg_at_k - baseline_ndcg) / baseline_ndcg if baseline_ndcg else 0.0
        speedup = rate[name] / rate[BASELINE]
        summary[name] = {
            "identity": identities[name],
            "texts_per_s": round(rate[name], 2),
            "speedup": round(speedup, 3),
            "wall_s": [round(s, 3) for s in timings["wall"][name]],
            "cpu_s": [round(s, 3) for s in timings["cpu"][name]],
            "ndcg_at_k": round(scores.ndcg_at_k, 4),
            "ndcg_relative_change": round(change, 4),
            "recall_at_k": round(scores.recall_at_k, 4),
            "mrr": round(scores.mrr, 4),
            "cosine_to_torch": _cosines(vectors[name], vectors[BASELINE]),
            "meets_rule": name != BASELINE and speedup >= MIN_SPEEDUP and change >= -MAX_NDCG_DROP,
        }
    return summary


def _recommended(summary: dict[str, dict[str, Any]]) -> str | None:
    """The fastest variant that meets the rule, if any."""
    eligible = [name for name, figures in summary.items() if figures["meets_rule"]]
    return max(eligible, key=lambda name: summary[name]["texts_per_s"]) if eligible else None


def _machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    import onnxruntime
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        # A busy machine makes every figure noisier; the ratios suffer less (turns are interleaved).
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
    }


# --- the pipeline's own chunks (run.py) ----------------------------------------------------------


def measure_from_index(workspace: Any, queries: Path, **options: Any) -> dict[str, Any]:
    """:func:`measure_backends` on the chunks a pipeline run indexed in ``workspace`` (see
    ``pipeline_bench.Workspace``), read in a child process: milvus-lite serves a database file
    to one process at a time."""
    from pipeline_bench import in_child

    chunks = in_child(workspace, "read_model_inputs")
    options.setdefault("max_timed", 1024)  # the timed passes; quality is judged on every chunk
    return measure_backends(chunks["texts"], chunks["sources"], load_golden_queries(queries), **options)


# --- command line --------------------------------------------------------------------------------


def print_table(result: dict[str, Any]) -> None:
    k = result["k"]
    print(
        f"{result['timed_texts']} texts timed ({result['texts']} chunks of {result['documents']} documents), "
        f"batch {result['batch_size']}, median of {result['rounds']} rounds; {result['queries']} queries; "
        f"load average {result['machine']['load_average_1min']}"
    )
    header = f"{'backend':<18} {'texts/s':>8} {'x torch':>8} {f'nDCG@{k}':>8} {'change':>8} {'cos min':>8}  rule"
    print(header)
    for name, figures in result["variants"].items():
        rule = "-" if name == BASELINE else ("met" if figures["meets_rule"] else "not met")
        print(
            f"{name:<18} {figures['texts_per_s']:>8.1f} {figures['speedup']:>8.2f} {figures['ndcg_at_k']:>8.4f} "
            f"{figures['ndcg_relative_change']:>+8.2%} {figures['cosine_to_torch']['min']:>8.4f}  {rule}"
        )
    print(f"recommended: {result['recommended'] or 'none (torch stays the default)'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, action="append", default=[], help="another folder of documents")
    parser.add_argument("--no-sample", action="store_true", help="leave the bundled sample corpus out")
    parser.add_argument("--queries", type=Path, action="append", help="golden JSONL file (default: the sample set)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-texts", type=int, default=512, help="texts per timed pass (the chunks, cycled)")
    parser.add_argument("--int8-presets", nargs="+", default=["avx512_vnni"], choices=["avx512_vnni", "avx2"])
    parser.add_argument("--export-dir", type=Path, help="keep the ONNX export here and reuse it")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    args = parser.parse_args()

    folders = ([] if args.no_sample else [SAMPLE_CORPUS_DIR]) + args.corpus
    if not folders:
        parser.error("no documents: give --corpus or drop --no-sample")
    texts, doc_ids = corpus_chunks(folders)
    queries = load_queries(args.queries or [SAMPLE_GOLDEN_QUERIES])
    result = measure_backends(
        texts,
        doc_ids,
        queries,
        batch_size=args.batch_size,
        rounds=args.rounds,
        min_texts=args.min_texts,
        presets=args.int8_presets,
        export_dir=args.export_dir,
    )
    result["corpus"] = [str(folder) for folder in folders]
    print_table(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
