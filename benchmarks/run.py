"""The benchmark suite: every figure measured side by side in one run, printed as ratios and
written to ``benchmarks/results/latest.json``.

    .venv/bin/python benchmarks/run.py            # everything (about half an hour on 2 CPU cores)
    .venv/bin/python benchmarks/run.py --only pipeline memory

The corpus is real public documentation fetched at run time from Debian packages (see
``corpus.py``; the packages and versions are recorded in the results). The peer framework runs
in its own virtual environment (``peer_env.py``), because it needs pymilvus 2.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus as corpus_source  # noqa: E402 - benchmarks/ is a folder of scripts, not a package
import pipeline_bench  # noqa: E402
import time_to_searchable  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "benchmarks" / ".cache"
RESULTS = REPO / "benchmarks" / "results" / "latest.json"
PARTS = ("pipeline", "memory", "searchable", "peer", "backends")


def machine() -> dict[str, Any]:
    import os

    import torch

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), platform.processor())
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    memory_kib = next(int(line.split()[1]) for line in meminfo if "MemTotal" in line)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def our_quality(workspace: pipeline_bench.Workspace, queries: Path) -> dict[str, Any]:
    result, _, _ = pipeline_bench.hyperion(workspace, "eval", str(queries))
    return {k: result[k] for k in ("k", "queries", "recall_at_k", "mrr", "ndcg_at_k")}


def run_peer(docs: Path, queries: Path) -> dict[str, Any]:
    import peer_env

    python = peer_env.ensure_peer_python()
    out = CACHE / "peer" / "result.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(python), str(REPO / "benchmarks" / "peer_llamaindex.py"), "--corpus", str(docs), "--queries", str(queries),
        "--milvus", str(CACHE / "peer" / "milvus.db"), "--chunk-tokens", "200", "--overlap-tokens", "32",
        "--batch-size", "64", "--edit-fraction", "0.01", "--embed-sample", "2048", "--out", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=True, cwd=REPO)
    return json.loads(out.read_text())


def run_backends(workspace: pipeline_bench.Workspace, queries: Path) -> dict[str, Any]:
    import embedding_backends

    return embedding_backends.measure_from_index(workspace, queries)


def table(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measure, value, target, met) rows for what was run."""
    rows: list[tuple[str, str, str, str]] = []

    def row(name: str, value: float | None, target: str, met: bool | None) -> None:
        shown = "n/a" if value is None else f"{value:.3f}" if value < 100 else f"{value:.0f}"
        rows.append((name, shown, target, "n/a" if met is None else ("yes" if met else "NO")))

    if pipeline := results.get("pipeline"):
        ratio, one_percent = pipeline["throughput_ratio"], pipeline["one_percent_ratio"]
        row("pipeline / raw encode throughput", ratio, ">= 0.85", ratio >= 0.85)
        row("1 % edited re-run / full run", one_percent, "<= 0.05", one_percent <= 0.05)
        row("no-change re-run / full run", pipeline["no_change_ratio"], "", None)
        embedded = pipeline["no_change_embedded"]
        row("no-change re-run: chunks embedded", embedded, "0", embedded == 0)
    if deletions := results.get("pipeline_deletions"):
        row("ours edits+deletions exact", float(deletions["verification"]["exact"]), "", None)
    if memory := results.get("memory"):
        row("peak RSS, 10x partition / 1x", memory["ratio"], "< 1.5", memory["ratio"] < 1.5)
    if searchable := results.get("searchable"):
        median = searchable["median_searchable_s"]
        row("time to searchable, median s", median, "< 30", median < 30)
        row("time to searchable, p95 s", searchable["p95_searchable_s"], "", None)
    if (peer := results.get("peer")) and (pipeline := results.get("pipeline")):
        full = peer["full_ingest"]
        docs_ratio = pipeline["documents"] / pipeline["full_run_s"] / (full["documents"] / full["seconds"])
        row("ours / LlamaIndex, documents per s", docs_ratio, ">= 1.2", docs_ratio >= 1.2)
        row("LlamaIndex edits+deletions exact", float(peer["edit_rerun"]["verification"]["exact"]), "", None)
    if backends := results.get("backends"):
        for name, figures in backends.get("variants", {}).items():
            if name != "torch":
                speedup, change = figures["speedup"], figures["ndcg_relative_change"]
                row(f"{name} / torch encode throughput", speedup, ">= 1.5", speedup >= 1.5)
                row(f"{name} nDCG@10 relative change", change, ">= -0.02", change >= -0.02)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--max-docs", type=int, default=400)
    parser.add_argument("--uploads", type=int, default=10, help="uploads timed for time to searchable")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()

    started = time.time()
    docs = CACHE / "corpus" / "docs"
    provenance = corpus_source.fetch_corpus(docs, cache_dir=CACHE, max_docs=args.max_docs)
    queries = CACHE / "corpus" / "queries.jsonl"
    corpus_source.write_queries(corpus_source.known_item_queries(docs), queries)
    results: dict[str, Any] = {"machine": machine(), "corpus": provenance}

    def done(part: str, figures: dict[str, Any]) -> None:
        """Keep each part's figures as it ends: a run stopped later still leaves them on disk."""
        results[part] = figures
        results["seconds"] = round(time.time() - started)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"{part}: {json.dumps(figures)}", flush=True)

    workspace = None
    if "pipeline" in args.only or "peer" in args.only or "backends" in args.only:
        pipeline = pipeline_bench.throughput_and_incremental(docs, CACHE / "pipeline")
        home = CACHE / "pipeline" / "throughput"
        workspace = pipeline_bench.Workspace(home=home, uploads=home / "uploads")
        done("pipeline", {**pipeline, "quality": our_quality(workspace, queries)})
    if "memory" in args.only:
        done(
            "memory",
            pipeline_bench.memory_growth(docs, CACHE / "pipeline", small=max(1, provenance["documents"] // 10)),
        )
    if "searchable" in args.only:
        done("searchable", time_to_searchable.measure(args.uploads, CACHE / "searchable"))
    if "peer" in args.only:
        done("peer", run_peer(docs, queries))
    if "backends" in args.only and workspace is not None:
        done("backends", run_backends(workspace, queries))
    if "pipeline" in args.only and workspace is not None:  # last: it deletes documents from the workspace
        done("pipeline_deletions", pipeline_bench.deletions_exact(workspace))

    rows = table(results)
    width = max(len(r[0]) for r in rows) if rows else 10
    print(f"\n{'measure':<{width}}  {'value':>8}  {'target':>8}  met")
    for name, value, target, met in rows:
        print(f"{name:<{width}}  {value:>8}  {target:>8}  {met}")
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
