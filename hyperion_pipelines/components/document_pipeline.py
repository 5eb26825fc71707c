"""The ``DocumentPipeline`` Dagster component: one document collection declared in a ``defs.yaml``.

    type: hyperion_pipelines.components.DocumentPipeline
    attributes:
      template: backend_api
      name: support_tickets

Each declared pipeline becomes its own asset group (``<name>``), asset keys (``<name>/...``),
checks, jobs, upload sensor and schedules, with its own source, embedder and Milvus resources.
``dg scaffold defs hyperion_pipelines.components.DocumentPipeline <folder> --template <t>``
writes a new one.
"""

import logging
import re
from pathlib import Path

from dagster import Definitions
from dagster.components import Component, ComponentLoadContext, Scaffolder, ScaffoldRequest, scaffold_with
from pydantic import BaseModel, ConfigDict, Field

from hyperion_pipelines.components.declaration import (
    DEFAULT_TEMPLATE,
    TEMPLATE_DIR,
    PipelineDeclaration,
    PipelineDeclarationError,
    TemplateName,
    resolve_spec,
    unset_secrets,
)
from hyperion_pipelines.orchestration.assembly import pipeline_definitions
from hyperion_pipelines.settings import current_settings
from hyperion_pipelines.spec import PipelineSpec

COMPONENT_TYPE = "hyperion_pipelines.components.DocumentPipeline"
LOG = logging.getLogger(__name__)
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class ScaffoldParams(BaseModel):
    """Options of ``dg scaffold defs hyperion_pipelines.components.DocumentPipeline <folder>``."""

    model_config = ConfigDict(extra="forbid")

    template: TemplateName = Field(default=DEFAULT_TEMPLATE, description="The template the new pipeline starts from.")


def scaffold_yaml(name: str, template: str) -> str:
    """A new pipeline's ``defs.yaml``: the template by name, with what it sets shown as comments."""
    inherited = (TEMPLATE_DIR / f"{template}.yaml").read_text(encoding="utf-8")
    commented = "".join(f"  # {line}\n" if line.strip() else "  #\n" for line in inherited.splitlines())
    return (
        f"type: {COMPONENT_TYPE}\n\n"
        "attributes:\n"
        f"  template: {template}\n"
        f"  name: {name}\n"
        "  owners: [team:document-platform]\n"
        f"  # Assets are keyed {name}/<asset>; searches use the alias hyperion_{name}.\n"
        "  # Anything below, and any other field, can be set here to override the template.\n"
        f"  # The template '{template}' sets:\n"
        f"{commented}"
    )


class DocumentPipelineScaffolder(Scaffolder[ScaffoldParams]):
    @classmethod
    def get_scaffold_params(cls) -> type[ScaffoldParams]:
        return ScaffoldParams

    def scaffold(self, request: ScaffoldRequest[ScaffoldParams]) -> None:
        if request.scaffold_format != "yaml":
            raise PipelineDeclarationError("a DocumentPipeline is declared in YAML: scaffold it with --format yaml")
        name = request.target_path.name.replace("-", "_").lower()
        if re.fullmatch(NAME_PATTERN, name) is None:
            raise PipelineDeclarationError(
                f"{request.target_path.name!r} cannot name a pipeline: use lower-case letters, digits and _ "
                "(starting with a letter, at most 64 characters)"
            )
        params = request.params or ScaffoldParams()
        request.target_path.mkdir(parents=True, exist_ok=True)
        (request.target_path / "defs.yaml").write_text(scaffold_yaml(name, params.template), encoding="utf-8")


@scaffold_with(DocumentPipelineScaffolder)
class DocumentPipeline(Component):
    """A document collection: a source (uploads folder or backend API), parsing and chunking
    settings, an embedding model (local or remote), a Milvus alias, checks, sensor and schedules.

    Start from a template (``uploads_folder``, ``backend_api``, ``high_recall``) and set what differs.
    Fields left unset take the deployment's ``HYPERION_*`` settings.
    """

    def __init__(self, declaration: PipelineDeclaration, yaml_path: Path, spec: PipelineSpec):
        self.declaration = declaration
        self.yaml_path = yaml_path
        self.spec = spec

    @classmethod
    def get_model_cls(cls) -> type[PipelineDeclaration]:
        # The strict pydantic model is the YAML schema: Dagster validates attributes against it
        # (errors carry file and line) and ``dg check yaml`` uses its JSON schema.
        return PipelineDeclaration

    @classmethod
    def load(cls, attributes: BaseModel | None, context: ComponentLoadContext) -> "DocumentPipeline":
        yaml_path = context.path / "defs.yaml" if context.path.is_dir() else context.path
        if not isinstance(attributes, PipelineDeclaration):
            raise PipelineDeclarationError(f"{yaml_path}: attributes: missing; a pipeline needs at least a name")
        declared = attributes.model_dump(exclude_unset=True)
        spec = resolve_spec(declared, current_settings(), base_dir=yaml_path.parent, origin=str(yaml_path))
        for name in unset_secrets(spec):
            # Not an error: development runs without the secret; runs that need it fail with a 401.
            LOG.warning("%s: pipeline %r names the secret %s, which is not set here", yaml_path, spec.name, name)
        return cls(attributes, yaml_path, spec)

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        return pipeline_definitions(self.spec, current_settings())
