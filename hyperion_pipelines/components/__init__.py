"""Dagster components of Hyperion Pipelines (the registry module ``dg list components`` reads)."""

from hyperion_pipelines.components.document_pipeline import DocumentPipeline

__all__ = ["DocumentPipeline"]
