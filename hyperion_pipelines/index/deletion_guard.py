"""The mass-deletion guard (pure logic): may a run remove these documents from the index?

A source that lists nothing by mistake (a folder not mounted, a pipeline pointed at the wrong
folder, a backend answering an empty page) looks the same as a user deleting everything. The
guard tells the ordinary case (a few documents of a day deleted) from the suspicious one (most of
a day, or every document of a source that now lists none) and stops the second before anything
is removed, until someone confirms.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from hyperion_pipelines.ids import document_id
from hyperion_pipelines.sources.base import DocumentSource
from hyperion_pipelines.spec import DeletionGuardSpec
from hyperion_pipelines.state.manifest import IndexedDocument

#: The end of "every day" when a whole source is listed (future-dated documents included).
FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)
#: The run tag that confirms intended removals.
ALLOW_DELETIONS_TAG = "hyperion/allow-deletions"
_SHOWN = 5  # removed documents named in the message


@dataclass(frozen=True)
class Removals:
    day: str
    recorded: int  # documents the manifest records on the day
    removed: list[str]  # source keys of those the listing no longer has

    @property
    def share(self) -> float:
        return len(self.removed) / self.recorded if self.recorded else 0.0


def removals(day: str, recorded: Mapping[str, IndexedDocument], current_ids: Collection[str]) -> Removals:
    """What a run of ``day`` would remove: recorded documents no longer current (nor held)."""
    gone = sorted(doc.source_key or doc_id for doc_id, doc in recorded.items() if doc_id not in current_ids)
    return Removals(day, len(recorded), gone)


def refusal(found: Removals, guard: DeletionGuardSpec, *, source_empty: bool = False) -> str | None:
    """Why the run must remove nothing, or None when the removals may go ahead."""
    count = len(found.removed)
    if not guard.enabled or count == 0:
        return None
    if source_empty:
        why = "the source lists no documents at all"
    elif guard.max_documents is not None and count > guard.max_documents:
        why = f"more than the guard's max_documents ({guard.max_documents})"
    elif found.recorded >= guard.min_documents and found.share > guard.max_share:
        why = f"{found.share:.0%} of the day, above the guard's max_share ({guard.max_share:.0%})"
    else:
        return None
    named = ", ".join(found.removed[:_SHOWN]) + (f" and {count - _SHOWN} more" if count > _SHOWN else "")
    return (
        f"Deletion guard: this run would remove {count} of the {found.recorded} documents indexed on {found.day} "
        f"({why}): {named}. Nothing was removed from the index. If the source is missing, unmounted or not the one "
        f"the pipeline used before, fix it and run the day again; if the documents were deleted on purpose, run "
        f"the day again with the tag {ALLOW_DELETIONS_TAG}=true ('hyperion ingest --allow-deletions', or the "
        "Launchpad's tags) or change deletion_guard in the pipeline's defs.yaml."
    )


def judge_listing(
    source: DocumentSource,
    day: str,
    recorded: Mapping[str, IndexedDocument],
    current_ids: Collection[str],
    guard: DeletionGuardSpec,
    first_day: datetime,
) -> str | None:
    """:func:`refusal` for a day just listed from ``source``. Only when the day's listing alone
    would be refused is the whole source listed, so that documents which moved to another day
    (an edited file) do not count as removed."""
    refused = refusal(removals(day, recorded, current_ids), guard, source_empty=source.empty)
    if refused is None:
        return None
    everywhere = {document_id(source.name, ref.key) for ref in source.list_documents(first_day, FAR_FUTURE)}
    return refusal(removals(day, recorded, everywhere | set(current_ids)), guard, source_empty=source.empty)
