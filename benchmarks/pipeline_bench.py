"""The pipeline against the model's own speed: full run, no-change and 1 % re-runs, memory.

Each measurement runs ``hyperion ingest`` as a child process on a private ``HYPERION_HOME``, the
way a user runs it, so the figures include Dagster, the parser sandbox, chunking, Milvus writes
and the checks. The raw model is timed in this process on exactly the chunk texts the pipeline
embedded, with the same batch size.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tests' helpers (support/)
UPLOAD_TIME = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
PEAK_RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


@dataclass(frozen=True)
class Workspace:
    """A private HYPERION_HOME whose uploads folder holds a copy of the corpus, all on one upload day."""

    home: Path
    uploads: Path

    @classmethod
    def create(cls, root: Path, corpus: Path, files: list[Path] | None = None) -> Workspace:
        root = root.resolve()  # DAGSTER_HOME must be absolute
        if root.exists():
            shutil.rmtree(root)
        uploads = root / "uploads"
        for source in files if files is not None else sorted(p for p in corpus.rglob("*") if p.is_file()):
            target = uploads / source.relative_to(corpus)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            stamp(target)
        return cls(home=root, uploads=uploads)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERION_")}
        env.update(
            HYPERION_HOME=str(self.home),
            HYPERION_UPLOADS_DIR=str(self.uploads),
            DAGSTER_HOME=str(self.home / "dagster"),
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            # torch, not the default auto (int8 ONNX where installed): the model as the peer runs it
            # (LlamaIndex's HuggingFaceEmbedding) and as the raw-encode baseline runs it;
            # embedding_backends.py measures the backends against each other.
            HYPERION_EMBEDDING_BACKEND="torch",
        )
        return env


def stamp(path: Path) -> None:
    os.utime(path, (UPLOAD_TIME.timestamp(), UPLOAD_TIME.timestamp()))


def hyperion(workspace: Workspace, *args: str) -> tuple[dict[str, Any], float, int]:
    """Run ``hyperion <args> --json``; returns its JSON, wall seconds and peak RSS (KiB)."""
    command = [sys.executable, "-c", PEAK_RSS_WRAPPER, sys.executable, "-m", "hyperion_pipelines.cli", *args, "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, env=workspace.env(), capture_output=True, text=True, cwd=REPO, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"hyperion {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak = int(done.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
    return json.loads(done.stdout.strip().splitlines()[-1]), wall, peak


def in_child(workspace: Workspace, function: str) -> Any:
    """``function(home)`` of this module run in a child process, its result returned through a
    JSON file: milvus-lite serves a database file to one process, and this one must not keep it
    from the next run."""
    out = workspace.home / f"{function}.json"
    code = (
        f"import json, pathlib, sys; sys.path.insert(0, 'benchmarks'); from pipeline_bench import {function}; "
        f"pathlib.Path({str(out)!r}).write_text(json.dumps({function}({str(workspace.home)!r})), encoding='utf-8')"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=workspace.env(), check=True)
    return json.loads(out.read_text(encoding="utf-8"))


def read_model_inputs(home: str | Path) -> dict[str, list[str]]:
    """The model's input for each chunk in the live collection under ``home`` (context line and
    text, the context rebuilt from the stored title and heading path) and the chunk's source, in
    id order."""
    from hyperion_pipelines.chunking.context import context_line, embedding_input, fit_context
    from hyperion_pipelines.chunking.stage import HEADING_SEPARATOR
    from hyperion_pipelines.embedding.space import context_tokens
    from hyperion_pipelines.index.connection import connect
    from hyperion_pipelines.index.milvus_index import MilvusIndex
    from hyperion_pipelines.orchestration.resources.embedder import SentenceTransformerResource
    from hyperion_pipelines.settings import Settings
    from hyperion_pipelines.spec import IndexSpec
    from hyperion_pipelines_tests.support.sample_pipeline import default_spec

    client = connect(str(Path(home) / "milvus.db"))
    try:
        index = MilvusIndex(client, IndexSpec(alias="hyperion_documents"))
        collection = index.live_collection()
        assert collection is not None, f"nothing is indexed under {home}"
        index.ensure_loaded(collection)
        fields = ["id", "text", "title", "heading_path", "source"]
        rows = sorted(index._iterate(collection, 'id != ""', fields), key=lambda row: row["id"])  # noqa: SLF001
    finally:
        client.close()
    embedder = SentenceTransformerResource().get()
    room = context_tokens(default_spec(Settings.from_env()).chunking, embedder.identity)

    def model_input(row: dict) -> str:
        path = row["heading_path"].split(HEADING_SEPARATOR) if row["heading_path"] else []
        return embedding_input(fit_context(context_line(row["title"], path), embedder.tokenizer, room), row["text"])

    return {"texts": [model_input(row) for row in rows], "sources": [row["source"] for row in rows]}


def raw_encode_seconds(texts: list[str], batch_size: int = 64) -> float:
    """The packaged model's ``encode`` on the same texts, model already loaded and warmed up."""
    from hyperion_pipelines.embedding.sentence_transformer import SentenceTransformerEmbedder

    model = SentenceTransformerEmbedder(backend="torch").model
    model.encode(texts[:batch_size], batch_size=batch_size, normalize_embeddings=True)  # warm-up
    started = time.perf_counter()
    model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    return time.perf_counter() - started


def edit_fraction(workspace: Workspace, fraction: float) -> list[str]:
    """Append a sentence to ``fraction`` of the documents (at least one); returns their paths."""
    files = sorted(p for p in workspace.uploads.rglob("*") if p.is_file() and p.suffix in {".txt", ".md", ".html"})
    count = max(1, round(len(files) * fraction))
    edited = files[:: max(1, len(files) // count)][:count]
    for path in edited:
        text = path.read_text(encoding="utf-8", errors="replace")
        addition = "\n\nRevision note: this page was reviewed and its examples were checked again.\n"
        if path.suffix == ".html" and "</body>" in text:
            text = text.replace("</body>", f"<p>{addition.strip()}</p></body>", 1)
        else:
            text += addition
        path.write_text(text, encoding="utf-8")
        stamp(path)  # the same upload day: the edit re-runs that day's partition
    return [str(p.relative_to(workspace.uploads)) for p in edited]


def throughput_and_incremental(corpus: Path, scratch: Path, batch_size: int = 64) -> dict[str, Any]:
    """Full run vs raw encode; then a no-change re-run and a re-run after editing 1 % of documents."""
    workspace = Workspace.create(scratch / "throughput", corpus)
    full, full_wall, full_rss = hyperion(workspace, "ingest", "--all")
    texts = in_child(workspace, "read_model_inputs")["texts"]
    encode_s = raw_encode_seconds(texts, batch_size)
    unchanged, _, _ = hyperion(workspace, "ingest", "--all")
    edited = edit_fraction(workspace, 0.01)
    one_percent, _, _ = hyperion(workspace, "ingest", "--all")
    pipeline_rate = full["chunks"] / full["seconds"]
    raw_rate = len(texts) / encode_s
    return {
        "documents": full["documents"],
        "chunks": full["chunks"],
        "rejected": full["rejected"],
        "full_run_s": full["seconds"],
        "full_run_process_s": round(full_wall, 2),
        "full_run_peak_rss_mib": round(full_rss / 1024, 1),
        "pipeline_chunks_per_s": round(pipeline_rate, 2),
        "raw_encode_s": round(encode_s, 2),
        "raw_encode_chunks_per_s": round(raw_rate, 2),
        "throughput_ratio": round(pipeline_rate / raw_rate, 3),
        "no_change_run_s": unchanged["seconds"],
        "no_change_embedded": unchanged["embedded"],
        "no_change_ratio": round(unchanged["seconds"] / full["seconds"], 4),
        "edited_documents": len(edited),
        "one_percent_run_s": one_percent["seconds"],
        "one_percent_embedded": one_percent["embedded"],
        "one_percent_ratio": round(one_percent["seconds"] / full["seconds"], 4),
    }


def check_index(home: str) -> dict[str, Any]:
    """Every entry behind the live alias under ``home`` (duplicates kept) against the chunk ids
    computed from its uploads folder's documents alone. Run it with ``in_child``."""
    from hyperion_pipelines.settings import Settings
    from hyperion_pipelines_tests.support.exact_index import expected_chunk_ids, stored_ids, upload_documents
    from hyperion_pipelines_tests.support.sample_pipeline import default_spec

    settings = Settings.from_env()
    assert settings.home.resolve() == Path(home).resolve(), "the child runs with the workspace's environment"
    ids = stored_ids(settings)
    documents = upload_documents(settings.uploads_dir)
    expected = expected_chunk_ids(default_spec(settings), documents, skip_unparseable=True)
    figures: dict[str, Any] = {
        "documents": len(documents),
        "stored": len(ids),
        "expected": len(expected),
        "duplicates": len(ids) - len(set(ids)),
        "missing": len(expected - set(ids)),
        "orphans": len(set(ids) - expected),
    }
    figures["exact"] = not (figures["duplicates"] or figures["missing"] or figures["orphans"])
    return figures


def deletions_exact(workspace: Workspace, count: int = 2) -> dict[str, Any]:
    """Delete ``count`` documents (after the 1 % edits), re-run, and check the index exactly, as
    the peer's edit and deletion run is checked."""
    files = sorted(p for p in workspace.uploads.rglob("*") if p.is_file())
    deleted = files[len(files) // 3 :: max(1, len(files) // (count + 1))][:count]
    for path in deleted:
        path.unlink()
    summary, _, _ = hyperion(workspace, "ingest", "--all")
    return {
        "deleted_documents": [str(p.relative_to(workspace.uploads)) for p in deleted],
        "run_s": summary["seconds"],
        "embedded": summary["embedded"],
        "verification": in_child(workspace, "check_index"),
    }


def memory_growth(corpus: Path, scratch: Path, small: int) -> dict[str, Any]:
    """Peak resident memory of one partition's run at ``small`` documents and at ten times that."""
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    if len(files) < small * 10:
        raise ValueError(f"the corpus has {len(files)} documents; the 10x partition needs {small * 10}")
    rows = {}
    for label, count in (("small", small), ("large", small * 10)):
        workspace = Workspace.create(scratch / f"memory-{label}", corpus, files[:count])
        summary, _, peak = hyperion(workspace, "ingest", "--all")
        rows[label] = {
            "documents": summary["documents"],
            "chunks": summary["chunks"],
            "peak_rss_mib": round(peak / 1024, 1),
        }
    rows["ratio"] = round(rows["large"]["peak_rss_mib"] / rows["small"]["peak_rss_mib"], 3)
    return rows


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO / "hyperion_pipelines" / "sample_corpus")
    parser.add_argument("--scratch", type=Path, default=REPO / "benchmarks" / ".cache" / "pipeline")
    parser.add_argument("--memory-small", type=int, default=0, help="documents in the small partition (0: skip)")
    args = parser.parse_args()
    result: dict[str, Any] = {"throughput": throughput_and_incremental(args.corpus, args.scratch)}
    if args.memory_small:
        result["memory"] = memory_growth(args.corpus, args.scratch, args.memory_small)
    print(json.dumps(result, indent=2))
