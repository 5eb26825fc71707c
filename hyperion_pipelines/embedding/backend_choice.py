"""The ``auto`` embedding backend: the fastest local backend this host runs, chosen once per process.

On a CPU the int8 ONNX export of the model ran 3.03x as fast as torch with nDCG@10 unchanged
(+0.02 %, ``benchmarks/embedding_backends.py``, docs/benchmarks.md), so ``auto`` takes it wherever
ONNX Runtime is installed (the ``onnx`` extra) and no GPU is present, exporting the model on
first use (offline, from the model folder; about 5 seconds for all-MiniLM-L6-v2). Everywhere else,
and whenever the export fails, it runs torch and says why in the log: a pipeline never stops
because a faster backend is unavailable.

The int8 vectors are an embedding space of their own (the identity names the int8 file's digest),
so an index built by torch is never mixed with int8 vectors: a host that resolves differently
builds a collection of its own, and ``hyperion reindex`` moves an index from one to the other.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hyperion_pipelines.embedding.onnx_export import (
    DEFAULT_QUANTIZATION,
    FP32_FILE,
    export_on_first_use,
    quantized_file_name,
    read_export,
)

_log = logging.getLogger(__name__)

AUTO_ONNX_FILE = quantized_file_name(DEFAULT_QUANTIZATION)


@dataclass(frozen=True)
class BackendChoice:
    """What a backend setting resolved to on this host, and why (shown in the run's log)."""

    backend: Literal["torch", "onnx"]
    onnx_file: str
    reason: str


def choose_backend(model_dir: Path, exports_root: Path, device: str) -> BackendChoice:
    """The backend ``auto`` runs for ``model_dir`` on this host (see the module's docstring)."""
    if device not in ("auto", "cpu"):
        return BackendChoice("torch", FP32_FILE, f"torch on {device} (ONNX Runtime runs here on the CPU only)")
    if device == "auto" and _gpu_available():
        return BackendChoice("torch", FP32_FILE, "torch on the GPU")
    if importlib.util.find_spec("onnxruntime") is None:
        return BackendChoice(
            "torch",
            FP32_FILE,
            "torch: ONNX Runtime is not installed (pip install 'hyperion_pipelines[onnx]' for the int8 "
            "backend, about 3x as fast on a CPU)",
        )
    own = read_export(model_dir)
    if own is not None:  # the model path names an export folder: run its int8 file if it has one
        onnx_file = AUTO_ONNX_FILE if AUTO_ONNX_FILE in own.manifest["files"] else FP32_FILE
        return BackendChoice("onnx", onnx_file, f"onnx {onnx_file} of the export {model_dir}")
    try:
        export = export_on_first_use(model_dir, exports_root)
    except Exception as error:  # noqa: BLE001 - any failure to export falls back to torch, said in the log
        reason = f"torch: the int8 ONNX export into {exports_root} failed ({type(error).__name__}: {error})"
        _log.warning("embedding backend %s", reason)
        return BackendChoice("torch", FP32_FILE, reason)
    return BackendChoice("onnx", AUTO_ONNX_FILE, f"onnx int8 ({AUTO_ONNX_FILE} of {export.folder})")


def _gpu_available() -> bool:
    """A CUDA GPU torch can use. Importing torch takes seconds, so it is asked only where an NVIDIA
    device node exists."""
    if not Path("/dev/nvidiactl").exists():
        return False
    import torch

    return bool(torch.cuda.is_available())
