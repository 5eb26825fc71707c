"""A day's step output in parts: cut, written, read back and handed on without holding the day."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, DailyPartitionsDefinition, build_input_context, build_output_context
from fsspec.implementations.local import LocalFileSystem

from hyperion_pipelines.orchestration.io_manager import ParquetIOManager
from hyperion_pipelines.step_outputs.parts import (
    FrameParts,
    PartWriter,
    frame_slices,
    paired_parts,
    parts_of,
    values_for,
    whole,
)

DAY = "2026-01-15"
KEY = AssetKey(["docs", "document_chunks"])


def chunks(first: int, count: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "chunk_id": [f"c{i}" for i in range(first, first + count)],
            "document_id": [f"d{i // 2}" for i in range(first, first + count)],
            "vector": [[float(i), 0.5] for i in range(first, first + count)],
        }
    )


def written(folder: Path, frames: list[pd.DataFrame]) -> FrameParts:
    writer = PartWriter(LocalFileSystem(), str(folder))
    for frame in frames:
        writer.write(frame)
    return writer.finish()


def test_a_frame_is_cut_in_slices_of_at_most_the_part_size_and_an_empty_one_is_one_slice() -> None:
    frame = chunks(0, 7)
    assert [len(s) for s in frame_slices(frame, 3)] == [3, 3, 1]
    assert pd.concat(frame_slices(frame, 3), ignore_index=True).equals(frame)
    assert [len(s) for s in frame_slices(frame.iloc[0:0], 3)] == [0]
    with pytest.raises(ValueError, match="at least 1"):
        next(frame_slices(frame, 0))


def test_parts_are_read_back_one_at_a_time_in_order_and_whole_for_narrow_columns(tmp_path: Path) -> None:
    parts = written(tmp_path / "run-1", [chunks(0, 3), chunks(3, 2)])
    assert parts.rows == (3, 2) and len(parts) == 5
    assert all(url.startswith("file://") for url in parts.urls)
    assert [list(f["chunk_id"]) for f in parts_of(parts)] == [["c0", "c1", "c2"], ["c3", "c4"]]
    assert list(whole(parts, ["chunk_id"]).columns) == ["chunk_id"]
    assert whole(parts).loc[4, "vector"].tolist() == [4.0, 0.5]  # a vector: a row of a float matrix
    assert FrameParts.from_json(parts.to_json()) == parts
    # a frame held whole is one part
    assert [len(f) for f in parts_of(chunks(0, 9))] == [9]


def test_a_retried_attempt_starts_its_parts_again_and_an_attempt_that_wrote_none_says_so(tmp_path: Path) -> None:
    written(tmp_path / "run-1", [chunks(0, 3), chunks(3, 2)])
    again = written(tmp_path / "run-1", [chunks(0, 4)])
    assert again.rows == (4,) and sorted(p.name for p in (tmp_path / "run-1").iterdir()) == ["part-00000.parquet"]
    with pytest.raises(ValueError, match="no part was written"):
        PartWriter(LocalFileSystem(), str(tmp_path / "run-2")).finish()


def test_parts_cut_alike_are_paired_and_others_are_read_whole(tmp_path: Path) -> None:
    left = written(tmp_path / "left", [chunks(0, 2), chunks(2, 2)])
    right = written(tmp_path / "right", [chunks(0, 2), chunks(2, 2)])
    assert [(len(a), len(b)) for a, b in paired_parts(left, right)] == [(2, 2), (2, 2)]
    assert [(len(a), len(b)) for a, b in paired_parts(left, chunks(0, 4))] == [(4, 4)]
    sample = values_for(right, ["c3", "c0"], "chunk_id", "vector")
    assert [v.tolist() for v in sample] == [[3.0, 0.5], [0.0, 0.5]]
    # Read back as rows of each part's matrix; the sample keeps copies, not the parts' matrices.
    assert next(right.frames())["vector"][0].base is not None
    assert all(v.base is None for v in sample)


def test_the_io_manager_stores_a_manifest_and_drops_what_it_supersedes(tmp_path: Path) -> None:
    manager = ParquetIOManager(base_uri=str(tmp_path), part_documents=2)
    days = DailyPartitionsDefinition(start_date="2026-01-01")

    def output():  # a context per write: each adds its own metadata
        return build_output_context(asset_key=KEY, partition_key=DAY, asset_partitions_def=days)

    load = build_input_context(asset_key=KEY, partition_key=DAY, asset_partitions_def=days)
    day = tmp_path / "docs" / "document_chunks"
    manager.handle_output(output(), chunks(0, 3))  # a day written whole, before parts
    old = written(day / DAY / "run-old", [chunks(0, 3)])
    new = written(day / DAY / "run-new", [chunks(0, 2), chunks(2, 2)])
    manager.handle_output(output(), new)
    assert manager.load_input(load) == new
    assert not (day / f"{DAY}.parquet").exists()
    assert not Path(old.urls[0].removeprefix("file://")).exists()  # another run's parts
    assert [p.name for p in (day / DAY).iterdir()] == ["run-new"]
    manager.handle_output(output(), chunks(0, 1))  # and back: a frame written whole replaces the manifest
    assert isinstance(manager.load_input(load), pd.DataFrame)
