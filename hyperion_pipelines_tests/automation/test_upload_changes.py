"""Change detection, run planning, the index manifest, the parse cache and the promotion gate:
the pure logic behind the sensors and blue/green, without Dagster."""

from __future__ import annotations

from pathlib import Path

from hyperion_pipelines.automation.upload_changes import DayChanges, Seen, pending_changes, plan_runs
from hyperion_pipelines.index.promotion import coverage, decide
from hyperion_pipelines.parsing.cache import ParseCache
from hyperion_pipelines.parsing.document import Heading, ParsedDocument
from hyperion_pipelines.spec import ParsingLimits, ParsingSpec
from hyperion_pipelines.state.database import open_engine
from hyperion_pipelines.state.manifest import DocumentManifest, IndexedDocument, ManifestRecord

INDEXED = {
    "a": IndexedDocument("2026-03-02", "10:1"),
    "b": IndexedDocument("2026-03-02", "20:1"),
    "c": IndexedDocument("2026-03-03", "30:1"),
}


def summary(days: dict[str, DayChanges]) -> dict[str, tuple[int, int, int]]:
    return {day: (c.added, c.edited, c.deleted) for day, c in days.items()}


def test_a_full_listing_reveals_additions_edits_moves_and_deletions() -> None:
    listed = [
        Seen("a", "2026-03-02", "10:1"),  # unchanged
        Seen("b", "2026-03-02", "21:2"),  # edited in place
        Seen("c", "2026-03-05", "30:9"),  # edited later: moves to the day of the edit
        Seen("d", "2026-03-05", "40:1"),  # new
    ]
    assert summary(pending_changes(listed, INDEXED, complete=True)) == {
        "2026-03-02": (0, 1, 0),
        "2026-03-05": (1, 1, 0),
    }
    # Without "a" in a full listing, "a" was deleted: its recorded day runs again.
    assert summary(pending_changes(listed[1:2], INDEXED, complete=True)) == {
        "2026-03-02": (0, 1, 1),
        "2026-03-03": (0, 0, 1),
    }


def test_a_feed_only_deletes_what_it_reports_deleted() -> None:
    listed = [Seen("d", "2026-03-05", "40:1")]
    assert summary(pending_changes(listed, INDEXED, complete=False)) == {"2026-03-05": (1, 0, 0)}
    got = pending_changes(listed, INDEXED, complete=False, deleted_ids=["c", "never-indexed"])
    assert summary(got) == {"2026-03-05": (1, 0, 0), "2026-03-03": (0, 0, 1)}


def test_run_keys_name_the_exact_changes() -> None:
    one = pending_changes([Seen("d", "2026-03-05", "40:1")], INDEXED, complete=False)["2026-03-05"]
    same = pending_changes([Seen("d", "2026-03-05", "40:1")], INDEXED, complete=False)["2026-03-05"]
    more = pending_changes([Seen("d", "2026-03-05", "40:1"), Seen("e", "2026-03-05", "1:1")], INDEXED, complete=False)[
        "2026-03-05"
    ]
    edited_again = pending_changes([Seen("d", "2026-03-05", "41:2")], INDEXED, complete=False)["2026-03-05"]
    assert one.run_key == same.run_key and one.run_key.startswith("2026-03-05:")
    assert len({one.run_key, more.run_key, edited_again.run_key}) == 3


def test_plan_is_newest_first_bounded_and_skips_busy_held_and_invalid_days() -> None:
    pending = {
        d: DayChanges(d, added=1) for d in ("2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04", "2031-01-01")
    }
    plan = plan_runs(
        pending,
        active_days={"2026-03-03"},
        is_partition=lambda day: day < "2030",
        max_runs=1,
        held_days=frozenset({"2026-03-04"}),
    )
    assert [c.day for c in plan.requested] == ["2026-03-02"]
    assert [c.day for c in plan.waiting] == ["2026-03-03"]
    assert [c.day for c in plan.deferred] == ["2026-03-04", "2026-03-01"]
    assert [c.day for c in plan.out_of_range] == ["2031-01-01"]


def test_the_manifest_follows_each_partition(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'state.db'}")
    manifest, other = DocumentManifest(engine, "docs"), DocumentManifest(engine, "legal")
    day1 = [ManifestRecord("a", "a.md", "1:1", "indexed"), ManifestRecord("b", "b.md", "2:1", "quarantined")]
    assert manifest.record_partition("2026-03-02", day1, run_id="r1") == 0
    other.record_partition("2026-03-02", [ManifestRecord("a", "a.md", "9:9", "indexed")])
    # "a" edited on a later day moves there; "b" deleted from day 1.
    manifest.record_partition("2026-03-05", [ManifestRecord("a", "a.md", "3:5", "indexed")])
    assert manifest.record_partition("2026-03-02", []) == 1
    assert manifest.indexed() == {"a": IndexedDocument("2026-03-05", "3:5", "indexed", "a.md")}
    assert manifest.partitions() == {"2026-03-05"}
    assert other.indexed(["a", "zzz"]) == {"a": IndexedDocument("2026-03-02", "9:9", "indexed", "a.md")}
    # A document held (its sub-folder could not be listed) keeps its row as it was.
    manifest.record_partition("2026-03-05", [ManifestRecord("c", "c.md", "4:4", "indexed")], keep=["a"])
    assert set(manifest.on_partition("2026-03-05")) == {"a", "c"}
    assert manifest.on_partition("2026-03-05")["a"] == IndexedDocument("2026-03-05", "3:5", "indexed", "a.md")


def test_the_parse_cache_is_per_spec_and_survives_damage(tmp_path: Path) -> None:
    doc = ParsedDocument("Title\n\nBody text", "Title", "markdown", [Heading(1, "Title", 0)], [])
    cache = ParseCache(tmp_path, ParsingSpec())
    assert cache.get("ab" * 32, "text/markdown") is None
    cache.put("ab" * 32, "text/markdown", doc)
    assert cache.get("ab" * 32, "text/markdown") == doc
    assert cache.get("ab" * 32, "text/plain") is None  # another media type is another parse
    assert ParseCache(tmp_path, ParsingSpec(parser_version="2")).get("ab" * 32, "text/markdown") is None
    assert (
        ParseCache(tmp_path, ParsingSpec(limits=ParsingLimits(min_text_chars=99))).get("ab" * 32, "text/markdown")
        is None
    )
    for entry in tmp_path.rglob("*.json"):
        entry.write_text("{not json")
    assert cache.get("ab" * 32, "text/markdown") is None


def test_promotion_needs_clean_runs_checks_coverage_and_evaluation() -> None:
    full = coverage({"a", "b"}, {"a", "b"})
    assert decide(failed_days=[], failed_checks=[], documents=full, evaluation_level="warn").promote
    assert decide(failed_days=[], failed_checks=[], documents=full, evaluation_level=None).promote
    gaps = coverage({"a", "x"}, {"a", "b"})
    decision = decide(
        failed_days=["2026-03-02"],
        failed_checks=["2026-03-02: vector_index.matches_chunks"],
        documents=gaps,
        evaluation_level="fail",
    )
    assert not decision.promote and decision.reasons == [
        "runs failed for 1 upload day(s): 2026-03-02",
        "1 check(s) failed: 2026-03-02: vector_index.matches_chunks",
        "1 indexed document(s) missing: b",
        "1 document(s) in the candidate are not indexed: x",
        "the retrieval evaluation on the candidate is below its fail thresholds",
    ]


def test_documents_of_another_source_are_neither_deletions_nor_removed_by_landing(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from hyperion_pipelines.automation.upload_changes import scan_listing
    from hyperion_pipelines.ids import document_id
    from hyperion_pipelines.sources.blob_store import BlobStore
    from hyperion_pipelines.sources.landing import HELD, Recorded, land_documents
    from hyperion_pipelines.sources.uploads_folder import UploadsFolder

    first, second = tmp_path / "first", tmp_path / "second"
    for folder, name in ((first, "a.md"), (second, "b.md")):
        folder.mkdir()
        (folder / name).write_text("# Notes\n\nSomething worth keeping.\n")
    day, start, end = "2026-03-02", datetime(2000, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)
    manifest = DocumentManifest(open_engine(f"sqlite:///{tmp_path / 'state.db'}"), "documents")
    a = document_id("uploads", "a.md")
    was = UploadsFolder(first).identity
    manifest.record_partition(day, [ManifestRecord(a, "a.md", "1:1", "indexed")], source_identity=was)
    now_reading = UploadsFolder(second)
    pending = scan_listing(now_reading, manifest, start, end).pending
    assert day not in pending and sum(c.deleted for c in pending.values()) == 0  # not a deletion
    assert sum(c.added for c in pending.values()) == 1  # b.md
    recorded = {a: Recorded("a.md", "1:1", was)}
    frame = land_documents(now_reading, BlobStore(tmp_path / "blobs"), start, end, max_bytes=10**6, recorded=recorded)
    [held] = frame[frame["document_id"] == a]["landing_error"].tolist()
    assert held.startswith(HELD) and str(first) in held
    purged = land_documents(
        now_reading,
        BlobStore(tmp_path / "blobs"),
        start,
        end,
        max_bytes=10**6,
        recorded=recorded,
        keep_other_sources=False,
    )
    assert a not in set(purged["document_id"])  # --allow-deletions: the first folder's document may go
