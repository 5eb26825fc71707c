"""Token-aware, structure-preferring chunking measured with the embedding model's tokenizer."""
