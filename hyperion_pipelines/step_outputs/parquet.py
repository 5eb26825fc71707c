"""DataFrames as Parquet files on any fsspec filesystem (a local or shared folder, an object store).

Dagster's default IO manager pickles each step's whole output. Parquet is columnar (a reader can
take the columns it needs), compressed, readable outside Python, and safe to load: a pickle
written by someone else runs code when it is read. List columns (heading records, page offsets,
vectors) come back as Python lists, as the steps wrote them, not as NumPy arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
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
            frame[name] = pd.Series(column.to_pylist(), index=frame.index, dtype=object)
    return frame
