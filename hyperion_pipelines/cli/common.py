"""What two or more commands share: errors, the pipeline asked for, runs of upload days, the live index."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hyperion_pipelines import run_metadata as rm
from hyperion_pipelines.cli.instance_yaml import EMBEDDED_INSTANCE_YAML
from hyperion_pipelines.index.deletion_guard import FAR_FUTURE
from hyperion_pipelines.serving.live_note import live_collection_note
from hyperion_pipelines.settings import Settings

if TYPE_CHECKING:  # dagster and pymilvus load only when a command needs them
    from dagster import DagsterEvent, DagsterInstance, Definitions, JobDefinition

    from hyperion_pipelines.embedding.base import Embedder
    from hyperion_pipelines.index.milvus_index import MilvusIndex
    from hyperion_pipelines.spec import PipelineSpec

MAX_K = 1000  # hits per query; Milvus allows at most 16384 per search, eval fetches 5 chunks per document


class CommandError(Exception):
    """A mistake in what was asked; printed without a traceback."""


class RunsInProgress(Exception):
    """The Dagster instance has runs of the job under way: running beside them is refused."""


class FaultFound(Exception):
    """Damage found that the command will not undo by itself; printed in one line, exit status 1."""


def ensure_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME as set, else ``$HYPERION_HOME/dagster``, given the embedded instance settings
    (the repository's ``dagster.yaml``) when it has none."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home)))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(EMBEDDED_INSTANCE_YAML, encoding="utf-8")
    return home


def notice(message: str) -> None:
    print(f"hyperion: {message}", file=sys.stderr)


def declared_pipeline(args: argparse.Namespace) -> PipelineSpec:
    """The declared pipeline ``--pipeline`` names (default: the sample pipeline, ``documents``)."""
    from hyperion_pipelines.definitions import pipeline_specs

    specs = {spec.name: spec for spec in pipeline_specs()}
    if args.pipeline not in specs:
        raise CommandError(f"no pipeline named {args.pipeline!r}; declared: {', '.join(sorted(specs))}")
    return specs[args.pipeline]


def days_to_ingest(settings: Settings, spec: PipelineSpec) -> set[str]:
    """Days with documents at the source, plus days with entries in the live index: a day whose
    documents were all deleted must run too, or their vectors would stay searchable."""
    from hyperion_pipelines.orchestration.resources import build_resources
    from hyperion_pipelines.upload_day import upload_day

    resources = build_resources(settings, spec)
    start = datetime.fromisoformat(spec.partitions_start).replace(tzinfo=UTC)
    end = FAR_FUTURE  # future-dated files too, so they are reported, not missed
    from hyperion_pipelines.sources.base import SourceUnavailable

    with resources[spec.resources.source].process_config_and_initialize_cm() as source, source.open() as opened:
        try:
            days = {upload_day(ref.uploaded_at) for ref in opened.list_documents(start, end)}
        except SourceUnavailable as exc:
            # The days the index holds still run, and fail saying so without removing anything.
            print(f"hyperion: {exc}", file=sys.stderr)
            days = set()
    with resources[spec.resources.milvus].process_config_and_initialize_cm() as milvus:
        index = milvus.index(spec.index, notice)
        live = index.live_collection()
        if live is not None:
            days |= index.partition_dates(live)
    return days


# The summary a command prints after its runs: each figure, summed over the days, and its entry.
_SUMMARY = {
    "documents": rm.DOCUMENTS,
    "chunks": rm.CHUNKS,
    "rejected": rm.REJECTED,
    "embedded": rm.EMBEDDED,
    "reused": rm.REUSED,
}
SUMMARY_KEYS = tuple(_SUMMARY)


@dataclass
class DayRuns:
    run_ids: list[str] = field(default_factory=list)
    failed_days: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)  # "day: asset.check" with ERROR severity
    failures: list[str] = field(default_factory=list)  # "day: step: why" of each step that failed for good
    warnings: list[str] = field(default_factory=list)  # "day: step: message" the steps logged as warnings
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUMMARY_KEYS, 0))
    # Seconds each step took (its STEP_SECONDS metadata), summed over the days: where a run's time went
    step_seconds: dict[str, float] = field(default_factory=dict)
    # (collection written, collection behind the alias), from vector_index's metadata
    collections: set[tuple[str, str]] = field(default_factory=set)


def failure_line(event: DagsterEvent) -> str:
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


def run_days(
    job: JobDefinition,
    instance: DagsterInstance,
    partitions: Sequence[str],
    log_level: str,
    tags: dict[str, str] | None = None,
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
                runs.failures.append(f"{partition}: {event.step_key}: {_explained(failure_line(event))}")
            # A run that failed before any step (its resources could not start) says why here.
            elif event.event_type_value in ("RESOURCE_INIT_FAILURE", "RUN_FAILURE") and (
                getattr(event.event_specific_data, "error", None) is not None and len(runs.failures) == failures_before
            ):
                runs.failures.append(f"{partition}: run: {_explained(failure_line(event))}")
            if event.event_type_value == "ASSET_CHECK_EVALUATION":
                check = event.event_specific_data
                if not check.passed and check.severity.value == "ERROR":
                    runs.failed_checks.append(f"{partition}: {check.asset_key.path[-1]}.{check.check_name}")
        metadata = rm.metadata_by_asset(e.materialization for e in result.get_asset_materialization_events())
        for key, value in summarise(metadata).items():
            runs.totals[key] += value
        for asset, values in metadata.items():
            if rm.STEP_SECONDS in values:
                seconds = runs.step_seconds.get(asset, 0.0) + float(values[rm.STEP_SECONDS])
                runs.step_seconds[asset] = round(seconds, 2)
        if rm.COLLECTION.of(metadata) is not None:
            runs.collections.add((rm.COLLECTION.of(metadata), rm.LIVE_COLLECTION.of(metadata)))
    return runs


def summarise(metadata: rm.RunMetadata) -> dict[str, int]:
    return {key: int(entry.of(metadata, 0)) for key, entry in _SUMMARY.items()}


def evaluate_after_ingest(
    defs: Definitions, spec: PipelineSpec, instance: DagsterInstance, log_level: str
) -> dict[str, Any] | None:
    """Run the golden query set, when the pipeline has one, against the freshly written index."""
    name = f"evaluate_{spec.name}"
    if not any(job.name == name for job in defs.jobs):
        return None
    result = defs.resolve_job_def(name).execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    metadata = rm.metadata_by_asset(e.materialization for e in result.get_asset_materialization_events())
    if rm.EVALUATION_K.asset not in metadata:
        return {"check": "error", "run_id": result.run_id}
    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    level = "passed" if all(c.passed for c in checks) else str(checks[0].severity.value).lower()
    return {
        **{figure.key: figure.of(metadata) for figure in rm.EVALUATION_FIGURES},
        "check": level,
        "run_id": result.run_id,
    }


# A search or an evaluation waits this long at most for a run holding the embedded index.
QUERY_LOCK_WAIT_S = 30.0


@contextmanager
def index_and_embedder(
    settings: Settings, spec: PipelineSpec, lock_wait_s: float | None = None
) -> Iterator[tuple[MilvusIndex, Embedder]]:
    from hyperion_pipelines.orchestration.resources import build_resources

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
        yield milvus.index(spec.index, notice), embedder_resource.get()


@contextmanager
def open_live_index(settings: Settings, args: argparse.Namespace) -> Iterator[tuple[MilvusIndex, Embedder] | None]:
    """The pipeline's index and embedder, or None (with a hint printed) before any ingest."""
    spec = declared_pipeline(args)
    with index_and_embedder(settings, spec, QUERY_LOCK_WAIT_S) as (index, embedder):
        live = index.live_collection()
        if live is None:
            print(f"Nothing is indexed under '{spec.index.alias}' yet: run 'hyperion ingest' first.", file=sys.stderr)
            yield None
            return
        note = live_collection_note(index, spec, embedder.identity, live)
        if note:  # mid re-index
            print(f"Note: {note}.", file=sys.stderr)
        yield index, embedder


@contextmanager
def progress_shown(enabled: bool) -> Iterator[None]:
    """While in the block, the steps' progress on one rewritten line of stderr: only on a
    terminal, and never with ``--json`` (``enabled``), so that piped or parsed output stays clean."""
    if not enabled:
        yield
        return
    from hyperion_pipelines.progress import Progress, listening

    shown = {"width": 0, "at": 0.0}

    def show(progress: Progress) -> None:
        now = time.monotonic()
        finished = progress.total is not None and progress.done >= progress.total
        if now - shown["at"] < 0.2 and not finished:
            return  # a terminal redrawn five times a second is enough
        shown["at"] = now
        of = f"/{progress.total:,}" if progress.total is not None else ""
        line = f"{progress.day}: {progress.stage} {progress.done:,}{of} {progress.unit}"
        sys.stderr.write("\r" + line.ljust(shown["width"]))
        sys.stderr.flush()
        shown["width"] = len(line)

    with listening(show):
        try:
            yield
        finally:
            if shown["width"]:
                sys.stderr.write("\r" + " " * shown["width"] + "\r")
                sys.stderr.flush()
