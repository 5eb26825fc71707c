"""Storage garbage collection (pure logic): reclaim what no current or quarantined document needs.

Four places grow with every upload and never shrink by themselves: the blob store (a copy of each
document version landed), the parse cache and the chunk cache (one entry per text parsed and
chunked), and Dagster's step outputs and step logs (one set per partition and run). A document
deleted or edited at the source leaves its old blob and cache entries behind; a disk fills up.

What is kept:
- blobs of every document version the index manifest records (indexed or quarantined), and the
  parse and chunk cache entries of those versions under the parsing settings pipelines use now;
- step outputs and step logs younger than the retention, and everything of a run not finished;
- anything written since the oldest unfinished run started (it may be landing documents the
  manifest does not name yet).
Everything else is removed; a dry run only counts it. A cache entry removed by mistake costs a
re-parse; a blob, a re-read from the source: a run never depends on what this removes.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, func, select

from hyperion_pipelines.chunking.cache import ChunkCache
from hyperion_pipelines.parsing.cache import ParseCache
from hyperion_pipelines.state.manifest import documents
from hyperion_pipelines.state.quarantine_ledger import events

PARSED_DIR, CHUNKS_DIR = "_parsed", "_chunks"
_BLOB_NAME = re.compile(r"[0-9a-f]{64}")
_HEX2 = re.compile(r"[0-9a-f]{2}")


@dataclass(frozen=True)
class References:
    """What the state database says is still needed."""

    blobs: frozenset[str]  # sha256 of every recorded document version
    contents: frozenset[tuple[str, str]]  # (sha256, media type) of those read and sniffed: parse-cache keys
    unknown_rows: int  # manifest rows written before content hashes were recorded


@dataclass
class Sweep:
    """One place swept: what was (or, in a dry run, would be) removed and what stays."""

    place: str
    removed_files: int = 0
    removed_bytes: int = 0
    kept_files: int = 0
    kept_bytes: int = 0

    def remove(self, path: Path, size: int, dry_run: bool) -> None:
        if not dry_run:
            try:
                path.unlink()
            except FileNotFoundError:
                return  # gone meanwhile (another sweep, a cache rewrite): nothing freed here
        self.removed_files += 1
        self.removed_bytes += size

    def keep(self, size: int) -> None:
        self.kept_files += 1
        self.kept_bytes += size


@dataclass
class GcReport:
    dry_run: bool
    sweeps: list[Sweep] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why something was left alone

    @property
    def freed_bytes(self) -> int:
        return sum(s.removed_bytes for s in self.sweeps)

    @property
    def removed_files(self) -> int:
        return sum(s.removed_files for s in self.sweeps)

    def as_json(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "freed_bytes": self.freed_bytes,
            "removed_files": self.removed_files,
            "places": {
                s.place: {
                    "removed_files": s.removed_files,
                    "removed_bytes": s.removed_bytes,
                    "kept_files": s.kept_files,
                    "kept_bytes": s.kept_bytes,
                }
                for s in self.sweeps
            },
            "notes": self.notes,
        }


def references(engine: Engine) -> References:
    """Every document version the manifest records (all pipelines), and open quarantine entries."""
    with engine.connect() as conn:
        rows = conn.execute(select(documents.c.sha256, documents.c.media_type).where(documents.c.sha256.is_not(None)))
        pairs = {(sha, media) for sha, media in rows}
        quarantined = conn.scalars(
            select(events.c.sha256).where(events.c.released_at.is_(None), events.c.sha256.is_not(None))
        )
        blobs = {sha for sha, _ in pairs} | set(quarantined)
        # Rows from before sha256 was recorded have no source identity either (both came together).
        unknown = conn.scalar(select(func.count()).select_from(documents).where(documents.c.source_identity.is_(None)))
    contents = frozenset((sha, media) for sha, media in pairs if media is not None)
    return References(frozenset(blobs), contents, int(unknown or 0))


def _files(folder: Path) -> Iterator[tuple[Path, os.stat_result]]:
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            path = Path(dirpath) / name
            try:
                yield path, path.lstat()
            except FileNotFoundError:
                continue


def _prune_empty_dirs(folder: Path, dry_run: bool) -> None:
    if dry_run or not folder.is_dir():
        return
    for dirpath, _dirnames, _filenames in sorted(os.walk(folder), key=lambda w: -len(w[0])):
        if Path(dirpath) != folder:
            with contextlib.suppress(OSError):  # not empty
                os.rmdir(dirpath)


def sweep_blobs(root: Path, needed: frozenset[str], protect_after: float, dry_run: bool) -> Sweep:
    """Blobs (``root/<2 hex>/<sha256>``) no recorded version names, and write leftovers of a crash."""
    sweep = Sweep("blobs")
    if not root.is_dir():
        return sweep
    for shard in root.iterdir():
        if not (shard.is_dir() and _HEX2.fullmatch(shard.name)):
            continue  # the caches' folders, or something a person put there
        for path, stat in _files(shard):
            if stat.st_mtime >= protect_after or (_BLOB_NAME.fullmatch(path.name) and path.name in needed):
                sweep.keep(stat.st_size)
            else:
                sweep.remove(path, stat.st_size, dry_run)
        _prune_empty_dirs(shard, dry_run)
    return sweep


def sweep_cache(place: str, root: Path, live: set[str], needed: set[str], protect_after: float, dry_run: bool) -> Sweep:
    """Entries (``root/<namespace>/<2 hex>/<key>.json``) outside the ``live`` namespaces or whose
    key is not ``needed``."""
    sweep = Sweep(place)
    if not root.is_dir():
        return sweep
    for namespace in root.iterdir():
        for path, stat in _files(namespace):
            wanted = namespace.name in live and path.suffix == ".json" and path.stem in needed
            if wanted or stat.st_mtime >= protect_after:
                sweep.keep(stat.st_size)
            else:
                sweep.remove(path, stat.st_size, dry_run)
        _prune_empty_dirs(namespace, dry_run)
        if not dry_run and namespace.is_dir() and not any(namespace.iterdir()):
            namespace.rmdir()
    return sweep


def chunk_keys(parse_caches: Iterable[ParseCache], contents: Iterable[tuple[str, str]]) -> set[str]:
    """Chunk-cache keys of the texts the needed parse entries hold (a chunk entry is keyed by text)."""
    keys = set()
    for sha, media in contents:
        for cache in parse_caches:
            parsed = cache.get(sha, media)
            if parsed is not None:
                keys.add(ChunkCache.key(parsed.text, parsed.headings))
    return keys


def sweep_step_outputs(
    storage: Path, older_than: float, unfinished_runs: set[str], protect_after: float, dry_run: bool
) -> Sweep:
    """Dagster's step outputs (``storage/<asset key>/<partition>``) and step logs
    (``storage/<run id>/compute_logs``) last written before ``older_than``, except an unfinished run's."""
    sweep = Sweep("step_outputs")
    if not storage.is_dir():
        return sweep
    for top in storage.iterdir():
        if top.name in unfinished_runs:
            for _path, stat in _files(top):
                sweep.keep(stat.st_size)
            continue
        entries = [(top, top.lstat())] if top.is_file() else list(_files(top))
        for path, stat in entries:
            if stat.st_mtime < min(older_than, protect_after):
                sweep.remove(path, stat.st_size, dry_run)
            else:
                sweep.keep(stat.st_size)
        if top.is_dir():
            _prune_empty_dirs(top, dry_run)
            if not dry_run and not any(top.iterdir()):
                top.rmdir()
    return sweep


def collect(
    *,
    blob_root: Path,
    parse_caches: list[ParseCache],
    refs: References,
    storage: Path | None,
    older_than: float,
    unfinished_runs: set[str],
    protect_after: float,
    dry_run: bool,
) -> GcReport:
    """Sweep every place. ``parse_caches``: the caches of the parsing settings pipelines use now
    (entries under other settings are never read again). Chunk entries are kept by text in every
    namespace (an embedding space not in use now may be re-indexed to again)."""
    report = GcReport(dry_run)
    if refs.unknown_rows:
        report.notes.append(
            f"{refs.unknown_rows} manifest rows were recorded before their content hash was: blobs and caches "
            "were left alone. Run every upload day once ('hyperion ingest --all'), then collect again."
        )
    else:
        report.sweeps.append(sweep_blobs(blob_root, refs.blobs, protect_after, dry_run))
        parse_live = {cache.root.name for cache in parse_caches}
        parse_needed = {ParseCache.key(sha, media) for sha, media in refs.contents}
        report.sweeps.append(
            sweep_cache("parse_cache", blob_root / PARSED_DIR, parse_live, parse_needed, protect_after, dry_run)
        )
        chunks_root = blob_root / CHUNKS_DIR
        chunk_live = {p.name for p in chunks_root.iterdir()} if chunks_root.is_dir() else set()
        chunk_needed = chunk_keys(parse_caches, refs.contents)
        report.sweeps.append(sweep_cache("chunk_cache", chunks_root, chunk_live, chunk_needed, protect_after, dry_run))
    if storage is not None:
        report.sweeps.append(sweep_step_outputs(storage, older_than, unfinished_runs, protect_after, dry_run))
    return report
