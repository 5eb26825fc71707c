"""Celery workers against a slow remote embedder: 1, 2 and 4 workers on the same upload days, in one run.

    .venv/bin/python benchmarks/workers_bench.py [--workers 1 2 4] [--days 8] [--documents 75] [--delay-ms 1000]

For each worker count, from scratch: a fresh HYPERION_HOME, a fresh PostgreSQL database for the
Dagster instance and the state database (the local server, else a throwaway one from pgserver), a
milvus-lite server, RabbitMQ at 127.0.0.1:5672 (needed), and that many ``hyperion worker``
processes on this machine. ``--days`` upload days of ``--documents`` real documentation pages each
(``benchmarks/corpus.py``) are landed, then one run per day starts at once with the Celery
executor, as a backfill's runs do; the figure is the wall time from the start to the end of the
last run, and the index is checked exact afterwards.

The embedder is the loopback OpenAI-compatible service of ``scale_bench.py``, answering each batch
after ``--delay-ms`` (a stand-in for a remote GPU service; it answers concurrent batches side by
side, as a pool of GPUs would). Each worker keeps one batch in flight
(``HYPERION_OPENAI_CONCURRENCY=1``), so the speed-up is the workers' alone. Steps of one day run
in order, so a single day does not spread over workers: workers speed up several days (a backfill,
or days landing together); the default is twice as many days as the most workers, as a backfill
has, so that the days' different sizes even out over the workers. Each configuration records the
embedder's requests; from them and the one-worker time, ``best_seconds_here`` is the least time
this machine allows: one worker's time is the embedder's answers plus everything else, and n
workers can at best divide the first by n and the rest by the cores. Results go to ``benchmarks/results/workers.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import yaml
from dagster import DagsterInstance

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import fetch_corpus  # noqa: E402
from pipeline_bench import REPO, UPLOAD_TIME  # noqa: E402
from scale_bench import loopback_embedder  # noqa: E402

sys.path.insert(0, str(REPO))
from hyperion_pipelines.embedding.openai_compatible import OpenAICompatibleEmbedder  # noqa: E402
from hyperion_pipelines.embedding.sentence_transformer import packaged_model_dir  # noqa: E402
from hyperion_pipelines.settings import Settings  # noqa: E402
from hyperion_pipelines_tests.support import netns  # noqa: E402
from hyperion_pipelines_tests.support.celery_workers import (  # noqa: E402
    BROKER_PORT,
    postgres_url,
    running,
    start_run,
    start_worker,
    wait_for_workers,
)
from hyperion_pipelines_tests.support.exact_index import assert_index_matches_uploads  # noqa: E402
from hyperion_pipelines_tests.support.milvus_lite_server import MilvusLiteServer  # noqa: E402
from hyperion_pipelines_tests.support.postgres import Postgres, fresh_database, local_or_throwaway  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "workers.json"


def fill_days(uploads: Path, pages: list[Path], corpus: Path, days: int, documents: int) -> list[str]:
    """``documents`` pages on each of ``days`` upload days, each copy's bytes its own."""
    names = []
    for day in range(days):
        stamp = (UPLOAD_TIME + timedelta(days=day)).timestamp()
        for i in range(documents):
            page = pages[(day * documents + i) % len(pages)]
            target = uploads / f"day-{day}" / f"{i:04d}-{page.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            mark = (
                f"\n<!-- day {day} copy {i} -->\n" if page.suffix in (".html", ".md") else f"\n.. day {day} copy {i}\n"
            )
            target.write_bytes(page.read_bytes() + mark.encode())
            os.utime(target, (stamp, stamp))
        names.append((UPLOAD_TIME + timedelta(days=day)).date().isoformat())
    return names


def run_with(
    workers: int, args: argparse.Namespace, pages: list[Path], corpus: Path, url: str, server: Postgres
) -> dict[str, Any]:
    home = (args.scratch / f"workers-{workers}").resolve()
    shutil.rmtree(home, ignore_errors=True)
    uploads = home / "uploads"
    days = fill_days(uploads, pages, corpus, args.days, args.documents)
    databases = fresh_database(server)
    database = next(databases)
    milvus = MilvusLiteServer(home / "milvus", home / "milvus.log")
    (home / "dagster").mkdir(parents=True)
    instance = {
        "telemetry": {"enabled": False},
        "storage": {"postgres": {"postgres_url": postgres_url(server, database, "postgresql+psycopg2")}},
    }
    (home / "dagster" / "dagster.yaml").write_text(yaml.safe_dump(instance))
    saved = dict(os.environ)
    os.environ.update(
        HYPERION_HOME=str(home),
        HYPERION_UPLOADS_DIR=str(uploads),
        DAGSTER_HOME=str(home / "dagster"),
        HYPERION_EXECUTOR="celery",
        HYPERION_MILVUS_URI=milvus.uri,
        HYPERION_STATE_DB_URL=postgres_url(server, database, "postgresql+psycopg"),
        HYPERION_EMBEDDER="openai",
        HYPERION_OPENAI_BASE_URL=url,
        HYPERION_OPENAI_CONCURRENCY="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    tag = f"{os.getpid()}-{workers}"
    names = tuple(f"bench-{tag}-{i}@host" for i in range(workers))
    try:
        # The instance's tables, made once: runs that start together on an empty database race
        # to create them (one fails with "relation already exists"), as a deployment's webserver
        # or daemon would have made them before any run.
        with DagsterInstance.get():
            pass
        milvus.start()
        with running() as processes:
            processes.extend(start_worker(name, home / f"worker-{i}.log") for i, name in enumerate(names))
            wait_for_workers(names)
            peaks: dict[int, int] = {}
            started = time.perf_counter()
            runs = [start_run(day, home / f"run-{day}.log") for day in days]
            while any(run.poll() is None for run in runs):
                for process in processes:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        rss = psutil.Process(process.pid).memory_info().rss
                        peaks[process.pid] = max(peaks.get(process.pid, 0), rss)
                time.sleep(0.5)
            seconds = time.perf_counter() - started
            results = [json.loads(run.communicate()[0].strip().splitlines()[-1]) for run in runs]
        if not all(r["success"] for r in results):
            raise RuntimeError(f"a run failed with {workers} workers; see {home}/run-*.log")
        settings = Settings.from_env()
        remote = OpenAICompatibleEmbedder(url, settings.openai_model, tokenizer_dir=packaged_model_dir())
        entries = assert_index_matches_uploads(settings, remote)  # ids carry the remote model's identity
        remote.close()
    finally:
        milvus.kill()
        os.environ.clear()
        os.environ.update(saved)
        next(databases, None)
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)
    return {
        "workers": workers,
        "days": len(days),
        "documents": len(days) * args.documents,
        "chunks": entries,
        "seconds": round(seconds, 1),
        "chunks_per_s": round(entries / seconds, 1),
        "worker_peak_rss_mib": round(max(peaks.values()) / 2**20, 1) if peaks else None,
        "index_exact": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--documents", type=int, default=75, help="documents per upload day")
    parser.add_argument("--delay-ms", type=float, default=1000.0, help="the embedder's answer delay per batch")
    parser.add_argument("--keep", action="store_true", help="keep each configuration's folder and logs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/hyperion-workers-bench"))
    args = parser.parse_args()
    if not netns.port_open(BROKER_PORT):
        raise SystemExit(f"needs RabbitMQ on 127.0.0.1:{BROKER_PORT}")
    corpus = REPO / "benchmarks" / ".cache" / "corpus" / "docs"
    if not corpus.exists():
        fetch_corpus(corpus)
    pages = sorted(p for p in corpus.rglob("*") if p.is_file())
    rows = []
    postgres = local_or_throwaway()
    with loopback_embedder(args.delay_ms / 1000) as (url, counts):
        server = next(postgres)
        for workers in args.workers:
            before = counts["requests"]
            row = run_with(workers, args, pages, corpus, url, server)
            row["embedder_requests"] = counts["requests"] - before
            print(json.dumps(row), flush=True)
            rows.append(row)
    base = next((r for r in rows if r["workers"] == 1), None)
    cores = psutil.cpu_count() or 1
    for row in rows:
        if base is not None:
            row["speed_up"] = round(base["seconds"] / row["seconds"], 2)
            row["speed_up_per_worker"] = round(row["speed_up"] / row["workers"], 2)
            # What this machine allows at best: one worker's time is the embedder's answers
            # (one batch in flight, each after the delay) plus the rest (parsing, chunking,
            # checks, writes, Dagster); n workers divide the waiting by n and the rest by at most
            # the cores, and that only if every step overlaps perfectly.
            waiting = base["embedder_requests"] * args.delay_ms / 1000
            rest = max(base["seconds"] - waiting, 0.0)
            best = waiting / row["workers"] + rest / min(row["workers"], cores)
            row["best_seconds_here"] = round(best, 1)
            row["best_speed_up_per_worker_here"] = round(base["seconds"] / best / row["workers"], 2)
    result = {
        "machine": f"{psutil.cpu_count()} cores, {round(psutil.virtual_memory().total / 2**30)} GiB",
        "embedder": f"loopback OpenAI-compatible, {args.delay_ms} ms per batch, one batch in flight per worker",
        "executor": "dagster-celery on RabbitMQ, PostgreSQL instance, milvus-lite server",
        "runs": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    next(postgres, None)  # stops a throwaway server


if __name__ == "__main__":
    main()
