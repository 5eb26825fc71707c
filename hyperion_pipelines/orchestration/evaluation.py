"""The ``retrieval_evaluation`` asset: a golden query set scored against the index.

It scores the collection of the current embedding space: the live one in steady state, the
candidate during a blue/green re-index, where its result decides whether the alias may move.

Unpartitioned, because users search the whole index, not a day of it. Its metrics are numeric
metadata with stable names, so the asset's page in the UI plots their history.
"""

from pathlib import Path

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    define_asset_job,
)

from hyperion_pipelines import run_metadata as rm
from hyperion_pipelines.dagster_internals import UnresolvedAssetJobDefinition
from hyperion_pipelines.embedding.space import collection_fingerprint
from hyperion_pipelines.evaluation.golden import load_golden_queries
from hyperion_pipelines.evaluation.retrieval import report_rows, retrieve_documents, score_retrievals
from hyperion_pipelines.evaluation.thresholds import Assessment, assess
from hyperion_pipelines.orchestration.checks import check_spec
from hyperion_pipelines.orchestration.execution import REMOTE_RETRY, RUN_EXECUTOR, stop_if_terminated
from hyperion_pipelines.orchestration.metadata import markdown_preview
from hyperion_pipelines.orchestration.resources.embedder import EmbedderResource
from hyperion_pipelines.orchestration.resources.milvus import MilvusResource
from hyperion_pipelines.spec import EvaluationSpec, PipelineSpec

QUALITY_CHECK = "retrieval_quality"


def _quality_result(assessment: Assessment, spec: EvaluationSpec, k: int) -> AssetCheckResult:
    thresholds = {
        f"recall@{k}": spec.recall_at_k.model_dump(),
        "mrr": spec.mrr.model_dump(),
        f"ndcg@{k}": spec.ndcg_at_k.model_dump(),
    }
    return AssetCheckResult(
        check_name=QUALITY_CHECK,
        passed=assessment.level == "pass",
        severity=AssetCheckSeverity.ERROR if assessment.level == "fail" else AssetCheckSeverity.WARN,
        description=assessment.summary(),
        metadata={
            "level": assessment.level,
            "thresholds": MetadataValue.json(thresholds),
            "breaches": MetadataValue.json([vars(b) for b in assessment.breaches]),
        },
    )


def build_evaluation(
    spec: PipelineSpec, vector_index_key: AssetKey
) -> tuple[AssetsDefinition, UnresolvedAssetJobDefinition] | None:
    """The evaluation asset and its job, or None when the pipeline has no golden query set."""
    golden = spec.evaluation.golden_queries
    if golden is None:
        return None
    keys, k = spec.resources, spec.evaluation.k
    key = AssetKey([*spec.key_prefix, "retrieval_evaluation"])

    @asset(
        key=key,
        description=(
            f"Recall@{k}, MRR and nDCG@{k} of the current embedding space's collection (the live "
            "one, or the candidate of a re-index) on the golden query set "
            f"{Path(golden).name}: each query's chunk hits are collapsed to documents and judged "
            "against the documents the set marks relevant."
        ),
        group_name=spec.name,
        owners=list(spec.owners),
        tags={"hyperion/stage": "evaluate"},
        kinds={"python", "milvus"},
        deps=[vector_index_key],
        required_resource_keys={keys.embedder, keys.milvus},
        retry_policy=REMOTE_RETRY,
        check_specs=[
            check_spec(
                QUALITY_CHECK,
                key,
                None,
                "Warns below the warn thresholds and fails below the fail thresholds of recall, MRR and nDCG.",
            )
        ],
    )
    def retrieval_evaluation(context: AssetExecutionContext) -> MaterializeResult:
        stop_if_terminated(context)
        queries = load_golden_queries(golden)
        embedder: EmbedderResource = getattr(context.resources, keys.embedder)
        milvus: MilvusResource = getattr(context.resources, keys.milvus)
        index = milvus.index(spec.index)
        model = embedder.get()
        collection = index.collection_name(collection_fingerprint(spec, model.identity, index.retrieval))
        if not index.client.has_collection(collection):
            raise Failure(f"{collection} does not exist yet: materialise vector_index first")
        live = index.live_collection()
        retrievals = retrieve_documents(index, model, queries, k, collection=collection)
        result = score_retrievals(queries, retrievals, k)
        rows = pd.DataFrame(report_rows(queries, retrievals, result))
        return MaterializeResult(
            metadata={
                "golden_set": str(golden),
                "collection": collection,
                "live_collection": live or "",
                "candidate": collection != live,
                rm.EVALUATION_QUERIES.key: result.queries,
                rm.EVALUATION_K.key: k,
                rm.RECALL_AT_K.key: MetadataValue.float(round(result.recall_at_k, 4)),
                rm.MRR.key: MetadataValue.float(round(result.mrr, 4)),
                rm.NDCG_AT_K.key: MetadataValue.float(round(result.ndcg_at_k, 4)),
                "per_query": markdown_preview(rows, list(rows.columns), rows=len(rows)),
            },
            check_results=[_quality_result(assess(result, spec.evaluation), spec.evaluation, k)],
        )

    job = define_asset_job(
        name=f"evaluate_{spec.name}",
        selection=[key],
        executor_def=RUN_EXECUTOR,
        description=(
            f"Score the {spec.name} index on its golden query set: recall@{k}, MRR and nDCG@{k}, "
            "checked against the warn and fail thresholds."
        ),
        owners=list(spec.owners),
    )
    return retrieval_evaluation, job
