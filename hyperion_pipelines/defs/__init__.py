"""The declared pipelines: one folder per pipeline, each with a ``defs.yaml``.

This is the project's defs folder for ``dg`` (``dg.toml``); add a pipeline with
``dg scaffold defs hyperion_pipelines.components.DocumentPipeline <name> --template <template>``.
"""
