"""``parsed_documents``: parse each landed document in a sandboxed child process; a failure is a row with its reason."""

# No "from __future__ import annotations": Dagster reads the asset function's annotations.
import time

import pandas as pd
from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue, asset

from hyperion_pipelines import run_metadata as rm
from hyperion_pipelines.checks.schemas import parsed_documents_schema
from hyperion_pipelines.checks.validation import merged_reports, validate_frame
from hyperion_pipelines.orchestration.assets.step import Step, asset_args, schema_spec, table_metadata, upstream
from hyperion_pipelines.orchestration.checks import schema_check_result
from hyperion_pipelines.orchestration.metadata import fidelity_metadata, mean, percentile, timing
from hyperion_pipelines.parsing.sandbox import ParserPool
from hyperion_pipelines.parsing.stage import (
    PARSED_BULK,
    any_to_parse,
    fidelity_summary,
    parse_documents,
    unread_pages_note,
)
from hyperion_pipelines.settings import current_settings
from hyperion_pipelines.sources.landing import is_held
from hyperion_pipelines.spec import PipelineSpec
from hyperion_pipelines.step_outputs.parts import frame_slices


def build_parsed_documents(spec: PipelineSpec) -> AssetsDefinition:
    keys = spec.resources

    @asset(
        description=(
            "Text and structure (title, headings, page offsets) of each raw document, parsed in a "
            "child process under time and memory limits. A document that cannot be used is kept as "
            "a 'rejected' row with a reason code and message (see quarantined_documents). A document "
            "parsed before under the same parsing settings is reused, not parsed again."
        ),
        kinds={"python", "pandas"},
        ins={"raw_documents": upstream(spec, "raw_documents")},
        required_resource_keys={keys.blob_store, keys.embedder},
        check_specs=[
            schema_spec(spec, "parsed_documents", "ParsedDocuments", "status, reason codes, text and offsets")
        ],
        **asset_args(spec, "parsed_documents"),
    )
    def parsed_documents(context: AssetExecutionContext, raw_documents: pd.DataFrame):
        step = Step(spec, context)
        started = time.perf_counter()
        outputs = step.outputs
        cache = step.blob_store.parse_cache(spec.parsing)
        if any_to_parse(raw_documents, cache):
            # New text ahead, so chunks to embed: the model loads while this step parses (the
            # in-process executor hands later steps the same embedder).
            step.embedder.get().preload()
        schema = parsed_documents_schema(spec.parsing.limits.min_fidelity)
        writer = outputs.part_writer(context)
        reports, light, first = [], [], None
        workers = current_settings().parse_workers  # a setting of the host the step runs on
        to_parse = int((~is_held(raw_documents)).sum())
        with step.limit() as checkpoint, ParserPool(spec.parsing.limits, workers) as parsers:
            for part in frame_slices(raw_documents, outputs.part_documents):
                frame = parse_documents(part, step.blobs, spec.parsing, cache, checkpoint, parsers)
                writer.write(frame)
                reports.append(validate_frame(frame, schema, "document_id"))
                light.append(frame.drop(columns=list(PARSED_BULK)))
                step.progress("parsed", sum(len(f) for f in light), to_parse, "documents")
                first = frame if first is None else first
        value = writer.finish()
        frame = pd.concat(light, ignore_index=True)  # every column but the text: for the figures
        check = schema_check_result(merged_reports(reports), "ParsedDocuments")
        seconds = time.perf_counter() - started
        rejected = frame[frame["status"] == "rejected"]
        parsed_chars = frame.loc[frame["status"] == "parsed", "char_count"]
        for row in rejected.itertuples(index=False):
            context.log.warning(f"quarantined {row.source}: {row.reason}: {row.message}")
        for row in frame[frame["unread_pages"] > 0].itertuples(index=False):
            context.log.warning(unread_pages_note(row.source, row.unread_pages, context.partition_key))
        return MaterializeResult(
            value=value,
            check_results=[check],
            metadata={
                **table_metadata(
                    spec,
                    "parsed_documents",
                    first,
                    ["source", "status", "parser", "fidelity", "title", "char_count", "reason"],
                    total_rows=len(value),
                ),
                rm.PARSED.key: int((frame["status"] == "parsed").sum()),
                rm.PARSE_REUSED.key: int(frame["reused"].sum()),
                rm.PARSED_NOW.key: int(((frame["status"] == "parsed") & ~frame["reused"]).sum()),
                rm.REJECTED.key: len(rejected),
                rm.REJECTED_BY_REASON.key: MetadataValue.json(rejected["reason"].value_counts().to_dict()),
                "characters": int(frame["char_count"].sum()),
                # Of the documents parsed: a drop can mean a parser that now misses text.
                "characters_mean": MetadataValue.float(mean(parsed_chars)),
                "characters_p95": MetadataValue.float(percentile(parsed_chars, 95)),
                **fidelity_metadata(fidelity_summary(frame)),
                "parts": len(value.urls),
                "parser_processes": workers,
                "step_output_bytes": writer.bytes,
                **timing(seconds, len(frame), "documents"),
            },
        )

    return parsed_documents
