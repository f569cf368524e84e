"""Export a polyir model to a fast inference runtime (ONNX Runtime, OpenVINO), optionally int8.

``export_model`` writes a folder that :func:`polyir.models.resolve.load_encoder` loads as an
:class:`polyir.models.onnx_encoder.ExportedEncoder`, so ``evaluate``, ``index``, ``search`` and
``serve`` run it like any model.
"""

from polyir.export.run import ExportResult, export_model

__all__ = ["ExportResult", "export_model"]
