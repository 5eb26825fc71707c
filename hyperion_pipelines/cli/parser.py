"""The ``hyperion`` argument parser: every command, its flags and help, and the examples each --help ends with."""

from __future__ import annotations

import argparse
from datetime import date

from hyperion_pipelines.cli.collections import cmd_collections
from hyperion_pipelines.cli.evaluate import cmd_eval
from hyperion_pipelines.cli.export_onnx import cmd_export_onnx
from hyperion_pipelines.cli.gc import cmd_gc
from hyperion_pipelines.cli.ingest import cmd_ingest
from hyperion_pipelines.cli.pipelines import cmd_pipelines
from hyperion_pipelines.cli.quarantine import cmd_quarantine
from hyperion_pipelines.cli.reindex import cmd_reindex
from hyperion_pipelines.cli.repair import cmd_repair
from hyperion_pipelines.cli.search import cmd_search
from hyperion_pipelines.cli.serve import cmd_serve
from hyperion_pipelines.cli.worker import cmd_worker


def _valid_date(value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date in YYYY-MM-DD form: {value!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    from hyperion_pipelines.serving.queries import DEFAULT_MAX_K

    parser = argparse.ArgumentParser(prog="hyperion", description="Hyperion Pipelines: documents to a Milvus index.")
    commands = parser.add_subparsers(dest="command", required=True)
    which_pipeline = argparse.ArgumentParser(add_help=False)
    which_pipeline.add_argument(
        "--pipeline", default="documents", metavar="NAME", help="the declared pipeline to use (default: documents)"
    )

    listing = commands.add_parser("pipelines", help="list the declared pipelines and where each is declared")
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    listing.set_defaults(handler=cmd_pipelines)

    ingest = commands.add_parser(
        "ingest", parents=[which_pipeline], help="materialise the document assets for upload-day partitions"
    )
    ingest.add_argument("--uploads", metavar="DIR", help="ingest from this uploads folder (sets HYPERION_UPLOADS_DIR)")
    which = ingest.add_mutually_exclusive_group()
    which.add_argument("--date", type=_valid_date, metavar="YYYY-MM-DD", help="one upload day (default: today, UTC)")
    which.add_argument("--all", action="store_true", help="every upload day that has documents")
    which.add_argument(
        "--from", dest="from_date", type=_valid_date, metavar="YYYY-MM-DD", help="backfill every day from this one"
    )
    ingest.add_argument(
        "--to", dest="to_date", type=_valid_date, metavar="YYYY-MM-DD", help="last day of --from (default: today)"
    )
    ingest.add_argument(
        "--allow-deletions",
        action="store_true",
        help="confirm that documents gone from the source may leave the index even where the deletion guard "
        "would stop the run (most of a day, or a source that lists nothing)",
    )
    ingest.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    ingest.add_argument("-v", "--verbose", action="store_true", help="show Dagster's INFO logs")
    ingest.set_defaults(handler=cmd_ingest)

    reindex = commands.add_parser(
        "reindex",
        parents=[which_pipeline],
        help="blue/green: build the current embedding space's collection, check it, then move the alias",
    )
    reindex.add_argument("--drop-old", action="store_true", help="drop the alias's other collections once promoted")
    reindex.add_argument("--force", action="store_true", help="rebuild even when the collection is already live")
    reindex.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    reindex.add_argument("-v", "--verbose", action="store_true", help="show Dagster's INFO logs")
    reindex.set_defaults(handler=cmd_reindex)

    collections = commands.add_parser(
        "collections", parents=[which_pipeline], help="list the alias's collections; drop old ones"
    )
    collections.add_argument(
        "--drop-old",
        action="store_true",
        help="drop collections that are neither live nor of the current configuration",
    )
    collections.add_argument("--json", action="store_true", help="print one JSON object")
    collections.set_defaults(handler=cmd_collections)

    search = commands.add_parser("search", parents=[which_pipeline], help="search the live index")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=5, help="number of hits (default 5)")
    search.add_argument("--json", action="store_true", help="print the hits as one JSON array")
    search.set_defaults(handler=cmd_search)

    serve = commands.add_parser(
        "serve",
        parents=[which_pipeline],
        help="answer searches of the live index over HTTP (POST /search, /healthz, /metrics, /openapi.json)",
        description="Example: hyperion serve --port 8080, then: curl -s localhost:8080/search "
        '-d \'{"query": "tyre pressure", "k": 3}\'. Off this machine, set HYPERION_SERVE_TOKEN.',
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument(
        "--max-k", type=int, default=DEFAULT_MAX_K, help=f"the most results a request may ask for ({DEFAULT_MAX_K})"
    )
    serve.add_argument(
        "--idle-release-s",
        type=float,
        default=2.0,
        metavar="S",
        help="embedded index only: let the database go after this many idle seconds, for runs (default 2)",
    )
    serve.set_defaults(handler=cmd_serve)

    evaluate = commands.add_parser(
        "eval", parents=[which_pipeline], help="score the live index on a query set: recall@k, MRR, nDCG@k"
    )
    evaluate.add_argument("queries", metavar="QUERIES.jsonl", help='lines of {"query": ..., "relevant": [...]}')
    evaluate.add_argument("-k", type=int, default=10, help="cut-off for recall and nDCG (default 10)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    evaluate.set_defaults(handler=cmd_eval)

    quarantine = commands.add_parser(
        "quarantine", parents=[which_pipeline], help="list documents that could not be indexed, and why"
    )
    quarantine.add_argument("--date", type=_valid_date, metavar="YYYY-MM-DD", help="only this upload day")
    quarantine.add_argument("--json", action="store_true", help="print one JSON array of objects")
    quarantine.add_argument(
        "--history", action="store_true", help="include released entries (re-driven, superseded or removed)"
    )
    quarantine.set_defaults(handler=cmd_quarantine)

    gc = commands.add_parser(
        "gc",
        help="remove blobs and cache entries no recorded document needs, and old Dagster step outputs",
    )
    gc.add_argument("--dry-run", action="store_true", help="count what would be removed; remove nothing")
    gc.add_argument(
        "--retention-days",
        type=float,
        metavar="DAYS",
        help="step outputs and logs older than this go (default: HYPERION_STEP_OUTPUT_RETENTION_DAYS, 7)",
    )
    gc.add_argument("--json", action="store_true", help="print the report as one JSON object")
    gc.set_defaults(handler=cmd_gc)

    repair = commands.add_parser(
        "repair",
        help="set a damaged state database aside and rebuild the manifest and the quarantine from the source "
        "and the index (stored vectors are reused)",
    )
    repair.add_argument(
        "--rebuild-index",
        action="store_true",
        help="also set a damaged milvus-lite index aside and embed every document again",
    )
    repair.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    repair.add_argument("-v", "--verbose", action="store_true", help="show Dagster's INFO logs")
    repair.set_defaults(handler=cmd_repair)

    export = commands.add_parser(
        "export-onnx", help="export the local model to ONNX (optionally int8) for the onnx embedding backend"
    )
    export.add_argument(
        "--model", metavar="DIR", help="model folder (default: HYPERION_EMBEDDING_MODEL_PATH, else the packaged model)"
    )
    export.add_argument(
        "--out", metavar="DIR", help="export folder (default: $HYPERION_HOME/models/<model>-<digest>-onnx)"
    )
    export.add_argument("--quantize", choices=["int8"], help="also write a dynamically quantised int8 file")
    export.add_argument(
        "--quantize-config",
        choices=["avx512_vnni", "avx2"],
        default="avx512_vnni",
        help="int8 preset: avx512_vnni (int8 weights, default) or avx2 (uint8 weights, for CPUs without VNNI)",
    )
    export.add_argument("--force", action="store_true", help="export again even if the files are there")
    export.add_argument("--json", action="store_true", help="print the result as one JSON object")
    export.set_defaults(handler=cmd_export_onnx)

    worker = commands.add_parser(
        "worker",
        help="run a Celery worker that executes steps of runs on HYPERION_EXECUTOR=celery",
    )
    worker.add_argument("-n", "--name", help="worker name, unique per host (default: hyperion@<hostname>)")
    worker.add_argument("-l", "--loglevel", default="INFO", help="Celery's log level (default INFO)")
    worker.set_defaults(handler=cmd_worker)
    for name, sub in commands.choices.items():
        sub.epilog = "examples:\n" + "\n".join(f"  {example}" for example in HELP_EXAMPLES[name])
        sub.formatter_class = argparse.RawDescriptionHelpFormatter  # keeps the examples' lines
    return parser


#: What ``hyperion <command> --help`` ends with (test_docs checks every command has one).
HELP_EXAMPLES: dict[str, tuple[str, ...]] = {
    "pipelines": ("hyperion pipelines --json",),
    "ingest": (
        "hyperion ingest --uploads hyperion_pipelines/sample_corpus --all",
        "hyperion ingest --pipeline legal --date 2026-03-02 --json",
        "hyperion ingest --from 2026-03-01 --to 2026-03-31",
    ),
    "reindex": ("hyperion reindex --drop-old",),
    "collections": ("hyperion collections --json",),
    "search": ('hyperion search "how do honeybees survive the winter" -k 10 --json',),
    "serve": ("hyperion serve --port 8080", "HYPERION_SERVE_TOKEN=... hyperion serve --host 0.0.0.0"),
    "eval": ("hyperion eval queries.jsonl -k 10 --json",),
    "quarantine": ("hyperion quarantine --date 2026-03-02", "hyperion quarantine --history --json"),
    "gc": ("hyperion gc --dry-run", "hyperion gc --retention-days 3 --json"),
    "repair": ("hyperion repair", "hyperion repair --rebuild-index --json"),
    "export-onnx": ("hyperion export-onnx --quantize int8",),
    "worker": ("HYPERION_CELERY_BROKER=pyamqp://guest:guest@broker:5672// hyperion worker -n w1@%h",),
}
