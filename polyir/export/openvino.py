"""ONNX -> OpenVINO IR (``model.xml`` + ``model.bin``) with OpenVINO's own tools.

The fp32 ONNX graph is read by ``openvino.convert_model`` and saved uncompressed
(``compress_to_fp16=False``: weights stay as exported, so an fp32 export matches torch). int8 is
OpenVINO's own: NNCF's data-free weight compression (``nncf.compress_weights``, symmetric int8, one
scale per output channel) on the converted model, or, given calibration texts, NNCF's static
post-training quantization (int8 activations too, their scales fixed at export: faster, and a text's
vector still does not depend on its batch). ONNX Runtime's quantized graph is not fed to
OpenVINO: its quantized com.microsoft ops do not convert. OpenVINO is optional:
``pip install openvino nncf``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from polyir.errors import PolyirError

XML_FILE = "model.xml"


def have_openvino() -> bool:
    """True when the openvino package can be imported."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def require_openvino() -> None:
    """Fail early (before any export work) when openvino is not installed."""
    if not have_openvino():
        raise PolyirError("--backend openvino needs the openvino package: pip install openvino (or use --backend onnx)")


def require_nncf() -> None:
    """Fail early when OpenVINO's int8 tool (NNCF) is not installed."""
    try:
        import nncf  # noqa: F401
    except ImportError:
        raise PolyirError("--backend openvino --quantize int8 needs NNCF, OpenVINO's compression tool: "
                          "pip install nncf") from None


INT8_OPTIONS = {"method": "nncf weight compression (data-free)", "weights": "int8 (symmetric)",
                "activations": "fp32 (run-time activation quantization is off: vectors do not depend on the batch)",
                "per_channel": True}


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else "no detail"


SMOOTH_QUANT_ALPHA = 0.95  # NNCF's own default for transformer MatMuls; -1 turns SmoothQuant off


def check_smooth_quant_alpha(alpha: float) -> None:
    """SmoothQuant's migration strength is in [0, 1] (-1: off); anything else is refused before any work."""
    if not (alpha == -1 or 0 <= alpha <= 1):
        raise PolyirError(f"--smooth-quant-alpha must be in [0, 1], or -1 to turn SmoothQuant off, not {alpha!r}")


INT8_STATIC_OPTIONS = {"method": "nncf post-training quantization (static, calibrated)",
                       "weights": "int8 (symmetric)", "activations": "int8 (scales fixed from the calibration texts)",
                       "per_channel": True}


def onnx_to_openvino(onnx_path: Path, folder: Path, *, int8: bool = False,
                     calibration: Sequence[dict[str, np.ndarray]] | None = None,
                     smooth_quant_alpha: float = SMOOTH_QUANT_ALPHA) -> str:
    """Convert ``onnx_path`` into ``folder/model.xml`` (+ .bin), with int8 weights on request (and
    int8 activations with scales fixed from ``calibration``, graph inputs per text; SmoothQuant moves
    ``smooth_quant_alpha`` of each MatMul input's outlier range into its weights first); returns the
    xml file's name."""
    require_openvino()
    import openvino as ov

    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as exc:  # OpenVINO raises RuntimeError / OpConversionFailure
        raise PolyirError(f"OpenVINO could not convert {onnx_path.name} ({type(exc).__name__}: "
                          f"{_first_line(exc)})") from exc
    if int8:
        require_nncf()
        import nncf

        try:
            if calibration:
                from nncf.quantization.advanced_parameters import (
                    AdvancedQuantizationParameters,
                    AdvancedSmoothQuantParameters,
                )

                advanced = AdvancedQuantizationParameters(
                    smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=smooth_quant_alpha))
                model = nncf.quantize(model, nncf.Dataset(list(calibration)), model_type=nncf.ModelType.TRANSFORMER,
                                      subset_size=len(calibration), advanced_parameters=advanced)
            else:
                model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_SYM)
        except Exception as exc:  # NNCF raises its own errors or RuntimeError
            raise PolyirError(f"NNCF could not compress {onnx_path.name} to int8 ({type(exc).__name__}: "
                              f"{_first_line(exc)})") from exc
    ov.save_model(model, str(folder / XML_FILE), compress_to_fp16=False)
    return XML_FILE
