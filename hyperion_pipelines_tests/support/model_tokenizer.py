"""The packaged model's tokenizer, loaded once for the tests that count tokens."""

from __future__ import annotations

from hyperion_pipelines.chunking.tokenizer import HuggingFaceTokenizer
from hyperion_pipelines.embedding.sentence_transformer import packaged_model_dir

TOKENIZER = HuggingFaceTokenizer.from_model_dir(packaged_model_dir())
