"""Token offsets from the embedding model's own tokenizer (Hugging Face ``tokenizers``)."""

from __future__ import annotations

from collections.abc import Sequence
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

    def token_spans_of_many(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """:meth:`token_spans` of each text, tokenised in one call that spreads the texts over
        the machine's cores (the Rust tokenizer's own threads)."""
        return [list(e.offsets) for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def count_many(self, texts: Sequence[str], slice_size: int = 1024) -> list[int]:
        """:meth:`count` of each text, tokenised over the machine's cores ``slice_size`` texts at a
        time: an encoding holds its tokens, offsets and masks (the benchmark manuals' 8,278 chunk
        inputs at once: 131 MiB more peak memory; in slices of 1,024: 18 MiB)."""
        counts: list[int] = []
        for start in range(0, len(texts), slice_size):
            batch = list(texts[start : start + slice_size])
            counts.extend(len(e.ids) for e in self._tokenizer.encode_batch(batch, add_special_tokens=False))
        return counts


class KnownSpans:
    """Token spans of texts tokenised ahead, each handed out once; any other text goes to
    ``tokenizer``."""

    def __init__(self, tokenizer: TokenSpans, known: dict[str, list[tuple[int, int]]]):
        self._tokenizer = tokenizer
        self._known = known

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        spans = self._known.pop(text, None)
        return spans if spans is not None else self._tokenizer.token_spans(text)
