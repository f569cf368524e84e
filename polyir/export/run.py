"""``export_model``: write an exported folder, check it against torch, record what was done.

Steps: torch -> ONNX (:mod:`polyir.export.graph`), fusions for BERT-like encoders, then for ONNX
Runtime int8 weights per channel on request (:mod:`polyir.export.quantize`), or for OpenVINO its
conversion with, on request, NNCF's int8 weights (:mod:`polyir.export.openvino`); the tokenizer, then ``polyir_export.json`` (written last: a folder
without it is not an export). The folder is built beside ``output`` and swapped in only when the
exported model loads and its vectors agree with torch's on a fixed multilingual sample: an fp32
export must match within ``FP32_TOLERANCE`` (max abs difference), an int8 export's agreement is
measured and recorded.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polyir.errors import PolyirError
from polyir.export.calibration import CalibrationSet
from polyir.models.encoder import Encoder
from polyir.models.onnx_encoder import BACKENDS, EXPORT_FILE, EXPORT_FORMAT, file_sha256, load_exported

QUANTIZE = (None, "int8")
FP32_TOLERANCE = 1e-4
ONNX_FILE = "model.onnx"
CHECK_TEXTS = [
    "Who was the first emperor of Rome?",
    "Augustus was the first Roman emperor, reigning from 27 BC until his death in AD 14.",
    "Wer war der erste Kaiser von Rom?",
    "¿Cuál es la capital de Australia? Canberra, no Sídney.",
    "Столица России — Москва.",
    "北京是中华人民共和国的首都。",
    "ما هي عاصمة مصر؟",
    "भारत की राजधानी नई दिल्ली है।",
    "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย",
    "Türkiye'nin başkenti Ankara'dır.",
    "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "Hà Nội là thủ đô của Việt Nam.",
    "ok",
]


@dataclass(frozen=True)
class ExportResult:
    """Where the export went and how close it is to torch on the check sample."""

    path: Path
    backend: str
    quantize: str | None
    max_abs_diff: float
    min_cosine: float
    seconds: float
    fused: dict[str, int]


def check_export_options(backend: str, quantize: str | None, per_channel: bool = True,
                         calibrate: bool = False, smooth_quant_alpha: float | None = None) -> None:
    """Refuse an unknown backend or quantization, or a combination no tool makes, before any work."""
    if calibrate and (backend != "openvino" or quantize != "int8"):
        raise PolyirError("--calibrate (static int8 activations) needs --backend openvino --quantize int8")
    if smooth_quant_alpha is not None:
        from polyir.export.openvino import check_smooth_quant_alpha

        if not calibrate:
            raise PolyirError("--smooth-quant-alpha applies to static int8 only (--backend openvino --quantize int8 --calibrate)")
        check_smooth_quant_alpha(smooth_quant_alpha)
    if backend not in BACKENDS:
        raise PolyirError(f"unknown --backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if quantize not in QUANTIZE:
        raise PolyirError(f"unknown --quantize {quantize!r}; the only option is int8 (omit it for fp32)")
    if backend == "openvino":
        from polyir.export.openvino import require_nncf, require_openvino

        require_openvino()
        if quantize == "int8":
            require_nncf()
        if not per_channel:
            raise PolyirError("--per-tensor applies to --backend onnx only; OpenVINO's int8 weights (NNCF) "
                              "have one scale per output channel")


def agreement(reference: np.ndarray, exported: np.ndarray) -> tuple[float, float]:
    """(max abs difference, min cosine similarity) between two sets of row vectors."""
    diff = float(np.abs(reference - exported).max()) if reference.size else 0.0
    num = (reference * exported).sum(axis=1)
    den = np.linalg.norm(reference, axis=1) * np.linalg.norm(exported, axis=1)
    cos = float((num / np.maximum(den, 1e-12)).min()) if reference.size else 1.0
    return diff, cos


def export_model(
    encoder: Encoder,
    output: Path | str,
    *,
    backend: str = "onnx",
    quantize: str | None = None,
    per_channel: bool = True,
    optimize: bool = True,
    overwrite: bool = False,
    check_texts: list[str] | None = None,
    calibration: CalibrationSet | None = None,
    smooth_quant_alpha: float | None = None,
) -> ExportResult:
    """Export ``encoder`` to ``output`` (an exported folder any polyir command can load as a model);
    with ``calibration`` (OpenVINO int8 only) activations are int8 too, their scales fixed from it
    (``smooth_quant_alpha``: SmoothQuant's strength there, default ``SMOOTH_QUANT_ALPHA``)."""
    from polyir.atomic import atomic_folder, write_json
    from polyir.export.graph import OPSET, export_onnx, fusable, optimize_onnx
    from polyir.runinfo import versions

    check_export_options(backend, quantize, per_channel, calibrate=calibration is not None,
                         smooth_quant_alpha=smooth_quant_alpha)
    if getattr(encoder, "centering", None) is not None:
        raise PolyirError(
            f"{encoder.spec} centres each text by its language's mean, which needs the text's language at "
            "encoding time; export a model de-biased with --method subspace instead"
        )
    if not len(encoder.st):
        raise PolyirError(f"{encoder.spec} is already an exported model; export its source model")
    texts = list(check_texts or CHECK_TEXTS)
    start = time.perf_counter()
    with atomic_folder(output, overwrite=overwrite, marker=EXPORT_FILE) as staging, \
            tempfile.TemporaryDirectory(prefix="polyir-export-") as tmp_name:
        tmp = Path(tmp_name)
        raw = tmp / "raw.onnx"
        names = export_onnx(encoder, raw)
        fused: dict[str, int] = {}
        graph = raw
        if optimize and fusable(encoder):
            graph = tmp / "fused.onnx"
            fused = optimize_onnx(raw, graph, encoder)
        quant_info: dict[str, Any] | None = None
        if backend == "onnx":
            if quantize == "int8":
                from polyir.export.quantize import quantize_int8

                quantized = tmp / "int8.onnx"
                quant_info = quantize_int8(graph, quantized, per_channel=per_channel)
                graph = quantized
            shutil.move(str(graph), staging / ONNX_FILE)
            model_file = ONNX_FILE
        else:
            from polyir.export.openvino import INT8_OPTIONS, INT8_STATIC_OPTIONS, SMOOTH_QUANT_ALPHA, onnx_to_openvino

            alpha = SMOOTH_QUANT_ALPHA if smooth_quant_alpha is None else smooth_quant_alpha
            feeds = _calibration_feeds(encoder, calibration, names) if calibration is not None else None
            model_file = onnx_to_openvino(graph, staging, int8=quantize == "int8", calibration=feeds,
                                          smooth_quant_alpha=alpha)
            if quantize == "int8":
                quant_info = dict(INT8_STATIC_OPTIONS, calibration=calibration.describe(), smooth_quant_alpha=alpha) \
                    if calibration is not None else dict(INT8_OPTIONS)
        encoder.tokenizer.save_pretrained(str(staging))
        info: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "backend": backend,
            "quantize": quantize,
            "quantization": quant_info,
            "model_file": model_file,
            "sha256": file_sha256(staging / model_file),
            "inputs": names,
            "output": "sentence_embedding",
            "dim": encoder.dim,
            "settings": asdict(encoder.settings),
            "source": {"spec": encoder.spec, "fingerprint": encoder.fingerprint()},
            "exporter": {"tool": "torch.onnx.export (TorchScript)", "opset": OPSET, "fused": fused},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": versions(),
        }
        write_json(staging / EXPORT_FILE, info)
        diff, cos = _check(encoder, load_exported(staging, spec=str(output)), texts, quantize)
        info["check"] = {"texts": len(texts), "max_abs_diff": diff, "min_cosine": cos,
                         "tolerance": FP32_TOLERANCE if quantize is None else None}
        write_json(staging / EXPORT_FILE, info)
    return ExportResult(Path(output), backend, quantize, diff, cos, round(time.perf_counter() - start, 2), fused)


def _calibration_feeds(encoder: Encoder, calibration: CalibrationSet, names: list[str]) -> list[dict[str, np.ndarray]]:
    """The graph's inputs for each calibration text alone (prefixed and truncated as the model encodes it)."""
    feeds = []
    for kind, texts in (("query", calibration.queries), ("passage", calibration.passages)):
        for text in texts:
            batch = encoder.tokenizer([encoder.settings.prefix(kind) + text], truncation=True,
                                      max_length=encoder.settings.max_length(kind), return_tensors="np")
            feeds.append({name: np.asarray(batch[name], dtype=np.int64) if name in batch
                          else np.zeros_like(np.asarray(batch["input_ids"], dtype=np.int64)) for name in names})
    return feeds


def _check(encoder: Encoder, exported: Encoder, texts: list[str], quantize: str | None) -> tuple[float, float]:
    """Compare both sides' vectors; an fp32 export beyond the tolerance is refused."""
    worst_diff, worst_cos = 0.0, 1.0
    for kind in ("query", "passage"):
        ref = encoder.encode(texts, kind, show_progress=False)  # type: ignore[arg-type]
        got = exported.encode(texts, kind, show_progress=False)  # type: ignore[arg-type]
        diff, cos = agreement(ref, got)
        worst_diff, worst_cos = max(worst_diff, diff), min(worst_cos, cos)
    if quantize is None and worst_diff > FP32_TOLERANCE:
        raise PolyirError(
            f"the exported graph's vectors differ from torch's by up to {worst_diff:.2e} (tolerance "
            f"{FP32_TOLERANCE:g}); export again with --no-optimize"
        )
    return worst_diff, worst_cos
