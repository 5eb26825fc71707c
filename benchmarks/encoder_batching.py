"""How the int8 ONNX encoder batches, on the same chunk inputs: Hyperion's batches (sorted by
length over the whole call, at most 64 texts and ``--budgets`` padded tokens each), run on one
single-threaded ONNX Runtime session per core side by side (its default) and on one session of
ONNX Runtime's default threads, against a peer's (chunks in document order, N texts a call, each
call sorted by length, as LlamaIndex hands batches to an embedding and sentence-transformers sorts
them, on one session of ONNX Runtime's default threads, as ``peer_llamaindex.py`` runs the file).

    .venv/bin/python benchmarks/encoder_batching.py   # results/encoder_batching.json, about 5 minutes

Inputs: ``corpus.py``'s manual pages, parsed and chunked by the default pipeline's code, each
chunk's context line and text as the model reads it, the first ``--texts`` in document order.
Every policy runs ``--reps`` times, alternating; the best run counts (this machine is shared).
One process, the sessions loaded before any clock: only batching and sessions differ.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' helpers (support/)
from corpus import fetch_corpus  # noqa: E402
from pipeline_bench import REPO  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache"
RESULTS = REPO / "benchmarks" / "results" / "encoder_batching.json"
MAX_TEXTS = 64


def chunk_inputs(corpus: Path, limit: int) -> list[str]:
    """What the model embeds for each chunk of ``corpus``, in document order."""
    from hyperion_pipelines.chunking.context import embedding_input
    from hyperion_pipelines.chunking.stage import chunk_documents
    from hyperion_pipelines.embedding.sentence_transformer import SentenceTransformerEmbedder
    from hyperion_pipelines.embedding.space import context_tokens, space_fingerprint
    from hyperion_pipelines.parsing.document import ParseError
    from hyperion_pipelines.parsing.registry import parse_document
    from hyperion_pipelines.settings import Settings
    from hyperion_pipelines.sources.media_type import sniff_media_type
    from hyperion_pipelines_tests.support.sample_pipeline import default_spec

    spec = default_spec(Settings.from_env())
    embedder = SentenceTransformerEmbedder(backend="torch")  # its tokenizer and identity; no model loaded
    rows = []
    for path in sorted(p for p in corpus.rglob("*") if p.is_file()):
        content = path.read_bytes()
        try:
            parsed = parse_document(content, sniff_media_type(content, path.name), spec.parsing.accepted_media_types)
        except ParseError:
            continue
        headings = [{"level": h.level, "text": h.text, "offset": h.offset} for h in parsed.headings]
        rows.append(
            {"document_id": path.name, "source": str(path.relative_to(corpus)), "sha256": "", "status": "parsed",
             "title": parsed.title, "text": parsed.text, "page_offsets": parsed.page_offsets, "headings": headings}
        )  # fmt: skip
    chunks = chunk_documents(
        pd.DataFrame(rows),
        embedder.tokenizer,
        spec.chunking,
        space_fingerprint(spec, embedder.identity),
        context_tokens=context_tokens(spec.chunking, embedder.identity),
    )
    texts = [embedding_input(c, t) for c, t in zip(chunks["context"], chunks["text"], strict=True)]
    return texts[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--budgets", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--peer-batches", type=int, nargs="+", default=[10, 64])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from hyperion_pipelines.embedding import sentence_transformer as st
    from hyperion_pipelines.embedding.onnx_export import export_on_first_use

    raw = CACHE / "corpus" / "docs"
    if not raw.exists():
        fetch_corpus(raw)
    texts = chunk_inputs(raw, args.texts)
    export = export_on_first_use(st.packaged_model_dir(), CACHE / "models")
    from hyperion_pipelines.embedding.backend_choice import AUTO_ONNX_FILE

    side_by_side = st.OnnxSentenceEncoder(export.folder, AUTO_ONNX_FILE)  # Hyperion's: a session per core
    # One session on ONNX Runtime's default threads, as the peer's embedding runs the file.
    one_session = st.OnnxSentenceEncoder(export.folder, AUTO_ONNX_FILE, plan=(1, 0))
    encodings = side_by_side.tokenize(texts)
    lengths = [len(e.ids) for e in encodings]
    tokens = sum(lengths)
    sessions = st.session_plan(st.usable_cores())[0]

    def plan(budget: int) -> list[list[int]]:
        return st.length_batches(lengths, MAX_TEXTS, budget)

    def document_order(n: int) -> list[list[int]]:
        calls = [range(s, min(s + n, len(texts))) for s in range(0, len(texts), n)]
        return [sorted(call, key=lambda i: -lengths[i]) for call in calls]

    # name: (the encoder that runs the batches, the batches)
    policies: dict[str, tuple[st.OnnxSentenceEncoder, Callable[[], list[list[int]]]]] = {
        **{f"hyperion, {b} tokens, {sessions} sessions": (side_by_side, lambda b=b: plan(b)) for b in args.budgets},
        **{f"hyperion, {b} tokens, 1 session": (one_session, lambda b=b: plan(b)) for b in args.budgets},
        **{f"peer, {n} texts a call": (one_session, lambda n=n: document_order(n)) for n in args.peer_batches},
    }

    def run(encoder: st.OnnxSentenceEncoder, batches: list[list[int]]) -> None:
        encoder.run_batches(encodings, batches)

    for encoder in (side_by_side, one_session):  # ONNX Runtime's first runs are slower
        run(encoder, st.length_batches(lengths, MAX_TEXTS, st.BATCH_TOKENS)[: 4 * sessions])
    seconds: dict[str, list[float]] = {name: [] for name in policies}
    for _ in range(args.reps):
        for name, (encoder, batches) in policies.items():
            planned = batches()
            started = time.perf_counter()
            run(encoder, planned)
            seconds[name].append(time.perf_counter() - started)
            print(f"{name:<36} {tokens / seconds[name][-1]:>8.0f} tokens/s", flush=True)
    rows = {}
    for name, runs in seconds.items():
        best = min(runs)
        padded = sum(lengths[b[0]] * len(b) for b in policies[name][1]())
        rows[name] = {
            "seconds": round(best, 2),
            "tokens_per_s": round(tokens / best),
            "chunks_per_s": round(len(texts) / best, 1),
            "padded_tokens": padded,
            "runs": [round(s, 2) for s in runs],
        }
    result = {
        "model": f"all-MiniLM-L6-v2, {AUTO_ONNX_FILE}, ONNX Runtime, CPU",
        "chunks": len(texts),
        "tokens": tokens,
        "default_budget": st.BATCH_TOKENS,
        "sessions": sessions,
        "policies": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, row in rows.items():
        print(f"{name:<36} {row}")


if __name__ == "__main__":
    main()
