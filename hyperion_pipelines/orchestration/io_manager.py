"""Step outputs as Parquet files: the IO manager every pipeline step writes its DataFrame through.

Where: ``HYPERION_STEP_OUTPUT_URI``, any fsspec URL (a shared folder, ``s3://bucket/prefix`` with
``s3fs`` installed, ...), so that run workers on other hosts read what a step wrote; empty means the
instance's own storage folder (``$DAGSTER_HOME/storage``), where Dagster's default IO manager kept
its pickles and where storage GC sweeps. Layout: ``<asset key>/<partition>.parquet`` for a frame
held whole; for a step that streams its day in parts (see :mod:`hyperion_pipelines.step_outputs.parts`)
``<asset key>/<partition>/<run id>/part-*.parquet`` with the manifest ``<asset key>/<partition>.parts.json``.
Outputs that are no DataFrame (a report of an op) are pickled beside, as Dagster's default does.
"""

from __future__ import annotations

import pickle
from typing import Any

import pandas as pd
from dagster import AssetExecutionContext, ConfigurableIOManager, InputContext, OutputContext
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from pydantic import Field

from hyperion_pipelines.orchestration.execution import stop_if_run_is_over
from hyperion_pipelines.settings import DEFAULT_PART_DOCUMENTS
from hyperion_pipelines.step_outputs.parquet import SUFFIX, read_frame, write_frame
from hyperion_pipelines.step_outputs.parts import MANIFEST_SUFFIX, FrameParts, PartWriter


class ParquetIOManager(ConfigurableIOManager):
    """DataFrames in Parquet, one file per asset partition; anything else pickled."""

    base_uri: str = Field(
        default="", description="fsspec URL of the step-output store; empty: the instance's storage folder."
    )
    part_documents: int = Field(
        default=DEFAULT_PART_DOCUMENTS,
        ge=1,
        description="Documents per part: a step holds one part's text, chunks and vectors at a time.",
    )

    def _root(self, context: InputContext | OutputContext | AssetExecutionContext) -> tuple[AbstractFileSystem, str]:
        uri = self.base_uri
        if not uri:  # an InputContext names its instance; an OutputContext only through its step
            instance = context.step_context.instance if isinstance(context, OutputContext) else context.instance
            uri = instance.storage_directory()
        fs, root = url_to_fs(uri)
        return fs, root.rstrip("/")

    @staticmethod
    def _stem(context: InputContext | OutputContext, partition: str | None) -> str:
        if context.has_asset_key:  # an input's asset key is its upstream asset's
            parts = list(context.asset_key.path)
            return "/".join([*parts, partition] if partition is not None else parts)
        # an op's output: per run, as Dagster's own IO manager keeps them
        output = context.upstream_output if isinstance(context, InputContext) else context
        assert output is not None
        return "/".join([output.run_id, output.step_key, output.name])

    @staticmethod
    def _partitions(context: InputContext | OutputContext) -> list[str | None]:
        return list(context.asset_partition_keys) if context.has_asset_partitions else [None]

    def part_writer(self, context: AssetExecutionContext) -> PartWriter:
        """Where the running step writes its parts: a folder of its own per run, so that a run
        reading the day's last output is not disturbed by another run writing a new one."""
        fs, root = self._root(context)
        key = "/".join(context.asset_key.path)
        # The manifest handle_output writes names the day's only output and other runs' parts go:
        # never from a step whose run is already over (a Celery task delivered again after its run
        # failed), so the step checks its run as it finishes.
        run_id = context.run.run_id
        folder = f"{root}/{key}/{context.partition_key}/{run_id}"
        return PartWriter(fs, folder, before_finish=lambda: stop_if_run_is_over(context.instance, run_id))

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return  # an asset that only writes elsewhere (the index) hands nothing on
        fs, root = self._root(context)
        partitions = self._partitions(context)
        partition = partitions[0] if len(partitions) == 1 else f"{partitions[0]}...{partitions[-1]}"
        stem = f"{root}/{self._stem(context, partition)}"
        if isinstance(obj, FrameParts):
            _write_text(fs, stem + MANIFEST_SUFFIX, obj.to_json())
            _remove_superseded(fs, stem, obj)
            context.add_output_metadata({"step_output_path": stem + "/"})  # the step reports its parts
            return
        if isinstance(obj, pd.DataFrame):
            size = write_frame(obj, fs, stem + SUFFIX)
            if fs.exists(stem + MANIFEST_SUFFIX):  # parts of an earlier run no longer describe the day
                fs.rm(stem + MANIFEST_SUFFIX)
            context.add_output_metadata({"step_output_bytes": size, "step_output_path": stem + SUFFIX})
            return
        fs.makedirs(stem.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(stem, "wb") as out:
            pickle.dump(obj, out)

    def load_input(self, context: InputContext) -> Any:
        fs, root = self._root(context)
        frames: list[pd.DataFrame] = []
        parts: list[FrameParts] = []
        for partition in self._partitions(context):
            stem = f"{root}/{self._stem(context, partition)}"
            if fs.exists(stem + MANIFEST_SUFFIX):
                with fs.open(stem + MANIFEST_SUFFIX, "r") as manifest:
                    parts.append(FrameParts.from_json(manifest.read()))
            elif fs.exists(stem + SUFFIX):
                frames.append(read_frame(fs, stem + SUFFIX))
            elif fs.exists(stem):  # an op's output, or a day's pickle from before Parquet
                with fs.open(stem, "rb") as source:
                    value = pickle.load(source)
                if not isinstance(value, pd.DataFrame):
                    return value
                frames.append(value)
            else:
                raise FileNotFoundError(
                    f"no step output at {stem}{SUFFIX}: the step that writes it has not run for this "
                    "partition, or storage GC removed it (run the partition again)"
                )
        if parts and not frames:
            return FrameParts.joined(parts)
        # A range of days (runs take one day each; a range is a user's own job), some in parts.
        frames += [p.read() for p in parts]
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _write_text(fs: AbstractFileSystem, path: str, text: str) -> None:
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    partial = f"{path}.partial"
    with fs.open(partial, "w") as out:
        out.write(text)
    fs.mv(partial, path)


def _remove_superseded(fs: AbstractFileSystem, stem: str, current: FrameParts) -> None:
    """Drop the day's whole-frame file and other runs' part folders: the manifest now names the
    day's only output (one run per day at a time, see ``dagster.yaml``)."""
    if fs.exists(stem + SUFFIX):
        fs.rm(stem + SUFFIX)
    keep = {url.rsplit("/", 2)[-2] for url in current.urls}
    if fs.isdir(stem):
        for folder in fs.ls(stem, detail=False):
            if folder.rstrip("/").rsplit("/", 1)[-1] not in keep:
                fs.rm(folder, recursive=True)
