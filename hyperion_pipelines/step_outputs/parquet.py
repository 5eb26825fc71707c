"""DataFrames as Parquet files on any fsspec filesystem (a local or shared folder, an object store).

Dagster's default IO manager pickles each step's whole output. Parquet is columnar (a reader can
take the columns it needs), compressed, readable outside Python, and safe to load: a pickle
written by someone else runs code when it is read. List columns (heading records, page offsets)
come back as Python lists, as the steps wrote them. A column of equal-length float lists (vectors)
comes back as one row of a NumPy matrix per value: as Python lists a part's 12,000 vectors of 384
floats took about 150 MB, as rows of one matrix 18 MB.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

SUFFIX = ".parquet"


def write_frame(frame: pd.DataFrame, fs: AbstractFileSystem, path: str) -> int:
    """Write ``frame`` to ``path`` (atomically where the filesystem renames); returns its bytes."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    partial = f"{path}.partial"
    try:
        with fs.open(partial, "wb") as out:
            pq.write_table(table, out, compression="zstd")
        fs.mv(partial, path)
    except BaseException:
        if fs.exists(partial):  # a full disk: leave no half-written file behind
            fs.rm(partial)
        raise
    return int(fs.size(path))


def read_frame(fs: AbstractFileSystem, path: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    with fs.open(path, "rb") as source:
        table = pq.read_table(source, columns=list(columns) if columns is not None else None)
    frame = table.to_pandas()
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            rows = _matrix_rows(column)
            frame[name] = pd.Series(column.to_pylist() if rows is None else rows, index=frame.index, dtype=object)
    return frame


def _matrix_rows(column: pa.ChunkedArray) -> list[np.ndarray] | None:
    """A list column of floats, every value the same length and none missing, as the rows of
    one matrix; None for any other list column."""
    if not pa.types.is_floating(column.type.value_type) or column.null_count or len(column) == 0:
        return None
    lengths = pc.list_value_length(column).to_numpy()
    if (lengths != lengths[0]).any():
        return None
    flat = pc.list_flatten(column).to_numpy()
    return list(flat.reshape(len(column), int(lengths[0])))
