"""torch -> ONNX: the whole sentence-transformers pipeline as one graph, then ONNX Runtime's fusions.

The graph takes the tokenizer's arrays (``input_ids``, ``attention_mask``, and ``token_type_ids``
when the tokenizer gives them) with dynamic batch and sequence axes and returns the pooled (and
normalised, and projected, as the model's module list says) ``sentence_embedding``. It is written
by ``torch.onnx.export`` (the TorchScript exporter, whose graphs ONNX Runtime's transformer
optimizer knows how to fuse; attention exported in transformers' eager form) and then, for BERT-like
encoders, passed through ``onnxruntime.transformers.optimizer`` (attention, embedding + LayerNorm,
GELU fusions).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from polyir.errors import PolyirError

if TYPE_CHECKING:
    from polyir.models.encoder import Encoder

OPSET = 17
OUTPUT_NAME = "sentence_embedding"
# transformers model types whose graphs onnxruntime's optimizer fuses as "bert"
_BERT_LIKE = {"bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra", "mpnet"}


def _wrapper(encoder: Encoder, names: list[str]):
    import torch

    class SentenceEmbedding(torch.nn.Module):
        """Token arrays (positional, in ``names`` order) -> the sentence-transformers embedding."""

        def __init__(self) -> None:
            super().__init__()
            self.st = encoder.st

        def forward(self, *arrays):
            return self.st(dict(zip(names, arrays)))[OUTPUT_NAME]

    return SentenceEmbedding().eval()


def export_onnx(encoder: Encoder, path: Path, *, opset: int = OPSET) -> list[str]:
    """Write ``encoder``'s embedding graph to ``path``; returns the graph's input names."""
    import torch

    sample = encoder.tokenize(["a short text", "a somewhat longer text to give the sample two lengths"], "passage")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    names += [n for n in sample if n not in names]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes[OUTPUT_NAME] = {0: "batch"}
    model = _wrapper(encoder, names)
    was_device = encoder.device
    restore = _eager_attention(encoder)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            torch.onnx.export(
                model,
                tuple(sample[n].cpu() for n in names),
                str(path),
                input_names=names,
                output_names=[OUTPUT_NAME],
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as exc:  # the exporter raises many types; name the model and the reason
        raise PolyirError(f"torch.onnx could not export {encoder.spec} ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from exc
    finally:
        restore()
        encoder.st.to(was_device)
    return names


def _eager_attention(encoder: Encoder):
    """Switch the model to transformers' eager attention for the export; returns the undo.

    The eager graph (matmul, scale, mask, softmax, matmul) is the pattern onnxruntime's optimizer
    fuses into one ``Attention`` op (and, with it, EmbedLayerNormalization); the SDPA graph is not.
    Both compute the same function."""
    model = getattr(encoder, "transformer", None)
    setter = getattr(model, "set_attn_implementation", None)
    before = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if setter is None or before in (None, "eager"):
        return lambda: None
    try:
        setter("eager")
    except (ValueError, ImportError):  # a model without an eager path: export what it has
        return lambda: None
    return lambda: setter(before)


def fusable(encoder: Encoder) -> bool:
    """True for encoders whose graph onnxruntime's transformer optimizer fuses as BERT."""
    config = getattr(encoder.transformer, "config", None)
    return getattr(config, "model_type", None) in _BERT_LIKE


def optimize_onnx(source: Path, target: Path, encoder: Encoder) -> dict[str, int]:
    """Fuse attention / LayerNorm / GELU with onnxruntime's transformer optimizer; returns the fused-op counts."""
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    config = encoder.transformer.config
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
        model = optimizer.optimize_model(
            str(source),
            model_type="bert",
            num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
            hidden_size=int(getattr(config, "hidden_size", 0) or 0),
            optimization_options=FusionOptions("bert"),
            opt_level=0,  # offline fusions only; the session applies its own level when it loads
        )
        model.save_model_to_file(str(target))
    stats = model.get_fused_operator_statistics()
    return {k: int(v) for k, v in stats.items() if v}
