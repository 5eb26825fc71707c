"""Is extracted text worth indexing? Empty, near-empty and garbage text are quarantined."""

from __future__ import annotations

import re

from hyperion_pipelines.parsing.document import ParseError

# Characters no real prose is made of: C0/C1 controls (not whitespace), the replacement character
# left by undecodable bytes, private-use code points and lone surrogates.
_GARBAGE = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufffd\ue000-\uf8ff\ud800-\udfff\U000f0000-\U0010ffff]")
_VISIBLE = re.compile(r"\S")


def assess_text(text: str, *, min_chars: int, max_garbage_ratio: float) -> None:
    """Raise :class:`ParseError` (empty, near_empty, garbage_text) for text not worth indexing."""
    visible = len(_VISIBLE.findall(text))
    if visible == 0:
        raise ParseError("empty", "no text could be extracted")
    if visible < min_chars:
        raise ParseError("near_empty", f"only {visible} non-space characters of text (minimum {min_chars})")
    garbage = len(_GARBAGE.findall(text))
    if garbage / visible > max_garbage_ratio:
        raise ParseError(
            "garbage_text",
            f"{garbage} of {visible} characters are control, replacement or private-use characters "
            f"({garbage / visible:.0%}, limit {max_garbage_ratio:.0%})",
        )
