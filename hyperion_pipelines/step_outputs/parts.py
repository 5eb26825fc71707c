"""A step output written as ordered Parquet parts of bounded size, read back one part at a time.

A day's documents are processed in parts of at most ``part_documents`` documents: a step reads
its input part by part, writes each result part as soon as it is made and keeps only small
per-row figures for its metadata, so its memory is bounded by the part, not by the day. The
value handed from step to step is a :class:`FrameParts`, a list of file URLs that the IO manager
stores as a small JSON manifest. Part ``i`` of a step covers the same documents as part ``i`` of
its input, so chunks and their vectors are read side by side.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs

from hyperion_pipelines.step_outputs.parquet import SUFFIX, read_frame, write_frame

MANIFEST_SUFFIX = ".parts.json"


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None  # glibc only


_LIBC = _libc()


def release_freed_memory() -> None:
    """Give the memory the last part freed back to the system. Arrow's allocator and glibc's
    keep freed pages for later; over a day's parts what they kept grew the process with the day."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


@dataclass(frozen=True)
class FrameParts:
    """The parts of one step output, in order; ``rows[i]`` rows in ``urls[i]``."""

    urls: tuple[str, ...]
    rows: tuple[int, ...]

    def __len__(self) -> int:
        return sum(self.rows)

    def frames(self, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
        """Each part as a DataFrame (only ``columns`` when given), one at a time."""
        for i, url in enumerate(self.urls):
            if i:
                release_freed_memory()
            fs, path = url_to_fs(url)
            if not fs.exists(path):
                raise FileNotFoundError(
                    f"step output part {url} is gone: storage GC removed it, or the store moved "
                    "(run the partition again)"
                )
            yield read_frame(fs, path, columns)

    def read(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """All parts in one frame: for narrow columns, or for a test's small day."""
        frames = list(self.frames(columns))
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def to_json(self) -> str:
        return json.dumps({"urls": list(self.urls), "rows": list(self.rows)})

    @classmethod
    def from_json(cls, text: str) -> FrameParts:
        data = json.loads(text)
        return cls(tuple(data["urls"]), tuple(int(n) for n in data["rows"]))

    @classmethod
    def joined(cls, parts: Sequence[FrameParts]) -> FrameParts:
        """Several partitions' outputs as one (a run over a range of days)."""
        return cls(tuple(u for p in parts for u in p.urls), tuple(n for p in parts for n in p.rows))


StepValue = pd.DataFrame | FrameParts


def frame_slices(frame: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    """``frame`` in slices of at most ``size`` rows; an empty frame is one empty slice, so a step
    over it still writes one (empty) part that carries the columns."""
    if size < 1:
        raise ValueError(f"part size must be at least 1, got {size}")
    if frame.empty:
        yield frame
        return
    for start in range(0, len(frame), size):
        yield frame.iloc[start : start + size].reset_index(drop=True)


def parts_of(value: StepValue, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    """A step input part by part. A frame held whole (an output written before parts existed, or
    a value handed in by a test) is one part: it is in memory already."""
    if isinstance(value, FrameParts):
        yield from value.frames(columns)
    else:
        yield value if columns is None else value[list(columns)]


def part_count(value: StepValue) -> int:
    """How many parts :func:`parts_of` yields for ``value``."""
    return len(value.urls) if isinstance(value, FrameParts) else 1


def whole(value: StepValue, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A step input as one frame: only for narrow columns (ids, statuses, counts)."""
    if isinstance(value, FrameParts):
        return value.read(columns)
    return value if columns is None else value[list(columns)]


def paired_parts(left: StepValue, right: StepValue) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Part ``i`` of ``left`` beside part ``i`` of ``right`` (made from it, so of the same
    documents). Outputs not cut alike (one written before parts existed) are read whole."""
    if isinstance(left, FrameParts) and isinstance(right, FrameParts) and len(left.urls) == len(right.urls):
        yield from zip(left.frames(), right.frames(), strict=True)
    else:
        yield whole(left), whole(right)


def values_for(value: StepValue, ids: Sequence[str], id_column: str, column: str) -> list:
    """``column`` of the rows whose ``id_column`` is in ``ids``, in the order of ``ids``."""
    wanted = set(ids)
    found: dict = {}
    for part in parts_of(value, [id_column, column]):
        hit = part[part[id_column].isin(wanted)]
        found.update(zip(hit[id_column], map(_owned, hit[column]), strict=True))
    return [found[i] for i in ids]


def _owned(value: object) -> object:
    """A vector read as a row of its part's matrix, copied: a row kept as it is keeps the whole
    matrix alive, so a sample of 20 vectors kept every part's vectors (18 MB a part)."""
    return value.copy() if isinstance(value, np.ndarray) and value.base is not None else value


class PartWriter:
    """Writes a step's parts under ``folder`` (``part-00000.parquet``, ...) as they are made."""

    def __init__(self, fs: AbstractFileSystem, folder: str, before_finish: Callable[[], None] | None = None):
        self._fs = fs
        self._folder = folder.rstrip("/")
        self._before_finish = before_finish  # may raise: the parts are then handed on to nobody
        self._urls: list[str] = []
        self._rows: list[int] = []
        self.bytes = 0
        if fs.exists(self._folder):  # a retried step attempt starts its parts again
            fs.rm(self._folder, recursive=True)

    def write(self, frame: pd.DataFrame) -> None:
        path = f"{self._folder}/part-{len(self._urls):05d}{SUFFIX}"
        self.bytes += write_frame(frame.reset_index(drop=True), self._fs, path)
        self._urls.append(self._fs.unstrip_protocol(path))
        self._rows.append(len(frame))

    def finish(self) -> FrameParts:
        """The parts written: at least one, as a step writes a part for an empty input too."""
        if not self._urls:
            raise ValueError(f"no part was written under {self._folder}")
        if self._before_finish is not None:
            self._before_finish()
        return FrameParts(tuple(self._urls), tuple(self._rows))
