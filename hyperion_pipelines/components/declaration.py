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

import os
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from hyperion_pipelines.settings import Settings, default_golden_queries
from hyperion_pipelines.spec import PipelineSpec

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TemplateName = Literal["uploads_folder", "backend_api", "high_recall"]
TEMPLATES: tuple[str, ...] = get_args(TemplateName)
DEFAULT_TEMPLATE = "uploads_folder"


def _partial_type(annotation: Any) -> Any:
    """The declaration's type for a spec field: nested models become partial models too."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return partial_model(annotation)
    members = get_args(annotation) if isinstance(annotation, UnionType) else ()
    if members and all(isinstance(m, type) and issubclass(m, BaseModel) for m in members):
        return _partial_union(members)
    return annotation


def _declared_field(info: FieldInfo) -> tuple[Any, FieldInfo]:
    """Defaulting to None (unset), keeping the field's own type, constraints and description.

    The type is not widened to accept None (a default is not validated): ``null`` stays an error
    where the spec refuses it, and ``dg check yaml`` reports the field's own constraint instead of
    "not valid under any of the given schemas".
    """
    annotation = _partial_type(info.annotation)
    constrained = Annotated[annotation, *info.metadata] if info.metadata else annotation
    return constrained, Field(default=None, description=info.description)


@cache
def partial_model(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` with every field optional and no cross-field validators.

    A declaration says only what differs from its template and the settings, so rules that relate
    two fields (overlap below half the chunk size, fail below warn) can only be judged once they
    are merged; per-field rules (ranges, patterns, unknown fields) still apply here, with line
    numbers, and ``dg check yaml`` sees them in the JSON schema.
    """
    fields = {name: _declared_field(info) for name, info in model.model_fields.items()}
    return create_model(
        f"Declared{model.__name__}",
        __config__=ConfigDict(extra="forbid", frozen=True),
        __doc__=model.__doc__,
        **fields,
    )


def _partial_union(members: tuple[type[BaseModel], ...]) -> type[BaseModel]:
    """One model with every member's fields; ``kind`` may be left out (the template's kind stays).
    Fields of another kind are refused once merged, when the kind is known."""
    kinds = tuple(get_args(m.model_fields["kind"].annotation)[0] for m in members)
    fields: dict[str, Any] = {"kind": (Literal[kinds], Field(default=None, description="One of: " + ", ".join(kinds)))}
    for member in members:
        for name, info in member.model_fields.items():
            if name != "kind":
                fields.setdefault(name, _declared_field(info))
    return create_model(
        "Declared" + "Or".join(m.__name__ for m in members),
        __config__=ConfigDict(extra="forbid", frozen=True),
        __doc__=" | ".join(m.__doc__ or m.__name__ for m in members),
        **fields,
    )


_DeclaredSpec = partial_model(PipelineSpec)


class PipelineDeclaration(_DeclaredSpec):  # type: ignore[misc, valid-type]
    """The ``attributes:`` of a pipeline's ``defs.yaml``: a template and what differs from it.

    Only ``name`` is required. Unlike a spec built in Python, a declared pipeline's asset keys
    are prefixed with its name and its alias is ``hyperion_<name>`` unless it says otherwise, so
    pipelines declared side by side never share a key or a collection.
    """

    name: str = PipelineSpec.model_fields["name"]
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


# Mappings whose keys are free-form: a declaration's value replaces the template's whole, so a
# template's HNSW parameters do not linger under another index type.
ATOMIC = frozenset({"index_params"})


def merge(base: Mapping[str, Any], *overlays: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge, later wins; a mapping whose ``kind`` changes replaces the earlier one whole."""
    merged: dict[str, Any] = {key: _copy(value) for key, value in base.items()}
    for overlay in overlays:
        for key, value in overlay.items():
            current = merged.get(key)
            if (
                key not in ATOMIC
                and isinstance(current, dict)
                and isinstance(value, Mapping)
                and not _kind_changes(current, value)
            ):
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
            "backend": settings.embedding_backend,
            "onnx_file": settings.embedding_onnx_file,
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


# (section, field) of every path a declaration may hold; a Milvus URI is a path unless it is a URL.
PATH_FIELDS = (
    ("source", "path"),
    ("evaluation", "golden_queries"),
    ("embedding", "model_path"),
    ("index", "milvus_uri"),
)


def _anchor_paths(declared: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """Relative paths in a declaration are relative to its YAML file, not to the working directory."""
    for section, field in PATH_FIELDS:
        values = declared.get(section)
        if isinstance(values, dict) and isinstance(values.get(field), str) and "://" not in values[field]:
            values[field] = _relative_to(base_dir, values[field])
    return declared


def _golden_queries(own: Mapping[str, Any], merged: Mapping[str, Any], settings: Settings) -> str | None:
    """The declared set; else, for a pipeline reading the settings' uploads folder,
    ``HYPERION_GOLDEN_QUERIES`` or the bundled set for the bundled corpus. An explicit
    ``golden_queries: null`` means no evaluation."""
    declared = own.get("evaluation") or {}
    if "golden_queries" in declared:
        return declared["golden_queries"]
    template = merged["evaluation"].get("golden_queries")
    if template:
        return template
    source = merged["source"]
    if source["kind"] != "uploads_folder" or Path(source["path"]).resolve() != settings.uploads_dir:
        return None  # HYPERION_GOLDEN_QUERIES describes the settings' corpus, not this one
    golden = settings.golden_queries or default_golden_queries(settings.uploads_dir)
    return str(golden) if golden else None


def resolve_spec(
    declared: Mapping[str, Any],
    settings: Settings,
    *,
    base_dir: Path | None = None,
    origin: str = "pipeline",
    check_files: bool = True,
) -> PipelineSpec:
    """The pipeline a declaration describes: template, settings and declaration merged and validated.
    The one place a pipeline's unset fields take the settings' values: resources read the result.

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
    for section in ("source", "embedding"):
        defaults = {k: v for k, v in kind_defaults(settings)[merged[section]["kind"]].items() if v is not None}
        merged[section] = {**defaults, **merged[section]}
    merged.setdefault("key_prefix", [name])
    merged["index"].setdefault("alias", f"hyperion_{name}")
    merged["evaluation"]["golden_queries"] = _golden_queries(own, merged, settings)
    try:
        spec = PipelineSpec.model_validate(merged)
    except ValidationError as exc:
        raise PipelineDeclarationError(describe(exc, origin, template)) from None
    if check_files:
        _check_files(spec, own, origin)
    return spec


def resolve_built_spec(spec: PipelineSpec, settings: Settings) -> PipelineSpec:
    """A spec built in Python (tests, benchmarks, ``build_definitions(specs=...)``) resolved as a
    declaration is: what it set stays, what it left unset comes from the settings and the template.
    Resolving a resolved spec changes nothing (every field of it counts as set)."""
    declared = spec.model_dump(exclude_unset=True)
    return resolve_spec(declared, settings, origin=f"pipeline {spec.name!r} (built in Python)", check_files=False)


def _check_files(spec: PipelineSpec, own: Mapping[str, Any], origin: str) -> None:
    """Paths a pipeline reads must exist when it loads, not fail its first run. The settings'
    uploads folder may be created later; a folder the declaration names must be there."""
    problems = []
    golden = spec.evaluation.golden_queries
    if golden and not Path(golden).is_file():
        problems.append(f"attributes.evaluation.golden_queries: no such file: {golden}")
    path = getattr(spec.source, "path", None)
    if path and Path(path).exists() and not Path(path).is_dir():
        problems.append(f"attributes.source.path: not a folder: {path}")
    elif path and "path" in (own.get("source") or {}) and not Path(path).exists():
        problems.append(f"attributes.source.path: no such folder: {path}")
    if problems:
        raise PipelineDeclarationError(
            "invalid pipeline declaration:\n" + "\n".join(f"{origin}: {p}" for p in problems)
        )


def unset_secrets(spec: PipelineSpec) -> list[str]:
    """Environment variables the pipeline names for its secrets that are not set where it loads."""
    names = [getattr(spec.source, "token_env", None), getattr(spec.embedding, "api_key_env", None)]
    if spec.index.milvus_uri and "://" in spec.index.milvus_uri:
        names.append(spec.index.token_env)
    return [name for name in names if name and not os.environ.get(name)]


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
