"""Blue/green: when a candidate collection may take over the live alias (pure logic).

A new embedding space (model, chunking or parser change) is built in its own collection while
searches keep using the old one behind the alias. The alias moves only when every upload day ran
with its checks passing, the candidate holds exactly the documents the index manifest says are
indexed, and the retrieval evaluation on the candidate did not fail.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

_SHOWN = 5  # ids named in a reason; the rest are counted


@dataclass(frozen=True)
class Coverage:
    missing: list[str]  # indexed documents without entries in the candidate
    unexpected: list[str]  # documents with entries in the candidate that are not indexed

    @property
    def complete(self) -> bool:
        return not self.missing and not self.unexpected


def coverage(candidate_documents: Collection[str], indexed_documents: Collection[str]) -> Coverage:
    have, want = set(candidate_documents), set(indexed_documents)
    return Coverage(missing=sorted(want - have), unexpected=sorted(have - want))


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)  # why not, when not


def _named(ids: Sequence[str]) -> str:
    more = f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else ""
    return ", ".join(ids[:_SHOWN]) + more


def decide(
    *,
    candidate_exists: bool = True,
    failed_days: Sequence[str],
    failed_checks: Sequence[str],
    documents: Coverage,
    evaluation_level: str | None,
) -> PromotionDecision:
    """``evaluation_level``: pass, warn or fail; None when the pipeline has no golden query set."""
    reasons = []
    if not candidate_exists:
        reasons.append("the candidate collection was never written (no upload day ran into it)")
    if failed_days:
        reasons.append(f"runs failed for {len(failed_days)} upload day(s): {_named(list(failed_days))}")
    if failed_checks:
        reasons.append(f"{len(failed_checks)} check(s) failed: {_named(list(failed_checks))}")
    if documents.missing:
        reasons.append(f"{len(documents.missing)} indexed document(s) missing: {_named(documents.missing)}")
    if documents.unexpected:
        reasons.append(
            f"{len(documents.unexpected)} document(s) in the candidate are not indexed: {_named(documents.unexpected)}"
        )
    if evaluation_level == "fail" and candidate_exists:
        reasons.append("the retrieval evaluation on the candidate is below its fail thresholds")
    return PromotionDecision(promote=not reasons, reasons=reasons)
