"""The Dagster instance settings ``hyperion`` writes to ``DAGSTER_HOME/dagster.yaml`` when that has none.

One file holds them, shipped in the package: ``hyperion_pipelines/instance/dagster.yaml``, which
the repository's ``dagster.yaml`` links to (``dagster dev`` in a checkout reads the same settings).
"""

from importlib.resources import files

EMBEDDED_INSTANCE_YAML = (files("hyperion_pipelines.instance") / "dagster.yaml").read_text(encoding="utf-8")
