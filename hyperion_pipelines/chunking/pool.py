"""Chunk a day's parts in worker processes, so that every core chunks.

Chunking is the tokenizer (Rust) plus the assembly of chunks and their ids (Python, one core
per interpreter): in one process a 100,000-document day chunked on one core while the other
idled. Parts are independent, so each goes to one of ``workers`` processes; results come back
in the order of the parts, at most ``2 * workers`` parts in flight, so memory stays bounded by
the part size and not the day's.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import pandas as pd

from hyperion_pipelines.child_processes import die_with_parent
from hyperion_pipelines.chunking.cache import ChunkCache
from hyperion_pipelines.chunking.stage import chunk_documents
from hyperion_pipelines.chunking.tokenizer import HuggingFaceTokenizer
from hyperion_pipelines.spec import ChunkingSpec

# "spawn": the step's process has threads (Dagster, PyTorch), and forking a threaded process is unsafe.
_CONTEXT = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class ChunkJob:
    """Everything chunking a part needs besides the part; sent once to each worker process."""

    tokenizer: HuggingFaceTokenizer
    spec: ChunkingSpec
    fingerprint: str
    cache: ChunkCache | None
    context_tokens: int

    def run(self, parsed: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        """The part's chunks, and how many of its documents the cache already held."""
        before = self.cache.hits if self.cache is not None else 0
        frame = chunk_documents(
            parsed, self.tokenizer, self.spec, self.fingerprint, self.cache, context_tokens=self.context_tokens
        )
        return frame, (self.cache.hits if self.cache is not None else 0) - before


_job: ChunkJob | None = None  # the worker process's job, set once when it starts


def _start_worker(job: ChunkJob) -> None:
    global _job
    die_with_parent()  # a worker must not outlive a run worker that was killed
    _job = job


def _run_part(parsed: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    assert _job is not None, "worker started without its job"
    return _job.run(parsed)


def chunk_parts(parts: Iterable[pd.DataFrame], job: ChunkJob, workers: int) -> Iterator[tuple[pd.DataFrame, int]]:
    """``job.run(part)`` of every part, in order. ``workers`` > 1 runs them in that many
    processes; 1 runs them here (a small day does not pay for starting processes)."""
    if workers < 1:
        raise ValueError(f"chunk workers must be at least 1, got {workers}")
    if workers == 1:
        for part in parts:
            yield job.run(part)
        return
    with ProcessPoolExecutor(workers, mp_context=_CONTEXT, initializer=_start_worker, initargs=(job,)) as pool:
        pending: deque[Future[tuple[pd.DataFrame, int]]] = deque()
        try:
            for part in parts:
                pending.append(pool.submit(_run_part, part))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # a consumer that stops early (a terminated run) drops the parts not begun
            for future in pending:
                future.cancel()
