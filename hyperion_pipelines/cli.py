"""The ``hyperion`` command line: drives the same Dagster definitions the UI shows.

Runs go through the Dagster instance in ``DAGSTER_HOME`` (default ``$HYPERION_HOME/dagster``), so
they appear in the UI's run history next to runs launched there.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from hyperion_pipelines.embedding.space import collection_fingerprint
from hyperion_pipelines.index.deletion_guard import ALLOW_DELETIONS_TAG, FAR_FUTURE
from hyperion_pipelines.settings import Settings, SettingsError

# The same settings as the repository's dagster.yaml (a test keeps the two equal).
EMBEDDED_INSTANCE_YAML = """\
telemetry:
  enabled: false
concurrency:
  runs:
    # milvus-lite accepts one writing process per database file: queue runs one at a time.
    max_concurrent_runs: 1
    # Never two runs of one upload day at once (sensor, schedule, backfill): the later listing
    # must not be undone by the earlier one's index sync.
    tag_concurrency_limits:
      - key: dagster/partition
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    # hyperion_embedding and hyperion_milvus_writes: one step of each at a time across runs
    # (the CPU is shared by embedding; Milvus takes one writer).
    default_limit: 1
run_queue:
  # The daemon takes queued runs every second (Dagster's default is 5): part of how long an
  # upload waits to become searchable (benchmarks/time_to_searchable.py).
  dequeue_interval_seconds: 1
run_launcher:
  # Each run in its own process, whose id is kept in the run's tags for run monitoring.
  module: hyperion_pipelines.instance.run_launcher
  class: LocalRunLauncher
run_monitoring:
  # Marks runs whose worker died (OOM killer, kill -9) as failed, and enforces each job's
  # dagster/max_runtime tag. Failed runs are not resumed in place: run_retries re-executes them.
  enabled: true
  poll_interval_seconds: 10
  max_resume_run_attempts: 0
  # A run whose worker died while holding a pool slot gives it back this long after it is marked
  # failed.
  free_slots_after_run_end_seconds: 30
run_retries:
  # A run whose worker crashed is run again once; failing steps already retry (RetryPolicy), so
  # a run that failed in its own code is not re-run but alerted.
  enabled: true
  max_retries: 1
  retry_on_asset_or_op_failure: false
"""

MAX_K = 1000  # hits per query; Milvus allows at most 16384 per search, eval fetches 5 chunks per document

SUMMARY_KEYS = ("documents", "chunks", "rejected", "embedded", "reused")
# Which asset's metadata entry feeds each summary key.
_SUMMARY_SOURCES = {
    "documents": ("raw_documents", "documents"),
    "rejected": ("parsed_documents", "rejected"),
    "chunks": ("document_chunks", "chunks"),
    "embedded": ("chunk_embeddings", "embedded"),
    "reused": ("chunk_embeddings", "reused"),
}


def _valid_date(value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date in YYYY-MM-DD form: {value!r}") from exc


def _ensure_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME as set, else ``$HYPERION_HOME/dagster``, given the embedded instance settings
    (the repository's ``dagster.yaml``) when it has none."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home)))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(EMBEDDED_INSTANCE_YAML, encoding="utf-8")
    return home


class CommandError(Exception):
    """A mistake in what was asked; printed without a traceback."""


class FaultFound(Exception):
    """Damage found that the command will not undo by itself; printed in one line, exit status 1."""


def _pipeline(args: argparse.Namespace) -> Any:
    """The declared pipeline ``--pipeline`` names (default: the sample pipeline, ``documents``)."""
    from hyperion_pipelines.definitions import pipeline_specs

    specs = {spec.name: spec for spec in pipeline_specs()}
    if args.pipeline not in specs:
        raise CommandError(f"no pipeline named {args.pipeline!r}; declared: {', '.join(sorted(specs))}")
    return specs[args.pipeline]


def _days_to_ingest(settings: Settings, spec: Any) -> set[str]:
    """Days with documents at the source, plus days with entries in the live index: a day whose
    documents were all deleted must run too, or their vectors would stay searchable."""
    from hyperion_pipelines.defs.partitions import partition_key_for
    from hyperion_pipelines.defs.resources import build_resources

    resources = build_resources(settings, spec)
    start = datetime.fromisoformat(spec.partitions_start).replace(tzinfo=UTC)
    end = FAR_FUTURE  # future-dated files too, so they are reported, not missed
    from hyperion_pipelines.sources.base import SourceUnavailable

    with resources[spec.resources.source].process_config_and_initialize_cm() as source, source.open() as opened:
        try:
            days = {partition_key_for(ref.uploaded_at) for ref in opened.list_documents(start, end)}
        except SourceUnavailable as exc:
            # The days the index holds still run, and fail saying so without removing anything.
            print(f"hyperion: {exc}", file=sys.stderr)
            days = set()
    with resources[spec.resources.milvus].process_config_and_initialize_cm() as milvus:
        index = milvus.index(spec.index, _notice)
        live = index.live_collection()
        if live is not None:
            days |= index.partition_dates(live)
    return days


def _metadata_by_asset(result: Any) -> dict[str, dict[str, Any]]:
    values: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        values[materialization.asset_key.path[-1]] = {k: v.value for k, v in materialization.metadata.items()}
    return values


def _summarise(values: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {key: int(values.get(asset, {}).get(entry, 0)) for key, (asset, entry) in _SUMMARY_SOURCES.items()}


def _evaluate_after_ingest(defs: Any, spec: Any, instance: Any, log_level: str) -> dict[str, Any] | None:
    """Run the golden query set, when the pipeline has one, against the freshly written index."""
    name = f"evaluate_{spec.name}"
    if not any(job.name == name for job in defs.jobs):
        return None
    result = defs.resolve_job_def(name).execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    metadata = {}
    for event in result.get_asset_materialization_events():
        metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    if not metadata:
        return {"check": "error", "run_id": result.run_id}
    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    level = "passed" if all(c.passed for c in checks) else str(checks[0].severity.value).lower()
    return {
        "k": metadata["k"],
        "queries": metadata["queries"],
        "recall_at_k": metadata["recall_at_k"],
        "mrr": metadata["mrr"],
        "ndcg_at_k": metadata["ndcg_at_k"],
        "check": level,
        "run_id": result.run_id,
    }


def cmd_ingest(args: argparse.Namespace) -> int:
    if args.uploads:
        os.environ["HYPERION_UPLOADS_DIR"] = str(Path(args.uploads).resolve())
    settings = Settings.from_env()
    _ensure_dagster_home(settings)

    from dagster import DagsterInstance

    from hyperion_pipelines.definitions import build_definitions

    spec = _pipeline(args)
    if args.uploads and getattr(spec.source, "path", None) != os.environ["HYPERION_UPLOADS_DIR"]:
        raise CommandError(
            f"--uploads sets HYPERION_UPLOADS_DIR, which the pipeline {spec.name!r} does not read (its source: "
            f"{spec.source.kind} {getattr(spec.source, 'path', None) or getattr(spec.source, 'base_url', '')})"
        )
    defs = build_definitions(settings)
    job = defs.resolve_job_def(f"ingest_{spec.name}")
    valid = set(job.partitions_def.get_partition_keys())
    today = datetime.now(UTC).date()
    if args.all:
        wanted = _days_to_ingest(settings, spec)
    elif args.from_date:
        first, last = date.fromisoformat(args.from_date), date.fromisoformat(args.to_date or today.isoformat())
        if last < first:
            print(f"--to {last} is before --from {first}", file=sys.stderr)
            return 2
        wanted = {(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)}
    else:
        wanted = {args.date or today.isoformat()}
    partitions, skipped = sorted(wanted & valid), sorted(wanted - valid)
    if skipped:
        print(
            f"Not upload-day partitions (before {spec.partitions_start} or in the future), skipped: "
            f"{', '.join(skipped)}",
            file=sys.stderr,
        )
        if not (args.all or args.from_date):
            return 2
    # Quiet by default: warnings and failures are printed below from the run's event log, one
    # line each, instead of Dagster's console lines with their stack traces.
    log_level = "INFO" if args.verbose else "CRITICAL"
    started = time.perf_counter()
    tags = {ALLOW_DELETIONS_TAG: "true"} if args.allow_deletions else {}
    with DagsterInstance.get() as instance:
        runs = _run_days(job, instance, partitions, log_level, tags)
        evaluation = (
            _evaluate_after_ingest(defs, spec, instance, log_level) if partitions and not runs.failed_days else None
        )
    totals, run_ids, failed = runs.totals, runs.run_ids, runs.failed_days
    summary = {
        **totals,
        "seconds": round(time.perf_counter() - started, 2),
        "partitions": partitions,
        "failed_partitions": failed,
        "skipped_partitions": skipped,
        "run_ids": run_ids,
        "failures": runs.failures,
        "failed_checks": runs.failed_checks,
        "evaluation": evaluation,
    }
    if args.json:
        print(json.dumps({**summary, "warnings": runs.warnings}))
    else:
        for line in runs.warnings if not args.verbose else []:
            print(f"warning: {line}", file=sys.stderr)
        print(
            f"Ingested {len(partitions)} partition(s): {totals['documents']} documents, "
            f"{totals['chunks']} chunks, {totals['rejected']} rejected, {totals['embedded']} chunks "
            f"embedded now, {totals['reused']} reused, in {summary['seconds']} s."
        )
        if evaluation:
            k = evaluation["k"]
            print(
                f"Golden queries: recall@{k} {evaluation['recall_at_k']:.3f}, MRR {evaluation['mrr']:.3f}, "
                f"nDCG@{k} {evaluation['ndcg_at_k']:.3f} ({evaluation['check']})."
            )
        for line in runs.failed_checks:
            print(f"FAILED check: {line} (see the asset's checks in the Dagster UI)", file=sys.stderr)
        if failed:
            print(f"FAILED partitions: {', '.join(failed)} (see the runs in the Dagster UI)", file=sys.stderr)
            for line in runs.failures:
                print(f"  {line}", file=sys.stderr)
    _hint_if_candidate(runs)
    return 1 if failed else 0


@dataclass
class DayRuns:
    run_ids: list[str] = field(default_factory=list)
    failed_days: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)  # "day: asset.check" with ERROR severity
    failures: list[str] = field(default_factory=list)  # "day: step: why" of each step that failed for good
    warnings: list[str] = field(default_factory=list)  # "day: step: message" the steps logged as warnings
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUMMARY_KEYS, 0))
    # (collection written, collection behind the alias), from vector_index's metadata
    collections: set[tuple[str, str]] = field(default_factory=set)


def _failure_line(event: Any) -> str:
    """Why a step failed, in one line: a Failure's description, else the error's last line."""
    data = event.event_specific_data
    user = getattr(data, "user_failure_data", None)  # only a step's failure carries one
    if user is not None and user.description:
        return user.description
    error = data.error
    while error.cause is not None and "Failure" not in error.cls_name:
        error = error.cause  # dagster wraps the user's exception; its own message is the useful one
    return error.message.strip().splitlines()[-1] if error.message.strip() else error.cls_name


def _explained(line: str) -> str:
    from hyperion_pipelines.faults import explain

    return explain(line, Settings.from_env()) or line


def _run_days(
    job: Any, instance: Any, partitions: Sequence[str], log_level: str, tags: dict[str, str] | None = None
) -> DayRuns:
    """Run the ingest job once per upload day, in this process, recorded in the instance."""
    from hyperion_pipelines.instance.run_launcher import worker_tags

    runs = DayRuns()
    for partition in partitions:
        result = job.execute_in_process(
            instance=instance,
            partition_key=partition,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            # This process is the run's worker: run monitoring and storage GC can tell when it died.
            tags={**(tags or {}), **worker_tags(os.getpid())},
        )
        runs.run_ids.append(result.run_id)
        if not result.success:
            runs.failed_days.append(partition)
        for entry in instance.all_logs(result.run_id):
            # Dagster's own "Dependencies for step ... Not executing" follow from a failure shown below.
            if entry.is_dagster_event or entry.level < logging.WARNING or "Not executing" in entry.user_message:
                continue
            line = f"{partition}: {entry.step_key}: {entry.user_message}"
            if line not in runs.warnings:  # a retried step logs its warnings again
                runs.warnings.append(line)
        failures_before = len(runs.failures)
        for event in result.all_events:
            if event.event_type_value == "STEP_FAILURE":
                runs.failures.append(f"{partition}: {event.step_key}: {_explained(_failure_line(event))}")
            # A run that failed before any step (its resources could not start) says why here.
            elif event.event_type_value in ("RESOURCE_INIT_FAILURE", "RUN_FAILURE") and (
                getattr(event.event_specific_data, "error", None) is not None and len(runs.failures) == failures_before
            ):
                runs.failures.append(f"{partition}: run: {_explained(_failure_line(event))}")
            if event.event_type_value == "ASSET_CHECK_EVALUATION":
                check = event.event_specific_data
                if not check.passed and check.severity.value == "ERROR":
                    runs.failed_checks.append(f"{partition}: {check.asset_key.path[-1]}.{check.check_name}")
        metadata = _metadata_by_asset(result)
        for key, value in _summarise(metadata).items():
            runs.totals[key] += value
        if "vector_index" in metadata:
            runs.collections.add((metadata["vector_index"]["collection"], metadata["vector_index"]["live_collection"]))
    return runs


def _hint_if_candidate(runs: DayRuns) -> None:
    """After a configuration change, ingest fills a new collection that searches do not use yet."""
    for candidate, live in sorted(runs.collections):
        if live == candidate:
            continue
        print(
            f"Searches still use {live}: the embedding configuration changed, and this run wrote {candidate}. "
            "Run 'hyperion reindex' to fill it for every day and move the alias once its checks pass.",
            file=sys.stderr,
        )


def _notice(message: str) -> None:
    print(f"hyperion: {message}", file=sys.stderr)


# A search or an evaluation waits this long at most for a run holding the embedded index.
QUERY_LOCK_WAIT_S = 30.0


@contextmanager
def _index_and_embedder(settings: Settings, spec: Any, lock_wait_s: float | None = None) -> Iterator[tuple[Any, Any]]:
    from hyperion_pipelines.defs.resources import build_resources

    resources = build_resources(settings, spec)
    milvus_resource = resources[spec.resources.milvus]
    if lock_wait_s is not None:
        milvus_resource = milvus_resource.model_copy(
            update={"lock_wait_s": min(lock_wait_s, milvus_resource.lock_wait_s)}
        )
    with (
        milvus_resource.process_config_and_initialize_cm() as milvus,
        resources[spec.resources.embedder].process_config_and_initialize_cm() as embedder_resource,
    ):
        yield milvus.index(spec.index, _notice), embedder_resource.get()


def _indexed_documents(settings: Settings, spec: Any) -> tuple[set[str], set[str]]:
    """Documents the index manifest records as indexed, and the days it has documents on."""
    from hyperion_pipelines.defs.resources import build_resources

    resource = build_resources(settings, spec)[spec.resources.state]
    with resource.process_config_and_initialize_cm() as state:
        manifest = state.manifest(spec.name)
        indexed = {doc for doc, entry in manifest.indexed().items() if entry.status == "indexed"}
        return indexed, manifest.partitions()


# The evaluation summary's "check" (passed, or the failed check's severity) as a quality level.
_LEVELS = {"passed": "pass", "warn": "warn", "error": "fail"}


def cmd_reindex(args: argparse.Namespace) -> int:
    """Blue/green: fill the current embedding space's collection for every upload day, check it,
    evaluate it, and only then move the live alias to it."""
    settings = Settings.from_env()
    _ensure_dagster_home(settings)
    from dagster import DagsterInstance

    from hyperion_pipelines.definitions import build_definitions
    from hyperion_pipelines.index.promotion import coverage, decide

    spec = _pipeline(args)
    defs = build_definitions(settings)
    with _index_and_embedder(settings, spec) as (index, embedder):
        candidate = index.collection_name(collection_fingerprint(spec, embedder.identity, index.retrieval))
        live = index.live_collection()
    if live == candidate and not args.force:
        if args.json:
            print(json.dumps({"candidate": candidate, "previous": live, "promoted": False, "already_live": True}))
        else:
            print(f"{candidate} is already live: the embedding configuration has not changed (--force rebuilds it).")
        return 0
    job = defs.resolve_job_def(f"ingest_{spec.name}")
    valid = set(job.partitions_def.get_partition_keys())
    days = sorted((_days_to_ingest(settings, spec) | _indexed_documents(settings, spec)[1]) & valid)
    print(f"Building {candidate} for {len(days)} upload day(s); searches keep using {live or 'nothing yet'}.")
    # Quiet by default: warnings and failures are printed below from the run's event log, one
    # line each, instead of Dagster's console lines with their stack traces.
    log_level = "INFO" if args.verbose else "CRITICAL"
    started = time.perf_counter()
    with DagsterInstance.get() as instance:
        runs = _run_days(job, instance, days, log_level)
        wrote = bool(days) and not runs.failed_days
        evaluation = _evaluate_after_ingest(defs, spec, instance, log_level) if wrote else None
    indexed, _ = _indexed_documents(settings, spec)
    with _index_and_embedder(settings, spec) as (index, _):
        exists = index.client.has_collection(candidate)
        documents = coverage(index.document_ids(candidate) if exists else set(), indexed)
        decision = decide(
            candidate_exists=exists,
            failed_days=runs.failed_days,
            failed_checks=runs.failed_checks,
            documents=documents,
            evaluation_level=None if evaluation is None else _LEVELS.get(evaluation["check"], "fail"),
        )
        if decision.promote:
            index.point_alias(candidate)
        others = [c for c in index.collections() if c != index.live_collection()]
        dropped = []
        if decision.promote and args.drop_old:
            for name in others:
                index.drop(name)
                dropped.append(name)
    seconds = round(time.perf_counter() - started, 2)
    summary = {
        "candidate": candidate,
        "previous": live,
        "promoted": decision.promote,
        "reasons": decision.reasons,
        "partitions": days,
        "documents": len(indexed),
        "evaluation": evaluation,
        "dropped": dropped,
        "old_collections": [c for c in others if c not in dropped],
        "run_ids": runs.run_ids,
        "seconds": seconds,
    }
    if args.json:
        print(json.dumps(summary))
    elif decision.promote:
        print(f"{spec.index.alias} now points at {candidate} ({len(indexed)} documents, {seconds} s).")
        if dropped:
            print(f"Dropped: {', '.join(dropped)}.")
        elif summary["old_collections"]:
            print(f"Old collections kept: {', '.join(summary['old_collections'])} (drop them with --drop-old).")
    else:
        print(f"NOT promoted; searches keep using {live or 'nothing'}:", file=sys.stderr)
        for reason in decision.reasons:
            print(f"  - {reason}", file=sys.stderr)
    return 0 if decision.promote else 1


@contextmanager
def _live_index(settings: Settings, args: argparse.Namespace) -> Iterator[tuple[Any, Any] | None]:
    """The pipeline's index and embedder, or None (with a hint printed) before any ingest."""
    spec = _pipeline(args)
    with _index_and_embedder(settings, spec, QUERY_LOCK_WAIT_S) as (index, embedder):
        live = index.live_collection()
        if live is None:
            print(f"Nothing is indexed under '{spec.index.alias}' yet: run 'hyperion ingest' first.", file=sys.stderr)
            yield None
            return
        current = index.collection_name(collection_fingerprint(spec, embedder.identity, index.retrieval))
        if live != current:
            # Mid re-index: the live collection was built with the previous configuration.
            print(
                f"Note: searching {live}, built with an earlier embedding configuration; queries are embedded "
                f"with the current one ({embedder.identity.model_name}). Run 'hyperion reindex' to switch.",
                file=sys.stderr,
            )
        yield index, embedder


def cmd_collections(args: argparse.Namespace) -> int:
    """The alias's collections (one per embedding space built), which one is live, and their sizes."""
    settings = Settings.from_env()

    spec = _pipeline(args)
    with _index_and_embedder(settings, spec) as (index, embedder):
        current = index.collection_name(collection_fingerprint(spec, embedder.identity, index.retrieval))
        live = index.live_collection()
        rows = []
        for name in index.collections():
            index.ensure_loaded(name)
            rows.append(
                {"collection": name, "entries": index.count(name), "live": name == live, "current": name == current}
            )
        dropped = []
        if args.drop_old:
            for row in rows:
                if not row["live"] and not row["current"]:
                    index.drop(row["collection"])
                    dropped.append(row["collection"])
    if args.json:
        print(json.dumps({"alias": spec.index.alias, "collections": rows, "dropped": dropped}))
        return 0
    for row in rows:
        marks = [m for m, on in (("live", row["live"]), ("current configuration", row["current"])) if on]
        print(f"{row['collection']}  {row['entries']} entries" + (f"  ({', '.join(marks)})" if marks else ""))
    if not rows:
        print(f"No collections under '{spec.index.alias}' yet.")
    if dropped:
        print(f"Dropped: {', '.join(dropped)}.")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    with _live_index(Settings.from_env(), args) as live:
        if live is None:
            return 1
        index, embedder = live
        hits = index.search(embedder.embed([args.query]), limit=args.k, texts=[args.query])[0]
    from hyperion_pipelines.serving.queries import result_row

    rows = [result_row(hit, offsets=False) for hit in hits]  # the API's rows, less the offsets
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    for rank, row in enumerate(rows, 1):
        snippet = " ".join(row["text"].split())
        snippet = snippet if len(snippet) <= 200 else snippet[:199] + "…"
        heading = f"  [{row['heading_path']}]" if row["heading_path"] else ""
        print(f"{rank}. {row['score']:.3f}  {row['source']}{heading}\n   {snippet}")
    if not rows:
        print("No results.")
    return 0


#: Addresses ``hyperion serve`` may listen on without a token: this machine only.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SERVE_TOKEN_ENV = "HYPERION_SERVE_TOKEN"


def cmd_serve(args: argparse.Namespace) -> int:
    """The live index over HTTP until interrupted (see ``hyperion_pipelines/serving``)."""
    import uvicorn

    from hyperion_pipelines.serving.app import build_app
    from hyperion_pipelines.serving.live_index import LiveSearch

    token = os.environ.get(SERVE_TOKEN_ENV, "").strip() or None
    if args.host not in LOOPBACK_HOSTS and token is None:
        raise CommandError(
            f"serving on {args.host} lets other machines search the index: set {SERVE_TOKEN_ENV} to a token that "
            "clients send as 'Authorization: Bearer <token>', or serve on 127.0.0.1"
        )
    if not 1 <= args.max_k <= MAX_K:
        raise CommandError(f"--max-k must be between 1 and {MAX_K}")
    spec = _pipeline(args)
    live = LiveSearch(Settings.from_env(), spec, idle_release_s=args.idle_release_s)
    about = {"pipeline": spec.name, "alias": spec.index.alias, "model": live.embedder.identity.model_name}
    app = build_app(live, token=token, max_k=args.max_k, about=about)
    where = "embedded index, let go after each burst of requests" if live.embedded else "Milvus server"
    _notice(f"serving '{spec.name}' on http://{args.host}:{args.port} ({where}); POST /search, GET /openapi.json")
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    finally:
        live.close()
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from hyperion_pipelines.evaluation.golden import GoldenSetError, load_golden_queries

    try:
        queries = load_golden_queries(args.queries)
    except (GoldenSetError, OSError) as exc:
        print(f"hyperion eval: {exc}", file=sys.stderr)
        return 2
    from hyperion_pipelines.evaluation.retrieval import report_rows, retrieve_documents, score_retrievals

    with _live_index(Settings.from_env(), args) as live:
        if live is None:
            return 1
        retrievals = retrieve_documents(*live, queries, args.k)
    result = score_retrievals(queries, retrievals, args.k)
    rows = report_rows(queries, retrievals, result)
    metrics = {"recall_at_k": result.recall_at_k, "mrr": result.mrr, "ndcg_at_k": result.ndcg_at_k}
    if args.json:
        print(json.dumps({"k": args.k, "queries": result.queries, **metrics, "per_query": rows}, ensure_ascii=False))
        return 0
    for row in rows:
        missed = f"  missed: {', '.join(row['missed'])}" if row["missed"] else ""
        print(f"{row['reciprocal_rank']:.2f}  {row['query']}\n      top: {row['top_source']}{missed}")
    print(
        f"\n{result.queries} queries, k={args.k}: recall@{args.k} {result.recall_at_k:.3f}  "
        f"MRR {result.mrr:.3f}  nDCG@{args.k} {result.ndcg_at_k:.3f}"
    )
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    settings = Settings.from_env()

    from hyperion_pipelines.defs.resources import build_resources

    spec = _pipeline(args)
    resource = build_resources(settings, spec)[spec.resources.state]
    with resource.process_config_and_initialize_cm() as ledger_resource:
        entries = ledger_resource.ledger(spec.name).entries(partition=args.date, history=args.history)
    if args.json:
        print(json.dumps([entry.as_json(history=args.history) for entry in entries], ensure_ascii=False))
        return 0
    if not entries:
        scope = f" on {args.date}" if args.date else ""
        print(f"Nothing {'was ever' if args.history else 'is'} quarantined{scope}.")
        return 0
    for entry in entries:
        when = entry.quarantined_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        status = ""
        if entry.released_at is not None:
            status = f"  -> {entry.resolution} {entry.released_at.strftime('%Y-%m-%d %H:%M:%S UTC')}"
        print(f"{entry.partition}  {entry.reason:<17} {entry.source}\n    {when}: {entry.message}{status}")
    open_count = sum(1 for e in entries if e.released_at is None)
    print(f"{open_count} quarantined" + (f", {len(entries) - open_count} released" if args.history else "") + ".")
    return 0


def cmd_pipelines(args: argparse.Namespace) -> int:
    from hyperion_pipelines.definitions import declared_pipelines, pipeline_tree

    rows = []
    for pipeline in declared_pipelines(pipeline_tree()):
        spec = pipeline.spec
        source = spec.source
        rows.append(
            {
                "name": spec.name,
                "template": pipeline.declaration.template,
                "source": source.kind,
                "from": getattr(source, "path", None) or getattr(source, "base_url", None),
                "embedding": spec.embedding.kind,
                "alias": spec.index.alias,
                "asset_keys": "/".join([*spec.key_prefix, "<asset>"]),
                "declared_in": str(pipeline.yaml_path),
            }
        )
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        print(f"{row['name']}  ({row['template']} template, declared in {row['declared_in']})")
        print(f"  source {row['source']}: {row['from']}")
        print(f"  embedding {row['embedding']}; alias {row['alias']}; asset keys {row['asset_keys']}")
    return 0


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def cmd_gc(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    _ensure_dagster_home(settings)
    from dagster import DagsterInstance
    from sqlalchemy.exc import DatabaseError

    from hyperion_pipelines.definitions import pipeline_specs
    from hyperion_pipelines.defs.housekeeping import reclaim
    from hyperion_pipelines.defs.resources import shared_resources
    from hyperion_pipelines.faults import explain

    shared = shared_resources(settings)
    retention = settings.step_output_retention_days if args.retention_days is None else args.retention_days
    state_url = os.environ.get("HYPERION_STATE_DB_URL") or settings.state_db_url
    with ExitStack() as stack:
        try:
            instance = stack.enter_context(DagsterInstance.get())
        except (OSError, DatabaseError) as exc:
            # Its SQLite storage writes when it opens; on a full disk the raw zone is swept without it.
            if explain(str(exc), settings) is None:
                raise
            instance = None
        report = reclaim(
            instance,
            shared["blob_store"],
            state_url,
            pipeline_specs(settings),
            retention_days=retention,
            dry_run=args.dry_run,
        )
    if args.json:
        print(json.dumps(report.as_json()))
        return 0
    mib = lambda n: f"{n / 2**20:.1f} MiB"  # noqa: E731
    places = ", ".join(
        f"{s.place} {mib(s.removed_bytes)} of {mib(s.removed_bytes + s.kept_bytes)}" for s in report.sweeps
    )
    print(
        f"Storage GC {'would free' if args.dry_run else 'freed'} {_mib(report.freed_bytes)} in "
        f"{report.removed_files} files ({places})."
    )
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _check_index(settings: Settings, spec: Any, rebuild: bool) -> str:
    """Open every collection of the pipeline's index; a damaged milvus-lite folder is set aside
    when ``rebuild``, else named with the way back."""
    from pymilvus.exceptions import MilvusException

    from hyperion_pipelines.defs.resources import build_resources
    from hyperion_pipelines.faults import explain
    from hyperion_pipelines.housekeeping.state_repair import is_index_damage, set_aside
    from hyperion_pipelines.index.resources import release_local

    uri = spec.index.milvus_uri or settings.milvus_uri
    try:
        with build_resources(settings, spec)[spec.resources.milvus].process_config_and_initialize_cm() as milvus:
            index = milvus.index(spec.index, _notice)
            for collection in index.collections():
                index.ensure_loaded(collection)
        return "sound"
    except MilvusException as exc:
        if not is_index_damage(str(exc)):
            raise
        if not rebuild:
            raise FaultFound(explain(str(exc), settings)) from None
        if "://" in uri:
            raise CommandError(f"{uri} is a Milvus server: restore its collections from its backups") from None
        release_local(uri)
        return f"damaged ({str(exc).strip()[:160]}): set aside as {set_aside(Path(uri))}, rebuilt"


def cmd_repair(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    _ensure_dagster_home(settings)
    from dagster import DagsterInstance

    from hyperion_pipelines.definitions import build_definitions, pipeline_specs
    from hyperion_pipelines.housekeeping.state_repair import set_aside, sqlite_damage, sqlite_file

    path = sqlite_file(os.environ.get("HYPERION_STATE_DB_URL") or settings.state_db_url)
    if path is None:
        state = "a database server: not checked (restore it from its backups if damaged); rebuilt"
    elif damage := sqlite_damage(path):
        state = f"damaged ({damage}): set aside as {set_aside(path)}, rebuilt"
    else:
        state = "rebuilt" if path.exists() else "missing: rebuilt"
    specs = pipeline_specs(settings)
    indexes = {spec.name: _check_index(settings, spec, args.rebuild_index) for spec in specs}
    defs = build_definitions(settings)
    log_level = "INFO" if args.verbose else "CRITICAL"
    summary: dict[str, Any] = {"state_database": state, "indexes": indexes, "pipelines": {}}
    failed = False
    with DagsterInstance.get() as instance:
        for spec in specs:
            days = sorted(_days_to_ingest(settings, spec))
            runs = _run_days(defs.resolve_job_def(f"ingest_{spec.name}"), instance, days, log_level)
            failed = failed or bool(runs.failed_days)
            summary["pipelines"][spec.name] = {
                **runs.totals,
                "partitions": days,
                "failed_partitions": runs.failed_days,
                "failures": runs.failures,
                "run_ids": runs.run_ids,
            }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"State database: {state}.")
        for spec in specs:
            done = summary["pipelines"][spec.name]
            print(
                f"{spec.name}: index {indexes[spec.name]}; {len(done['partitions'])} day(s) run again: "
                f"{done['documents']} documents, {done['rejected']} quarantined, {done['embedded']} chunks "
                f"embedded, {done['reused']} reused."
            )
            for line in done["failures"]:
                print(f"  {line}", file=sys.stderr)
    return 1 if failed else 0


def worker_command(name: str, loglevel: str) -> list[str]:
    """The Celery worker that runs steps of runs on ``HYPERION_EXECUTOR=celery``: dagster-celery's
    app and queue, with the settings of :func:`worker_environment`. One step at a time, in the
    worker's own process (``solo`` pool): the parser sandbox starts child processes, which a
    prefork pool's daemonic children may not. Start more workers for more steps at once.
    ``--concurrency 1``: Celery sizes a worker's prefetch as multiplier x concurrency, and the
    concurrency defaults to the cores even for ``solo``; on 2 cores a busy worker reserved a
    second step while another worker sat idle (seen with ``rabbitmqctl list_channels``)."""
    return [
        sys.executable, "-m", "celery", "-A", "dagster_celery.app", "worker",
        "--pool", "solo", "--concurrency", "1", "-n", name, "-l", loglevel,
        "--task-events",  # for Flower
    ]  # fmt: skip


def worker_environment(settings: Settings) -> dict[str, str]:
    """The environment of a worker: this one, plus the folder of the ``dagster_celery_config``
    module (broker, result backend, late acknowledgement) on PYTHONPATH."""
    from hyperion_pipelines.defs.execution import celery_config_module

    folder = settings.home / "celery"
    folder.mkdir(parents=True, exist_ok=True)
    # Atomically: workers starting together (compose replicas) share the folder on one volume.
    partial = folder / f"dagster_celery_config.py.{os.getpid()}"
    partial.write_text(celery_config_module(settings))
    os.replace(partial, folder / "dagster_celery_config.py")
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a Celery worker here (it replaces this process, so signals reach it directly)."""
    if importlib.util.find_spec("dagster_celery") is None:
        raise CommandError("the worker needs dagster-celery: pip install 'hyperion-pipelines[celery]'")
    settings = Settings.from_env()
    command = worker_command(args.name or f"hyperion@{socket.gethostname()}", args.loglevel)
    os.execve(sys.executable, command, worker_environment(settings))
    return 0  # not reached


def cmd_export_onnx(args: argparse.Namespace) -> int:
    """Export the model to ONNX (and int8) for the onnx embedding backend, offline, once."""
    from hyperion_pipelines.embedding.onnx_export import FP32_FILE, default_export_dir, models_dir, quantized_file_name
    from hyperion_pipelines.embedding.sentence_transformer import packaged_model_dir

    settings = Settings.from_env()
    model = Path(args.model or settings.embedding_model_path or packaged_model_dir()).expanduser().resolve()
    if not (model / "modules.json").is_file():
        raise CommandError(f"{model} is not a sentence-transformers model folder (no modules.json)")
    out = Path(args.out).expanduser().resolve() if args.out else default_export_dir(models_dir(settings.home), model)
    quantize = [args.quantize_config] if args.quantize else []
    export, made = _export_onnx(model, out, quantize, force=args.force)
    files = sorted(export.manifest["files"])
    if args.json:
        print(json.dumps({"folder": str(export.folder), "files": files, "exported": made}))
        return 0
    print(f"{'Exported' if made else 'Already exported (--force redoes it)'}: {export.folder}")
    for name in files:
        quantization = export.quantization(name)
        print(f"  onnx/{name}  {'fp32' if quantization is None else 'int8, ' + quantization + ' preset'}")
    chosen = quantized_file_name(quantize[0]) if quantize else FP32_FILE
    setting = "onnx" if chosen == FP32_FILE else f"onnx:{chosen}"
    where = "" if args.out is None else f" and the pipeline's model_path (or HYPERION_EMBEDDING_MODEL_PATH) to {out}"
    print(f"Use it: HYPERION_EMBEDDING_BACKEND={setting}{where}, or in a pipeline's defs.yaml")
    print(f"  embedding: {{kind: local, backend: onnx, onnx_file: {chosen}}}")
    return 0


def _export_onnx(model: Path, out: Path, quantize: list[str], *, force: bool) -> tuple[Any, bool]:
    """The export in ``out``, made unless it already holds the wanted files; and whether it was made."""
    from hyperion_pipelines.embedding.onnx_export import (
        FP32_FILE,
        OnnxExportError,
        export_onnx,
        quantized_file_name,
        read_export,
    )

    wanted = [FP32_FILE, *(quantized_file_name(config) for config in quantize)]
    try:
        existing = read_export(out)
        if existing is not None and not force and all(name in existing.manifest["files"] for name in wanted):
            return existing, False  # exporting again would write the same files
        # Keep the int8 files already there: the export replaces the folder whole.
        kept = [] if existing is None else [q for q in map(existing.quantization, existing.manifest["files"]) if q]
        return export_onnx(model, out, quantize=sorted({*quantize, *kept})), True
    except OnnxExportError as exc:
        raise CommandError(str(exc)) from None


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


def main(argv: Sequence[str] | None = None) -> int:
    from hyperion_pipelines.components.declaration import PipelineDeclarationError

    args = build_parser().parse_args(argv)
    # pymilvus (client) and milvus-lite (its in-process server) log each failed call with a stack
    # trace before it is raised; the command reports it in one line (-v shows them).
    for noisy in ("pymilvus", "milvus_lite"):
        logging.getLogger(noisy).setLevel(logging.INFO if getattr(args, "verbose", False) else logging.CRITICAL)
    if getattr(args, "to_date", None) and not args.from_date:
        build_parser().error("--to needs --from")
    if not 1 <= getattr(args, "k", 1) <= MAX_K:
        build_parser().error(f"-k must be between 1 and {MAX_K}")
    from pymilvus.exceptions import MilvusException
    from sqlalchemy.exc import DatabaseError, OperationalError

    from hyperion_pipelines.faults import explain
    from hyperion_pipelines.index.local_lock import IndexInUse

    try:
        return args.handler(args)
    except (CommandError, PipelineDeclarationError, SettingsError) as exc:
        print(f"hyperion: error: {exc}", file=sys.stderr)
        return 2
    except (IndexInUse, FaultFound) as exc:
        print(f"hyperion: error: {exc}", file=sys.stderr)
        return 1
    except MilvusException as exc:
        explained = explain(str(exc), Settings.from_env())
        if explained is None:
            raise
        print(f"hyperion: error: {explained}", file=sys.stderr)
        return 1
    except (OSError, DatabaseError, OperationalError) as exc:
        explained = explain(str(exc), Settings.from_env(), errno_value=getattr(exc, "errno", None))
        if explained is None:
            raise
        print(f"hyperion: error: {explained}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
