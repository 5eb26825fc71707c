"""``quarantined_documents``: the dead-letter queue of the day, recorded in the quarantine ledger."""

# No "from __future__ import annotations": Dagster reads the asset function's annotations.
import time

import pandas as pd
from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue, asset

from hyperion_pipelines.orchestration.assets.step import Step, asset_args, table_metadata, upstream
from hyperion_pipelines.orchestration.execution import REMOTE_RETRY, stop_if_terminated
from hyperion_pipelines.orchestration.metadata import timing
from hyperion_pipelines.parsing.stage import OUTCOME_COLUMNS
from hyperion_pipelines.sources.landing import held_ids
from hyperion_pipelines.spec import PipelineSpec
from hyperion_pipelines.state.quarantine_ledger import quarantine_frame, rejections_in
from hyperion_pipelines.step_outputs.parts import StepValue, whole


def build_quarantined_documents(spec: PipelineSpec) -> AssetsDefinition:
    keys = spec.resources

    @asset(
        description=(
            "The dead-letter queue: every document of the partition that could not be indexed, with "
            "its reason code, message and when it was first quarantined. History lives in the "
            "quarantine ledger; a fixed document (new version, raised limit) is released when its "
            "partition is materialised again. `hyperion quarantine` lists it."
        ),
        kinds={"python", "pandas"},
        ins={"raw_documents": upstream(spec, "raw_documents"), "parsed_documents": upstream(spec, "parsed_documents")},
        required_resource_keys={keys.state},
        retry_policy=REMOTE_RETRY,  # the state database is a server (PostgreSQL) in production
        **asset_args(spec, "quarantined_documents"),
    )
    def quarantined_documents(context: AssetExecutionContext, raw_documents: pd.DataFrame, parsed_documents: StepValue):
        step = Step(spec, context)
        stop_if_terminated(context)
        started = time.perf_counter()
        ledger = step.ledger
        parsed_documents = whole(parsed_documents, OUTCOME_COLUMNS)
        parsed_ids = parsed_documents.loc[parsed_documents["status"] == "parsed", "document_id"].tolist()
        update = ledger.record_partition(
            context.partition_key,
            rejections_in(parsed_documents),
            parsed_ids,
            run_id=context.run.run_id,
            kept_document_ids=held_ids(raw_documents),
        )
        frame = quarantine_frame(raw_documents, context.partition_key, ledger.entries(partition=context.partition_key))
        seconds = time.perf_counter() - started
        return MaterializeResult(
            value=frame,
            metadata={
                **table_metadata(
                    spec, "quarantined_documents", frame, ["source", "reason", "message", "quarantined_at"]
                ),
                "quarantined": len(frame),
                "newly_quarantined": update.new,
                "released": update.released,
                "by_reason": MetadataValue.json(frame["reason"].value_counts().to_dict()),
                **timing(seconds, len(frame), "documents"),
            },
        )

    return quarantined_documents
