"""The Encoder: a sentence-transformers model with polyir's query/passage settings and fast encoding.

polyir keeps models in the sentence-transformers folder layout, so ``SentenceTransformer(path)`` loads
what polyir saves and polyir loads what sentence-transformers saves. The Encoder adds what retrieval
needs on top: separate query / passage prefixes and max lengths, length-sorted batched encoding with a
progress bar, device selection and reduced-precision modes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

Kind = Literal["query", "passage"]
Precision = Literal["fp32", "bf16", "fp16", "int8"]
Pooling = Literal["mean", "cls"]
SETTINGS_FILE = "polyir_encoder.json"


@dataclass(frozen=True)
class EncoderSettings:
    """How texts become vectors; saved next to the model as ``polyir_encoder.json``."""

    pooling: Pooling = "mean"
    normalize: bool = True
    query_prefix: str = ""
    passage_prefix: str = ""
    query_max_length: int = 128
    passage_max_length: int = 256
    extra: dict[str, str] = field(default_factory=dict)

    def prefix(self, kind: Kind) -> str:
        return self.query_prefix if kind == "query" else self.passage_prefix

    def max_length(self, kind: Kind) -> int:
        return self.query_max_length if kind == "query" else self.passage_max_length


def select_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; anything else is passed to torch."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def cpu_has_bf16() -> bool:
    """True when the CPU has bf16 matrix instructions (AMX or AVX-512 BF16), where bf16 autocast pays."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def inference_precision(precision: str, device: str | None = None) -> Precision:
    """The encoding precision a setting means (``auto``: bf16 on a CUDA GPU with bf16 or a CPU with bf16
    matrix units, where it is faster at no measurable cost; fp32 elsewhere, where bf16 is emulated and slow)."""
    if precision != "auto":
        return precision  # type: ignore[return-value]
    kind = select_device(device or "auto").type
    if kind == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if kind == "cpu" and cpu_has_bf16() else "fp32"


class Encoder:
    """Encode queries and passages with one multilingual model (sentence-transformers underneath)."""

    def __init__(self, st_model, settings: EncoderSettings, *, spec: str = "", device: str = "auto"):
        self.st = st_model
        self.settings = settings
        self.spec = spec
        self.device = select_device(device)
        self.st.to(self.device)
        self._int8 = None
        # Per-language centring (polyir.debias, method "center"): needs each text's language.
        self.centering = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_transformers(
        cls, path: str | Path, settings: EncoderSettings, *, spec: str = "", device: str = "auto"
    ) -> Encoder:
        """Wrap a plain transformers folder (or hub id) with pooling and normalisation."""
        from sentence_transformers import SentenceTransformer

        models = _st_modules()
        transformer = models.Transformer(str(path), max_seq_length=settings.passage_max_length)
        modules = [transformer, models.Pooling(transformer.get_embedding_dimension(), settings.pooling)]
        if settings.normalize:
            modules.append(models.Normalize())
        st = SentenceTransformer(
            modules=modules,
            device="cpu",
            prompts={"query": settings.query_prefix, "document": settings.passage_prefix,
                     "passage": settings.passage_prefix},
        )
        return cls(st, settings, spec=spec or str(path), device=device)

    @classmethod
    def from_sentence_transformers(
        cls, path: str | Path, settings: EncoderSettings | None = None, *, spec: str = "", device: str = "auto"
    ) -> Encoder:
        """Load a sentence-transformers folder (or hub id); polyir's settings file wins if present."""
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(path), device="cpu")
        if settings is None:
            settings = _settings_from_st(st, Path(path))
        return cls(st, settings, spec=spec or str(path), device=device)

    def without_centering(self) -> Encoder:
        """The same model without its per-language centring (shares the weights)."""
        enc = self.with_settings()
        enc.centering = None
        return enc

    def with_settings(self, **changes) -> Encoder:
        """The same model with some settings changed (shares the weights)."""
        enc = Encoder.__new__(Encoder)
        enc.__dict__.update(self.__dict__)
        enc.settings = replace(self.settings, **changes)
        return enc

    # ------------------------------------------------------------------ encoding
    @property
    def dim(self) -> int:
        return int(self.st.get_embedding_dimension())

    @property
    def transformer(self):
        """The underlying transformers model (for training, freezing, merging)."""
        return self.st[0].auto_model

    @property
    def tokenizer(self):
        return self.st[0].tokenizer

    def tokenize(self, texts: Sequence[str], kind: Kind) -> dict[str, torch.Tensor]:
        """Prefix and tokenize texts for one side (query or passage) on this encoder's device."""
        prefix = self.settings.prefix(kind)
        batch = self.tokenizer(
            [prefix + t for t in texts],
            padding=True,
            truncation=True,
            max_length=self.settings.max_length(kind),
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    def embed(self, texts: Sequence[str], kind: Kind) -> torch.Tensor:
        """Embeddings as a tensor that keeps gradients (training path)."""
        features = self.tokenize(texts, kind)
        return self.st(features)["sentence_embedding"]

    def encode(
        self,
        texts: Sequence[str],
        kind: Kind,
        *,
        batch_size: int = 64,
        precision: Precision = "fp32",
        show_progress: bool = True,
        desc: str | None = None,
        languages: Sequence[str] | None = None,
    ) -> np.ndarray:
        """Encode texts to float32 numpy vectors, longest first so padding stays small.

        ``languages`` (one per text) is needed by a model that centres per language."""
        if self.centering is not None:
            if languages is None:
                from polyir.errors import PolyirError

                raise PolyirError(
                    f"{self.spec} centres each text by its language's mean, so it needs each text's language; "
                    "commands that cannot know it (index, search, serve) need a model de-biased with --method subspace"
                )
            raw = self.without_centering().encode(
                texts, kind, batch_size=batch_size, precision=precision, show_progress=show_progress, desc=desc
            )
            return self.centering.apply(raw, list(languages))
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        model = self._model_for(precision)
        prefix = self.settings.prefix(kind)
        lengths = self.tokenizer(
            [prefix + t for t in texts],
            truncation=True,
            max_length=self.settings.max_length(kind),
            return_length=True,
        )["length"]
        order = np.argsort(-np.asarray(lengths), kind="stable")
        was_training = self.st.training
        self.st.eval()
        bar = tqdm(
            total=len(texts), desc=desc or ("encode queries" if kind == "query" else "encode passages"), unit="text", disable=not show_progress
        )
        try:
            with torch.inference_mode(), self._autocast(precision):
                for start in range(0, len(texts), batch_size):
                    idx = order[start : start + batch_size]
                    features = self.tokenize([texts[i] for i in idx], kind)
                    emb = model(features)["sentence_embedding"]
                    out[idx] = emb.float().cpu().numpy()
                    bar.update(len(idx))
        finally:
            bar.close()
            self.st.train(was_training)
        return out

    def encode_queries(self, texts: Sequence[str], **kw) -> np.ndarray:
        return self.encode(texts, "query", **kw)

    def encode_passages(self, texts: Sequence[str], **kw) -> np.ndarray:
        return self.encode(texts, "passage", **kw)

    def _autocast(self, precision: Precision):
        if precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if precision == "fp16":
            if self.device.type == "cpu":
                raise ValueError("fp16 needs a GPU; on CPU use --precision bf16 or int8")
            return torch.autocast(self.device.type, dtype=torch.float16)
        return torch.autocast(self.device.type, enabled=False)

    def _model_for(self, precision: Precision):
        if precision != "int8":
            return self.st
        if self.device.type != "cpu":
            raise ValueError("int8 dynamic quantization runs on CPU only")
        if self._int8 is None:
            import copy
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._int8 = torch.ao.quantization.quantize_dynamic(
                    copy.deepcopy(self.st).eval(), {torch.nn.Linear}, dtype=torch.qint8
                )
        return self._int8

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write a sentence-transformers folder plus ``polyir_encoder.json``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.st[0].max_seq_length = self.settings.passage_max_length
        _set_task_lengths(self.st[0], self.settings)
        # MTEB / sentence-transformers name the passage side "document"; "passage" stays for older readers
        self.st.prompts = {
            "query": self.settings.query_prefix,
            "document": self.settings.passage_prefix,
            "passage": self.settings.passage_prefix,
        }
        self.st.save(str(path))
        (path / SETTINGS_FILE).write_text(
            json.dumps({**asdict(self.settings), "spec": self.spec}, indent=2), encoding="utf-8"
        )
        from polyir.models.card import write_saved_card

        write_saved_card(path, self)
        return path

    def fingerprint(self) -> str:
        """A short hash of the weights and settings, to tie caches and indexes to one model."""
        h = hashlib.sha256(json.dumps(asdict(self.settings), sort_keys=True).encode())
        for name, tensor in sorted(self.st.state_dict().items()):
            t = tensor.detach().float().cpu().contiguous()
            h.update(name.encode())
            h.update(str(tuple(t.shape)).encode())
            # A strided sample plus sums keeps this fast on 100M-parameter models.
            flat = t.reshape(-1)
            h.update(flat[:: max(1, flat.numel() // 4096)].numpy().tobytes())
            h.update(np.float64(flat.double().sum().item()).tobytes())
        if self.centering is not None:
            h.update(json.dumps(list(self.centering.languages)).encode())
            h.update(np.ascontiguousarray(self.centering.means, dtype=np.float64).tobytes())
        return h.hexdigest()[:16]


def _set_task_lengths(module, settings: EncoderSettings) -> None:
    """Give sentence-transformers (>= 6) the query / document lengths, so ``encode_query`` and
    ``encode_document`` on a plain ``SentenceTransformer(path)`` truncate as polyir does."""
    keys = getattr(module, "config_keys", ())
    if "query_length" in keys and "document_length" in keys:
        module.query_length = settings.query_max_length
        module.document_length = settings.passage_max_length


def _st_modules():
    """sentence-transformers' module classes (their import path moved in v6)."""
    try:
        from sentence_transformers.sentence_transformer import modules
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers import models as modules
    return modules


def _settings_from_st(st, path: Path) -> EncoderSettings:
    """Derive settings from a sentence-transformers model, or read polyir's own settings file."""
    settings_file = path / SETTINGS_FILE
    if settings_file.is_file():
        data = json.loads(settings_file.read_text(encoding="utf-8"))
        data.pop("spec", None)
        return EncoderSettings(**data)
    pooling: Pooling = "mean"
    normalize = False
    for module in st:
        mode = getattr(module, "pooling_mode", None)
        if isinstance(mode, str) and mode.startswith("cls"):
            pooling = "cls"
        if type(module).__name__ == "Normalize":
            normalize = True
    prompts = st.prompts or {}
    max_len = int(getattr(st[0], "max_seq_length", 256) or 256)
    return EncoderSettings(
        pooling=pooling,
        normalize=normalize,
        query_prefix=prompts.get("query", ""),
        passage_prefix=prompts.get("document", prompts.get("passage", "")),
        query_max_length=int(getattr(st[0], "query_length", None) or min(128, max_len)),
        passage_max_length=int(getattr(st[0], "document_length", None) or max_len),
    )
