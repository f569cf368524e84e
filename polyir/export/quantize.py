"""int8 weights for an ONNX graph: ONNX Runtime's dynamic quantization, one scale per output channel.

Why per channel: polyir's packaged e5 weights were decoded from 4-bit blocks, so a weight matrix
mixes blocks of very different ranges; one scale per tensor (torch's ``quantize_dynamic``) lost up
to .11 mAP, while one scale per output column keeps each column's own range. Only MatMul weights
are quantized (the encoder's compute); the word-embedding table stays float32 (a Gather costs
nothing, and its rows are what the whole model reads). Activations are quantized per batch at run
time (uint8), which the CPU's int8 units (VNNI) execute.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from polyir.errors import PolyirError

QUANT_OPS = ["MatMul", "Attention"]


def quantize_int8(source: Path, target: Path, *, per_channel: bool = True) -> dict[str, object]:
    """Write ``source`` with int8 weights to ``target``; returns the options used (for the manifest)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    options = {"method": "onnxruntime dynamic", "weights": "int8 (symmetric)", "activations": "uint8, per batch",
               "per_channel": per_channel, "ops": QUANT_OPS}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger("onnxruntime").setLevel(logging.ERROR)
            quantize_dynamic(
                str(source),
                str(target),
                op_types_to_quantize=QUANT_OPS,
                per_channel=per_channel,
                reduce_range=False,
                weight_type=QuantType.QInt8,
                # fused ops come from the com.microsoft domain, where shape inference gives no type
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    except Exception as exc:  # onnxruntime raises plain RuntimeError / ValueError
        raise PolyirError(f"int8 quantization of {source.name} failed ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from exc
    return options
