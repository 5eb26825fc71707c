"""A pipeline declared in YAML, resolved into a :class:`PipelineSpec`.

What a declared pipeline ends up with, lowest precedence first:

1. the built-in defaults of :class:`PipelineSpec`;
2. the deployment-wide ``HYPERION_*`` settings (model, Milvus URI, uploads folder, limits...);
3. the template the declaration names (``templates/<name>.yaml``);
4. what the pipeline's own ``defs.yaml`` says.

Sections with a ``kind`` (``source``, ``embedding``) are replaced, not merged, when the kind
changes; the settings then fill what that kind leaves out. Nothing here imports Dagster, so the
resolution is tested without an instance.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import Field, ValidationError

from hyperion_pipelines.settings import Settings, default_golden_queries
from hyperion_pipelines.spec import PipelineSpec

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TemplateName = Literal["uploads_folder", "backend_api", "high_recall"]
TEMPLATES: tuple[str, ...] = get_args(TemplateName)
DEFAULT_TEMPLATE = "uploads_folder"


class PipelineDeclaration(PipelineSpec):
    """The ``attributes:`` of a pipeline's ``defs.yaml``: a template and what differs from it.

    Only ``name`` is required. Unlike a spec built in Python, a declared pipeline's asset keys
    are prefixed with its name and its alias is ``hyperion_<name>`` unless it says otherwise, so
    pipelines declared side by side never share a key or a collection.
    """

    template: TemplateName = Field(
        default=DEFAULT_TEMPLATE,
        description="Ready-made settings this pipeline starts from: " + ", ".join(TEMPLATES) + ".",
    )


class PipelineDeclarationError(ValueError):
    """A declaration that cannot become a pipeline; the message names the file, field and problem."""


@cache
def template_attributes(name: str) -> dict[str, Any]:
    """The attributes a template sets (a fresh copy is made by :func:`merge`)."""
    if name not in TEMPLATES:
        raise PipelineDeclarationError(f"unknown template {name!r}; choose one of {', '.join(TEMPLATES)}")
    return yaml.safe_load((TEMPLATE_DIR / f"{name}.yaml").read_text(encoding="utf-8")) or {}


def merge(base: Mapping[str, Any], *overlays: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge, later wins; a mapping whose ``kind`` changes replaces the earlier one whole."""
    merged: dict[str, Any] = {key: _copy(value) for key, value in base.items()}
    for overlay in overlays:
        for key, value in overlay.items():
            current = merged.get(key)
            if isinstance(current, dict) and isinstance(value, Mapping) and not _kind_changes(current, value):
                merged[key] = merge(current, value)
            else:
                merged[key] = _copy(value)
    return merged


def _kind_changes(current: Mapping[str, Any], value: Mapping[str, Any]) -> bool:
    return "kind" in current and "kind" in value and current["kind"] != value["kind"]


def _copy(value: Any) -> Any:
    return merge(value) if isinstance(value, Mapping) else value


def settings_defaults(settings: Settings) -> dict[str, Any]:
    """What the deployment's ``HYPERION_*`` settings say for every pipeline."""
    return {
        "partitions_start": settings.partitions_start,
        "source": {"kind": "uploads_folder"},
        "parsing": {
            "limits": {
                "max_document_bytes": settings.max_document_bytes,
                "timeout_s": settings.parse_timeout_s,
                "memory_bytes": settings.parse_memory_mb * 1024 * 1024,
            }
        },
        "chunking": {"max_tokens": settings.chunk_max_tokens, "overlap_tokens": settings.chunk_overlap_tokens},
        "embedding": {"kind": "openai_compatible" if settings.embedder == "openai" else "local"},
        "index": {"milvus_uri": settings.milvus_uri},
        "evaluation": {"k": settings.eval_k},
        "limits": {"step_timeout_s": settings.step_timeout_s, "run_timeout_s": settings.run_timeout_s},
    }


def kind_defaults(settings: Settings) -> dict[str, dict[str, Any]]:
    """What the settings say for each kind of source and embedder, filled in where a pipeline is silent."""
    return {
        "uploads_folder": {"path": str(settings.uploads_dir)},
        "backend_api": {
            "base_url": settings.backend_url,
            "timeout_s": settings.backend_timeout_s,
            "max_retries": settings.backend_max_retries,
        },
        "local": {
            "model_path": settings.embedding_model_path or None,
            "device": settings.embedding_device,
            "batch_size": settings.embedding_batch_size,
        },
        "openai_compatible": {
            "base_url": settings.openai_base_url,
            "model": settings.openai_model,
            "batch_size": settings.embedding_batch_size,
        },
    }


def _relative_to(base_dir: Path | None, value: str) -> str:
    path = Path(value).expanduser()
    return str((base_dir / path).resolve() if base_dir and not path.is_absolute() else path.resolve())


def _anchor_paths(declared: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """Relative paths in a declaration are relative to its YAML file, not to the working directory."""
    source, evaluation = declared.get("source"), declared.get("evaluation")
    if isinstance(source, dict) and source.get("path"):
        source["path"] = _relative_to(base_dir, source["path"])
    if isinstance(evaluation, dict) and evaluation.get("golden_queries"):
        evaluation["golden_queries"] = _relative_to(base_dir, evaluation["golden_queries"])
    return declared


def resolve_spec(
    declared: Mapping[str, Any], settings: Settings, *, base_dir: Path | None = None, origin: str = "pipeline"
) -> PipelineSpec:
    """The pipeline a declaration describes: template, settings and declaration merged and validated.

    ``declared`` holds only what the YAML set (``PipelineDeclaration.model_dump(exclude_unset=True)``);
    ``origin`` names the YAML file in error messages.
    """
    own = _anchor_paths(merge(declared), base_dir)
    template = own.pop("template", DEFAULT_TEMPLATE)
    try:
        merged = merge(settings_defaults(settings), template_attributes(template), own)
    except PipelineDeclarationError as exc:
        raise PipelineDeclarationError(f"{origin}: attributes.template: {exc}") from None
    name = merged["name"]
    for section, kinds in (("source", kind_defaults(settings)), ("embedding", kind_defaults(settings))):
        defaults = {k: v for k, v in kinds[merged[section]["kind"]].items() if v is not None}
        merged[section] = {**defaults, **merged[section]}
    merged.setdefault("key_prefix", [name])
    merged["index"].setdefault("alias", f"hyperion_{name}")
    evaluation = merged.setdefault("evaluation", {})
    if not evaluation.get("golden_queries"):
        golden = settings.golden_queries
        if golden is None and merged["source"]["kind"] == "uploads_folder":
            golden = default_golden_queries(Path(merged["source"]["path"]))
        evaluation["golden_queries"] = str(golden) if golden else None
    try:
        spec = PipelineSpec.model_validate(merged)
    except ValidationError as exc:
        raise PipelineDeclarationError(describe(exc, origin, template)) from None
    _check_files(spec, origin)
    return spec


def _check_files(spec: PipelineSpec, origin: str) -> None:
    """Paths a pipeline reads must exist when it loads, not fail its first run."""
    golden = spec.evaluation.golden_queries
    if golden and not Path(golden).is_file():
        raise PipelineDeclarationError(
            f"invalid pipeline declaration:\n{origin}: attributes.evaluation.golden_queries: no such file: {golden}"
        )
    path = getattr(spec.source, "path", None)
    if path and Path(path).exists() and not Path(path).is_dir():
        raise PipelineDeclarationError(
            f"invalid pipeline declaration:\n{origin}: attributes.source.path: not a folder: {path}"
        )


def describe(exc: ValidationError, origin: str | None = None, template: str | None = None) -> str:
    """One line per problem, ``<file>[:line]: attributes.<field>: <problem>``.

    Errors Dagster raised while validating a ``defs.yaml`` carry the file and line in their
    location (``attributes.x at /path/defs.yaml:12``); errors found after merging carry ``origin``.
    """
    lines = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        where = origin or "pipeline"
        if len(loc) == 1 and (found := _DAGSTER_LOCATION.match(loc[0])):
            field, where = found["field"], found["where"]
        else:
            field = ".".join(("attributes", *loc))
        lines.append(f"{where}: {field}: {error['msg'].removeprefix('Value error, ')}")
    note = f" (after applying the template {template!r} and the HYPERION_* settings)" if template else ""
    return f"invalid pipeline declaration{note}:\n" + "\n".join(lines)


_DAGSTER_LOCATION = re.compile(r"^(?P<field>\S+) at (?P<where>.+)$")
