"""Step outputs in Parquet: what a run leaves in the step-output store, read back as written."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    DailyPartitionsDefinition,
    build_input_context,
    build_output_context,
)
from fsspec.implementations.local import LocalFileSystem

from hyperion_pipelines.orchestration.io_manager import ParquetIOManager
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.step_outputs.parquet import read_frame, write_frame
from hyperion_pipelines.step_outputs.parts import FrameParts, PartWriter, whole

from ..conftest import TEST_PART_DOCUMENTS, UPLOAD_DAY
from ..support.pipeline_runs import index_entries, run_partition

WHOLE_STEPS = ("raw_documents", "quarantined_documents")
PARTED_STEPS = ("parsed_documents", "document_chunks", "chunk_embeddings")


def test_frames_round_trip_with_lists_nulls_and_nullable_integers(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "headings": [[{"level": 1, "text": "Bees", "offset": 0}], []],
            "page_offsets": [[0, 120], []],
            "vector": [[0.25, -0.5], [1.0, 0.0]],
            "reason": [None, "corrupt"],
            "page": pd.array([1, None], dtype="Int64"),
            "uploaded_at": pd.to_datetime(["2026-01-15T10:00:00Z", "2026-01-15T11:00:00Z"]),
        }
    )
    path = str(tmp_path / "a" / "b.parquet")
    assert write_frame(frame, LocalFileSystem(), path) > 0
    back = read_frame(LocalFileSystem(), path)
    pd.testing.assert_frame_equal(back.drop(columns="vector"), frame.drop(columns="vector"))
    assert isinstance(back.loc[0, "headings"], list) and isinstance(back.loc[0, "page_offsets"], list)
    # Vectors come back as rows of one float matrix, with their values.
    assert [row.tolist() for row in back["vector"]] == frame["vector"].tolist()
    assert back.loc[0, "vector"].base is back.loc[1, "vector"].base is not None
    assert not list(tmp_path.rglob("*.partial"))


def test_a_run_writes_each_step_in_parts_of_bounded_size_to_the_configured_store(
    hyperion_env: Settings, sample_uploads: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared-step-outputs"
    monkeypatch.setenv("HYPERION_STEP_OUTPUT_URI", f"file://{shared}")
    monkeypatch.setenv("HYPERION_CHUNK_WORKERS", "2")  # the parts are chunked by two processes
    with DagsterInstance.ephemeral() as instance:
        metadata = run_partition(Settings.from_env(), instance)
    assert metadata["document_chunks"]["chunker_processes"] == 2
    files = {path.relative_to(shared).as_posix(): path for path in shared.rglob("*") if path.is_file()}
    documents = metadata["raw_documents"]["dagster/row_count"]
    for step in WHOLE_STEPS:  # one row per document, no text: one file
        name = next(key for key in files if key.endswith(f"{step}/{UPLOAD_DAY}.parquet"))
        table = pq.read_table(files[name])  # plain Parquet, readable without this project
        assert table.num_rows == metadata[step]["dagster/row_count"], step
        assert metadata[step]["step_output_bytes"] == files[name].stat().st_size
    for step in PARTED_STEPS:
        name = next(key for key in files if key.endswith(f"{step}/{UPLOAD_DAY}.parts.json"))
        parts = FrameParts.from_json(files[name].read_text())
        assert len(parts.urls) == math.ceil(documents / TEST_PART_DOCUMENTS) == metadata[step]["parts"], step
        paths = [Path(url.removeprefix("file://")) for url in parts.urls]
        assert all(path.is_relative_to(shared) for path in paths)
        assert [pq.read_table(path).num_rows for path in paths] == list(parts.rows)
        assert sum(parts.rows) == metadata[step]["dagster/row_count"], step
        assert metadata[step]["step_output_bytes"] == sum(path.stat().st_size for path in paths)
    documents_per_part = [
        whole(FrameParts((url,), (0,)), ["document_id"]) for url in parts_of_step(files, "parsed_documents")
    ]
    assert [len(frame) for frame in documents_per_part] == [TEST_PART_DOCUMENTS] * (
        documents // TEST_PART_DOCUMENTS
    ) + [documents % TEST_PART_DOCUMENTS] * bool(documents % TEST_PART_DOCUMENTS)
    assert not [key for key in files if not key.endswith((".parquet", ".parts.json"))], "no pickles"
    assert len(index_entries(hyperion_env)) == metadata["document_chunks"]["dagster/row_count"]


def parts_of_step(files: dict[str, Path], step: str) -> tuple[str, ...]:
    name = next(key for key in files if key.endswith(f"{step}/{UPLOAD_DAY}.parts.json"))
    return FrameParts.from_json(files[name].read_text()).urls


def test_a_day_pickled_before_parquet_is_still_read(tmp_path: Path) -> None:
    manager = ParquetIOManager(base_uri=str(tmp_path))
    frame = pd.DataFrame({"document_id": ["a" * 32], "text": ["Bees cluster in winter."]})
    legacy = tmp_path / "docs" / "parsed_documents" / UPLOAD_DAY
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(pickle.dumps(frame))
    days = DailyPartitionsDefinition(start_date="2026-01-01")
    context = build_input_context(
        asset_key=AssetKey(["docs", "parsed_documents"]), partition_key=UPLOAD_DAY, asset_partitions_def=days
    )
    pd.testing.assert_frame_equal(manager.load_input(context), frame)
    # and a new write goes to Parquet beside it
    output = build_output_context(
        asset_key=AssetKey(["docs", "parsed_documents"]), partition_key=UPLOAD_DAY, asset_partitions_def=days
    )
    manager.handle_output(output, frame)
    assert (tmp_path / "docs" / "parsed_documents" / f"{UPLOAD_DAY}.parquet").exists()
    pd.testing.assert_frame_equal(manager.load_input(context), frame)


def test_a_step_of_a_run_that_is_over_neither_runs_nor_hands_on_its_output(tmp_path: Path) -> None:
    """A Celery task delivered again after its run failed (the broker restarted mid-step) must not
    replace the day's output that a re-run is reading."""
    from dagster import Failure, job, op

    from hyperion_pipelines.orchestration.execution import stop_if_run_is_over

    @op
    def nothing() -> None: ...

    @job
    def a_job() -> None:
        nothing()

    with DagsterInstance.ephemeral() as instance:
        waiting = instance.create_run_for_job(a_job)
        stop_if_run_is_over(instance, waiting.run_id)  # not started yet: its steps may run
        over = a_job.execute_in_process(instance=instance).run_id
        with pytest.raises(Failure, match=r"the run is over \(SUCCESS\): this step does not run"):
            stop_if_run_is_over(instance, over)
        # the part writer of such a step checks as it finishes, before the IO manager drops other runs' parts
        writer = PartWriter(LocalFileSystem(), str(tmp_path / "parts"), lambda: stop_if_run_is_over(instance, over))
        writer.write(pd.DataFrame({"chunk_id": ["a"]}))
        with pytest.raises(Failure, match="is over"):
            writer.finish()
        instance.report_run_canceling(instance.get_run_by_id(waiting.run_id))
        with pytest.raises(Failure, match="the run was terminated"):
            stop_if_run_is_over(instance, waiting.run_id)
