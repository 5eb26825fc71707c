"""The upload sensor over a real uploads folder and the loopback backend API: ticks with
``build_sensor_context``, runs executed on a real instance into milvus-lite, the manifest in SQLite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterInstance, DagsterRunStatus, Definitions, RunRequest, build_sensor_context

from hyperion_pipelines.definitions import build_definitions
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.spec import BackendApiSource, PipelineSpec, UploadSensorSpec

from ..conftest import run_ingest
from ..support.backend_server import BackendServer, FakeBackend, Fault, StoredDocument
from ..support.pipeline_runs import index_entries
from ..support.sample_pipeline import default_spec
from ..support.uploads import DAY1, DAY2, TEXTS, upload_text

SENSOR = "documents_uploads"
JOB = "ingest_documents"


def tick(defs: Definitions, instance: DagsterInstance, cursor: str | None) -> tuple[list[RunRequest], str, str | None]:
    """One sensor evaluation, as the daemon would make it; returns requests, cursor, skip reason."""
    sensor = defs.resolve_sensor_def(SENSOR)
    with build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=defs.resources) as ctx:
        data = sensor.evaluate_tick(ctx)
    return list(data.run_requests or []), data.cursor or "", data.skip_message


def execute(defs: Definitions, instance: DagsterInstance, request: RunRequest) -> None:
    assert run_ingest(defs, instance, request.partition_key, tags=request.tags).success, request


def sources(settings: Settings) -> list[str]:
    return sorted({source for source, _ in index_entries(settings).values()})


@pytest.fixture
def instance(hyperion_env: Settings) -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as instance:
        yield instance


def test_uploads_edits_and_deletions_in_the_folder_become_runs_of_their_days(
    hyperion_env: Settings, instance: DagsterInstance
) -> None:
    defs = build_definitions(hyperion_env)
    folder = hyperion_env.uploads_dir

    requests, cursor, skipped = tick(defs, instance, None)
    assert requests == [] and skipped == "no changes at the source"

    upload_text(folder, "bees.md", TEXTS["bees.md"], DAY1)
    upload_text(folder, "tides.md", TEXTS["tides.md"], DAY1)
    (folder / "sub").mkdir()
    upload_text(folder, "sub/volcano.md", TEXTS["volcano.md"], DAY2)
    requests, cursor, _ = tick(defs, instance, cursor)
    # One run per day, newest first, however many uploads the day had.
    assert [(r.partition_key, r.tags["hyperion/changes"]) for r in requests] == [
        ("2026-03-03", "1 added, 0 edited, 0 deleted"),
        ("2026-03-02", "2 added, 0 edited, 0 deleted"),
    ]
    assert json.loads(cursor)["last_tick"]["documents_seen"] == 3
    # The same pending changes give the same run keys: Dagster never runs them twice.
    assert [r.run_key for r in tick(defs, instance, cursor)[0]] == [r.run_key for r in requests]
    for request in requests:
        execute(defs, instance, request)
    assert sources(hyperion_env) == ["bees.md", "sub/volcano.md", "tides.md"]

    # Caught up: nothing to do, with the cursor and after a restart without it.
    assert tick(defs, instance, cursor)[0] == []
    assert tick(defs, instance, None)[0] == []

    # An edit is a change of its day; it replaces the document's entries.
    upload_text(folder, "bees.md", TEXTS["bees.md"].replace("shivering", "vibrating their flight muscles"), DAY1)
    requests, cursor, _ = tick(defs, instance, cursor)
    assert [(r.partition_key, r.tags["hyperion/changes"]) for r in requests] == [
        ("2026-03-02", "0 added, 1 edited, 0 deleted")
    ]
    execute(defs, instance, requests[0])
    bee_texts = [text for source, text in index_entries(hyperion_env).values() if source == "bees.md"]
    assert bee_texts and all("vibrating" in t and "shivering" not in t for t in bee_texts)

    # A deleted file: its day runs again and its vectors leave the index.
    (folder / "sub" / "volcano.md").unlink()
    requests, cursor, _ = tick(defs, instance, cursor)
    assert [(r.partition_key, r.tags["hyperion/changes"]) for r in requests] == [
        ("2026-03-03", "0 added, 0 edited, 1 deleted")
    ]
    execute(defs, instance, requests[0])
    assert sources(hyperion_env) == ["bees.md", "tides.md"]
    assert tick(defs, instance, cursor)[0] == []


def test_a_day_with_a_run_in_flight_waits_for_it_then_runs_once_more(
    hyperion_env: Settings, instance: DagsterInstance
) -> None:
    defs = build_definitions(hyperion_env)
    upload_text(hyperion_env.uploads_dir, "bees.md", TEXTS["bees.md"], DAY1)
    job = defs.resolve_job_def(JOB)
    queued = instance.create_run_for_job(
        job, status=DagsterRunStatus.NOT_STARTED, tags={"dagster/partition": "2026-03-02"}
    )

    requests, cursor, skipped = tick(defs, instance, None)
    assert requests == [] and skipped == "1 day(s) with changes wait on runs in flight"

    instance.report_run_canceled(queued)
    requests, _, _ = tick(defs, instance, cursor)
    assert [r.partition_key for r in requests] == ["2026-03-02"]


def test_a_burst_over_many_days_is_requested_a_bounded_number_of_days_per_tick(
    hyperion_env: Settings, instance: DagsterInstance
) -> None:
    defs = build_definitions(hyperion_env)
    for n in range(25):
        text = f"Note number {n} about the weather."
        upload_text(hyperion_env.uploads_dir, f"note-{n}.txt", text, DAY1 + timedelta(n))
    requests, _, _ = tick(defs, instance, None)
    days = [r.partition_key for r in requests]
    assert len(days) == 10 and days == sorted(days, reverse=True) and days[0] == "2026-03-26"


def test_a_future_dated_upload_is_reported_not_requested(hyperion_env: Settings, instance: DagsterInstance) -> None:
    defs = build_definitions(hyperion_env)
    upload_text(
        hyperion_env.uploads_dir, "later.txt", "Written with a clock set years ahead.", datetime(2031, 1, 1, tzinfo=UTC)
    )
    # Beyond pandas' nanosecond range (year 2262): must not break the listing of everything else.
    upload_text(hyperion_env.uploads_dir, "far.txt", "A clock set centuries ahead.", datetime(2300, 1, 1, tzinfo=UTC))
    upload_text(hyperion_env.uploads_dir, "now.txt", "An ordinary upload about tide pools.", DAY1)
    requests, _, skipped = tick(defs, instance, None)
    assert [r.partition_key for r in requests] == ["2026-03-02"]


# -- the backend API ---------------------------------------------------------------------------


def api_spec(settings: Settings, pages: int = 40) -> PipelineSpec:
    """The sample pipeline reading the backend API (HYPERION_BACKEND_URL/TOKEN fill the source)."""
    return default_spec(settings).model_copy(
        update={
            "upload_sensor": UploadSensorSpec(feed_pages_per_tick=pages),
            "source": BackendApiSource(kind="backend_api"),
        }
    )


def tick_with_pages(
    settings: Settings, instance: DagsterInstance, cursor: str | None, *, pages: int
) -> tuple[list[RunRequest], str, str | None]:
    """A tick of freshly built definitions (as after a daemon restart: only the cursor carries
    over) reading at most ``pages`` pages of the API's listings."""
    return tick(build_definitions(settings, [api_spec(settings, pages)]), instance, cursor)


@pytest.fixture
def backend_env(hyperion_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeBackend, Settings]]:
    backend = FakeBackend(token="sensor-token", page_size_cap=2)
    with BackendServer(backend) as url:
        monkeypatch.setenv("HYPERION_BACKEND_URL", url)
        monkeypatch.setenv("HYPERION_BACKEND_TOKEN", "sensor-token")
        yield backend, Settings.from_env()


def test_api_sensor_pages_through_a_backlog_across_restarts_and_follows_deletions(
    backend_env: tuple[FakeBackend, Settings], instance: DagsterInstance
) -> None:
    backend, settings = backend_env
    for n in range(9):
        when = DAY1 + timedelta(days=n % 3, minutes=n)
        backend.add(StoredDocument(f"doc-{n}", f"doc-{n}.txt", f"Document {n}: {TEXTS['tides.md']}".encode(), when))

    # A small page budget: the backlog of 9 documents (5 pages of 2) takes several ticks. Each tick is
    # evaluated by fresh definitions, as after a daemon restart: only the cursor carries over.
    requested: list[RunRequest] = []
    cursor: str | None = None
    for _ in range(6):  # each tick: one page of deletions (none), one page of uploads
        requests, cursor, _ = tick_with_pages(settings, instance, cursor, pages=2)
        requested.extend(requests)
    # Each day under one run key, with all three of its uploads, though its documents spanned
    # several pages (a day is asked for again with the same key until it is indexed: Dagster
    # launches a run key once).
    by_key = {r.run_key: (r.partition_key, r.tags["hyperion/changes"]) for r in requested}
    assert sorted(by_key.values()) == [
        (day, "3 added, 0 edited, 0 deleted") for day in ("2026-03-02", "2026-03-03", "2026-03-04")
    ]
    requested = list({r.run_key: r for r in requested}.values())

    defs = build_definitions(settings, [api_spec(settings)])
    for request in requested:
        execute(defs, instance, request)
    assert len(sources(settings)) == 9
    assert tick_with_pages(settings, instance, cursor, pages=2)[0] == []

    backend.delete("doc-4")
    now = datetime.now(UTC)
    backend.add(StoredDocument("doc-new", "new.txt", b"A new upload about volcanoes erupting.", now))
    requests, cursor, _ = tick_with_pages(settings, instance, cursor, pages=5)
    assert sorted((r.partition_key, r.tags["hyperion/changes"]) for r in requests) == sorted(
        [(now.date().isoformat(), "1 added, 0 edited, 0 deleted"), ("2026-03-03", "0 added, 0 edited, 1 deleted")]
    )
    for request in requests:
        execute(defs, instance, request)
    assert "doc-4.txt" not in sources(settings) and "new.txt" in sources(settings)
    assert tick_with_pages(settings, instance, cursor, pages=5)[0] == []


def test_a_failing_api_fails_the_tick_quickly_and_the_next_tick_resumes(
    backend_env: tuple[FakeBackend, Settings], instance: DagsterInstance
) -> None:
    backend, settings = backend_env
    backend.add(StoredDocument("doc-1", "one.txt", TEXTS["tides.md"].encode(), DAY1))
    # A sensor tick retries once, not the steps' four times: two failures end the tick.
    backend.inject("/documents", Fault(503), Fault(503))
    with pytest.raises(Exception, match="listing documents failed after 2 attempts: HTTP 503"):
        tick_with_pages(settings, instance, None, pages=5)
    requests, _, _ = tick_with_pages(settings, instance, None, pages=5)
    assert [r.partition_key for r in requests] == ["2026-03-02"]


def test_a_backfill_from_the_asset_graph_holds_its_days_like_a_job_run() -> None:
    """An asset backfill runs as Dagster's asset job, tagged with a partition range, not the job's
    name and partition: the upload sensor must still wait for those days."""
    from dagster import AssetKey, DagsterInstance, DagsterRunStatus
    from dagster._core.storage.dagster_run import DagsterRun

    from hyperion_pipelines.orchestration.sensors import active_days

    ours = frozenset({AssetKey("raw_documents"), AssetKey("vector_index")})
    with DagsterInstance.ephemeral() as instance:
        runs = [
            ("ingest_documents", {"dagster/partition": "2026-03-01"}, None, DagsterRunStatus.STARTED),
            ("__ASSET_JOB", {"dagster/asset_partition_range_start": "2026-03-02",
                             "dagster/asset_partition_range_end": "2026-03-03"}, ours, DagsterRunStatus.STARTING),
            ("__ASSET_JOB", {"dagster/asset_partition_range_start": "2026-03-09",
                             "dagster/asset_partition_range_end": "2026-03-09"},
             frozenset({AssetKey(["legal", "raw_documents"])}), DagsterRunStatus.STARTED),  # another pipeline
            ("ingest_documents", {"dagster/partition": "2026-03-10"}, None, DagsterRunStatus.SUCCESS),  # over
        ]  # fmt: skip
        for n, (job, tags, selection, status) in enumerate(runs):
            instance.add_run(
                DagsterRun(job_name=job, run_id=f"run-{n}", tags=tags, asset_selection=selection, status=status)
            )
        assert active_days(instance, "ingest_documents", ours) == {"2026-03-01", "2026-03-02", "2026-03-03"}
