"""ONNX -> OpenVINO IR (``model.xml`` + ``model.bin``) with OpenVINO's own converter.

The ONNX graph (fp32, or int8 from :mod:`polyir.export.quantize`) is read by ``openvino.convert_model``
and saved uncompressed (``compress_to_fp16=False``: weights stay as exported, so an fp32 export
matches torch). OpenVINO is optional: ``pip install openvino``.
"""

from __future__ import annotations

from pathlib import Path

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


def onnx_to_openvino(onnx_path: Path, folder: Path) -> str:
    """Convert ``onnx_path`` into ``folder/model.xml`` (+ .bin); returns the xml file's name."""
    require_openvino()
    import openvino as ov

    try:
        model = ov.convert_model(str(onnx_path))
        ov.save_model(model, str(folder / XML_FILE), compress_to_fp16=False)
    except Exception as exc:  # OpenVINO raises RuntimeError / OpConversionFailure
        raise PolyirError(f"OpenVINO could not convert {onnx_path.name} ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from exc
    return XML_FILE
