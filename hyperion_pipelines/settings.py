"""Runtime settings read from ``HYPERION_*`` environment variables.

Every knob a deployment turns lives here, with its default, so docs/configuration.md can document one list.
Secrets (tokens, API keys) are deliberately *not* read here: resources receive them through
``dagster.EnvVar`` so their values never appear in the Dagster UI or in run configuration.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hyperion_pipelines.spec import DEFAULT_EMBED_BATCH_SIZE

ENV_PREFIX = "HYPERION_"

EmbedderKind = Literal["local", "openai"]
ExecutorKind = Literal["in_process", "celery"]
#: Documents per part of a day (``HYPERION_PART_DOCUMENTS``). About 0.6 MiB per document of chunks
#: and vectors in flight was measured on documentation pages: a few hundred MiB per part.
DEFAULT_PART_DOCUMENTS = 500
#: RabbitMQ's default user on this machine; a real deployment names its own broker.
DEFAULT_CELERY_BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
EmbeddingBackend = Literal["auto", "torch", "onnx"]


def _get(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(ENV_PREFIX + name, "").strip()
    return value or default


PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_CORPUS_DIR = PACKAGE_DIR / "sample_corpus"
SAMPLE_GOLDEN_QUERIES = PACKAGE_DIR / "evaluation" / "sample_corpus_queries.jsonl"


# Per-pipeline settings that moved into the pipeline's YAML: set, they would apply to every
# pipeline at once (two pipelines writing one alias), so they are refused with where to go instead.
RETIRED = {
    "SOURCE": "declare 'source:' (kind uploads_folder or backend_api) in the pipeline's defs.yaml",
    "COLLECTION": "declare 'index: {alias: ...}' in the pipeline's defs.yaml (default: hyperion_<name>)",
}


class SettingsError(ValueError):
    """A ``HYPERION_*`` variable with a value that cannot be used."""


def embedding_backend(value: str) -> tuple[EmbeddingBackend, str | None]:
    """``auto`` (the fastest this host runs: see ``embedding/backend_choice.py``), ``torch``, ``onnx``
    (the fp32 export) or ``onnx:<file>`` (e.g. ``onnx:model_qint8_avx512_vnni.onnx``): one variable,
    so a deployment pins a backend without editing every pipeline."""
    backend, colon, onnx_file = value.partition(":")
    named = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*\.onnx", onnx_file) is not None
    if backend not in ("auto", "torch", "onnx") or (colon and (backend != "onnx" or not named)):
        raise SettingsError(
            f"HYPERION_EMBEDDING_BACKEND must be 'auto', 'torch', 'onnx' or 'onnx:<file>.onnx', not {value!r}"
        )
    return backend, onnx_file or None  # type: ignore[return-value]


def default_golden_queries(uploads_dir: Path) -> Path | None:
    """The bundled golden set, for a pipeline reading the bundled sample corpus (the set is
    written for exactly those documents)."""
    return SAMPLE_GOLDEN_QUERIES if uploads_dir.resolve() == SAMPLE_CORPUS_DIR else None


def default_parse_workers() -> int:
    """The cores this process may run on (a container's cpuset, not the host's count), at most 4:
    the default of the parser and chunker processes a step runs side by side."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, cores))


@dataclass(frozen=True)
class Settings:
    """Resolved configuration; build it with :meth:`from_env`."""

    home: Path
    uploads_dir: Path
    backend_url: str
    backend_timeout_s: float
    backend_max_retries: int
    embedder: EmbedderKind
    embedding_model_path: str
    embedding_device: str
    embedding_batch_size: int
    openai_base_url: str
    openai_model: str
    milvus_uri: str
    milvus_timeout_s: float
    milvus_lock_wait_s: float  # milvus-lite: how long to wait for another process to release it
    partitions_start: str
    chunk_max_tokens: int
    chunk_overlap_tokens: int
    max_document_bytes: int
    parse_timeout_s: float
    parse_memory_mb: int
    golden_queries: Path | None  # HYPERION_GOLDEN_QUERIES: the set for pipelines that declare none
    eval_k: int
    ui_url: str
    step_timeout_s: float
    run_timeout_s: int
    prometheus_pushgateway: str | None
    # HYPERION_STEP_OUTPUT_RETENTION_DAYS: storage GC removes Dagster step outputs and step logs older
    step_output_retention_days: float = 7.0
    # HYPERION_STEP_OUTPUT_URI: where steps write their DataFrames (Parquet); empty: $DAGSTER_HOME/storage
    step_output_uri: str = ""
    # HYPERION_PART_DOCUMENTS: documents per part of a day; a step holds one part at a time
    part_documents: int = DEFAULT_PART_DOCUMENTS
    # HYPERION_EXECUTOR: "in_process" (every step in the run's process) or "celery" (each step a
    # Celery task on any worker; install the `celery` extra)
    executor: ExecutorKind = "in_process"
    # HYPERION_CELERY_BROKER / HYPERION_CELERY_BACKEND: the broker and result backend of the
    # Celery executor and of `hyperion worker`
    celery_broker: str = DEFAULT_CELERY_BROKER
    celery_backend: str = "rpc://"
    # HYPERION_EMBEDDING_BACKEND: "auto" (int8 ONNX where ONNX Runtime is installed and no GPU is
    # there, else torch), "torch", "onnx" or "onnx:<file>" (an int8 file of the export)
    embedding_backend: EmbeddingBackend = "auto"
    embedding_onnx_file: str | None = None
    # HYPERION_MODELS_DIR: where ONNX exports of the model live; empty: $HYPERION_HOME/models
    models_dir_override: Path | None = None
    # HYPERION_PARSE_WORKERS: parser processes a parse step runs side by side (default: the
    # host's cores, at most 4); each holds up to HYPERION_PARSE_MEMORY_MB
    parse_workers: int = 1
    # HYPERION_CHUNK_WORKERS: processes a chunk step spreads a day's parts over (default: the
    # host's cores, at most 4); a day of one part is chunked in the step's own process
    chunk_workers: int = 1
    # HYPERION_OPENAI_CONCURRENCY: batches in flight at once to an OpenAI-compatible service
    openai_concurrency: int = 4

    @property
    def state_db_url(self) -> str:
        """Default database of the quarantine ledger and the index manifest;
        ``HYPERION_STATE_DB_URL`` (a secret, since a database URL may hold a password) overrides it."""
        return f"sqlite:///{self.home / 'state.db'}"

    @property
    def models_dir(self) -> Path:
        """ONNX exports of the local model (``hyperion export-onnx``, or the auto backend's first use)."""
        return self.models_dir_override or self.home / "models"

    @property
    def blob_dir(self) -> Path:
        """Content-addressed copies of every landed document (the raw zone)."""
        return self.home / "blobs"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = Path(_get(env, "HOME", str(Path.cwd() / ".hyperion"))).expanduser().resolve()
        for name, instead in RETIRED.items():
            if _get(env, name, ""):
                raise SettingsError(f"{ENV_PREFIX}{name} is no longer read: {instead}")
        embedder = _get(env, "EMBEDDER", "local")
        if embedder not in ("local", "openai"):
            raise SettingsError(f"HYPERION_EMBEDDER must be 'local' or 'openai', not {embedder!r}")
        uploads_dir = Path(_get(env, "UPLOADS_DIR", str(home / "uploads"))).expanduser().resolve()
        executor = _get(env, "EXECUTOR", "in_process")
        if executor not in ("in_process", "celery"):
            raise SettingsError(f"HYPERION_EXECUTOR must be 'in_process' or 'celery', not {executor!r}")
        backend, onnx_file = embedding_backend(_get(env, "EMBEDDING_BACKEND", "auto"))
        models = _get(env, "MODELS_DIR", "")
        return cls(
            home=home,
            uploads_dir=uploads_dir,
            backend_url=_get(env, "BACKEND_URL", "http://127.0.0.1:8080"),
            backend_timeout_s=float(_get(env, "BACKEND_TIMEOUT_S", "30")),
            backend_max_retries=int(_get(env, "BACKEND_MAX_RETRIES", "4")),
            embedder=embedder,  # type: ignore[arg-type]
            embedding_model_path=_get(env, "EMBEDDING_MODEL_PATH", ""),
            embedding_device=_get(env, "EMBEDDING_DEVICE", "auto"),
            embedding_batch_size=int(_get(env, "EMBEDDING_BATCH_SIZE", str(DEFAULT_EMBED_BATCH_SIZE))),
            openai_base_url=_get(env, "OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"),
            openai_model=_get(env, "OPENAI_MODEL", "all-MiniLM-L6-v2"),
            milvus_uri=_get(env, "MILVUS_URI", str(home / "milvus.db")),
            milvus_timeout_s=float(_get(env, "MILVUS_TIMEOUT_S", "60")),
            milvus_lock_wait_s=float(_get(env, "MILVUS_LOCK_WAIT_S", "300")),
            partitions_start=_get(env, "PARTITIONS_START", "2020-01-01"),
            chunk_max_tokens=int(_get(env, "CHUNK_MAX_TOKENS", "200")),
            chunk_overlap_tokens=int(_get(env, "CHUNK_OVERLAP_TOKENS", "32")),
            max_document_bytes=int(_get(env, "MAX_DOCUMENT_BYTES", str(50 * 1024 * 1024))),
            parse_timeout_s=float(_get(env, "PARSE_TIMEOUT_S", "60")),
            parse_memory_mb=int(_get(env, "PARSE_MEMORY_MB", "2048")),
            golden_queries=Path(golden).expanduser().resolve() if (golden := _get(env, "GOLDEN_QUERIES", "")) else None,
            eval_k=int(_get(env, "EVAL_K", "10")),
            ui_url=_get(env, "UI_URL", "http://127.0.0.1:3000"),
            step_timeout_s=float(_get(env, "STEP_TIMEOUT_S", "3600")),
            run_timeout_s=int(_get(env, "RUN_TIMEOUT_S", str(4 * 3600))),
            prometheus_pushgateway=_get(env, "PROMETHEUS_PUSHGATEWAY", "") or None,
            step_output_retention_days=float(_get(env, "STEP_OUTPUT_RETENTION_DAYS", "7")),
            step_output_uri=_get(env, "STEP_OUTPUT_URI", ""),
            part_documents=int(_get(env, "PART_DOCUMENTS", str(DEFAULT_PART_DOCUMENTS))),
            executor=executor,  # type: ignore[arg-type]
            celery_broker=_get(env, "CELERY_BROKER", DEFAULT_CELERY_BROKER),
            celery_backend=_get(env, "CELERY_BACKEND", "rpc://"),
            embedding_backend=backend,
            embedding_onnx_file=onnx_file,
            models_dir_override=Path(models).expanduser().resolve() if models else None,
            openai_concurrency=int(_get(env, "OPENAI_CONCURRENCY", "4")),
            parse_workers=int(_get(env, "PARSE_WORKERS", str(default_parse_workers()))),
            chunk_workers=int(_get(env, "CHUNK_WORKERS", str(default_parse_workers()))),
        )


# The settings the pipelines being loaded resolve against: those given to ``build_definitions``,
# else the environment's. Dagster instantiates components itself, so they cannot take an argument.
_LOADING: ContextVar[Settings | None] = ContextVar("hyperion_loading_settings", default=None)


@contextmanager
def loading_with(settings: Settings) -> Iterator[Settings]:
    token = _LOADING.set(settings)
    try:
        yield settings
    finally:
        _LOADING.reset(token)


def current_settings() -> Settings:
    return _LOADING.get() or Settings.from_env()
