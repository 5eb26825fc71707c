"""Every name this package takes from Dagster's private modules (``dagster._...``), in one place.

Dagster does not export these, and a Dagster upgrade may move them: when one moves, this module
fails to import and is the only one to change. Each is here for a reason Dagster's public API
does not cover:

- ``UnresolvedAssetJobDefinition``: the type of what ``define_asset_job`` returns, for annotations.
- ``SerializableErrorInfo``: the type of a failed run's error in the run failure sensor.
- ``is_valid_cron_string``: Dagster's own cron parser, so a pipeline's schedule is checked as
  Dagster will read it.
- The run launcher's base class and what it is handed (``instance/run_launcher.py`` extends
  Dagster's instance, as ``dagster-docker`` and ``dagster-k8s`` do).
"""

from __future__ import annotations

from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._core.instance import InstanceRef
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._core.origin import get_python_environment_entry_point
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass, ConfigurableClassData
from dagster._utils.error import SerializableErrorInfo
from dagster._utils.schedules import is_valid_cron_string

__all__ = [
    "CheckRunHealthResult",
    "ConfigurableClass",
    "ConfigurableClassData",
    "ExecuteRunArgs",
    "InstanceRef",
    "LaunchRunContext",
    "RunLauncher",
    "SerializableErrorInfo",
    "UnresolvedAssetJobDefinition",
    "WorkerStatus",
    "get_python_environment_entry_point",
    "is_valid_cron_string",
]
