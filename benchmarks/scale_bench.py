"""One upload day of many documents: memory per process, speed, step-output bytes, in one run.

    .venv/bin/python benchmarks/scale_bench.py [--sizes 500 2000] [--delay-ms 0] [--whole]
        [--milvus-server | --milvus-standalone]

Real documentation pages (``benchmarks/corpus.py``, Debian's Python and Node.js manuals) are
copied into one upload day, as many times as a size needs; each copy gets a comment of its own so
its bytes (and so its parse) are new while its text is the page's. ``hyperion ingest`` runs as a
child process, the way a user runs it, against a loopback OpenAI-compatible embedder that answers
at once (or after ``--delay-ms`` per batch, a stand-in for a remote GPU service), so the model's
cost is out of the figures and what remains is the pipeline's own. Every process of the run
(the command, the parser sandbox, tesseract) is sampled for its resident memory.

Embedded milvus-lite runs inside the ingest process and keeps the collection in memory there;
``--milvus-server`` serves it from a process of its own, as a deployment's Milvus server does, so
that the ingest process's figure is the pipeline's alone; ``--milvus-standalone`` uses a real
Milvus server instead (2.3.5 standalone, from the PyPI package ``milvus``), whose segments are
indexed and kept on disk the way a deployment's are, for days too big for milvus-lite.
``--whole`` runs each size a second time with the whole day as one part (the behaviour before
parts), for the ratio in the same run.
``--limits`` also measures, on the first day's documents, what bounds a pipeline's speed on this
machine: parsing alone (the same parser processes), chunking alone (the same tokenizer and
chunker) and the Milvus server's write rate (the same rows, upserted in the same batches), each
with nothing else running. Results go to ``benchmarks/results/scale.json`` (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' helpers (support/)
from corpus import fetch_corpus  # noqa: E402
from pipeline_bench import REPO, Workspace, stamp  # noqa: E402

DIMENSION = 384
DAY = "2026-01-15"
RESULTS = REPO / "benchmarks" / "results" / "scale.json"  # --out to write elsewhere


@functools.lru_cache(maxsize=200_000)
def vector_of(text: str, encoding: str) -> str | list[float]:
    """A deterministic unit vector per text (the same text always gets the same vector), as
    base64 of float32 or as numbers, the way the client asked (OpenAI's ``encoding_format``).
    Remembered, so that the stand-in's own work stays small beside the pipeline's on 2 cores."""
    seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
    vector = np.random.default_rng(seed).standard_normal(DIMENSION).astype(np.float32)
    vector /= np.linalg.norm(vector)
    return base64.b64encode(vector.astype("<f4").tobytes()).decode() if encoding == "base64" else vector.tolist()


@contextmanager
def loopback_embedder(delay_s: float) -> Iterator[tuple[str, dict[str, int]]]:
    """``/v1/embeddings`` on loopback; yields its base URL and its request counters."""
    counts = {"requests": 0, "texts": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            texts, encoding = body["input"], body.get("encoding_format") or "float"
            if delay_s:
                time.sleep(delay_s)
            counts["requests"] += 1
            counts["texts"] += len(texts)
            data = [{"index": i, "embedding": vector_of(t, encoding)} for i, t in enumerate(texts)]
            payload = json.dumps({"data": data}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", counts
    finally:
        server.shutdown()
        server.server_close()


def fill_day(uploads: Path, pages: list[Path], corpus: Path, count: int) -> None:
    """``count`` documents on one day: the pages in turn, each copy's bytes its own."""
    for i in range(count):
        page = pages[i % len(pages)]
        target = uploads / f"copy-{i // len(pages):03d}" / page.relative_to(corpus)
        target.parent.mkdir(parents=True, exist_ok=True)
        mark = f"\n<!-- copy {i} -->\n" if page.suffix in (".html", ".md") else f"\n.. copy {i}\n"
        target.write_bytes(page.read_bytes() + mark.encode())
        stamp(target)


def sampled_run(
    command: list[str], env: dict[str, str], beside: psutil.Process | None = None
) -> tuple[subprocess.CompletedProcess, dict[str, float]]:
    """Run ``command``; peak RSS (MiB) of every process of its tree (and of ``beside``, a server
    it uses), by kind, sampled every 0.2 s."""
    peaks: dict[int, tuple[str, int]] = {}
    with subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        root = psutil.Process(p.pid)
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.extend(p.communicate()), daemon=True)
        reader.start()
        while reader.is_alive():
            try:
                tree = [root, *root.children(recursive=True), *([beside] if beside else [])]
            except psutil.NoSuchProcess:
                break
            for process in tree:
                try:
                    rss = process.memory_info().rss
                    kind = kind_of(process.cmdline())
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                if rss > peaks.get(process.pid, ("", 0))[1]:
                    peaks[process.pid] = (kind, rss)
            time.sleep(0.2)
        reader.join()
    by_kind: dict[str, float] = {}
    for kind, rss in peaks.values():
        by_kind[kind] = max(by_kind.get(kind, 0.0), round(rss / 2**20, 1))
    done = subprocess.CompletedProcess(command, p.returncode, out[0] if out else "", out[1] if len(out) > 1 else "")
    return done, by_kind


def kind_of(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    if "milvus_lite server" in text or "milvus run standalone" in text:
        return "milvus_server"
    if "tesseract" in text:
        return "tesseract"
    if "hyperion_pipelines.cli" in text:
        return "ingest"
    # The step's spawned children (parser sandboxes, chunker processes) share one command line.
    return "parser_or_chunker" if "python" in text else (cmdline[0] if cmdline else "?")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@contextmanager
def milvus_server(folder: Path) -> Iterator[tuple[str, psutil.Process]]:
    """milvus-lite's server in its own process: the index's memory is then the server's, as with
    any Milvus server, instead of the ingest process's (embedded milvus-lite runs in-process)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(folder), "--host", "127.0.0.1"]
    process = subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("the Milvus server did not start")
        time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}", psutil.Process(process.pid)
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def milvus_standalone(folder: Path) -> Iterator[tuple[str, psutil.Process]]:
    """Milvus 2.3.5 standalone in its own process (see ``milvus_standalone.py`` of the tests)."""
    from hyperion_pipelines_tests.support.milvus_standalone import MilvusStandalone

    server = MilvusStandalone(folder)
    server.start()
    try:
        assert server.server is not None and server.server.server_proc is not None
        yield server.uri, psutil.Process(server.server.server_proc.pid)
    finally:
        server.kill()
        shutil.rmtree(folder, ignore_errors=True)


SERVERS = {
    "embedded": ("milvus-lite embedded, in-process", None),
    "lite-server": ("milvus-lite server, own process", milvus_server),
    "standalone": ("Milvus 2.3.5 standalone, own process", milvus_standalone),
}


def run_size(
    scratch: Path,
    corpus: Path,
    pages: list[Path],
    count: int,
    part_documents: int,
    url: str,
    server_kind: str = "embedded",
) -> dict[str, Any]:
    workspace = Workspace.create(scratch / f"day-{count}-{part_documents}", corpus, files=[])
    fill_day(workspace.uploads, pages, corpus, count)
    env = workspace.env() | {
        "HYPERION_EMBEDDER": "openai",
        "HYPERION_OPENAI_BASE_URL": url,
        "HYPERION_PART_DOCUMENTS": str(part_documents),
    }
    command = [sys.executable, "-m", "hyperion_pipelines.cli", "ingest", "--date", DAY, "--json"]
    label, start_server = SERVERS[server_kind]
    serving = start_server(workspace.home / "milvus-server") if start_server else nullcontext((None, None))
    with serving as (uri, server):
        if uri:
            env["HYPERION_MILVUS_URI"] = uri
        started = time.perf_counter()
        done, peaks = sampled_run(command, env, server)
        seconds = time.perf_counter() - started
        entries = live_entries(uri or str(workspace.home / "milvus.db")) if done.returncode == 0 else -1
    if done.returncode != 0:
        raise RuntimeError(f"ingest of {count} documents failed ({done.returncode}):\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    storage = workspace.home / "dagster" / "storage"
    row = {
        "documents": count,
        "part_documents": part_documents,
        "milvus": label,
        "chunks": summary["chunks"],
        # Exact: the matches_chunks and self_retrieval checks passed, and the collection behind
        # the alias holds one entry per chunk.
        "failed_checks": summary["failed_checks"],
        "index_entries": entries,
        "index_exact": not summary["failed_checks"] and entries == summary["chunks"],
        "seconds": round(seconds, 1),
        "documents_per_s": round(count / seconds, 2),
        "chunks_per_s": round(summary["chunks"] / seconds, 1),
        "peak_rss_mib": peaks,
        "step_seconds": summary.get("step_seconds", {}),
        "step_output_bytes": folder_bytes(storage) if storage.exists() else 0,
        "step_output_bytes_per_chunk": round(folder_bytes(storage) / max(summary["chunks"], 1), 1),
    }
    shutil.rmtree(workspace.home, ignore_errors=True)
    return row


def live_entries(uri: str) -> int:
    """Entries of the collection behind the sample pipeline's alias."""
    from hyperion_pipelines.index.connection import connect, release_local

    client = connect(uri)
    try:
        collection = client.describe_alias("hyperion_documents")["collection_name"]
        client.load_collection(collection)
        return int(client.query(collection, filter="", output_fields=["count(*)"])[0]["count(*)"])
    finally:
        client.close()
        release_local(uri)


def physical_limits(
    scratch: Path, corpus: Path, pages: list[Path], count: int, url: str, server_kind: str = "lite-server"
) -> dict[str, Any]:
    """Parsing, chunking and the Milvus write rate (the server of the run; milvus-lite's server for
    an embedded run), each alone, on ``count`` documents."""
    from datetime import timedelta

    from pipeline_bench import UPLOAD_TIME

    from hyperion_pipelines.chunking.pool import ChunkJob, chunk_parts
    from hyperion_pipelines.chunking.stage import chunk_documents
    from hyperion_pipelines.embedding.openai_compatible import OpenAICompatibleEmbedder
    from hyperion_pipelines.embedding.sentence_transformer import packaged_model_dir
    from hyperion_pipelines.embedding.space import context_tokens, space_fingerprint
    from hyperion_pipelines.index.connection import connect
    from hyperion_pipelines.index.milvus_index import MilvusIndex
    from hyperion_pipelines.index.sync import index_rows
    from hyperion_pipelines.parsing.sandbox import ParserPool
    from hyperion_pipelines.parsing.stage import parse_documents
    from hyperion_pipelines.settings import Settings, default_parse_workers
    from hyperion_pipelines.sources.blob_store import BlobStore
    from hyperion_pipelines.sources.landing import land_documents
    from hyperion_pipelines.sources.uploads_folder import UploadsFolder
    from hyperion_pipelines.step_outputs.parts import frame_slices
    from hyperion_pipelines_tests.support.sample_pipeline import default_spec

    workspace = Workspace.create(scratch / "limits", corpus, files=[])
    fill_day(workspace.uploads, pages, corpus, count)
    spec = default_spec(Settings.from_env(workspace.env()))
    blobs = BlobStore(workspace.home / "blobs")
    start = UPLOAD_TIME.replace(hour=0)
    raw = land_documents(UploadsFolder(workspace.uploads), blobs, start, start + timedelta(days=1), max_bytes=1 << 30)
    workers = default_parse_workers()
    started = time.perf_counter()
    with ParserPool(spec.parsing.limits, workers) as parsers:
        parsed = parse_documents(raw, blobs, spec.parsing, parsers=parsers)
    parse_s = time.perf_counter() - started
    embedder = OpenAICompatibleEmbedder(url, "bench", tokenizer_dir=packaged_model_dir())
    identity = embedder.identity
    fingerprint = space_fingerprint(spec, identity)
    started = time.perf_counter()
    chunks = chunk_documents(
        parsed, embedder.tokenizer, spec.chunking, fingerprint, context_tokens=context_tokens(spec.chunking, identity)
    )
    chunk_s = time.perf_counter() - started
    # The same documents in parts of 500 on the chunker processes the pipeline uses (one part
    # each at a time), against the one process above: what HYPERION_CHUNK_WORKERS buys.
    chunk_workers = Settings.from_env(workspace.env()).chunk_workers
    job = ChunkJob(embedder.tokenizer, spec.chunking, fingerprint, None, context_tokens(spec.chunking, identity))
    started = time.perf_counter()
    spread = sum(len(frame) for frame, _ in chunk_parts(frame_slices(parsed, 500), job, chunk_workers))
    spread_s = time.perf_counter() - started
    assert spread == len(chunks), (spread, len(chunks))
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((len(chunks), identity.dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    embeddings = pd.DataFrame({"chunk_id": chunks["chunk_id"], "vector": list(vectors)})
    label, start_server = SERVERS[server_kind if server_kind != "embedded" else "lite-server"]
    with start_server(workspace.home / "milvus-server") as (uri, _):
        index = MilvusIndex(connect(uri), spec.index)
        collection = index.ensure_collection(fingerprint, identity.dimension)
        rows = [{**row, **index.scalar_values(row)} for row in index_rows(chunks, embeddings, DAY)]
        started = time.perf_counter()
        written = index.upsert(collection, rows)
        index.flush(collection)
        write_s = time.perf_counter() - started
    embedder.close()
    shutil.rmtree(workspace.home, ignore_errors=True)
    return {
        "documents": count,
        "chunks": len(chunks),
        "parse_documents_per_s": round(count / parse_s, 1),
        "parse_chunks_per_s": round(len(chunks) / parse_s, 1),
        "parser_processes": workers,
        "chunk_chunks_per_s": round(len(chunks) / chunk_s, 1),
        "chunk_processes": chunk_workers,
        "chunk_parts_chunks_per_s": round(len(chunks) / spread_s, 1),
        "milvus_server": label,
        "milvus_server_rows_per_s": round(written / write_s, 1),
        "milvus_write_batch": spec.index.write_batch_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--part-documents", type=int, default=500)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="the embedder's answer delay per batch")
    parser.add_argument("--whole", action="store_true", help="also run each size as one part (before parts)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--milvus-server", action="store_true", help="the index in milvus-lite's server process")
    where.add_argument("--milvus-standalone", action="store_true", help="the index in Milvus 2.3.5 standalone")
    parser.add_argument("--limits", action="store_true", help="also measure parsing, chunking and Milvus writes alone")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/hyperion-scale-bench"))
    args = parser.parse_args()
    corpus = REPO / "benchmarks" / ".cache" / "corpus" / "docs"
    if not corpus.exists():
        fetch_corpus(corpus)
    pages = sorted(p for p in corpus.rglob("*") if p.is_file())
    server_kind = "standalone" if args.milvus_standalone else "lite-server" if args.milvus_server else "embedded"
    rows = []
    with loopback_embedder(args.delay_ms / 1000) as (url, counts):
        for count in args.sizes:
            for part in [args.part_documents, *([count] if args.whole else [])]:
                row = run_size(args.scratch, corpus, pages, count, part, url, server_kind)
                print(json.dumps(row), flush=True)
                rows.append(row)
        limits = (
            physical_limits(args.scratch, corpus, pages, min(args.sizes), url, server_kind) if args.limits else None
        )
    result = {
        "machine": f"{psutil.cpu_count()} cores, {round(psutil.virtual_memory().total / 2**30)} GiB",
        "embedder": f"loopback OpenAI-compatible, {args.delay_ms} ms per batch",
        "corpus_pages": len(pages),
        "embedder_requests": counts["requests"],
        "runs": rows,
        **({"limits_alone": limits} if limits else {}),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
