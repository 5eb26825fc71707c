"""``hyperion export-onnx``: export the local model to ONNX (optionally int8) for the onnx embedding backend."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from hyperion_pipelines.cli.common import CommandError
from hyperion_pipelines.settings import Settings

if TYPE_CHECKING:  # the export module loads only when export-onnx runs
    from hyperion_pipelines.embedding.onnx_export import OnnxExport


def cmd_export_onnx(args: argparse.Namespace) -> int:
    """Export the model to ONNX (and int8) for the onnx embedding backend, offline, once."""
    from hyperion_pipelines.embedding.onnx_export import FP32_FILE, default_export_dir, quantized_file_name
    from hyperion_pipelines.embedding.sentence_transformer import packaged_model_dir

    settings = Settings.from_env()
    model = Path(args.model or settings.embedding_model_path or packaged_model_dir()).expanduser().resolve()
    if not (model / "modules.json").is_file():
        raise CommandError(f"{model} is not a sentence-transformers model folder (no modules.json)")
    out = Path(args.out).expanduser().resolve() if args.out else default_export_dir(settings.models_dir, model)
    quantize = [args.quantize_config] if args.quantize else []
    export, made = _export_onnx(model, out, quantize, force=args.force)
    files = sorted(export.manifest["files"])
    if args.json:
        print(json.dumps({"folder": str(export.folder), "files": files, "exported": made}))
        return 0
    print(f"{'Exported' if made else 'Already exported (--force redoes it)'}: {export.folder}")
    for name in files:
        quantization = export.quantization(name)
        print(f"  onnx/{name}  {'fp32' if quantization is None else 'int8, ' + quantization + ' preset'}")
    chosen = quantized_file_name(quantize[0]) if quantize else FP32_FILE
    setting = "onnx" if chosen == FP32_FILE else f"onnx:{chosen}"
    where = "" if args.out is None else f" and the pipeline's model_path (or HYPERION_EMBEDDING_MODEL_PATH) to {out}"
    print(f"Use it: HYPERION_EMBEDDING_BACKEND={setting}{where}, or in a pipeline's defs.yaml")
    print(f"  embedding: {{kind: local, backend: onnx, onnx_file: {chosen}}}")
    return 0


def _export_onnx(model: Path, out: Path, quantize: list[str], *, force: bool) -> tuple[OnnxExport, bool]:
    """The export in ``out``, made unless it already holds the wanted files; and whether it was made."""
    from hyperion_pipelines.embedding.onnx_export import OnnxExportError, update_export

    try:
        return update_export(model, out, quantize, force=force)
    except OnnxExportError as exc:
        raise CommandError(str(exc)) from None
