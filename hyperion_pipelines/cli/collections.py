"""``hyperion collections``: the alias's collections, which one is live, their kinds and sizes; drop old ones."""

from __future__ import annotations

import argparse
import json

from hyperion_pipelines.cli.common import declared_pipeline, index_and_embedder
from hyperion_pipelines.embedding.space import collection_fingerprint
from hyperion_pipelines.settings import Settings


def cmd_collections(args: argparse.Namespace) -> int:
    """The alias's collections (one per embedding space built), which one is live, and their sizes."""
    settings = Settings.from_env()

    spec = declared_pipeline(args)
    with index_and_embedder(settings, spec) as (index, embedder):
        current = index.collection_name(collection_fingerprint(spec, embedder.identity, index.retrieval))
        live = index.live_collection()
        rows = []
        for name in index.collections():
            index.ensure_loaded(name)
            rows.append(
                {"collection": name, "kind": index.kind(name), "entries": index.count(name)}
                | {"live": name == live, "current": name == current}
            )
        dropped = []
        if args.drop_old:
            for row in rows:
                if not row["live"] and not row["current"]:
                    index.drop(row["collection"])
                    dropped.append(row["collection"])
    if args.json:
        print(json.dumps({"alias": spec.index.alias, "collections": rows, "dropped": dropped}))
        return 0
    for row in rows:
        marks = [m for m, on in (("live", row["live"]), ("current configuration", row["current"])) if on]
        line = f"{row['collection']}  {row['kind']}  {row['entries']} entries"
        print(line + (f"  ({', '.join(marks)})" if marks else ""))
    if not rows:
        print(f"No collections under '{spec.index.alias}' yet.")
    if dropped:
        print(f"Dropped: {', '.join(dropped)}.")
    return 0
