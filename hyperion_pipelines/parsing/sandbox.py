"""Parse documents in a child process with a time and a memory limit.

Parsers run on untrusted bytes: a crafted PDF can loop for minutes, a zip bomb can eat all memory,
a bug in a C extension can crash the interpreter. In a child process each of these costs one
document, which is quarantined with its reason, and the rest of the partition proceeds.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import signal
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import TypeVar

from hyperion_pipelines.child_processes import die_with_parent
from hyperion_pipelines.parsing.document import ParsedDocument, ParseError, describe_exception
from hyperion_pipelines.spec import ParsingLimits

log = logging.getLogger(__name__)

# "spawn": the run worker has threads (Dagster, PyTorch), and forking a threaded process is unsafe.
_CONTEXT = multiprocessing.get_context("spawn")
_READY_TIMEOUT_S = 60.0
_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


def _limit_memory(memory_bytes: int) -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    except (ImportError, ValueError, OSError) as exc:  # not Linux, or not allowed: run without the cap
        log.warning("parser memory limit not applied: %s", exc)


def _serve(conn: Connection, memory_bytes: int) -> None:
    """Child loop: receive (content, media type, accepted, limits, file name), answer with a result."""
    from hyperion_pipelines.parsing.registry import parse_document

    die_with_parent()
    _limit_memory(memory_bytes)
    conn.send("ready")
    while True:
        try:
            content, media_type, accepted, limits, file_name = conn.recv()
        except EOFError:
            return
        except MemoryError:  # the document alone does not fit under the limit
            conn.send(("error", "parse_memory", "the document does not fit in the parser's memory limit"))
            return
        try:
            parsed = parse_document(content, media_type, accepted, limits=limits, file_name=file_name)
        except ParseError as exc:
            conn.send(("error", exc.reason, exc.message))
            if exc.reason == "parse_memory":
                return  # the heap may be fragmented past use: let the parent start a fresh child
            continue
        except MemoryError:
            conn.send(("error", "parse_memory", "parsing needed more memory than the limit allows"))
            return
        except Exception as exc:  # outside the parser's own guard (archive check, text checks)
            conn.send(("error", "corrupt", describe_exception(exc)))
            continue
        del content
        conn.send(("ok", parsed))


class ParserSandbox:
    """A child process that parses one document at a time; restarted after a timeout or crash.

    Use as a context manager; :meth:`parse` raises :class:`ParseError` exactly like
    :func:`~hyperion_pipelines.parsing.registry.parse_document`, plus ``parse_timeout``,
    ``parse_memory`` and ``parser_crashed``.
    """

    def __init__(self, limits: ParsingLimits):
        self.limits = limits
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    def __enter__(self) -> ParserSandbox:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def _start(self) -> Connection:
        parent, child = _CONTEXT.Pipe()
        process = _CONTEXT.Process(target=_serve, args=(child, self.limits.memory_bytes), daemon=True)
        process.start()
        child.close()
        try:
            ready = parent.poll(_READY_TIMEOUT_S) and parent.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            process.kill()
            process.join()
            parent.close()
            raise RuntimeError(
                f"the parser process did not start (exit code {process.exitcode}); with the 'spawn' start "
                "method a script that parses documents needs an `if __name__ == '__main__':` guard"
            )
        self._process, self._conn = process, parent
        return parent

    def _stop(self, kill: bool) -> int | None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is None:
            return None
        if kill:
            process.kill()
        process.join(timeout=5)
        if process.is_alive():  # closed while a parse was still running
            process.kill()
            process.join()
        return process.exitcode

    def close(self) -> None:
        self._stop(kill=False)

    def parse(self, content: bytes, media_type: str, accepted: tuple[str, ...], file_name: str = "") -> ParsedDocument:
        conn = self._send((content, media_type, accepted, self.limits, file_name))
        if not conn.poll(self.limits.timeout_s):
            self._stop(kill=True)
            raise ParseError("parse_timeout", f"parsing took longer than {self.limits.timeout_s:g} s")
        try:
            answer = conn.recv()
        except (EOFError, ConnectionError):
            exitcode = self._stop(kill=True)
            raise self._crash(exitcode) from None
        if answer[0] == "ok":
            return answer[1]
        _, reason, message = answer
        if reason == "parse_memory":
            self._stop(kill=False)  # the child exits by itself after a memory error
        raise ParseError(reason, message)

    def _send(self, request: tuple) -> Connection:
        """Send to a live child. A first failure means the idle child died (not this document's
        fault: try a fresh one); a second, that the child cannot even receive the document under
        its memory limit."""
        for _ in range(2):
            conn = self._conn or self._start()
            try:
                conn.send(request)
                return conn
            except OSError:
                self._stop(kill=True)
        raise ParseError("parse_memory", "the document does not fit in the parser's memory limit")

    def _crash(self, exitcode: int | None) -> ParseError:
        if exitcode is not None and exitcode < 0:
            name = signal.Signals(-exitcode).name
            if -exitcode == signal.SIGKILL:  # the kernel's OOM killer sends SIGKILL
                return ParseError("parse_memory", f"the parser process was killed ({name}), most likely out of memory")
            return ParseError("parser_crashed", f"the parser process died of {name}")
        return ParseError("parser_crashed", f"the parser process exited with code {exitcode}")


class ParserPool:
    """``workers`` parser sandboxes parsing documents side by side, one document each at a time.

    The parsers do the work in their own processes; this process only hands out documents and
    waits, from one thread per sandbox. A sandbox starts its process when it gets its first
    document, so a day served from the parse cache starts none. Use as a context manager.
    """

    def __init__(self, limits: ParsingLimits, workers: int = 1):
        if workers < 1:
            raise ValueError(f"parser workers must be at least 1, got {workers}")
        self._sandboxes = [ParserSandbox(limits) for _ in range(workers)]
        self._idle: queue.SimpleQueue[ParserSandbox] = queue.SimpleQueue()
        for sandbox in self._sandboxes:
            self._idle.put(sandbox)
        self._threads = ThreadPoolExecutor(workers, thread_name_prefix="parse") if workers > 1 else None

    @property
    def workers(self) -> int:
        return len(self._sandboxes)

    def __enter__(self) -> ParserPool:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def map(self, work: Callable[[ParserSandbox, _Item], _Result], items: Iterable[_Item]) -> Iterator[_Result]:
        """``work(sandbox, item)`` for every item, results in the order of ``items``."""
        if self._threads is None:
            for item in items:
                yield work(self._sandboxes[0], item)
            return

        def on_idle_sandbox(item: _Item) -> _Result:
            sandbox = self._idle.get()
            try:
                return work(sandbox, item)
            finally:
                self._idle.put(sandbox)

        yield from self._threads.map(on_idle_sandbox, items)

    def close(self) -> None:
        if self._threads is not None:  # documents not begun are dropped; those begun finish
            self._threads.shutdown(wait=True, cancel_futures=True)
        for sandbox in self._sandboxes:
            sandbox.close()
