"""Does extracted text read like the page? A parse-fidelity score from signals of broken extraction.

An extractor can fail silently: on TeX-made PDFs pypdf drops the spaces between words
("DebianGNU/Linuxincludescompletesource-code…"), and the text still passes every emptiness and
garbage check. Each signal below maps to a sub-score in [0, 1] (1 = reads like prose); the score is
the weakest of them, so the message can say which signal failed. Figures for English prose,
measured on the Debian manuals of ``benchmarks/parsing_bench.py``: letter runs average 4.5 to 5.5
characters and almost none is over 20; spaces are 17 to 20 % of the characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LETTER_RUN = re.compile(r"[^\W\d_]+")
# camelCase identifiers ("xsltParseStylesheet") are cut at each capital: API references are full
# of them, and they are not words run together by a lost space.
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
# Scripts written without spaces between words (Han, kana, Thai, Lao, Khmer, Myanmar): there the
# word and spacing signals say nothing, and are left out.
_UNSPACED = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff]")
_UNSPACED_SHARE = 0.3
_VISIBLE = re.compile(r"\S")
_REPLACEMENT = "\ufffd"
#: A run of letters longer than this is almost never one English word.
LONG_RUN = 20


def _ramp(value: float, bad: float, good: float) -> float:
    """0 at ``bad``, 1 at ``good``, linear between (either direction)."""
    if good == bad:
        return 1.0
    return min(1.0, max(0.0, (value - bad) / (good - bad)))


@dataclass(frozen=True)
class Fidelity:
    score: float
    weakest: str  # the signal that set the score
    long_word_share: float
    mean_word_length: float
    space_ratio: float
    replacement_ratio: float
    chars_per_page: float | None

    def describe(self) -> str:
        figures = (
            f"{self.long_word_share:.1%} of words over {LONG_RUN} letters, mean word length "
            f"{self.mean_word_length:.1f}, {self.space_ratio:.1%} spaces, "
            f"{self.replacement_ratio:.1%} replacement characters"
        )
        if self.chars_per_page is not None:
            figures += f", {self.chars_per_page:.0f} characters per page"
        return f"fidelity {self.score:.2f} (weakest: {self.weakest}; {figures})"


def assess_fidelity(text: str, pages: int = 0) -> Fidelity:
    """Score ``text``; ``pages`` is the page count of a paged format (0 when it has none)."""
    words = [word for run in _LETTER_RUN.findall(text) for word in _CAMEL.split(run)]
    letters = sum(len(word) for word in words)
    spaced = letters == 0 or len(_UNSPACED.findall(text)) / letters <= _UNSPACED_SHARE
    runs = [len(word) for word in words] if spaced else []
    visible = len(_VISIBLE.findall(text)) or 1
    long_share = sum(1 for n in runs if n > LONG_RUN) / len(runs) if runs else 0.0
    # capped, so one very long token (a file name, a hash) does not swing a short document's mean
    mean_length = sum(min(n, LONG_RUN) for n in runs) / len(runs) if runs else 0.0
    spaces = text.count(" ") + text.count("\n") + text.count("\t")
    space_ratio = spaces / (visible + spaces)
    replacement = text.count(_REPLACEMENT) / visible
    per_page = visible / pages if pages > 0 else None
    signals = {
        "word breaks": _ramp(long_share, bad=0.10, good=0.02),
        "word length": _ramp(mean_length, bad=10.0, good=7.0) if runs else 1.0,
        "spacing": _ramp(space_ratio, bad=0.03, good=0.08) if spaced else 1.0,
        "replacement characters": _ramp(replacement, bad=0.05, good=0.0),
        "text per page": _ramp(per_page, bad=0.0, good=40.0) if per_page is not None else 1.0,
    }
    weakest = min(signals, key=lambda name: signals[name])
    return Fidelity(
        score=round(signals[weakest], 3),
        weakest=weakest,
        long_word_share=long_share,
        mean_word_length=mean_length,
        space_ratio=space_ratio,
        replacement_ratio=replacement,
        chars_per_page=per_page,
    )
