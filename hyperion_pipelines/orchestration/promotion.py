"""Blue/green promotion as a job: ``promote_<pipeline>`` moves the live alias to the candidate.

After an embedding-configuration change, every upload day is run again (a backfill in the UI, or
``hyperion reindex``) into the new configuration's collection while searches keep using the live
one. This job then decides, from what the instance and the index hold, whether the candidate may
take over (``index.promotion.decide``): every day the index manifest records was last written
into the candidate by a run whose index checks passed, the candidate holds exactly the indexed
documents, and the golden-set evaluation on it (run here) is not below its fail thresholds. It
moves the alias only then, and fails with the reasons otherwise. ``hyperion reindex`` runs the
days, then this job.
"""

# No "from __future__ import annotations": Dagster reads the op's config annotation.
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from dagster import (
    AssetCheckEvaluation,
    AssetKey,
    AssetRecordsFilter,
    Config,
    DagsterEventType,
    DagsterInstance,
    Failure,
    JobDefinition,
    MetadataValue,
    OpExecutionContext,
    job,
    op,
)
from pydantic import Field

from hyperion_pipelines.embedding.space import collection_fingerprint
from hyperion_pipelines.evaluation.golden import load_golden_queries
from hyperion_pipelines.evaluation.retrieval import retrieve_documents, score_retrievals
from hyperion_pipelines.evaluation.thresholds import assess
from hyperion_pipelines.index.promotion import coverage, decide
from hyperion_pipelines.orchestration.execution import RUN_EXECUTOR
from hyperion_pipelines.orchestration.pipeline import PipelineDefs
from hyperion_pipelines.orchestration.resources.embedder import EmbedderResource
from hyperion_pipelines.orchestration.resources.milvus import MilvusResource
from hyperion_pipelines.orchestration.resources.state import StateDatabaseResource
from hyperion_pipelines.run_metadata import COLLECTION, PROMOTION_SUMMARY


class PromotionConfig(Config):
    drop_old: bool = Field(default=False, description="After a promotion, drop the alias's other collections.")
    failed_days: list[str] = Field(
        default_factory=list,
        description="Upload days whose runs just failed (a caller that ran them, as 'hyperion reindex' does).",
    )


@dataclass
class PromotionSummary:
    """What the job decided, for the run's metadata and ``hyperion reindex --json``."""

    candidate: str
    previous: str | None
    promoted: bool = False
    already_live: bool = False
    reasons: list[str] = field(default_factory=list)
    documents: int = 0
    evaluation: dict | None = None
    dropped: list[str] = field(default_factory=list)
    old_collections: list[str] = field(default_factory=list)


# An evaluation level as the retrieval_quality check's outcome would read.
_CHECK_OUTCOME = {"pass": "passed", "warn": "warn", "fail": "error"}


def days_not_in_candidate(
    instance: DagsterInstance, vector_index: AssetKey, days: Sequence[str], candidate: str
) -> tuple[list[str], list[str]]:
    """Days whose latest ``vector_index`` write went elsewhere than ``candidate`` (or never
    happened), and the index checks that failed in the runs of the days' latest writes."""
    elsewhere, failed_checks = [], []
    for day in sorted(days):
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=vector_index, asset_partitions=[day]), limit=1
        ).records
        written = records[0].asset_materialization if records else None
        collection = written.metadata.get(COLLECTION.key) if written is not None else None
        if collection is None or collection.value != candidate:
            elsewhere.append(day)
            continue
        latest = records[0]
        for record in instance.all_logs(latest.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
            check: AssetCheckEvaluation = record.get_dagster_event().event_specific_data
            if check.asset_key == vector_index and not check.passed and check.severity.value == "ERROR":
                failed_checks.append(f"{day}: {vector_index.path[-1]}.{check.check_name}")
    return elsewhere, failed_checks


def promote_op_name(pipeline: str) -> str:
    """The promote job's one op (named apart from the job: Dagster wants op and job names unique)."""
    return f"promote_{pipeline}_candidate"


def build_promotion_job(pipeline: PipelineDefs) -> JobDefinition:
    spec = pipeline.spec
    keys = spec.resources
    vector_index = pipeline.key("vector_index")

    @op(
        name=promote_op_name(spec.name),
        required_resource_keys={keys.embedder, keys.milvus, keys.state},
        description="Move the live alias to the current configuration's collection when it passes, else fail.",
    )
    def promote(context: OpExecutionContext, config: PromotionConfig) -> dict:
        embedder: EmbedderResource = getattr(context.resources, keys.embedder)
        milvus: MilvusResource = getattr(context.resources, keys.milvus)
        state: StateDatabaseResource = getattr(context.resources, keys.state)
        model = embedder.get()
        index = milvus.index(spec.index, context.log.warning)
        candidate = index.collection_name(collection_fingerprint(spec, model.identity, index.retrieval))
        summary = PromotionSummary(candidate=candidate, previous=index.live_collection())
        # Already live (a forced rebuild, or nothing changed): checked all the same.
        summary.already_live = summary.previous == candidate
        manifest = state.manifest(spec.name)
        indexed = {doc for doc, entry in manifest.indexed().items() if entry.status == "indexed"}
        summary.documents = len(indexed)
        exists = index.client.has_collection(candidate)
        elsewhere, failed_checks = days_not_in_candidate(
            context.instance, vector_index, manifest.partitions(), candidate
        )
        level = None
        if spec.evaluation.golden_queries and exists:
            queries = load_golden_queries(spec.evaluation.golden_queries)
            result = score_retrievals(
                queries,
                retrieve_documents(index, model, queries, spec.evaluation.k, collection=candidate),
                spec.evaluation.k,
            )
            level = assess(result, spec.evaluation).level
            summary.evaluation = {
                "k": spec.evaluation.k,
                "queries": result.queries,
                "recall_at_k": round(result.recall_at_k, 4),
                "mrr": round(result.mrr, 4),
                "ndcg_at_k": round(result.ndcg_at_k, 4),
                "check": _CHECK_OUTCOME[level],
            }
        failed = {day: f"{day} (its run failed)" for day in config.failed_days}
        failed.update({day: f"{day} (not written into {candidate})" for day in elsewhere if day not in failed})
        decision = decide(
            candidate_exists=exists,
            failed_days=[failed[day] for day in sorted(failed)],
            failed_checks=failed_checks,
            documents=coverage(index.document_ids(candidate) if exists else set(), indexed),
            evaluation_level=level,
        )
        summary.promoted, summary.reasons = decision.promote, decision.reasons
        if decision.promote:
            index.point_alias(candidate)
            context.log.info(f"{spec.index.alias} now points at {candidate}")
        others = [c for c in index.collections() if c != index.live_collection()]
        if decision.promote and config.drop_old:
            for name in others:
                index.drop(name)
                summary.dropped.append(name)
        summary.old_collections = [c for c in others if c not in summary.dropped]
        context.add_output_metadata({PROMOTION_SUMMARY: MetadataValue.json(asdict(summary))})
        if not decision.promote:
            raise Failure(
                description=f"{candidate} NOT promoted; searches keep using {summary.previous or 'nothing'}: "
                + "; ".join(decision.reasons),
                metadata={PROMOTION_SUMMARY: MetadataValue.json(asdict(summary))},
                allow_retries=False,
            )
        return asdict(summary)

    @job(
        name=f"promote_{spec.name}",
        executor_def=RUN_EXECUTOR,
        tags={"hyperion/heavy": "true"},  # it loads the model, as an ingest run does
        owners=list(spec.owners),
        description=(
            f"Blue/green: moves the {spec.name} alias to the current embedding configuration's collection "
            "once every upload day was run into it with its checks passing, it holds exactly the indexed "
            "documents and its golden-set evaluation passes; otherwise fails, saying why."
        ),
    )
    def promotion_job() -> None:
        promote()

    return promotion_job
