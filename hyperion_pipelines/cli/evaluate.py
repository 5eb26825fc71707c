"""``hyperion eval``: score the live index on a golden query set (recall@k, MRR, nDCG@k)."""

from __future__ import annotations

import argparse
import json
import sys

from hyperion_pipelines.cli.common import open_live_index
from hyperion_pipelines.settings import Settings


def cmd_eval(args: argparse.Namespace) -> int:
    from hyperion_pipelines.evaluation.golden import GoldenSetError, load_golden_queries

    try:
        queries = load_golden_queries(args.queries)
    except (GoldenSetError, OSError) as exc:
        print(f"hyperion eval: {exc}", file=sys.stderr)
        return 2
    from hyperion_pipelines.evaluation.retrieval import report_rows, retrieve_documents, score_retrievals

    with open_live_index(Settings.from_env(), args) as live:
        if live is None:
            return 1
        retrievals = retrieve_documents(*live, queries, args.k)
    result = score_retrievals(queries, retrievals, args.k)
    rows = report_rows(queries, retrievals, result)
    metrics = {"recall_at_k": result.recall_at_k, "mrr": result.mrr, "ndcg_at_k": result.ndcg_at_k}
    if args.json:
        print(json.dumps({"k": args.k, "queries": result.queries, **metrics, "per_query": rows}, ensure_ascii=False))
        return 0
    for row in rows:
        missed = f"  missed: {', '.join(row['missed'])}" if row["missed"] else ""
        print(f"{row['reciprocal_rank']:.2f}  {row['query']}\n      top: {row['top_source']}{missed}")
    print(
        f"\n{result.queries} queries, k={args.k}: recall@{args.k} {result.recall_at_k:.3f}  "
        f"MRR {result.mrr:.3f}  nDCG@{args.k} {result.ndcg_at_k:.3f}"
    )
    return 0
