"""Retrieval-quality evaluation: golden query sets, ranking metrics, and runs against the index."""
