"""Hyperion against LlamaIndex, a naive dense baseline and BM25 on the same text, in one run.

    .venv/bin/python benchmarks/peer_fair.py [--k 10] [--man-pages 300]   # results/peer_fair.json
    .venv/bin/python benchmarks/peer_fair.py --backend int8               # results/peer_fair_int8.json

Three corpora, built at run time from Debian packages, each with its own query style:

- ``faq``: ``debian-faq`` (HTML), one document per question with the question removed from it;
  the question is the query (a natural question).
- ``man``: Linux man pages (``manpages``, ``manpages-dev``) rendered to text by groff, with the
  NAME section removed; the NAME line's description is the query (a keyword description, such
  as "open and possibly create a file").
- ``manuals``: ``corpus.py``'s pages of the Python and Node.js manuals (HTML, reStructuredText,
  Markdown); queries are each page's title (known item) and the title's two rarest words
  (keywords), as ``retrieval_modes.py`` makes them.

What each system reads: the FAQ and man pages are plain text files, the same for everyone. For
the manuals, Hyperion reads the files themselves; LlamaIndex reads, once, the text our parsers
extract from them (one ``.txt`` per page) and, once, the files with its own readers; the
baselines read the extracted text.

Systems, all with all-MiniLM-L6-v2 on the CPU at batch size 64, run by torch (``--backend torch``,
LlamaIndex's HuggingFaceEmbedding and sentence-transformers) or all by ONNX Runtime on the same
int8 export (``--backend int8``: Hyperion's default auto backend where ONNX Runtime is installed;
LlamaIndex through ``peer_llamaindex.py --onnx-file``; the export is made before any clock starts,
as the models are loaded before it). With int8, LlamaIndex's own readers are not run again:
they change what it reads, not how it embeds.

- ``hyperion``: the default pipeline (200-token chunks, 32 overlap, a context line; ``retrieval:
  auto``, hybrid: on milvus-lite, where this runs, BM25 scored by Hyperion over the whole
  collection, fused by the default fusion), timed from files to a searched index; ``hyperion
  dense`` searches the same vectors alone (``retrieval: dense``, a collection filled with the
  default's vectors: no second embedding, so no timing). ``hyperion weighted 0.5`` and the like
  search the default collection with other fusions (``FUSION_SWEEP``).
- ``llamaindex``: ``SentenceSplitter(200, 32)`` in the model's tokens, Milvus (milvus-lite),
  ``peer_llamaindex.py --quality-only`` in its own venv; documents ranked from its top 50 nodes
  (Hyperion's searches take 5 chunks a wanted document, 50 at k=10). With int8 it runs twice: at
  batch size 64 and at its own default, 10 (``llamaindex, batch 10``); Hyperion's documents/s are
  set against the faster of the two. Hyperion's encoder also caps a batch's padded tokens
  (``sentence_transformer.BATCH_TOKENS``) and runs one single-threaded ONNX Runtime session per
  core side by side (``session_plan``), where the peer's embedding runs one session on ONNX
  Runtime's default threads: part of how each runs the model, not a setting.
- ``naive dense``: 200-word windows without overlap, exhaustive cosine search; a document
  scores its best window.
- ``bm25``: whole documents, lowercased word tokens, k1 1.2, b 0.75.

Hyperion and LlamaIndex (each batch size) are timed ``--repeats`` times (3), taken in turn, and
each one's median counts: a FAQ run takes seconds, where one slow run of either side decided the
ratio before.

Per system and corpus: seconds, documents/s, chunks/s, tokens embedded per document (in the
model's tokenizer, what was embedded: context lines and metadata included); per query style:
recall@10, MRR@10 and nDCG@10, all scored by ``hyperion_pipelines.evaluation.metrics``.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import html
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' helpers (support/)
from corpus import download_deb, extract_deb, fetch_corpus, known_item_queries  # noqa: E402
from pipeline_bench import REPO, Workspace  # noqa: E402
from retrieval_modes import keyword_queries  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache"
RESULTS = REPO / "benchmarks" / "results" / "peer_fair.json"
FAQ_HTML = Path("usr/share/doc/debian/FAQ")
WORD = re.compile(r"\w+")
NAIVE_WORDS = 200
BATCH = 64
#: LlamaIndex's own embedding batch (``llama_index.core.constants.DEFAULT_EMBED_BATCH_SIZE``): with
#: ``--backend int8`` the peer also runs at it, and the ratio is taken against its faster run.
PEER_DEFAULT_BATCH = 10
PEER_AT_ITS_BATCH = f"llamaindex, batch {PEER_DEFAULT_BATCH}"

Queries = dict[str, list[dict]]  # query style -> [{id, query, relevant}]
#: Fusions searched on the hybrid collection besides the default (query time: nothing re-indexed),
#: what ``index.fusion`` and ``index.dense_weight`` were chosen on.
FUSION_SWEEP = [
    *({"fusion": "relative", "dense_weight": weight} for weight in (0.6, 0.7, 0.8)),
    *({"fusion": "weighted", "dense_weight": weight} for weight in (0.5, 0.7, 0.8)),
    {"fusion": "rrf", "rrf_k": 60},
]


@dataclass(frozen=True)
class Model:
    """How every system runs all-MiniLM-L6-v2 in this run: torch, or ONNX Runtime on one int8 file."""

    backend: str  # "torch" or "int8"
    exports: Path | None = None  # with int8: HYPERION_MODELS_DIR holding the export

    @classmethod
    def prepare(cls, backend: str, scratch: Path) -> Model:
        if backend == "torch":
            return cls("torch")
        from hyperion_pipelines.embedding.onnx_export import export_on_first_use
        from hyperion_pipelines.embedding.sentence_transformer import packaged_model_dir

        export_on_first_use(packaged_model_dir(), scratch / "models")
        return cls("int8", scratch / "models")

    def env(self) -> dict[str, str]:
        """Hyperion's settings for this backend (the workspace pins torch otherwise)."""
        if self.backend == "torch":
            return {"HYPERION_EMBEDDING_BACKEND": "torch"}
        return {"HYPERION_EMBEDDING_BACKEND": f"onnx:{self.int8_file}", "HYPERION_MODELS_DIR": str(self.exports)}

    @property
    def int8_file(self) -> str:
        from hyperion_pipelines.embedding.backend_choice import AUTO_ONNX_FILE

        return AUTO_ONNX_FILE

    def embedder(self) -> Any:
        from hyperion_pipelines.embedding.sentence_transformer import SentenceTransformerEmbedder

        if self.backend == "torch":
            return SentenceTransformerEmbedder(backend="torch")
        return SentenceTransformerEmbedder(backend="onnx", onnx_file=self.int8_file, exports_root=self.exports)

    def peer_args(self) -> list[str]:
        if self.backend == "torch":
            return []
        return ["--onnx-file", str(self.embedder().export.file(self.int8_file))]


# --- corpora ------------------------------------------------------------------------------------


def _text_of_html(fragment: str) -> str:
    fragment = re.sub(r"<(script|style)\b.*?</\1>", " ", fragment, flags=re.S | re.I)
    fragment = re.sub(r"</(p|div|pre|li|dt|dd|tr|h\d)>|<br\s*/?>", "\n", fragment, flags=re.I)
    text = html.unescape(re.sub(r"<[^>]+>", " ", fragment))
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def faq_corpus(target: Path) -> Queries:
    """One document per FAQ question (its answer, question removed); the question is the query."""
    root = extract_deb(download_deb("debian-faq", CACHE / "debs"), CACHE / "debs") / FAQ_HTML
    heading = re.compile(r'<h2[^>]*class="title"[^>]*>(.*?)</h2>', re.S)
    queries = []
    for page in sorted(root.glob("*.en.html")):
        source = page.read_text(encoding="utf-8", errors="replace")
        found = list(heading.finditer(source))
        for n, match in enumerate(found):
            question = re.sub(r"^\s*[\d.]+\s*", "", _text_of_html(match[1])).strip()
            end = found[n + 1].start() if n + 1 < len(found) else len(source)
            answer = _text_of_html(source[match.end() : end])
            if not question.endswith("?") or len(answer.split()) < 20:
                continue
            name = f"{page.name.split('.')[0]}/{n:02d}.txt"
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_text(answer + "\n", encoding="utf-8")
            queries.append({"id": f"faq-{page.name.split('.')[0]}-{n:02d}", "query": question, "relevant": [name]})
    return {"question": queries}


def _render_man(page: Path) -> str:
    source = gzip.decompress(page.read_bytes())
    rendered = subprocess.run(
        ["groff", "-t", "-man", "-Tutf8", "-rHY=0", "-dAD=l", "-rLL=120n", "-P", "-cbou"],
        input=source,
        capture_output=True,
        check=True,
        env={**os.environ, "MANWIDTH": "80"},
    ).stdout.decode("utf-8", errors="replace")
    return rendered


def man_corpus(target: Path, limit: int) -> Queries:
    """Man pages without their NAME section; the NAME line's description is the query."""
    pages = []
    for package in ("manpages", "manpages-dev"):
        root = extract_deb(download_deb(package, CACHE / "debs"), CACHE / "debs") / "usr/share/man"
        pages += [
            p for p in sorted(root.glob("man[1-8]/*.gz")) if not gzip.decompress(p.read_bytes()).startswith(b".so")
        ]
    # A deterministic spread over the sections, not the first pages of the alphabet.
    step = max(1, len(pages) // limit)
    queries, seen = [], set()
    for page in pages[::step][:limit]:
        text = _render_man(page)
        match = re.search(r"^NAME\n(.*?)\n\n(?=[A-Z])", text, flags=re.S | re.M)
        if not match or " - " not in match[1]:
            continue
        description = " ".join(match[1].split(" - ", 1)[1].split())
        if description.casefold() in seen or len(description.split()) < 3:
            continue  # pages sharing one description cannot each be the answer
        seen.add(description.casefold())
        body = (text[: match.start()] + text[match.end() :]).strip()
        name = f"{page.parent.name}/{page.name.removesuffix('.gz')}.txt"
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(body + "\n", encoding="utf-8")
        queries.append({"id": f"man-{page.name.removesuffix('.gz')}", "query": description, "relevant": [name]})
    return {"description": queries}


def extracted_text(raw: Path, target: Path) -> dict[str, str]:
    """Each file's text as our parsers extract it, written to ``<path>.txt``; raw path -> text path."""
    from hyperion_pipelines.parsing.registry import parse_document
    from hyperion_pipelines.sources.media_type import sniff_media_type
    from hyperion_pipelines.spec import ParsingSpec

    accepted = ParsingSpec().accepted_media_types
    names = {}
    for path in sorted(p for p in raw.rglob("*") if p.is_file()):
        rel = path.relative_to(raw).as_posix()
        content = path.read_bytes()
        parsed = parse_document(content, sniff_media_type(content, path.name), accepted, file_name=path.name)
        (target / f"{rel}.txt").parent.mkdir(parents=True, exist_ok=True)
        (target / f"{rel}.txt").write_text(parsed.text, encoding="utf-8")
        names[rel] = f"{rel}.txt"
    return names


def renamed(queries: Queries, names: dict[str, str]) -> Queries:
    return {
        style: [q | {"relevant": [names[r] for r in q["relevant"]]} for q in lines] for style, lines in queries.items()
    }


# --- systems ------------------------------------------------------------------------------------


@functools.cache
def _tokenizer() -> Any:
    from hyperion_pipelines.embedding.sentence_transformer import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(backend="torch").tokenizer


def tokens_per_text(texts: list[str]) -> list[int]:
    return [len(_tokenizer().token_spans(text)) for text in texts]


def embedded_tokens(chunk_outputs: Path) -> int:
    """Tokens of what was embedded: each chunk's context line and text, from the step's outputs."""
    import pandas as pd

    from hyperion_pipelines.chunking.context import embedding_input

    frames = [pd.read_parquet(path, columns=["context", "text"]) for path in sorted(chunk_outputs.rglob("*.parquet"))]
    return sum(
        tokens_per_text(
            [embedding_input(c, t) for frame in frames for c, t in zip(frame["context"], frame["text"], strict=True)]
        )
    )


def hyperion(
    name: str, corpus: Path, queries: Queries, scratch: Path, k: int, model: Model, rank: bool = True
) -> dict[str, Any]:
    """The default pipeline (hybrid) from files to index, timed; then (``rank``) its rankings, and
    the same vectors' dense rankings."""
    from dagster import DagsterInstance, materialize

    from hyperion_pipelines import run_metadata as rm
    from hyperion_pipelines.definitions import build_definitions
    from hyperion_pipelines.evaluation.golden import parse_golden_queries
    from hyperion_pipelines.evaluation.retrieval import retrieve_documents
    from hyperion_pipelines.index.connection import connect, release_local
    from hyperion_pipelines.index.milvus_index import MilvusIndex
    from hyperion_pipelines.orchestration.pipeline import build_pipeline
    from hyperion_pipelines.settings import Settings
    from hyperion_pipelines_tests.support.sample_pipeline import default_spec

    workspace = Workspace.create(scratch / f"hyperion-{name}", corpus)
    os.environ.update(workspace.env() | model.env())
    os.environ["HYPERION_STEP_OUTPUT_URI"] = str(workspace.home / "steps")  # read back for the token count
    settings = Settings.from_env()
    default = default_spec(settings)
    dense = default.model_copy(update={"index": default.index.model_copy(update={"retrieval": "dense"})})
    model.embedder().embed(["warm up"])  # the model loaded before the clock, as the peer's
    collections, timing = {}, {}
    with DagsterInstance.ephemeral() as instance:
        for spec in (default, dense) if rank else (default,):
            started = time.perf_counter()
            result = materialize(
                build_pipeline(spec).assets,
                partition_key="2026-01-15",
                resources=build_definitions(settings).resources,
                instance=instance,
            )
            seconds = time.perf_counter() - started
            assert result.success, f"hyperion ingest of {name} failed"
            metadata = rm.metadata_by_asset(e.materialization for e in result.get_asset_materialization_events())
            collections[spec.index.retrieval] = rm.COLLECTION.of(metadata)
            if spec is default:
                timing = {"seconds": seconds, "documents": rm.PARSED.of(metadata)}
                timing["chunks"] = rm.EMBEDDED.of(metadata)
                timing["tokens"] = embedded_tokens(workspace.home / "steps" / "document_chunks")
    if not rank:
        release_local(settings.milvus_uri)
        shutil.rmtree(workspace.home, ignore_errors=True)
        return {"timing": {"hyperion": timing}, "rankings": {}}
    embedder = model.embedder()
    client = connect(settings.milvus_uri)
    searched = [("hyperion", default), ("hyperion dense", dense)]
    for fusion in FUSION_SWEEP:  # query-time settings: the same hybrid collection
        label = " ".join(f"{value}" for value in fusion.values())
        searched.append(
            (f"hyperion {label}", default.model_copy(update={"index": default.index.model_copy(update=fusion)}))
        )
    rankings: dict[str, dict[str, dict[str, list[str]]]] = {system: {} for system, _ in searched}
    try:
        for style, lines in queries.items():
            golden = parse_golden_queries([json.dumps(line) for line in lines], name=style)
            for system, spec in searched:
                index = MilvusIndex(client, spec.index)
                found = retrieve_documents(index, embedder, golden, k, collection=collections[spec.index.retrieval])
                rankings[system][style] = {r.query_id: [d.source for d in r.documents] for r in found}
    finally:
        client.close()
        release_local(settings.milvus_uri)
    shutil.rmtree(workspace.home, ignore_errors=True)
    return {"timing": {"hyperion": timing}, "rankings": rankings}


def llamaindex(corpus: Path, queries: Queries, scratch: Path, model: Model, batch: int = BATCH) -> dict[str, Any]:
    import peer_env

    python = peer_env.ensure_peer_python()
    every = scratch / "peer-queries.jsonl"
    every.write_text("".join(json.dumps(q) + "\n" for lines in queries.values() for q in lines))
    out = scratch / "peer-result.json"
    command = [
        str(python), str(REPO / "benchmarks" / "peer_llamaindex.py"), "--corpus", str(corpus), "--queries",
        str(every), "--milvus", str(scratch / "peer.db"), "--chunk-tokens", "200", "--overlap-tokens", "32",
        "--batch-size", str(batch), "--quality-only", "--out", str(out), *model.peer_args(),
    ]  # fmt: skip
    subprocess.run(command, check=True, cwd=REPO)
    result = json.loads(out.read_text())
    full = result["full_ingest"]
    ranked = result["retrieval"]["rankings"]["top_50_nodes"]
    tokens = result["node_tokens"]["mean_embedded_tokens"] * full["nodes"]
    timing = {"seconds": full["seconds"], "documents": full["documents"], "chunks": full["nodes"], "tokens": tokens}
    rankings = {style: {q["id"]: ranked[q["id"]] for q in lines} for style, lines in queries.items()}
    return {"timing": timing, "rankings": rankings, "versions": result["versions"]}


def documents_of(corpus: Path) -> dict[str, str]:
    return {p.relative_to(corpus).as_posix(): p.read_text(encoding="utf-8") for p in sorted(corpus.rglob("*.txt"))}


def naive_dense(corpus: Path, queries: Queries, k: int, model: Model) -> dict[str, Any]:
    """200-word windows, no overlap, no context; exhaustive cosine; a document's best window."""
    embedder = model.embedder()
    embedder.embed(["warm up"])
    documents = documents_of(corpus)
    started = time.perf_counter()
    owners, windows = [], []
    for name, text in documents.items():
        words = text.split()
        for start in range(0, max(len(words), 1), NAIVE_WORDS):
            owners.append(name)
            windows.append(" ".join(words[start : start + NAIVE_WORDS]))
    vectors = np.asarray(embedder.embed(windows), dtype=np.float32)
    seconds = time.perf_counter() - started
    timing = {"seconds": seconds, "documents": len(documents), "chunks": len(windows)}
    timing["tokens"] = sum(tokens_per_text(windows))
    names = list(documents)
    position = {name: n for n, name in enumerate(names)}
    owner_ids = np.asarray([position[o] for o in owners])
    rankings = {}
    for style, lines in queries.items():
        query_vectors = np.asarray(embedder.embed([q["query"] for q in lines]), dtype=np.float32)
        scores = query_vectors @ vectors.T
        rankings[style] = {}
        for q, row in zip(lines, scores, strict=True):
            best = np.full(len(names), -np.inf, dtype=np.float32)
            np.maximum.at(best, owner_ids, row)
            rankings[style][q["id"]] = [names[i] for i in np.argsort(-best)[:k]]
    return {"timing": timing, "rankings": rankings}


def bm25(corpus: Path, queries: Queries, k: int, model: Model, k1: float = 1.2, b: float = 0.75) -> dict[str, Any]:
    """Okapi BM25 over whole documents (Lucene's IDF), lowercased word tokens."""
    documents = documents_of(corpus)
    started = time.perf_counter()
    names = list(documents)
    counts = [Counter(WORD.findall(text.casefold())) for text in documents.values()]
    lengths = np.asarray([sum(c.values()) for c in counts], dtype=np.float64)
    average = float(lengths.mean()) if len(lengths) else 1.0
    frequency = Counter(term for c in counts for term in c)
    seconds = time.perf_counter() - started
    rankings = {}
    for style, lines in queries.items():
        rankings[style] = {}
        for q in lines:
            scores = np.zeros(len(names))
            for term in set(WORD.findall(q["query"].casefold())):
                n = frequency.get(term, 0)
                if not n:
                    continue
                idf = math.log(1 + (len(names) - n + 0.5) / (n + 0.5))
                tf = np.asarray([c.get(term, 0) for c in counts], dtype=np.float64)
                scores += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths / average))
            rankings[style][q["id"]] = [names[i] for i in np.argsort(-scores, kind="stable")[:k] if scores[i] > 0]
    timing = {"seconds": seconds, "documents": len(names), "chunks": len(names), "tokens": 0}
    return {"timing": timing, "rankings": rankings}


# --- scoring ------------------------------------------------------------------------------------


def scored(rankings: dict[str, list[str]], lines: list[dict], k: int) -> dict[str, float]:
    from hyperion_pipelines.evaluation.metrics import evaluate_run

    qrels = {q["id"]: dict.fromkeys(q["relevant"], 1) for q in lines}
    result = evaluate_run(qrels, {q["id"]: rankings.get(q["id"], []) for q in lines}, k)
    return {
        "recall_at_k": round(result.recall_at_k, 4),
        "mrr": round(result.mrr, 4),
        "ndcg_at_k": round(result.ndcg_at_k, 4),
    }


def rates(timing: dict[str, float]) -> dict[str, float]:
    seconds = timing["seconds"]
    return {
        "seconds": round(seconds, 2),
        "documents": timing["documents"],
        "chunks": timing["chunks"],
        "documents_per_s": round(timing["documents"] / seconds, 2) if seconds else None,
        "chunks_per_s": round(timing["chunks"] / seconds, 1) if seconds else None,
        "tokens_per_document": round(timing["tokens"] / timing["documents"], 1) if timing["documents"] else 0,
    }


def run_corpus(name: str, ours: Path, text: Path, queries: Queries, text_queries: Queries, args: Any) -> dict:
    """Every system on one corpus: ``ours`` is what Hyperion reads, ``text`` the extracted text."""
    scratch = args.scratch / name
    scratch.mkdir(parents=True, exist_ok=True)
    systems: dict[str, dict[str, Any]] = {}
    mine = hyperion(name, ours, queries, scratch, args.k, args.model)
    timings = dict(mine["timing"])
    for system, ranked in mine["rankings"].items():
        systems[system] = {"rankings": ranked, "queries": queries}
    peer = llamaindex(text, text_queries, scratch, args.model)
    timings["llamaindex"] = peer["timing"]
    systems["llamaindex"] = {"rankings": peer["rankings"], "queries": text_queries}
    if args.model.backend == "int8":  # ONNX Runtime on the CPU: smaller batches may suit the peer better
        own_batch = llamaindex(text, text_queries, scratch, args.model, batch=PEER_DEFAULT_BATCH)
        timings[PEER_AT_ITS_BATCH] = own_batch["timing"]
        systems[PEER_AT_ITS_BATCH] = {"rankings": own_batch["rankings"], "queries": text_queries}
    # More timed runs of the timed systems, taken in turn so that the machine's noise falls on
    # each alike; each system's median counts.
    seconds = {system: [timings[system]["seconds"]] for system in ("hyperion", "llamaindex", PEER_AT_ITS_BATCH)}
    for _ in range(args.repeats - 1):
        again = hyperion(name, ours, queries, scratch, args.k, args.model, rank=False)["timing"]["hyperion"]
        seconds["hyperion"].append(again["seconds"])
        seconds["llamaindex"].append(llamaindex(text, text_queries, scratch, args.model)["timing"]["seconds"])
        if PEER_AT_ITS_BATCH in timings:
            peer_run = llamaindex(text, text_queries, scratch, args.model, batch=PEER_DEFAULT_BATCH)
            seconds[PEER_AT_ITS_BATCH].append(peer_run["timing"]["seconds"])
    for system, each in seconds.items():
        if system in timings:
            timings[system] = timings[system] | {"seconds": statistics.median(each)}
    if ours != text and args.model.backend == "torch":  # the peer's own readers on the files Hyperion reads
        own = llamaindex(ours, queries, scratch, args.model)
        timings["llamaindex, own readers"] = own["timing"]
        systems["llamaindex, own readers"] = {"rankings": own["rankings"], "queries": queries}
    for system, measure in (("naive dense", naive_dense), ("bm25", bm25)):
        found = measure(text, text_queries, args.k, args.model)
        timings[system] = found["timing"]
        systems[system] = {"rankings": found["rankings"], "queries": text_queries}
    quality = {
        style: {
            system: scored(found["rankings"][style], found["queries"][style], args.k)
            for system, found in systems.items()
        }
        for style in queries
    }
    speed = {system: rates(t) for system, t in timings.items()}
    for system, each in seconds.items():
        if system in speed:
            speed[system]["seconds_each_run"] = [round(value, 2) for value in each]
    return {
        "queries": {style: len(lines) for style, lines in queries.items()},
        "speed": speed,
        "documents_per_s_over_fastest_llamaindex": round(
            speed["hyperion"]["documents_per_s"]
            / max(speed[system]["documents_per_s"] for system in ("llamaindex", PEER_AT_ITS_BATCH) if system in speed),
            2,
        ),
        "quality": quality,
        "peer_versions": peer["versions"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs of Hyperion and each LlamaIndex run (median counts)"
    )
    parser.add_argument("--man-pages", type=int, default=300)
    parser.add_argument("--only", nargs="*", choices=("faq", "man", "manuals"), default=["faq", "man", "manuals"])
    parser.add_argument("--backend", choices=("torch", "int8"), default="torch", help="how every system runs the model")
    parser.add_argument("--out", type=Path, default=None, help="default: results/peer_fair(_int8).json")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/hyperion-peer-fair"))
    args = parser.parse_args()
    shutil.rmtree(args.scratch, ignore_errors=True)
    args.out = args.out or (RESULTS if args.backend == "torch" else RESULTS.with_name("peer_fair_int8.json"))
    args.model = Model.prepare(args.backend, args.scratch)
    corpora = args.scratch / "corpora"
    described = "torch" if args.backend == "torch" else f"ONNX Runtime, {args.model.int8_file}"
    result: dict[str, Any] = {"k": args.k, "model": f"all-MiniLM-L6-v2 ({described}, CPU)"}
    result["load_average"] = os.getloadavg()
    result["corpora"] = {}
    if "faq" in args.only:
        queries = faq_corpus(corpora / "faq")
        result["corpora"]["faq"] = run_corpus("faq", corpora / "faq", corpora / "faq", queries, queries, args)
    if "man" in args.only:
        queries = man_corpus(corpora / "man", args.man_pages)
        result["corpora"]["man"] = run_corpus("man", corpora / "man", corpora / "man", queries, queries, args)
    if "manuals" in args.only:
        raw = CACHE / "corpus" / "docs"
        if not raw.exists():
            fetch_corpus(raw)
        known = known_item_queries(raw)
        queries = {"known_item": known, "keywords": keyword_queries(known)}
        names = extracted_text(raw, corpora / "manuals-text")
        text_queries = renamed(queries, names)
        result["corpora"]["manuals"] = run_corpus("manuals", raw, corpora / "manuals-text", queries, text_queries, args)
    result["load_average_at_end"] = os.getloadavg()
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, row in result["corpora"].items():
        print(f"{name}: {row['queries']}")
        for system, speed in row["speed"].items():
            print(f"  {system:<26} {speed}")
        print(f"  documents/s over the faster LlamaIndex run: {row['documents_per_s_over_fastest_llamaindex']}x")
        for style, systems in row["quality"].items():
            print(f"  {style}")
            for system, value in systems.items():
                print(f"    {system:<26} " + "  ".join(f"{m} {v:.3f}" for m, v in value.items()))


if __name__ == "__main__":
    main()
