"""The code location loads, with the asset graph, job and resources users expect."""

from __future__ import annotations

import subprocess
import sys

import pytest
from dagster import AssetKey
from pydantic import ValidationError

from hyperion_pipelines.definitions import build_definitions
from hyperion_pipelines.orchestration.assets.step import ASSET_NAMES, STAGES
from hyperion_pipelines.orchestration.pipeline import build_pipeline
from hyperion_pipelines.settings import SAMPLE_GOLDEN_QUERIES, Settings
from hyperion_pipelines.spec import BackendApiSource, PipelineSpec

from ..conftest import REPO
from ..support.sample_pipeline import default_spec


def test_definitions_load_with_the_full_asset_graph(hyperion_env: Settings) -> None:
    defs = build_definitions(hyperion_env)
    graph = defs.resolve_asset_graph()
    assert {key.path[-1] for key in graph.get_all_asset_keys()} == set(ASSET_NAMES)
    assert graph.get(AssetKey("vector_index")).parent_keys == {
        AssetKey("raw_documents"), AssetKey("parsed_documents"), AssetKey("document_chunks"),
        AssetKey("chunk_embeddings"),
    }  # fmt: skip
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name == "documents"
        assert node.description and len(node.description) > 40
        assert node.kinds, key
        assert node.partitions_def is not None and node.partitions_def.timezone == "UTC"
    job = defs.resolve_job_def("ingest_documents")
    assert job.partitions_def is not None
    assert set(defs.resources) == {
        "documents_source", "documents_embedder", "documents_milvus", "blob_store", "state_db", "alert_webhook",
        "prometheus", "io_manager",
    }  # fmt: skip


def test_every_definition_says_what_it_does_and_who_owns_it(hyperion_env: Settings, monkeypatch) -> None:
    """What a user sees in the UI: owners, a stage tag and a description on every asset; a description
    (and owners, or an owners tag where Dagster takes none) on every job, schedule and sensor."""
    monkeypatch.setenv("HYPERION_GOLDEN_QUERIES", str(SAMPLE_GOLDEN_QUERIES))  # the evaluation asset too
    defs = build_definitions(Settings.from_env())
    owners = ["team:document-platform"]
    graph = defs.resolve_asset_graph()
    stages = {**STAGES, "retrieval_evaluation": "evaluate"}
    assert {key.path[-1] for key in graph.get_all_asset_keys()} == set(stages)
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners == owners, key
        assert node.tags["hyperion/stage"] == stages[key.path[-1]], key
        assert node.group_name == "documents" and node.description, key
    jobs = {job.name: job for job in defs.resolve_all_job_defs() if not job.name.startswith("__")}
    assert set(jobs) == {"ingest_documents", "evaluate_documents", "promote_documents", "reclaim_storage"}
    schedules = list(defs.schedules)
    sensors = list(defs.sensors)
    assert {s.name for s in schedules} == {
        "reconcile_documents_daily", "evaluate_documents_daily", "reclaim_storage_nightly",
    }  # fmt: skip
    assert {s.name for s in sensors} == {
        "documents_uploads", "alert_on_run_failure", "push_metrics_on_success", "push_metrics_on_failure",
    }  # fmt: skip
    for definition in [*jobs.values(), *schedules, *sensors]:
        assert definition.description and len(definition.description) > 40, definition.name
        assert definition.description.rstrip().endswith("."), definition.name
    for definition in [*jobs.values(), *schedules]:
        assert list(definition.owners) == owners, definition.name
    for sensor in sensors:
        # Run-status sensors take no owners in Dagster 1.13: they carry them as a tag.
        assert list(sensor.owners) == owners or sensor.tags == {"hyperion/owners": owners[0]}, sensor.name


def test_owners_come_from_the_spec_and_must_be_teams_or_emails() -> None:
    spec = PipelineSpec(name="legal", key_prefix=("legal",), owners=("team:legal-search", "ana@example.com"))
    pipeline = build_pipeline(spec)
    assert all(a.owners_by_key[a.key] == ["team:legal-search", "ana@example.com"] for a in pipeline.assets)
    for owners in [(), ("legal",), ("team:",)]:
        with pytest.raises(ValidationError):
            PipelineSpec(name="legal", owners=owners)


def test_every_frame_has_a_blocking_partitioned_schema_check_and_the_index_its_checks(hyperion_env: Settings) -> None:
    graph = build_definitions(hyperion_env).resolve_asset_graph()
    checks = {(key.asset_key.path[-1], key.name): graph.get(key) for key in graph.asset_check_keys}
    frames = ("raw_documents", "parsed_documents", "document_chunks", "chunk_embeddings")
    assert set(checks) == {(name, "schema") for name in frames} | {
        ("vector_index", "matches_chunks"), ("vector_index", "self_retrieval"),
    }  # fmt: skip
    for (asset_name, check_name), node in checks.items():
        assert node.partitions_def == graph.get(AssetKey(asset_name)).partitions_def
        assert node.blocking == (check_name == "schema"), (asset_name, check_name)
        assert node.description


def test_a_second_pipeline_gets_its_own_keys_and_job() -> None:
    other = build_pipeline(PipelineSpec(name="legal", key_prefix=("legal",)))
    assert other.key("vector_index") == AssetKey(["legal", "vector_index"])
    assert other.job.name == "ingest_legal"
    assert {a.key for a in other.assets} == {AssetKey(["legal", n]) for n in ASSET_NAMES}


def test_backend_source_binds_its_token_by_name(hyperion_env: Settings, monkeypatch) -> None:
    monkeypatch.setenv("HYPERION_BACKEND_TOKEN", "s3cr3t-token")
    settings = Settings.from_env()
    spec = default_spec(settings).model_copy(update={"source": BackendApiSource(kind="backend_api")})
    defs = build_definitions(settings, [spec])
    source = defs.resources["documents_source"]
    assert type(source).__name__ == "BackendApiResource"
    assert "s3cr3t-token" not in repr(source.token)  # an EnvVar, resolved only at run time


def test_default_spec_follows_settings(hyperion_env: Settings, monkeypatch) -> None:
    monkeypatch.setenv("HYPERION_CHUNK_MAX_TOKENS", "120")
    monkeypatch.setenv("HYPERION_EMBEDDER", "openai")
    spec = default_spec(Settings.from_env())
    assert spec.chunking.max_tokens == 120 and spec.embedding.kind == "openai_compatible"
    assert spec.index.alias == "hyperion_documents" and spec.key_prefix == ()


@pytest.mark.parametrize("retired", ["HYPERION_SOURCE", "HYPERION_COLLECTION"])
def test_per_pipeline_settings_moved_to_yaml_are_refused(hyperion_env: Settings, monkeypatch, retired: str) -> None:
    monkeypatch.setenv(retired, "backend")
    with pytest.raises(ValueError, match=rf"{retired} is no longer read: declare .* in the pipeline's defs.yaml"):
        Settings.from_env()


def test_workspace_loads_with_dagster_itself(hyperion_env: Settings) -> None:
    """What `dagster dev` loads, checked by Dagster's own loader: no PostgreSQL, no Milvus server."""
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_writes_the_repository_instance_settings(tmp_path) -> None:
    import yaml
    from dagster import DagsterInstance, QueuedRunCoordinator

    from hyperion_pipelines.cli import EMBEDDED_INSTANCE_YAML

    assert yaml.safe_load(EMBEDDED_INSTANCE_YAML) == yaml.safe_load((REPO / "dagster.yaml").read_text())
    (tmp_path / "dagster.yaml").write_text(EMBEDDED_INSTANCE_YAML)
    with DagsterInstance.from_config(str(tmp_path)) as instance:  # Dagster's own schema accepts it
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        config = instance.get_concurrency_config()
        assert config.run_queue_config.max_concurrent_runs == 1
        assert config.pool_config.default_pool_limit == 1 and instance.run_monitoring_enabled
        # The daemon runs its freshness daemon, which evaluates vector_index's freshness policy.
        assert "FRESHNESS_DAEMON" in instance.get_required_daemon_types()
        [per_day] = config.run_queue_config.tag_concurrency_limits
        assert per_day["key"] == "dagster/partition" and per_day["limit"] == 1


def test_backfills_run_one_day_per_run_and_heavy_steps_have_pools(hyperion_env: Settings) -> None:
    graph = build_definitions(hyperion_env).resolve_asset_graph()
    for name in ASSET_NAMES:
        node = graph.get(AssetKey(name))
        assert node.backfill_policy is not None and node.backfill_policy.max_partitions_per_run == 1, name
    pools = {name: graph.get(AssetKey(name)).assets_def.node_def.pool for name in ASSET_NAMES}
    assert pools["chunk_embeddings"] == "hyperion_embedding"
    assert pools["vector_index"] == "hyperion_milvus_writes"


def test_the_index_is_stale_after_the_pipelines_hours_without_a_written_day() -> None:
    from datetime import timedelta

    from hyperion_pipelines.spec import IndexChecksSpec

    def policy(spec: PipelineSpec):  # noqa: ANN202 - Dagster's policy type is not public
        [vector_index] = [a for a in build_pipeline(spec).assets if a.key.path[-1] == "vector_index"]
        return vector_index.specs_by_key[vector_index.key].freshness_policy

    default = policy(PipelineSpec(name="legal"))
    assert default.fail_window.to_timedelta() == timedelta(hours=26)
    quiet = PipelineSpec(name="legal", index_checks=IndexChecksSpec(stale_after_hours=None))
    assert policy(quiet) is None


def test_a_spec_built_in_python_takes_the_settings_once_and_resources_read_the_spec_alone(
    hyperion_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hyperion_pipelines.components.declaration import resolve_built_spec
    from hyperion_pipelines.orchestration.resources import source_resource

    monkeypatch.setenv("HYPERION_BACKEND_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("HYPERION_EMBEDDING_BATCH_SIZE", "7")
    settings = Settings.from_env()
    built = PipelineSpec(name="legal", source=BackendApiSource(kind="backend_api", timeout_s=3))
    with pytest.raises(ValueError, match="leaves source.base_url unset: resolve it first"):
        source_resource(built, settings)  # no second, quiet fallback to the settings
    spec = resolve_built_spec(built, settings)
    assert (spec.source.base_url, spec.source.timeout_s, spec.embedding.batch_size) == ("http://127.0.0.1:9/api", 3, 7)
    assert resolve_built_spec(spec, settings) == spec  # resolving a resolved spec changes nothing
    source = build_definitions(settings, [built]).resources[spec.resources.source]
    assert (source.base_url, source.timeout_s) == ("http://127.0.0.1:9/api", 3)
