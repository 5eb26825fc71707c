"""Hyperion alone on peer_fair's corpora and queries, with ``chunking.overlap_tokens`` varied.

    .venv/bin/python benchmarks/chunk_overlap.py [--overlaps 32 16 0] [--backend int8]
    # results/chunk_overlap.json, about 10 minutes on 2 cores

Fewer overlapping tokens means fewer tokens to embed a document; this measures what that costs
in retrieval. Per overlap and corpus: seconds from files to a searchable index (peer_fair's
timing), documents/s, chunks, tokens embedded a document, and nDCG@10 of dense and hybrid search
for each query style.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_fair  # noqa: E402
from corpus import fetch_corpus, known_item_queries  # noqa: E402
from retrieval_modes import keyword_queries  # noqa: E402

RESULTS = peer_fair.REPO / "benchmarks" / "results" / "chunk_overlap.json"


def corpora(scratch: Path, man_pages: int) -> dict[str, tuple[Path, peer_fair.Queries]]:
    manuals = peer_fair.CACHE / "corpus" / "docs"
    if not manuals.exists():
        fetch_corpus(manuals)
    known = known_item_queries(manuals)
    return {
        "faq": (scratch / "faq", peer_fair.faq_corpus(scratch / "faq")),
        "man": (scratch / "man", peer_fair.man_corpus(scratch / "man", man_pages)),
        "manuals": (manuals, {"known_item": known, "keywords": keyword_queries(known)}),
    }


def measure(name: str, corpus: Path, queries: peer_fair.Queries, scratch: Path, model: Any) -> dict[str, Any]:
    found = peer_fair.hyperion(name, corpus, queries, scratch, 10, model)
    timing = found["timing"]["hyperion"]
    row: dict[str, Any] = {
        "seconds": round(timing["seconds"], 2),
        "documents_per_s": round(timing["documents"] / timing["seconds"], 2),
        "chunks": timing["chunks"],
        "tokens_per_document": round(timing["tokens"] / timing["documents"], 1),
    }
    for style, lines in queries.items():
        for system in ("hyperion", "hyperion dense"):
            scores = peer_fair.scored(found["rankings"][system][style], lines, 10)
            row[f"ndcg@10 {style}, {system}"] = scores["ndcg_at_k"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--overlaps", type=int, nargs="+", default=[32, 16, 0])
    parser.add_argument("--backend", choices=("torch", "int8"), default="int8")
    parser.add_argument("--man-pages", type=int, default=300)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/hyperion-chunk-overlap"))
    args = parser.parse_args()
    model = peer_fair.Model.prepare(args.backend, args.scratch)
    result: dict[str, Any] = {"backend": args.backend, "load_average": os.getloadavg(), "runs": {}}
    for overlap in args.overlaps:
        os.environ["HYPERION_CHUNK_OVERLAP_TOKENS"] = str(overlap)
        for name, (corpus, queries) in corpora(args.scratch / "corpora", args.man_pages).items():
            row = measure(f"{name}-{overlap}", corpus, queries, args.scratch / f"{name}-{overlap}", model)
            result["runs"][f"{name}, overlap {overlap}"] = row
            print(f"{name}, overlap {overlap}: {row}", flush=True)
    result["load_average_at_end"] = os.getloadavg()
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
