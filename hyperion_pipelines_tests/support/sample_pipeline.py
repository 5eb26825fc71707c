"""The sample pipeline the tests and benchmarks run: ``defs/documents/defs.yaml`` as shipped."""

from __future__ import annotations

import yaml

from hyperion_pipelines.components.declaration import PipelineDeclaration, resolve_spec
from hyperion_pipelines.settings import PACKAGE_DIR, Settings
from hyperion_pipelines.spec import PipelineSpec

SAMPLE_PIPELINE = PACKAGE_DIR / "defs" / "documents" / "defs.yaml"


def default_spec(settings: Settings) -> PipelineSpec:
    """The sample pipeline resolved against ``settings``, as the code location resolves it."""
    attributes = yaml.safe_load(SAMPLE_PIPELINE.read_text(encoding="utf-8"))["attributes"]
    declared = PipelineDeclaration.model_validate(attributes).model_dump(exclude_unset=True)
    return resolve_spec(declared, settings, base_dir=SAMPLE_PIPELINE.parent, origin=str(SAMPLE_PIPELINE))
