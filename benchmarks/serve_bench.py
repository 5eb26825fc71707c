"""The search API's latency and throughput: ``hyperion serve`` on the benchmark corpus, in one run.

    .venv/bin/python benchmarks/serve_bench.py [--queries 300] [--clients 1 4 8] [--seconds 20] [--k 10]

The benchmark corpus (``benchmarks/corpus.py``: real pages of Debian's Python and Node.js manuals)
is ingested with the default configuration (the packaged all-MiniLM-L6-v2 on the CPU, the
embedded milvus-lite index), then ``hyperion serve`` is started as a user starts it. The queries
are the corpus's known-item queries (page titles) and, as many again, their last words, so both
short and longer texts are embedded. Latency is measured at the client, over HTTP on loopback,
each request the whole path: reading it, embedding the query, asking Milvus for the live alias,
searching, and answering. First ``--queries`` requests one after another (p50, p95, p99), then
five requests each after a 3 s pause (the embedded index is let go after 2 s idle and opened
again), then ``--clients`` clients at once for ``--seconds`` each (requests/s and percentiles).
Results go to ``benchmarks/results/serve.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import fetch_corpus, known_item_queries  # noqa: E402
from pipeline_bench import REPO, Workspace, hyperion  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "serve.json"


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "mean_ms": round(statistics.mean(ordered) * 1000, 1),
    }


def query_texts(corpus: Path, count: int) -> list[str]:
    titles = [q["query"] for q in known_item_queries(corpus, limit=count)]
    tails = [" ".join(t.split()[-2:]) for t in titles]
    texts = [t for pair in zip(titles, tails, strict=True) for t in pair]
    return (texts * (count // max(len(texts), 1) + 1))[:count]


def timed(http: httpx.Client, text: str, k: int) -> float:
    started = time.perf_counter()
    answer = http.post("/search", json={"query": text, "k": k})
    took = time.perf_counter() - started
    if answer.status_code != 200 or len(answer.json()["results"]) != k:
        raise RuntimeError(f"search failed ({answer.status_code}): {answer.text[:300]}")
    return took


def concurrent(url: str, texts: list[str], clients: int, seconds: float, k: int) -> dict[str, Any]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            i = offset
            while time.perf_counter() < stop:
                took = timed(http, texts[i % len(texts)], k)
                with lock:
                    latencies.append(took)
                i += clients

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {"clients": clients, "requests": len(latencies), "requests_per_s": round(len(latencies) / wall, 1)} | (
        percentiles(latencies)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=300, help="sequential requests")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per concurrent round")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/hyperion-serve-bench"))
    args = parser.parse_args()
    corpus = REPO / "benchmarks" / ".cache" / "corpus" / "docs"
    if not corpus.exists():
        fetch_corpus(corpus)
    workspace = Workspace.create(args.scratch, corpus)
    summary, ingest_s, _ = hyperion(workspace, "ingest", "--all")
    texts = query_texts(corpus, args.queries)
    url = f"http://127.0.0.1:{args.port}"
    command = [sys.executable, "-m", "hyperion_pipelines.cli", "serve", "--port", str(args.port)]
    log = (args.scratch / "serve.log").open("w")
    server = subprocess.Popen(command, env=workspace.env(), cwd=REPO, stderr=log)
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            deadline = time.monotonic() + 180
            while True:
                try:
                    http.get("/healthz")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("hyperion serve did not start (see serve.log)") from None
                    time.sleep(0.5)
            for text in texts[:20]:  # warm: the first requests open the index and fill caches
                timed(http, text, args.k)
            sequential = percentiles([timed(http, text, args.k) for text in texts])
            # After a pause the embedded index has been let go (for runs): the next request opens it.
            after_pause = []
            for text in texts[:5]:
                time.sleep(3.0)
                after_pause.append(timed(http, text, args.k))
        rounds = [concurrent(url, texts, clients, args.seconds, args.k) for clients in args.clients]
        server_rss = round(psutil.Process(server.pid).memory_info().rss / 2**20, 1)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    result = {
        "machine": f"{psutil.cpu_count()} cores, {round(psutil.virtual_memory().total / 2**30)} GiB",
        "index": "milvus-lite embedded (the default: hybrid, BM25 scored by Hyperion), "
        "all-MiniLM-L6-v2 on the CPU (torch)",
        "corpus": {"documents": summary["documents"], "chunks": summary["chunks"], "ingest_s": round(ingest_s, 1)},
        "k": args.k,
        "sequential": {"requests": len(texts)} | sequential,
        "after_3_s_pause_ms": [round(t * 1000, 1) for t in after_pause],
        "concurrent": rounds,
        "server_rss_mib": server_rss,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
