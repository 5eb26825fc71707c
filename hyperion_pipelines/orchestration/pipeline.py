"""Build one pipeline's asset graph from its :class:`PipelineSpec`.

    raw_documents -> parsed_documents -> document_chunks -> chunk_embeddings -> vector_index
                                    +-> quarantined_documents

Every DataFrame asset validates its output against its pandera schema and reports a blocking
``schema`` check, so a partition that breaks one never reaches Milvus; ``vector_index`` checks
what it left in Milvus. With a golden query set, ``retrieval_evaluation`` scores the live index.

Each asset is a thin wrapper in its own module of ``orchestration/assets/``: the work is done by
the stage functions of ``sources``, ``parsing``, ``chunking``, ``embedding`` and ``index``, which
know nothing about Dagster.
"""

from dataclasses import dataclass

from dagster import AssetKey, AssetsDefinition, define_asset_job

from hyperion_pipelines.dagster_internals import UnresolvedAssetJobDefinition
from hyperion_pipelines.orchestration.assets.chunk_embeddings import build_chunk_embeddings
from hyperion_pipelines.orchestration.assets.document_chunks import build_document_chunks
from hyperion_pipelines.orchestration.assets.parsed_documents import build_parsed_documents
from hyperion_pipelines.orchestration.assets.quarantined_documents import build_quarantined_documents
from hyperion_pipelines.orchestration.assets.raw_documents import build_raw_documents
from hyperion_pipelines.orchestration.assets.step import asset_key
from hyperion_pipelines.orchestration.assets.vector_index import build_vector_index
from hyperion_pipelines.orchestration.evaluation import build_evaluation
from hyperion_pipelines.spec import PipelineSpec


@dataclass(frozen=True)
class PipelineDefs:
    spec: PipelineSpec
    assets: list[AssetsDefinition]  # the partitioned ingestion graph
    job: UnresolvedAssetJobDefinition
    evaluation: AssetsDefinition | None = None  # retrieval_evaluation, when a golden set is configured
    evaluation_job: UnresolvedAssetJobDefinition | None = None

    @property
    def all_assets(self) -> list[AssetsDefinition]:
        return [*self.assets, *([self.evaluation] if self.evaluation else [])]

    @property
    def jobs(self) -> list[UnresolvedAssetJobDefinition]:
        return [self.job, *([self.evaluation_job] if self.evaluation_job else [])]

    def key(self, name: str) -> AssetKey:
        return AssetKey([*self.spec.key_prefix, name])


# The DataFrame assets return MaterializeResult(value=frame, check_results=...) with no return
# annotation: Dagster reads an annotation on an asset that also has check outputs as a tuple of
# outputs, and rejects it.


def build_pipeline(spec: PipelineSpec) -> PipelineDefs:
    assets = [
        build_raw_documents(spec),
        build_parsed_documents(spec),
        build_quarantined_documents(spec),
        build_document_chunks(spec),
        build_chunk_embeddings(spec),
        build_vector_index(spec),
    ]
    job = define_asset_job(
        name=f"ingest_{spec.name}",
        selection=[a.key for a in assets],
        tags={
            # The production run queue limits these runs (deploy/dagster.yaml): each loads the model.
            "hyperion/heavy": "true",
            # Enforced by run monitoring (dagster.yaml): a run past it is marked failed and alerted.
            **({"dagster/max_runtime": str(spec.limits.run_timeout_s)} if spec.limits.run_timeout_s else {}),
        },
        owners=list(spec.owners),
        description=(
            f"Ingest one upload day of the {spec.name} pipeline: land, parse (quarantining bad documents), "
            "chunk, embed, index, with every schema and index check."
        ),
    )
    evaluation = build_evaluation(spec, asset_key(spec, "vector_index"))
    return PipelineDefs(
        spec=spec,
        assets=assets,
        job=job,
        evaluation=evaluation[0] if evaluation else None,
        evaluation_job=evaluation[1] if evaluation else None,
    )
