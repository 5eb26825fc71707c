"""The ``hyperion`` command line, one module per command: it drives the same Dagster definitions the UI shows, and
its runs go through the instance in ``DAGSTER_HOME``, so they appear in the UI's run history."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from hyperion_pipelines.cli.common import MAX_K, CommandError, FaultFound, RunsInProgress
from hyperion_pipelines.cli.instance_yaml import EMBEDDED_INSTANCE_YAML
from hyperion_pipelines.cli.parser import build_parser
from hyperion_pipelines.cli.worker import worker_command, worker_environment
from hyperion_pipelines.settings import Settings, SettingsError

# What other code imports from here (setup.py's entry point, tests, benchmarks).
__all__ = ["EMBEDDED_INSTANCE_YAML", "build_parser", "main", "worker_command", "worker_environment"]


def main(argv: Sequence[str] | None = None) -> int:
    from hyperion_pipelines.components.declaration import PipelineDeclarationError

    args = build_parser().parse_args(argv)
    # pymilvus (client) and milvus-lite (its in-process server) log each failed call with a stack
    # trace before it is raised; the command reports it in one line (-v shows them).
    for noisy in ("pymilvus", "milvus_lite"):
        logging.getLogger(noisy).setLevel(logging.INFO if getattr(args, "verbose", False) else logging.CRITICAL)
    if getattr(args, "to_date", None) and not args.from_date:
        build_parser().error("--to needs --from")
    if not 1 <= getattr(args, "k", 1) <= MAX_K:
        build_parser().error(f"-k must be between 1 and {MAX_K}")
    from pymilvus.exceptions import MilvusException
    from sqlalchemy.exc import DatabaseError, OperationalError

    from hyperion_pipelines.faults import explain
    from hyperion_pipelines.index.local_lock import IndexInUse

    try:
        return args.handler(args)
    except (CommandError, PipelineDeclarationError, SettingsError) as exc:
        print(f"hyperion: error: {exc}", file=sys.stderr)
        return 2
    except (IndexInUse, FaultFound, RunsInProgress) as exc:
        print(f"hyperion: error: {exc}", file=sys.stderr)
        return 1
    except MilvusException as exc:
        explained = explain(str(exc), Settings.from_env())
        if explained is None:
            raise
        print(f"hyperion: error: {explained}", file=sys.stderr)
        return 1
    except (OSError, DatabaseError, OperationalError) as exc:
        explained = explain(str(exc), Settings.from_env(), errno_value=getattr(exc, "errno", None))
        if explained is None:
            raise
        print(f"hyperion: error: {explained}", file=sys.stderr)
        return 1
