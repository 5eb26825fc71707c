"""Step time limits.

Dagster bounds a whole run (the ``dagster/max_runtime`` tag, enforced by run monitoring) but has
no per-step limit, so the long loops of a step (documents parsed, batches embedded, batches
written) check a deadline between units of work and stop the step cleanly when it has passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Called between units of work; raises :class:`StepTimeout` once the step is over its limit.
Checkpoint = Callable[[], None]


class StepTimeout(TimeoutError):
    """A step ran past its time limit."""


def no_deadline() -> None:
    """The checkpoint of work without a limit."""


def deadline(seconds: float | None, what: str) -> Checkpoint:
    if seconds is None:
        return no_deadline
    ends = time.monotonic() + seconds

    def check() -> None:
        if time.monotonic() > ends:
            raise StepTimeout(f"{what} ran past its {seconds:g} s time limit")

    return check
