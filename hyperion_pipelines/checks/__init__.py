"""Data-quality checks on the pipeline's frames: pandera schemas and a readable validation report."""
