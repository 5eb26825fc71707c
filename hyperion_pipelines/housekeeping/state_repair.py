"""Damaged state, found and set aside (pure logic; ``hyperion repair`` drives it).

The state database (manifest and quarantine ledger) is derived data: every row can be recomputed
by running the upload days again, and a run reuses the vectors the index already holds, so losing
it costs parsing time, not embedding. The milvus-lite index is not derived cheaply (rebuilding it
embeds everything again), so it is only set aside when the user asks.
"""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

#: What milvus-lite says about a file it cannot read back (a torn write, a disk error, an edit).
INDEX_DAMAGE = ("Parquet magic bytes", "Could not open Parquet", "is corrupted", "JSONDecodeError", "manifest.json")


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for a server database (PostgreSQL: its own backups apply)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def sqlite_damage(path: Path) -> str | None:
    """What is wrong with a SQLite file, or None when it is sound (or does not exist)."""
    if not path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    problems = [str(row[0]) for row in rows if row[0] != "ok"]
    return "; ".join(problems[:3]) or None


def set_aside(path: Path, now: datetime | None = None) -> Path:
    """Rename a damaged file or folder (SQLite's -wal and -shm with it) to ``<name>.damaged-<UTC time>``,
    kept for inspection; returns the new path."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            shutil.move(source, target.with_name(target.name + suffix))
    return target


def is_index_damage(message: str) -> bool:
    return any(text in message for text in INDEX_DAMAGE)
