"""The Hyperion Pipelines code location: ``dagster dev`` in the repository root loads ``defs``.

Pipelines are declared in YAML under ``hyperion_pipelines/defs/<name>/defs.yaml`` (Dagster
components, see ``components/``); the shared sensors and resources are added here.
"""

from __future__ import annotations

import importlib
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import BetaWarning, Definitions, PreviewWarning
from dagster.components.core.component_tree import ComponentTree, ComponentTreeException
from pydantic import ValidationError

from hyperion_pipelines.components.declaration import (
    PipelineDeclarationError,
    describe,
    resolve_built_spec,
)
from hyperion_pipelines.components.document_pipeline import DocumentPipeline
from hyperion_pipelines.orchestration.assembly import pipeline_definitions, platform_definitions
from hyperion_pipelines.settings import PACKAGE_DIR, Settings, loading_with
from hyperion_pipelines.spec import PipelineSpec

PIPELINES_MODULE = "hyperion_pipelines.defs"


def pipeline_tree(module: str = PIPELINES_MODULE, project_root: Path | None = None) -> ComponentTree:
    return ComponentTree.from_module(
        defs_module=importlib.import_module(module), project_root=project_root or PACKAGE_DIR.parent
    )


@contextmanager
def _quiet_components() -> Iterator[None]:
    """Loading a defs folder uses preview and beta Dagster APIs; one warning each per load is noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)
        warnings.simplefilter("ignore", PreviewWarning)
        yield


def _clear(exc: ComponentTreeException) -> Exception:
    """Dagster wraps a declaration's error in the component tree; the cause names file, field and problem."""
    cause = exc.__cause__
    if isinstance(cause, PipelineDeclarationError):
        return cause
    if isinstance(cause, ValidationError):
        return PipelineDeclarationError(describe(cause))
    return exc


def _milvus_place(uri: str | None) -> str:
    """One spelling per Milvus: a milvus-lite file by its resolved path, a server by its URL."""
    return uri if uri is None or "://" in uri else str(Path(uri).expanduser().resolve())


def declared_pipelines(tree: ComponentTree) -> list[DocumentPipeline]:
    """Every declared pipeline, refused together when two would share a name, asset keys or an alias."""
    try:
        with _quiet_components():
            pipelines = tree.get_all_components(of_type=DocumentPipeline)
    except ComponentTreeException as exc:
        raise _clear(exc) from exc.__cause__
    claims: dict[tuple[str, str], list[DocumentPipeline]] = defaultdict(list)
    for pipeline in pipelines:
        spec = pipeline.spec
        claims[("name", spec.name)].append(pipeline)
        claims[("asset key prefix", "/".join(spec.key_prefix) or "(none)")].append(pipeline)
        claims[("Milvus alias", f"{spec.index.alias} at {_milvus_place(spec.index.milvus_uri)}")].append(pipeline)
    clashes = [
        f"{', '.join(str(p.yaml_path) for p in holders)}: the same {what} {value!r}"
        for (what, value), holders in claims.items()
        if len(holders) > 1
    ]
    if clashes:
        raise PipelineDeclarationError(
            "pipelines declared side by side must differ in name, key_prefix and index.alias:\n" + "\n".join(clashes)
        )
    return pipelines


def pipeline_specs(settings: Settings | None = None) -> list[PipelineSpec]:
    """The specs of the declared pipelines (what the command line works on)."""
    with loading_with(settings or Settings.from_env()):
        return [pipeline.spec for pipeline in declared_pipelines(pipeline_tree())]


def build_definitions(settings: Settings | None = None, specs: list[PipelineSpec] | None = None) -> Definitions:
    """The code location: the declared pipelines (or ``specs``, built in Python) and what they share."""
    settings = settings or Settings.from_env()
    if specs is None:
        with loading_with(settings):
            tree = pipeline_tree()
            specs = [pipeline.spec for pipeline in declared_pipelines(tree)]
            try:
                with _quiet_components():
                    pipelines = tree.build_defs()
            except ComponentTreeException as exc:
                raise _clear(exc) from exc.__cause__
    else:
        specs = [resolve_built_spec(spec, settings) for spec in specs]
        pipelines = Definitions.merge(*(pipeline_definitions(spec, settings) for spec in specs))
    return Definitions.merge(pipelines, platform_definitions(settings, specs))


defs = build_definitions()
