"""Asset-check specs and results: what was checked, how many rows failed, a sample of failures."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    PartitionsDefinition,
    PreviewWarning,
)

from hyperion_pipelines.checks.validation import SchemaReport
from hyperion_pipelines.index.verification import KEYWORD_TOP, ReconciliationReport, SelfRetrievalReport
from hyperion_pipelines.orchestration.metadata import markdown_preview

SCHEMA_CHECK = "schema"
RECONCILIATION_CHECK = "matches_chunks"
SELF_RETRIEVAL_CHECK = "self_retrieval"
_SAMPLE = 10


def check_spec(
    name: str, key: AssetKey, partitions_def: PartitionsDefinition | None, description: str, blocking: bool = False
) -> AssetCheckSpec:
    """A check spec partitioned like its asset, so each result is recorded against its partition
    (Dagster marks ``partitions_def`` on checks as preview; it is what makes per-day results)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)
        return AssetCheckSpec(
            name, asset=key, blocking=blocking, partitions_def=partitions_def, description=description
        )


def schema_check_spec(
    key: AssetKey, partitions_def: PartitionsDefinition | None, model: str, what: str
) -> AssetCheckSpec:
    # Blocking: a partition whose frame breaks its schema stops here and never reaches the index.
    return check_spec(
        SCHEMA_CHECK,
        key,
        partitions_def,
        f"pandera {model}: {what}. Blocks everything downstream when it fails.",
        blocking=True,
    )


def schema_check_result(report: SchemaReport, model: str) -> AssetCheckResult:
    metadata = {
        "schema": model,
        "rows": report.rows,
        "failures": report.failure_count,
        "failing_rows": report.failing_rows,
    }
    if not report.passed:
        metadata["failures_by_check"] = MetadataValue.json(report.failures_by_check)
        metadata["failure_cases"] = MetadataValue.md(report.markdown())
    return AssetCheckResult(
        check_name=SCHEMA_CHECK,
        passed=report.passed,
        metadata=metadata,
        description=(
            f"{report.rows} rows match {model}"
            if report.passed
            else f"{report.failing_rows} of {report.rows} rows break {model} ({report.failure_count} failures)"
        ),
    )


def _ids_table(title: str, ids: Sequence[str]) -> MetadataValue:
    frame = pd.DataFrame({title: list(ids[:_SAMPLE])})
    return markdown_preview(frame, [title], rows=_SAMPLE)


def reconciliation_result(report: ReconciliationReport) -> AssetCheckResult:
    metadata: dict = {
        "expected": report.expected,
        "found": report.found,
        "missing": len(report.missing),
        "orphans": len(report.orphans),
        "duplicates": len(report.duplicates),
    }
    for name, ids in (("missing", report.missing), ("orphans", report.orphans), ("duplicates", report.duplicates)):
        if ids:
            metadata[f"{name}_sample"] = _ids_table(f"{name} chunk id", ids)
    return AssetCheckResult(
        check_name=RECONCILIATION_CHECK,
        passed=report.passed,
        metadata=metadata,
        description=(
            f"Milvus holds exactly the {report.expected} expected entries"
            if report.passed
            else f"{len(report.missing)} missing, {len(report.orphans)} orphaned, "
            f"{len(report.duplicates)} duplicated of {report.expected} expected entries"
        ),
    )


def self_retrieval_result(report: SelfRetrievalReport, min_ratio: float) -> AssetCheckResult:
    metadata: dict = {
        "sampled": report.sampled,
        "found_first": report.found_first,
        "ratio": MetadataValue.float(round(report.ratio, 4)),
        "min_ratio": MetadataValue.float(min_ratio),
    }
    if report.misses:
        misses = pd.DataFrame([vars(m) for m in report.misses])
        metadata["misses"] = markdown_preview(misses, list(misses.columns), rows=_SAMPLE)
    description = f"{report.found_first} of {report.sampled} sampled chunks came back first for their own vector"
    keyword = report.keyword_ratio
    if keyword is not None:  # a hybrid collection: its BM25 field is checked too
        metadata["keyword_found"] = report.keyword_found
        metadata["keyword_ratio"] = MetadataValue.float(round(keyword, 4))
        found = f"{report.keyword_found} of {report.keyword_sampled}"
        description += f"; {found} among the top {KEYWORD_TOP} for their own text (BM25)"
    return AssetCheckResult(
        check_name=SELF_RETRIEVAL_CHECK,
        passed=report.ratio >= min_ratio and (keyword is None or keyword >= min_ratio),
        severity=AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=description,
    )
