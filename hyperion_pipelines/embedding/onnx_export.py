"""ONNX exports of a sentence-transformers model, made offline by ``hyperion export-onnx``.

Why not sentence-transformers' own ``backend="onnx"``: it loads through ``optimum-onnx``, whose
only releases pin ``transformers<4.58`` (huggingface/optimum-onnx#114), while this project runs
transformers 5. So the export is done here with ``torch.onnx`` and run with ONNX Runtime alone:

* the whole sentence-transformers pipeline (transformer, pooling, normalisation) is traced into one
  graph from the model's own modules, so the runtime only tokenises and runs the graph;
* int8 files are made with ONNX Runtime's dynamic quantisation, with the settings of
  sentence-transformers' ``export_dynamic_quantized_onnx_model`` presets (per-channel symmetric
  weights, asymmetric uint8 activations, full range) and its file names (``model_qint8_avx512_vnni.onnx``).

An export is a folder: the model's configuration and tokenizer files (not its torch weights),
``onnx/*.onnx``, and :data:`MANIFEST`, which records the source model's digest and each ONNX
file's digest and quantisation. The embedder only loads files the manifest lists, so an export
never silently outlives the model it was made from. With the ``onnx`` backend named explicitly a
missing export is an error that names the command to run; the ``auto`` backend (the default, see
``backend_choice.py``) makes the int8 export on first use with :func:`export_on_first_use`, from
the model folder on disk (nothing is downloaded). The export is deterministic: the same model and
package versions give byte-identical files, so hosts that export separately share one identity.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hyperion_pipelines.embedding.sentence_transformer import (
    file_digest,
    model_digest,
    model_name,
    packaged_model_dir,
)

ONNX_SUBDIR = "onnx"
FP32_FILE = "model.onnx"
MANIFEST = "hyperion_onnx_export.json"
MANIFEST_FORMAT = 1
OPSET = 17  # the first opset with a native LayerNormalization

QuantizationConfig = Literal["avx512_vnni", "avx2"]
# Weight type per preset, as sentence-transformers' presets (optimum's AutoQuantizationConfig) set it.
# avx512_vnni: int8 weights (ONNX Runtime's U8S8 kernels, the default of its quantize_dynamic; they
#   run on any x86-64 CPU and use VNNI where there is one, as on most server CPUs since 2019).
#   avx2: uint8 weights (U8U8), for CPUs without VNNI where U8S8 may saturate; it was no faster
#   than fp32 on the VNNI CPU this was measured on.
QUANTIZATION_WEIGHTS: dict[str, str] = {"avx512_vnni": "qint8", "avx2": "quint8"}
DEFAULT_QUANTIZATION: QuantizationConfig = "avx512_vnni"

# Weight files the export does not need: the graph carries the weights.
_WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt", ".onnx", ".onnx_data"}
_SKIPPED_DIRS = {ONNX_SUBDIR, "openvino", ".git"}
# An fp32 export must reproduce the torch model to rounding error: it shares its embedding space.
MIN_FP32_COSINE = 0.9999
_CHECK_TEXTS = (
    "How often should a sourdough starter be fed?",
    "Lighthouse keepers logged the weather every four hours, through the night.",
    "Short.",
)


class OnnxExportError(RuntimeError):
    """An ONNX export that is missing, stale or not made by ``hyperion export-onnx``."""


def require_onnx_packages(*modules: str) -> None:
    """The onnx backend's packages are an extra of the project, not part of every install."""
    import importlib.util

    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    if missing:
        raise OnnxExportError(
            f"the onnx embedding backend needs {', '.join(missing)}: pip install 'hyperion_pipelines[onnx]'"
        )


def quantized_file_name(config: str) -> str:
    """sentence-transformers' name for a dynamically quantised file, e.g. ``model_qint8_avx512_vnni.onnx``."""
    return f"model_{QUANTIZATION_WEIGHTS[config]}_{config}.onnx"


def default_export_dir(exports_root: Path, model_dir: Path) -> Path:
    """The export folder of ``model_dir`` under ``exports_root``, named after the model's digest,
    so a model changed in place never finds the export of its former self."""
    name = "all-MiniLM-L6-v2" if model_dir == packaged_model_dir() else model_dir.name
    return exports_root / f"{name}-{model_digest(model_dir)}-onnx"


@dataclass(frozen=True)
class OnnxExport:
    """An export folder and the manifest that describes it."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def source_model(self) -> str:
        """The source model's identity name (``name@digest``), shared by its fp32 export."""
        return str(self.manifest["source_model"])

    def file(self, name: str) -> Path:
        return self.folder / ONNX_SUBDIR / name

    def quantization(self, name: str) -> str | None:
        return self.manifest["files"][name]["quantization"]

    def verified_digest(self, name: str) -> str:
        """The file's digest, checked against the manifest (a replaced file is refused)."""
        entry = self.manifest["files"].get(name)
        path = self.file(name)
        if entry is None or not path.is_file():
            listed = ", ".join(sorted(self.manifest["files"])) or "none"
            raise OnnxExportError(
                f"{self.folder} has no ONNX file {name!r} (it has: {listed}). "
                f"Run 'hyperion export-onnx{_quantize_flag(name)}' to make it."
            )
        digest = file_digest(path)
        if digest != entry["digest"]:
            raise OnnxExportError(
                f"{path} is not the file 'hyperion export-onnx' wrote (digest {digest}, expected "
                f"{entry['digest']}). Run 'hyperion export-onnx --force{_quantize_flag(name)}' to export it again."
            )
        return digest


def _quantize_flag(file_name: str) -> str:
    for config in QUANTIZATION_WEIGHTS:
        if file_name == quantized_file_name(config):
            suffix = "" if config == DEFAULT_QUANTIZATION else f" --quantize-config {config}"
            return f" --quantize int8{suffix}"
    return ""


def read_export(folder: Path) -> OnnxExport | None:
    """The export in ``folder``, or None where there is none."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != MANIFEST_FORMAT:
        raise OnnxExportError(f"{path}: unknown export format; run 'hyperion export-onnx --force'")
    return OnnxExport(folder, manifest)


def find_export(model_dir: Path, exports_root: Path, onnx_file: str) -> OnnxExport:
    """The export the embedder loads: ``model_dir`` itself when it is one (``--out`` elsewhere and
    ``model_path`` pointed at it), else the default export of ``model_dir`` under ``exports_root``."""
    export = read_export(model_dir)
    if export is None:
        folder = default_export_dir(exports_root, model_dir)
        export = read_export(folder)
        if export is None:
            raise OnnxExportError(
                f"no ONNX export of {model_name(model_dir)} in {folder}: the onnx backend runs an export "
                f"made beforehand, never one made during a run. Run 'hyperion export-onnx{_quantize_flag(onnx_file)}'"
                + ("" if model_dir == packaged_model_dir() else f" --model {model_dir}")
                + " (offline, a few seconds), or set the embedding backend to torch."
            )
        if export.manifest["source_digest"] != model_digest(model_dir):
            raise OnnxExportError(f"{folder} was exported from another model; run 'hyperion export-onnx --force'")
    export.verified_digest(onnx_file)
    return export


# --- exporting (imports torch, sentence-transformers and ONNX Runtime's tools) -----------------


def update_export(
    model_dir: Path, out_dir: Path, quantize: Sequence[str], *, force: bool = False
) -> tuple[OnnxExport, bool]:
    """The export of ``model_dir`` in ``out_dir`` holding the fp32 file and the ``quantize`` presets'
    files, made unless it already holds them; and whether it was made. Int8 files already there
    are kept (the export replaces the folder whole)."""
    wanted = [FP32_FILE, *(quantized_file_name(config) for config in quantize)]
    existing = read_export(out_dir)
    if (
        existing is not None
        and not force
        and existing.manifest["source_digest"] == model_digest(model_dir)
        and all(name in existing.manifest["files"] for name in wanted)
    ):
        return existing, False  # exporting again would write the same files
    kept = [] if existing is None else [q for q in map(existing.quantization, existing.manifest["files"]) if q]
    return export_onnx(model_dir, out_dir, quantize=sorted({*quantize, *kept})), True


def export_on_first_use(model_dir: Path, exports_root: Path, quantize: str = DEFAULT_QUANTIZATION) -> OnnxExport:
    """The default export of ``model_dir`` under ``exports_root`` with the ``quantize`` preset's
    file, made now if it is missing. Processes starting together (a run's steps, Celery workers
    sharing a volume) take a lock file: one exports, the others wait for it and read its export."""
    folder = default_export_dir(exports_root, model_dir)
    export = read_export(folder)
    if (
        export is not None
        and export.manifest["source_digest"] == model_digest(model_dir)
        and quantized_file_name(quantize) in export.manifest["files"]
    ):
        return export
    exports_root.mkdir(parents=True, exist_ok=True)
    with _exclusive(exports_root / f".{folder.name}.lock"):
        export, _ = update_export(model_dir, folder, [quantize])
    return export


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def export_onnx(model_dir: Path, out_dir: Path, *, quantize: Sequence[str] = ()) -> OnnxExport:
    """Export ``model_dir`` to ``out_dir`` (replaced whole): fp32, plus one int8 file per preset
    (see :data:`QUANTIZATION_WEIGHTS`).

    The folder is written beside ``out_dir`` and renamed into place, so a half-written export is
    never found by a pipeline.
    """
    unknown = sorted(set(quantize) - set(QUANTIZATION_WEIGHTS))
    if unknown:
        raise ValueError(f"unknown quantisation preset(s) {unknown}; choose from {sorted(QUANTIZATION_WEIGHTS)}")
    require_onnx_packages("onnx", "onnxruntime")
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as scratch:
        staging = Path(scratch) / "export"
        _copy_model_files(model_dir, staging)
        fp32 = staging / ONNX_SUBDIR / FP32_FILE
        cosine = _export_fp32(model_dir, fp32)
        files: dict[str, dict[str, Any]] = {FP32_FILE: {"digest": file_digest(fp32), "quantization": None}}
        for config in quantize:
            target = fp32.with_name(quantized_file_name(config))
            _quantize(fp32, target, config)
            files[target.name] = {"digest": file_digest(target), "quantization": config}
        manifest = _manifest(model_dir, files, cosine)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    return OnnxExport(out_dir, manifest)


def _copy_model_files(model_dir: Path, target: Path) -> None:
    """Configuration, tokenizer and module folders (pooling, normalisation), not the weights."""
    for path in sorted(model_dir.rglob("*")):
        relative = path.relative_to(model_dir)
        if not path.is_file() or relative.parts[0] in _SKIPPED_DIRS or path.suffix in _WEIGHT_SUFFIXES:
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / relative)
    (target / ONNX_SUBDIR).mkdir(parents=True, exist_ok=True)


def _load_torch_model(model_dir: Path) -> Any:
    from hyperion_pipelines.embedding.sentence_transformer import offline

    offline()
    from sentence_transformers import SentenceTransformer

    # Eager attention exports the plain BERT attention graph; the SDPA path of transformers 5 adds
    # NaN guards (IsNaN/Where per layer) and ran about 20 % slower under ONNX Runtime.
    return SentenceTransformer(
        str(model_dir), device="cpu", local_files_only=True, model_kwargs={"attn_implementation": "eager"}
    ).eval()


def _export_fp32(model_dir: Path, target: Path) -> float:
    """Trace the model into ``target``; returns the lowest cosine between its and torch's vectors."""
    import torch

    model = _load_torch_model(model_dir)
    # Two texts of different lengths, so the traced graph pads and masks (a batch without padding
    # could let transformers skip the mask while tracing).
    features = model.preprocess(["a short text", "a longer text, so that the first one is padded"])
    names = [name for name, value in features.items() if isinstance(value, torch.Tensor)]
    wrapper = _sentence_embedding_module(model, names, {k: v for k, v in features.items() if k not in names})
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"sentence_embedding": {0: "batch"}}
    with torch.inference_mode(), warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs
        # onnxscript on top; tracer warnings are about constants that hold for every input here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            tuple(features[name] for name in names),
            str(target),
            input_names=names,
            output_names=["sentence_embedding"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    return _check_against_torch(model, target)


def _sentence_embedding_module(model: Any, names: list[str], constants: dict[str, Any]) -> Any:
    """A torch module calling the whole sentence-transformers model on positional tensors, the way
    the exporter calls it (defined here because torch is imported only to export)."""
    import torch

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model({**dict(zip(names, tensors, strict=True)), **constants})["sentence_embedding"]

    return SentenceEmbedding().eval()


def _check_against_torch(model: Any, onnx_path: Path) -> float:
    """Refuse an export that does not reproduce the torch model (it would share its space)."""
    import numpy as np

    from hyperion_pipelines.embedding.sentence_transformer import OnnxSentenceEncoder

    folder = onnx_path.parent.parent
    encoder = OnnxSentenceEncoder(folder, onnx_path.name, plan=(1, 0))  # five texts: one session
    exported = encoder.encode(list(_CHECK_TEXTS), batch_size=len(_CHECK_TEXTS))
    reference = model.encode(list(_CHECK_TEXTS), normalize_embeddings=True, convert_to_numpy=True)
    cosine = float(np.min(np.sum(exported * reference, axis=1)))
    if cosine < MIN_FP32_COSINE:
        raise OnnxExportError(f"the ONNX export differs from the torch model (cosine {cosine:.6f}); not written")
    return cosine


def _quantize(source: Path, target: Path, config: str) -> None:
    """Dynamic int8 quantisation with the preset's weight type (see :data:`QUANTIZATION_WEIGHTS`).

    Only MatMuls with constant weights are quantised (ONNX Runtime's default): quantising the
    attention products too was slower and lost more accuracy in our measurements.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # quantize_dynamic advises shape pre-processing on the root logger: that is for static
    # quantisation of vision models, and would read as a problem in a run's log.
    logging.getLogger().addFilter(_quiet_preprocessing_advice)
    weight_type = QuantType.QInt8 if QUANTIZATION_WEIGHTS[config] == "qint8" else QuantType.QUInt8
    quantize_dynamic(
        source,
        target,
        per_channel=True,
        reduce_range=False,
        weight_type=weight_type,
        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
    )


def _quiet_preprocessing_advice(record: logging.LogRecord) -> bool:
    return "pre-processing before quantization" not in record.getMessage()


def _manifest(model_dir: Path, files: dict[str, dict[str, Any]], cosine: float) -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "format": MANIFEST_FORMAT,
        "source_model": model_name(model_dir),
        "source_digest": model_digest(model_dir),
        "source_path": str(model_dir),
        "files": files,
        "fp32_min_cosine_vs_torch": round(cosine, 7),
        "exported_with": {
            package: version(package) for package in ("torch", "sentence-transformers", "transformers", "onnxruntime")
        }
        | {"opset": OPSET},
    }
