"""Pipelines declared in YAML (the DocumentPipeline component): templates, side-by-side pipelines,
errors that name the file, field and problem, and the ``dg`` command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance, Definitions
from dagster.components.testing import create_defs_folder_sandbox

from hyperion_pipelines.components import DocumentPipeline
from hyperion_pipelines.components.declaration import (
    TEMPLATES,
    PipelineDeclaration,
    PipelineDeclarationError,
    resolve_spec,
    template_attributes,
)
from hyperion_pipelines.components.document_pipeline import COMPONENT_TYPE
from hyperion_pipelines.definitions import build_definitions, declared_pipelines
from hyperion_pipelines.index.connection import connect
from hyperion_pipelines.index.milvus_index import MilvusIndex
from hyperion_pipelines.orchestration.assembly import platform_definitions
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.spec import IndexSpec

from ..conftest import REPO, SAMPLE_CORPUS, UPLOAD_DAY, set_upload_time
from ..support.sample_pipeline import SAMPLE_PIPELINE, default_spec

# ---------------------------------------------------------------------------------------------
# Templates


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_loads_as_a_pipeline(hyperion_env: Settings, template: str) -> None:
    attributes = {"name": "t", **template_attributes(template)}
    PipelineDeclaration.model_validate(attributes)  # the template alone is a valid declaration
    spec = resolve_spec({"name": "t", "template": template}, hyperion_env)
    assert spec.key_prefix == ("t",) and spec.index.alias == "hyperion_t"
    assert spec.resources.source == "t_source" and spec.description
    expected_source = "backend_api" if template == "backend_api" else "uploads_folder"
    assert spec.source.kind == expected_source


def test_templates_differ_where_they_say(hyperion_env: Settings) -> None:
    folder, api, recall = (resolve_spec({"name": "t", "template": t}, hyperion_env) for t in TEMPLATES)
    assert folder.source.path == str(hyperion_env.uploads_dir)  # HYPERION_UPLOADS_DIR fills the path
    assert api.source.base_url == hyperion_env.backend_url and api.source.token_env == "HYPERION_BACKEND_TOKEN"
    assert recall.chunking.max_tokens < folder.chunking.max_tokens
    assert recall.index.index_params["M"] > folder.index.index_params["M"]
    assert recall.evaluation.k > folder.evaluation.k


def test_the_sample_pipeline_is_the_uploads_folder_template(hyperion_env: Settings) -> None:
    declared = yaml.safe_load(SAMPLE_PIPELINE.read_text())
    assert declared["type"] == COMPONENT_TYPE and declared["attributes"]["template"] == "uploads_folder"
    sample = default_spec(hyperion_env)
    template = resolve_spec({"name": "documents", "template": "uploads_folder", "key_prefix": []}, hyperion_env)
    assert sample.model_dump(exclude={"description"}) == template.model_dump(exclude={"description"})


def test_declaration_beats_template_beats_settings(hyperion_env: Settings, monkeypatch) -> None:
    monkeypatch.setenv("HYPERION_CHUNK_MAX_TOKENS", "150")
    monkeypatch.setenv("HYPERION_EMBEDDER", "openai")
    settings = Settings.from_env()
    assert resolve_spec({"name": "a"}, settings).chunking.max_tokens == 150  # settings
    assert resolve_spec({"name": "a", "template": "high_recall"}, settings).chunking.max_tokens == 96  # template
    own = resolve_spec({"name": "a", "template": "high_recall", "chunking": {"max_tokens": 80}}, settings)
    assert own.chunking.max_tokens == 80 and own.chunking.overlap_tokens == 32  # merged, not replaced
    assert own.embedding.kind == "openai_compatible" and own.embedding.model == settings.openai_model
    local = resolve_spec({"name": "a", "embedding": {"kind": "local", "device": "cpu"}}, settings)
    assert local.embedding.kind == "local" and local.embedding.batch_size == settings.embedding_batch_size


# ---------------------------------------------------------------------------------------------
# Declared pipelines in a real defs folder


@contextmanager
def defs_folder(pipelines: dict[str, dict[str, Any]]) -> Iterator[Any]:
    """A throwaway Dagster project whose defs folder holds one ``<name>/defs.yaml`` per pipeline."""
    with create_defs_folder_sandbox() as sandbox:
        for folder, attributes in pipelines.items():
            sandbox.scaffold_component(
                DocumentPipeline,
                defs_path=folder,
                defs_yaml_contents={"type": COMPONENT_TYPE, "attributes": attributes},
            )
        yield sandbox


def load(sandbox: Any, settings: Settings) -> Definitions:
    with sandbox.build_component_tree() as tree:
        specs = [p.spec for p in declared_pipelines(tree)]
        return Definitions.merge(tree.build_defs(), platform_definitions(settings, specs))


def upload(folder: Path, *relative: str) -> None:
    for name in relative:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(SAMPLE_CORPUS / name, target)
        set_upload_time(target)


def indexed(settings: Settings, alias: str) -> dict[str, int]:
    """Chunks per source document in the collection ``alias`` points at."""
    client = connect(settings.milvus_uri)
    try:
        rows = client.query(alias, filter='id != ""', output_fields=["source"], limit=10_000)
    finally:
        client.close()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["source"]] = counts.get(row["source"], 0) + 1
    return counts


HANDBOOK = ["guides/sourdough-starter.md", "notes/composting.txt", "web/tide-pools.html"]
LEGAL = ["guides/bicycle-maintenance.md", "notes/lighthouse-keepers.txt", "web/night-sky.html"]


def test_two_pipelines_side_by_side_fill_separate_collections(hyperion_env: Settings, tmp_path: Path) -> None:
    handbook_uploads, legal_uploads = tmp_path / "handbook-uploads", tmp_path / "legal-uploads"
    upload(handbook_uploads, *HANDBOOK)
    upload(legal_uploads, *LEGAL)
    pipelines = {
        "handbook": {"name": "handbook", "source": {"kind": "uploads_folder", "path": str(handbook_uploads)}},
        "legal": {
            "name": "legal",
            "template": "high_recall",
            "owners": ["team:legal-search"],
            "source": {"kind": "uploads_folder", "path": str(legal_uploads)},
            "index": {"alias": "legal_documents"},
        },
    }
    instance = DagsterInstance.ephemeral()
    with defs_folder(pipelines) as sandbox:
        defs = load(sandbox, hyperion_env)
        graph = defs.resolve_asset_graph()
        assert {key.path[0] for key in graph.get_all_asset_keys()} == {"handbook", "legal"}
        assert {graph.get(key).group_name for key in graph.get_all_asset_keys()} == {"handbook", "legal"}
        assert {s.name for s in defs.sensors} >= {"handbook_uploads", "legal_uploads", "alert_on_run_failure"}
        assert {s.name for s in defs.schedules} == {
            "reconcile_handbook_daily", "reconcile_legal_daily", "reclaim_storage_nightly",
        }  # fmt: skip
        for name in ("handbook", "legal"):
            run = defs.resolve_job_def(f"ingest_{name}").execute_in_process(
                instance=instance, partition_key=UPLOAD_DAY, raise_on_error=False
            )
            assert run.success, name
            checks = [e.event_specific_data for e in run.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
            assert checks and all(c.passed for c in checks), name

        handbook, legal = indexed(hyperion_env, "hyperion_handbook"), indexed(hyperion_env, "legal_documents")
        assert set(handbook) == set(HANDBOOK) and set(legal) == set(LEGAL)
        # The high-recall template's smaller chunks: more chunks per document than the default.
        assert sum(legal.values()) / len(legal) > sum(handbook.values()) / len(handbook)

        # A deletion in one pipeline re-runs only that pipeline and leaves the other as it was.
        (handbook_uploads / HANDBOOK[0]).unlink()
        again = defs.resolve_job_def("ingest_handbook").execute_in_process(
            instance=instance, partition_key=UPLOAD_DAY, raise_on_error=False
        )
        assert again.success
        assert set(indexed(hyperion_env, "hyperion_handbook")) == set(HANDBOOK[1:])
        assert indexed(hyperion_env, "legal_documents") == legal


def test_pipelines_that_would_share_a_name_keys_or_alias_are_refused_naming_both_files(
    hyperion_env: Settings,
) -> None:
    clash = {"a": {"name": "alpha", "index": {"alias": "shared"}}, "b": {"name": "beta", "index": {"alias": "shared"}}}
    with defs_folder(clash) as sandbox, pytest.raises(PipelineDeclarationError) as caught:
        load(sandbox, hyperion_env)
    message = str(caught.value)
    assert "a/defs.yaml" in message and "b/defs.yaml" in message and "Milvus alias 'shared" in message
    same_keys = {"a": {"name": "alpha", "key_prefix": []}, "b": {"name": "beta", "key_prefix": []}}
    with defs_folder(same_keys) as sandbox, pytest.raises(PipelineDeclarationError, match="asset key prefix"):
        load(sandbox, hyperion_env)


# Each invalid declaration: (attributes, the field the message must name, the problem it must state).
INVALID: dict[str, tuple[dict[str, Any], str, str]] = {
    "name missing": ({"template": "uploads_folder"}, "attributes.name", "Field required"),
    "name not a group name": ({"name": "Legal-Docs"}, "attributes.name", "should match pattern"),
    "unknown field": ({"name": "a", "chunk_size": 100}, "attributes.chunk_size", "Extra inputs are not permitted"),
    "unknown template": ({"name": "a", "template": "huge"}, "attributes.template", "'uploads_folder'"),
    "unknown source kind": (
        {"name": "a", "source": {"kind": "ftp"}},
        "attributes.source.kind",
        "Input should be 'uploads_folder' or 'backend_api'",
    ),
    "source field of another kind": (
        {"name": "a", "source": {"kind": "uploads_folder", "base_url": "http://x"}},
        "attributes.source.uploads_folder.base_url",
        "Extra inputs",
    ),
    "API URL not http": (
        {"name": "a", "source": {"kind": "backend_api", "base_url": "ftp://backend"}},
        "attributes.source.base_url",
        "should match pattern",
    ),
    "token in place of its variable": (
        {"name": "a", "source": {"kind": "backend_api", "token_env": "sk-live-123"}},
        "attributes.source.token_env",
        "should match pattern",
    ),
    "source folder missing": (
        {"name": "a", "source": {"kind": "uploads_folder", "path": "uplaods"}},
        "attributes.source.path",
        "no such folder",
    ),
    "source field of the other kind, no kind given": (
        {"name": "a", "source": {"base_url": "http://backend"}},
        "attributes.source.uploads_folder.base_url",
        "Extra inputs are not permitted",
    ),
    "source path is a file": (
        {"name": "a", "source": {"kind": "uploads_folder", "path": "defs.yaml"}},
        "attributes.source.path",
        "not a folder",
    ),
    "unsupported format": (
        {"name": "a", "parsing": {"accepted_media_types": ["application/zip"]}},
        "attributes.parsing.accepted_media_types.0",
        "Input should be 'text/plain'",
    ),
    "no formats": ({"name": "a", "parsing": {"accepted_media_types": []}}, "accepted_media_types", "at least 1"),
    "zero parse timeout": (
        {"name": "a", "parsing": {"limits": {"timeout_s": 0}}},
        "attributes.parsing.limits.timeout_s",
        "greater than 0",
    ),
    "tiny chunks": ({"name": "a", "chunking": {"max_tokens": 4}}, "attributes.chunking.max_tokens", "greater than 8"),
    "overlap too large": (
        {"name": "a", "chunking": {"max_tokens": 100, "overlap_tokens": 60}},
        "attributes.chunking",
        "overlap_tokens must be less than half of max_tokens",
    ),
    "overlap too large after the template": (
        {"name": "a", "template": "high_recall", "chunking": {"overlap_tokens": 50}},
        "attributes.chunking",
        "overlap_tokens must be less than half of max_tokens",
    ),
    "unknown embedding kind": (
        {"name": "a", "embedding": {"kind": "cohere"}},
        "attributes.embedding.kind",
        "Input should be 'local' or 'openai_compatible'",
    ),
    "bad device": (
        {"name": "a", "embedding": {"kind": "local", "device": "tpu"}},
        "attributes.embedding.device",
        "should match pattern",
    ),
    "remote model URL": (
        {"name": "a", "embedding": {"kind": "openai_compatible", "base_url": "localhost:8000"}},
        "attributes.embedding.base_url",
        "should match pattern",
    ),
    "bad alias": ({"name": "a", "index": {"alias": "1-docs"}}, "attributes.index.alias", "should match pattern"),
    "unknown index type": (
        {"name": "a", "index": {"index_type": "DISKANN"}},
        "attributes.index.index_type",
        "'HNSW', 'IVF_FLAT' or 'FLAT'",
    ),
    "unknown metric": ({"name": "a", "index": {"metric_type": "EUCLID"}}, "attributes.index.metric_type", "'COSINE'"),
    "ratio above one": (
        {"name": "a", "index_checks": {"self_retrieval_min_ratio": 1.5}},
        "attributes.index_checks.self_retrieval_min_ratio",
        "less than or equal to 1",
    ),
    "fail above warn": (
        {"name": "a", "evaluation": {"recall_at_k": {"warn": 0.5, "fail": 0.7}}},
        "attributes.evaluation.recall_at_k",
        "the fail threshold must not be above the warn threshold",
    ),
    "zero k": ({"name": "a", "evaluation": {"k": 0}}, "attributes.evaluation.k", "greater than 0"),
    "missing golden set": (
        {"name": "a", "evaluation": {"golden_queries": "queries.jsonl"}},
        "attributes.evaluation.golden_queries",
        "no such file",
    ),
    "sensor interval": (
        {"name": "a", "upload_sensor": {"minimum_interval_seconds": 0}},
        "attributes.upload_sensor.minimum_interval_seconds",
        "greater than or equal to 1",
    ),
    "bad cron": (
        {"name": "a", "schedules": {"reconcile_cron": "every day"}},
        "attributes.schedules.reconcile_cron",
        "not a valid cron expression",
    ),
    "bad time zone": (
        {"name": "a", "schedules": {"timezone": "Mars/Olympus"}},
        "attributes.schedules.timezone",
        "not an IANA time zone",
    ),
    "negative step limit": (
        {"name": "a", "limits": {"step_timeout_s": -1}},
        "attributes.limits.step_timeout_s",
        "greater than 0",
    ),
    "owner not a team or email": ({"name": "a", "owners": ["legal"]}, "attributes.owners.0", "should match pattern"),
    "no such day": ({"name": "a", "partitions_start": "2020-13-01"}, "attributes.partitions_start", "month"),
    "bad key prefix": ({"name": "a", "key_prefix": ["legal docs"]}, "attributes.key_prefix.0", "should match"),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_invalid_declarations_are_refused_at_load_naming_file_field_and_problem(
    hyperion_env: Settings, case: str
) -> None:
    attributes, field, problem = INVALID[case]
    with defs_folder({"bad_pipeline": attributes}) as sandbox, pytest.raises(PipelineDeclarationError) as caught:
        load(sandbox, hyperion_env)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("invalid pipeline declaration"), lines
    assert any("bad_pipeline/defs.yaml" in line and f"{field}" in line and problem in line for line in lines[1:]), str(
        caught.value
    )


# ---------------------------------------------------------------------------------------------
# The code location and the command lines


def test_hyperion_pipelines_lists_and_refuses(hyperion_env: Settings) -> None:
    env = {**os.environ}
    listed = subprocess.run(
        [sys.executable, "-m", "hyperion_pipelines.cli", "pipelines", "--json"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["name"] == "documents" and row["template"] == "uploads_folder" and row["alias"] == "hyperion_documents"
    assert row["declared_in"] == str(SAMPLE_PIPELINE)
    unknown = subprocess.run(
        [sys.executable, "-m", "hyperion_pipelines.cli", "search", "--pipeline", "legal", "tide pools"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert unknown.returncode == 2 and "no pipeline named 'legal'; declared: documents" in unknown.stderr


DG = Path(sys.executable).with_name("dg")


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The project (package, pyproject with its [tool.dg] table) copied, so ``dg scaffold`` writes there."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("pyproject.toml", "setup.py", "workspace.yaml"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(
        REPO / "hyperion_pipelines", root / "hyperion_pipelines", ignore=shutil.ignore_patterns("__pycache__")
    )
    return root


def dg(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(root),  # the copy, not the installed checkout
        "VIRTUAL_ENV": str(Path(sys.executable).parents[1]),
        "PATH": f"{DG.parent}{os.pathsep}{os.environ['PATH']}",
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [str(DG), *args],
        cwd=root, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


@pytest.mark.skipif(not DG.exists(), reason="dagster-dg-cli is a dependency; dg is installed with the package")
def test_dg_scaffolds_lists_and_checks_a_pipeline_from_a_template(hyperion_env: Settings, project_copy: Path) -> None:
    scaffolded = dg(project_copy, "scaffold", "defs", COMPONENT_TYPE, "legal", "--template", "high_recall")
    assert scaffolded.returncode == 0, scaffolded.stdout + scaffolded.stderr
    written = project_copy / "hyperion_pipelines" / "defs" / "legal" / "defs.yaml"
    declared = yaml.safe_load(written.read_text())
    assert declared["type"] == COMPONENT_TYPE
    assert declared["attributes"] == {"template": "high_recall", "name": "legal", "owners": ["team:document-platform"]}

    checked = dg(project_copy, "check", "yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    listed = dg(project_copy, "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    assets = {asset["asset_key"] for asset in found["assets"]}
    assert {"vector_index", "legal/vector_index", "legal/raw_documents"} <= assets
    assert {"ingest_documents", "ingest_legal"} <= {job["name"] for job in found["jobs"]}
    assert {"documents_uploads", "legal_uploads"} <= {sensor["name"] for sensor in found["sensors"]}

    # What `dagster dev` loads from workspace.yaml: the scaffolded pipeline is part of the code location.
    validated = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=project_copy, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(project_copy)},
    )  # fmt: skip
    assert validated.returncode == 0, validated.stdout + validated.stderr

    written.write_text(written.read_text() + "  chunking:\n    max_tokens: 4\n")
    broken = dg(project_copy, "check", "yaml", str(written.parent))
    assert broken.returncode != 0
    assert "legal/defs.yaml" in broken.stdout and "attributes.chunking.max_tokens" in broken.stdout
    assert "less than or equal to the minimum of 8" in broken.stdout
    # `dagster dev` shows the same load error on the code location.
    refused = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=project_copy, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(project_copy)},
    )  # fmt: skip
    assert refused.returncode != 0
    assert "legal/defs.yaml:" in refused.stdout + refused.stderr
    assert "attributes.chunking.max_tokens: Input should be greater than 8" in refused.stdout + refused.stderr


def test_the_documented_examples_are_valid_declarations(hyperion_env: Settings) -> None:
    pages = (REPO / "README.md").read_text() + (REPO / "docs" / "pipelines.md").read_text()
    blocks = [b.split("```", 1)[0] for b in pages.split("```yaml\n")[1:]]
    examples = [yaml.safe_load(b) for b in blocks if f"type: {COMPONENT_TYPE}" in b]
    assert len(examples) >= 3
    for example in examples:
        declared = PipelineDeclaration.model_validate(example["attributes"]).model_dump(exclude_unset=True)
        declared.get("evaluation", {}).pop("golden_queries", None)  # a file next to the example's YAML
        declared.get("source", {}).pop("path", None)  # a folder on the deployment's machine
        resolve_spec(declared, hyperion_env)


def test_a_declaration_is_judged_after_merging_not_against_the_built_in_defaults(
    hyperion_env: Settings, monkeypatch
) -> None:
    monkeypatch.setenv("HYPERION_CHUNK_OVERLAP_TOKENS", "8")
    settings = Settings.from_env()
    declared = PipelineDeclaration.model_validate({"name": "a", "chunking": {"max_tokens": 48}})
    assert resolve_spec(declared.model_dump(exclude_unset=True), settings).chunking.overlap_tokens == 8
    one_threshold = {"name": "a", "template": "high_recall", "evaluation": {"recall_at_k": {"fail": 0.85}}}
    thresholds = resolve_spec(
        PipelineDeclaration.model_validate(one_threshold).model_dump(exclude_unset=True), settings
    )
    assert (thresholds.evaluation.recall_at_k.warn, thresholds.evaluation.recall_at_k.fail) == (0.9, 0.85)
    no_kind = PipelineDeclaration.model_validate({"name": "a", "embedding": {"batch_size": 16}})
    embedding = resolve_spec(no_kind.model_dump(exclude_unset=True), settings).embedding
    assert embedding.kind == "local" and embedding.batch_size == 16
    replaced = {
        "name": "a",
        "template": "high_recall",
        "index": {"index_type": "IVF_FLAT", "index_params": {"nlist": 128}},
    }
    assert resolve_spec(replaced, settings).index.index_params == {"nlist": 128}  # not merged with HNSW's M


def test_golden_queries_go_only_to_the_corpus_they_were_written_for(hyperion_env: Settings, monkeypatch) -> None:
    monkeypatch.setenv("HYPERION_UPLOADS_DIR", str(SAMPLE_CORPUS))
    settings = Settings.from_env()
    assert resolve_spec({"name": "a"}, settings).evaluation.golden_queries  # the bundled set, for the sample corpus
    assert (
        resolve_spec({"name": "a", "evaluation": {"golden_queries": None}}, settings).evaluation.golden_queries is None
    )
    assert resolve_spec({"name": "a", "template": "backend_api"}, settings).evaluation.golden_queries is None
    elsewhere = {"name": "a", "source": {"kind": "uploads_folder", "path": str(hyperion_env.uploads_dir)}}
    assert resolve_spec(elsewhere, settings).evaluation.golden_queries is None


def test_relative_paths_are_relative_to_the_yaml_file(hyperion_env: Settings, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    declared = {"name": "a", "source": {"kind": "uploads_folder", "path": "docs"}, "index": {"milvus_uri": "m.db"}}
    spec = resolve_spec(declared, hyperion_env, base_dir=tmp_path)
    assert spec.source.path == str(tmp_path / "docs") and spec.index.milvus_uri == str(tmp_path / "m.db")
    served = resolve_spec(
        {"name": "a", "index": {"milvus_uri": "http://milvus:19530"}}, hyperion_env, base_dir=tmp_path
    )
    assert served.index.milvus_uri == "http://milvus:19530"


def test_definitions_built_with_given_settings_use_them(hyperion_env: Settings, tmp_path: Path) -> None:
    other = Settings.from_env({"HYPERION_HOME": str(tmp_path / "elsewhere")})
    defs = build_definitions(other)
    assert defs.resources["documents_source"].path == str(other.uploads_dir)
    assert defs.resources["documents_milvus"].uri == other.milvus_uri


def test_an_alias_does_not_claim_the_collections_of_a_longer_one(hyperion_env: Settings) -> None:
    client = connect(hyperion_env.milvus_uri)
    try:
        for name in ("docs__0123456789ab", "docs__v2__0123456789ab"):
            client.create_collection(name, dimension=4)
        assert MilvusIndex(client, IndexSpec(alias="docs")).collections() == ["docs__0123456789ab"]
        assert MilvusIndex(client, IndexSpec(alias="docs__v2")).collections() == ["docs__v2__0123456789ab"]
    finally:
        client.close()
