"""The pipeline specification: everything that defines one document-to-vector pipeline.

An asset graph is built from a :class:`PipelineSpec` (see ``orchestration/pipeline.py``), so a second
collection is declared by writing a second spec, not by copying asset code.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

MediaType = Literal[
    "text/plain",
    "text/markdown",
    "text/html",
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "image/png",
    "image/jpeg",
    "image/tiff",
]

SUPPORTED_MEDIA_TYPES: tuple[str, ...] = get_args(MediaType)
#: Raised with every change to the extractors that alters the text they give (2: pdfium for PDF,
#: margins dropped, headings inferred, tables as Markdown rows, OCR; 3: PDF list items are not
#: table rows, a table's rows stay together, a mostly-text PDF is read without OCR). Part of the
#: fingerprint.
EXTRACTION_VERSION = "3"

# What Dagster accepts as an owner: a team ("team:" and a name) or an email address.
OWNER_PATTERN = r"^(team:[A-Za-z0-9][A-Za-z0-9_.-]*|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,7})$"
Owner = Annotated[str, Field(pattern=OWNER_PATTERN)]
DEFAULT_OWNERS = ("team:document-platform",)
DEFAULT_EMBED_BATCH_SIZE = 64


# Secrets never go into a pipeline's declaration: it names the environment variable holding one.
ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
# Services a pipeline calls (backend API, embedding service) are reached over HTTP(S).
HTTP_URL_PATTERN = r"^https?://[^\s]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UploadsFolderSource(_Strict):
    """Documents dropped into a folder; a file's modification time is its upload time."""

    kind: Literal["uploads_folder"]
    path: str | None = Field(
        default=None,
        description="Folder to read (relative: to the pipeline's YAML file); unset: HYPERION_UPLOADS_DIR.",
    )


class BackendApiSource(_Strict):
    """Documents listed and fetched from the backend's HTTP API (``GET /documents``, ``/deletions``)."""

    kind: Literal["backend_api"]
    base_url: str | None = Field(
        default=None, pattern=HTTP_URL_PATTERN, description="API root; unset: HYPERION_BACKEND_URL."
    )
    token_env: str = Field(
        default="HYPERION_BACKEND_TOKEN",
        pattern=ENV_NAME_PATTERN,
        description="Environment variable holding the bearer token (read at run time, never shown).",
    )
    timeout_s: float | None = Field(
        default=None, gt=0, description="Per-request timeout; unset: HYPERION_BACKEND_TIMEOUT_S."
    )
    max_retries: int | None = Field(
        default=None, ge=0, le=20, description="Retries of a failed request; unset: HYPERION_BACKEND_MAX_RETRIES."
    )


SourceSpec = Annotated[UploadsFolderSource | BackendApiSource, Field(discriminator="kind")]


class LocalEmbedding(_Strict):
    """A sentence-transformers model loaded from disk (by default the packaged all-MiniLM-L6-v2)."""

    kind: Literal["local"]
    model_path: str | None = Field(
        default=None, description="Model folder; unset: HYPERION_EMBEDDING_MODEL_PATH, else the packaged model."
    )
    device: str | None = Field(
        default=None, pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$", description="Unset: HYPERION_EMBEDDING_DEVICE (auto)."
    )
    batch_size: int | None = Field(
        default=None,
        gt=0,
        description=(
            "Most texts per forward pass (the onnx backend also caps the padded tokens of one); unset: "
            "HYPERION_EMBEDDING_BATCH_SIZE."
        ),
    )
    backend: Literal["auto", "torch", "onnx"] | None = Field(
        default=None,
        description=(
            "'auto' (the int8 ONNX export where ONNX Runtime is installed and no GPU is present, exported "
            "on first use; else torch), 'torch' (sentence-transformers) or 'onnx' (ONNX Runtime on the "
            "CPU, on an export made by 'hyperion export-onnx'); unset: HYPERION_EMBEDDING_BACKEND (auto)."
        ),
    )
    onnx_file: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.onnx$",
        description=(
            "With backend onnx: the export's file, 'model.onnx' (fp32, the torch model's embedding space) or an "
            "int8 one such as 'model_qint8_avx512_vnni.onnx' (a space of its own); unset: model.onnx."
        ),
    )


class OpenAICompatibleEmbedding(_Strict):
    """A remote embedding service speaking the OpenAI ``/v1/embeddings`` API (vLLM, TEI, OpenAI)."""

    kind: Literal["openai_compatible"]
    base_url: str | None = Field(
        default=None, pattern=HTTP_URL_PATTERN, description="Service root; unset: HYPERION_OPENAI_BASE_URL."
    )
    model: str | None = Field(default=None, min_length=1, description="Model name; unset: HYPERION_OPENAI_MODEL.")
    api_key_env: str = Field(
        default="HYPERION_OPENAI_API_KEY",
        pattern=ENV_NAME_PATTERN,
        description="Environment variable holding the API key (read at run time, never shown).",
    )
    batch_size: int | None = Field(
        default=None, gt=0, description="Texts per request; unset: HYPERION_EMBEDDING_BATCH_SIZE."
    )


EmbeddingSpec = Annotated[LocalEmbedding | OpenAICompatibleEmbedding, Field(discriminator="kind")]


class ParsingLimits(_Strict):
    """What a single document may cost before it is quarantined instead of parsed.

    Limits decide *whether* a document is parsed, never *how*, so they are not part of the
    embedding-space fingerprint: raising one re-drives quarantined documents without a re-index.
    """

    max_document_bytes: int = Field(default=50 * 1024 * 1024, gt=0, description="Larger documents are rejected unread.")
    max_expanded_bytes: int = Field(
        default=256 * 1024 * 1024, gt=0, description="Archive formats (DOCX) may not unpack to more than this."
    )
    max_compression_ratio: float = Field(
        default=200.0, gt=1, description="Unpacked size over packed size of an archive; beyond it, a zip bomb."
    )
    timeout_s: float = Field(default=60.0, gt=0, description="Wall-clock seconds one document may take to parse.")
    memory_bytes: int = Field(
        default=2 * 1024 * 1024 * 1024,
        ge=256 * 1024 * 1024,
        description="Address-space limit of the parser process (Linux); a document needing more is quarantined.",
    )
    min_text_chars: int = Field(default=16, ge=1, description="Fewer non-space characters than this is near-empty.")
    max_garbage_ratio: float = Field(
        default=0.1, gt=0, le=1, description="Largest share of control, replacement or unassigned characters."
    )
    min_fidelity: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description=(
            "Lowest parse-fidelity score (0-1, see parsing.fidelity) a document's best extraction may have; "
            "below it the document is quarantined as low_fidelity. 0 turns the gate off."
        ),
    )


class ParsingSpec(_Strict):
    """How raw documents become text. ``parser_version`` is part of the embedding-space fingerprint."""

    accepted_media_types: tuple[MediaType, ...] = Field(
        default=SUPPORTED_MEDIA_TYPES,
        min_length=1,
        description="Media types (sniffed from content) to parse; others are quarantined as unsupported.",
    )
    parser_version: str = Field(default="1", description="Bump to re-index everything after a parser change.")
    limits: ParsingLimits = ParsingLimits()

    def fingerprint_fields(self) -> dict[str, str]:
        """What changes the text of a parsed document (and so its vectors): the user's version and
        the extractors' own, so an upgrade that reads documents differently re-indexes blue/green."""
        return {"parser_version": self.parser_version, "extraction": EXTRACTION_VERSION}


class ChunkingSpec(_Strict):
    """How text is cut into chunks, measured in the embedding model's tokens."""

    max_tokens: int = Field(default=200, gt=8, description="Upper bound on tokens per chunk.")
    overlap_tokens: int = Field(default=32, ge=0, description="Tokens shared by consecutive chunks of one section.")
    embed_context: bool = Field(
        default=True,
        description=(
            "Embed each chunk with its document title and heading path in front ('Title > Section'), "
            "in the room the model has beyond max_tokens; the stored text is the chunk alone."
        ),
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingSpec:
        if self.overlap_tokens >= self.max_tokens // 2:
            raise ValueError("overlap_tokens must be less than half of max_tokens")
        return self


class IndexSpec(_Strict):
    """The Milvus side: the live alias and how the vector field is indexed."""

    alias: str = Field(
        default="hyperion_documents",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,200}$",
        description="Alias searches use; collections are named <alias>__<fingerprint>.",
    )
    index_type: Literal["HNSW", "IVF_FLAT", "FLAT"] = Field(
        default="HNSW", description="Milvus index type for the vector field (what milvus-lite and Milvus share)."
    )
    metric_type: Literal["COSINE", "IP", "L2"] = Field(default="COSINE", description="Similarity metric.")
    index_params: dict[str, int] = Field(default_factory=lambda: {"M": 16, "efConstruction": 200})
    write_batch_size: int = Field(default=512, gt=0, description="Rows per upsert call.")
    retrieval: Literal["auto", "hybrid", "dense"] = Field(
        default="auto",
        description="hybrid: a BM25 field on the chunk's context line and text (what the model embeds) beside the "
        "vectors, searched with them and fused; scored by Milvus on a server from 2.5, by Hyperion on milvus-lite "
        "(whose BM25 function scores each segment alone: Hyperion writes the term weights and keeps the document "
        "frequencies beside the collection); dense: vectors only; auto: hybrid on milvus-lite and on a Milvus "
        "server from 2.5, dense on older servers (no BM25). Part of the collection's name: a change is a re-index.",
    )
    # The defaults were chosen on benchmarks/peer_fair.py's fusion sweep (results/peer_fair_int8.json).
    fusion: Literal["relative", "weighted", "rrf"] = Field(
        default="relative",
        description="How hybrid searches merge the dense and BM25 rankings: relative: each side's scores over its "
        "best candidate's, summed by dense_weight (computed by Hyperion from two searches); weighted: Milvus's "
        "weighted sum of its normalised scores (BM25's by arctan, which crowds every match near 1); rrf: "
        "reciprocal rank fusion. Query-time only: no re-index.",
    )
    rrf_k: int = Field(default=60, gt=0, description="fusion: rrf only: RRF's k (higher flattens the top ranks).")
    dense_weight: float = Field(
        default=0.75,
        ge=0,
        le=1,
        description="fusion: relative and weighted: the dense score's weight (BM25 gets the rest).",
    )
    milvus_uri: str | None = Field(
        default=None,
        min_length=1,
        description="milvus-lite file or Milvus server URI (http://host:19530); unset: HYPERION_MILVUS_URI.",
    )
    token_env: str = Field(
        default="HYPERION_MILVUS_TOKEN",
        pattern=ENV_NAME_PATTERN,
        description="Environment variable holding the Milvus token, if the server needs one.",
    )


class MetricThresholds(_Strict):
    """Below ``warn`` the retrieval-quality check warns; below ``fail`` it fails."""

    warn: float = Field(ge=0, le=1)
    fail: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _fail_below_warn(self) -> MetricThresholds:
        if self.fail > self.warn:
            raise ValueError("the fail threshold must not be above the warn threshold")
        return self


class EvaluationSpec(_Strict):
    """The golden query set the ``retrieval_evaluation`` asset runs, and what counts as good enough."""

    golden_queries: str | None = Field(
        default=None, description="JSONL file of {query, relevant}; no file, no retrieval_evaluation asset."
    )
    k: int = Field(default=10, gt=0, le=100, description="Cut-off for recall@k and nDCG@k.")
    recall_at_k: MetricThresholds = MetricThresholds(warn=0.8, fail=0.6)
    mrr: MetricThresholds = MetricThresholds(warn=0.6, fail=0.4)
    ndcg_at_k: MetricThresholds = MetricThresholds(warn=0.6, fail=0.4)


class IndexChecksSpec(_Strict):
    """Checks run on the index after each partition is written."""

    self_retrieval_sample: int = Field(default=32, ge=0, description="Chunks searched by their own vector.")
    self_retrieval_min_ratio: float = Field(
        default=0.95, ge=0, le=1, description="Share that must come back first (HNSW is approximate)."
    )
    stale_after_hours: float | None = Field(
        default=26,
        gt=0,
        description=(
            "vector_index's freshness policy: stale when no upload day was written for this long (the daily "
            "reconcile writes one a day, so a stopped daemon, schedule or failing runs show); unset: no policy."
        ),
    )


class UploadSensorSpec(_Strict):
    """How the upload sensor turns changes at the source into runs."""

    minimum_interval_seconds: int = Field(default=15, ge=1, description="Seconds between sensor ticks.")
    max_runs_per_tick: int = Field(
        default=10, ge=1, description="Upload days requested per tick; the rest wait for the next tick."
    )
    feed_pages_per_tick: int = Field(
        default=40, ge=1, description="Listing pages read from a change feed (the backend API) per tick."
    )
    running: bool = Field(default=True, description="Whether the sensor starts running when the code location loads.")


def _valid_cron(value: str) -> str:
    from hyperion_pipelines.dagster_internals import is_valid_cron_string  # Dagster's own cron parser decides

    if not is_valid_cron_string(value):
        raise ValueError(f"{value!r} is not a valid cron expression (five fields, e.g. '15 0 * * *')")
    return value


Cron = Annotated[str, AfterValidator(_valid_cron)]


class SchedulesSpec(_Strict):
    """When the daily reconciliation and the daily evaluation run (UTC unless ``timezone`` says otherwise)."""

    reconcile_cron: Cron = Field(
        default="15 0 * * *", description="Re-run the previous upload day once it is complete."
    )
    evaluate_cron: Cron = Field(default="0 6 * * *", description="Score the index on the golden query set.")
    timezone: str = Field(default="UTC", min_length=1, description="IANA time zone of the cron expressions.")
    running: bool = Field(default=True, description="Whether the schedules start running when the code location loads.")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. 'UTC', 'Europe/Berlin')") from exc
        return value


class DeletionGuardSpec(_Strict):
    """A run that would remove much of an upload day from the index removes nothing instead, and
    fails saying so: an unmounted folder, a folder swapped for another, or a backend answering an
    empty listing by mistake looks exactly like mass deletion. Intended removals are confirmed
    with the run tag ``hyperion/allow-deletions=true`` (``hyperion ingest --allow-deletions``)."""

    enabled: bool = Field(default=True, description="Whether the guard applies; off: every removal goes through.")
    max_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Largest share of a day's recorded documents one run may remove without confirmation.",
    )
    min_documents: int = Field(
        default=4,
        ge=1,
        description="Days recording fewer documents than this are not held to max_share (one file deleted from "
        "a day of two is ordinary).",
    )
    max_documents: int | None = Field(
        default=None, ge=1, description="Most documents one run may remove, whatever the share; unset: no limit."
    )


class ExecutionLimits(_Strict):
    """Time limits: a stuck step or run fails (and alerts) instead of holding a pool slot forever."""

    step_timeout_s: float | None = Field(
        default=3600.0, gt=0, description="Seconds one step (parse, embed, index write) may take; None: no limit."
    )
    run_timeout_s: int | None = Field(
        default=4 * 3600,
        gt=0,
        description="Seconds a run may take (Dagster's dagster/max_runtime tag; needs run monitoring).",
    )


class ResourceKeys(_Strict):
    """Names of the Dagster resources a pipeline uses: its own source, embedder and Milvus
    connection (so pipelines side by side can differ in each), and the shared blob store and
    state database (quarantine ledger and index manifest, keyed by pipeline name)."""

    source: str
    embedder: str
    milvus: str
    blob_store: str = "blob_store"
    state: str = "state_db"

    @classmethod
    def for_pipeline(cls, name: str) -> ResourceKeys:
        return cls(source=f"{name}_source", embedder=f"{name}_embedder", milvus=f"{name}_milvus")


class PipelineSpec(_Strict):
    """One document collection: source, parsing, chunking, embedding, index."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Asset group name.")
    description: str = ""
    owners: tuple[Owner, ...] = Field(
        default=DEFAULT_OWNERS,
        min_length=1,
        description=(
            "Who answers for the pipeline (a 'team:<name>' or an email address): owners of its assets, "
            "jobs, schedules and sensors in the Dagster UI."
        ),
    )
    key_prefix: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,64}$")], ...] = Field(
        default=(), description="Prefix for asset keys; lets several pipelines live side by side."
    )
    partitions_start: str = Field(
        default="2020-01-01", pattern=r"^\d{4}-\d{2}-\d{2}$", description="First upload day (YYYY-MM-DD)."
    )

    @field_validator("partitions_start")
    @classmethod
    def _real_day(cls, value: str) -> str:
        date.fromisoformat(value)  # 2020-13-01 matches the pattern but is no day
        return value

    source: SourceSpec = Field(
        default=UploadsFolderSource(kind="uploads_folder"), description="Where documents come from."
    )
    parsing: ParsingSpec = ParsingSpec()
    chunking: ChunkingSpec = ChunkingSpec()
    embedding: EmbeddingSpec = Field(default=LocalEmbedding(kind="local"), description="The embedding model.")
    index: IndexSpec = IndexSpec()
    index_checks: IndexChecksSpec = IndexChecksSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    upload_sensor: UploadSensorSpec = UploadSensorSpec()
    schedules: SchedulesSpec = SchedulesSpec()
    limits: ExecutionLimits = ExecutionLimits()
    deletion_guard: DeletionGuardSpec = DeletionGuardSpec()

    @property
    def resources(self) -> ResourceKeys:
        return ResourceKeys.for_pipeline(self.name)

    @property
    def embed_batch_size(self) -> int:
        return self.embedding.batch_size or DEFAULT_EMBED_BATCH_SIZE
