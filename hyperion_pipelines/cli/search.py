"""``hyperion search``: one query against the live index, printed as ranked hits or JSON."""

from __future__ import annotations

import argparse
import json

from hyperion_pipelines.cli.common import open_live_index
from hyperion_pipelines.settings import Settings


def cmd_search(args: argparse.Namespace) -> int:
    with open_live_index(Settings.from_env(), args) as live:
        if live is None:
            return 1
        index, embedder = live
        hits = index.search(embedder.embed([args.query]), limit=args.k, texts=[args.query])[0]
    from hyperion_pipelines.serving.queries import result_row

    rows = [result_row(hit, offsets=False) for hit in hits]  # the API's rows, less the offsets
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    for rank, row in enumerate(rows, 1):
        snippet = " ".join(row["text"].split())
        snippet = snippet if len(snippet) <= 200 else snippet[:199] + "…"
        heading = f"  [{row['heading_path']}]" if row["heading_path"] else ""
        print(f"{rank}. {row['score']:.3f}  {row['source']}{heading}\n   {snippet}")
    if not rows:
        print("No results.")
    return 0
