"""Progress of a run's steps, for whoever watches in this process (``hyperion ingest`` on a terminal).

Steps report as their parts finish (documents landed and parsed, chunks made and embedded,
entries written); a listener registered with :func:`listening` hears them. Reports are plain
calls in the step's process, so only an in-process run (the CLI's) has listeners; a step with
none costs a lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    day: str  # the upload day (partition) of the run
    stage: str  # landed, parsed, chunked, embedded, written
    done: int
    total: int | None  # None when the step cannot know ahead
    unit: str  # documents, chunks, entries


Listener = Callable[[Progress], None]
_listeners: list[Listener] = []


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def report(day: str, stage: str, done: int, total: int | None, unit: str) -> None:
    if _listeners:
        progress = Progress(day, stage, done, total, unit)
        for listener in list(_listeners):
            listener(progress)
