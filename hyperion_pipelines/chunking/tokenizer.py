"""Token offsets from the embedding model's own tokenizer (Hugging Face ``tokenizers``)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from tokenizers import Tokenizer


class TokenSpans(Protocol):
    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character span of every token of ``text``, without special tokens."""


class HuggingFaceTokenizer:
    """Loads ``tokenizer.json`` from a model folder; truncation and padding switched off."""

    def __init__(self, tokenizer_json: Path):
        self._tokenizer = Tokenizer.from_file(str(tokenizer_json))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    @classmethod
    def from_model_dir(cls, model_dir: Path) -> HuggingFaceTokenizer:
        path = Path(model_dir) / "tokenizer.json"
        if not path.exists():
            raise FileNotFoundError(f"no tokenizer.json in {model_dir}")
        return cls(path)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).offsets)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)
