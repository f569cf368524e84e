"""Translation models behind one call: ``translate(sentences, source, target) -> translations``.

* :class:`Seq2SeqTranslator`: any transformers seq2seq model (NLLB-200, M2M100, MarianMT, MADLAD-400, or
  a model folder of one of those families). Sentences are sorted by length and batched, so a batch
  holds sentences of similar length (little padding); GPU when present, bf16 on a GPU that has it.
  Greedy decoding by default (``num_beams`` for beam search).
* :class:`CTranslate2Translator`: a CTranslate2 model folder (``ct2-transformers-converter`` output,
  with the tokenizer files copied in); ``ctranslate2`` is an optional dependency.

Both map polyir's language codes to the family's (:mod:`polyir.translate.codes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from polyir.errors import PolyirError
from polyir.translate.codes import detect_family, language_tokens, model_code, vocabulary_check


class Translator(Protocol):
    """What the pipeline needs from a model."""

    model_id: str
    family: str

    def check_language(self, language: str, *, target: bool = True) -> None: ...

    def translate(self, sentences: Sequence[str], source: str, target: str) -> list[str]: ...


def _load_error(model: str, exc: Exception) -> PolyirError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return PolyirError(
        f"--model {model}: cannot load a translation model ({first}); give a model folder with config.json"
        " or a hub id such as facebook/nllb-200-distilled-600M"
    )


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped in batches of ``batch_size``, longest first (stable), so padding stays small."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


class _Codes:
    """Language handling shared by both engines: family codes and how a request names them."""

    model_id: str
    family: str
    tokenizer: Any

    def _finish_setup(self, batch_size: int, max_input_length: int, max_new_tokens: int, num_beams: int) -> None:
        """The generation settings both engines keep, and the family's language codes."""
        self.batch_size, self.max_input_length = batch_size, max_input_length
        self.max_new_tokens, self.num_beams = max_new_tokens, num_beams
        self._known = vocabulary_check(self.tokenizer)
        self._marian_tokens = bool(language_tokens(self.tokenizer, self.family))

    def code(self, language: str) -> str | None:
        optional = self.family == "marian" and not self._marian_tokens
        return model_code(self.family, language, self._known, self.model_id, optional=optional)

    def check_language(self, language: str, *, target: bool = True) -> None:
        """Raise ``UnknownLanguageError`` when the model has no code for ``language`` (Marian and MADLAD
        name only the target language, so any source passes)."""
        if target or self.family in ("nllb", "m2m100"):
            self.code(language)

    def prepare(self, sentences: Sequence[str], source: str, target: str) -> tuple[list[str], str | None]:
        """(source texts with the family's target marker, target code to force as first token)."""
        tgt = self.code(target)
        if self.family in ("nllb", "m2m100"):
            src = self.code(source) or ""
            self.tokenizer.src_lang = src.strip("_") if self.family == "m2m100" else src
            return list(sentences), tgt
        if self.family in ("marian", "madlad") and tgt is not None:
            return [f"{tgt} {s}" for s in sentences], None
        return list(sentences), None


class Seq2SeqTranslator(_Codes):
    """A transformers seq2seq model and its tokenizer."""

    def __init__(self, model: str, *, family: str | None = None, device: str = "auto", precision: str = "auto",
                 batch_size: int = 16, max_input_length: int = 256, max_new_tokens: int = 256,
                 num_beams: int = 1) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

        from polyir.models.encoder import select_device

        self.model_id = model
        try:
            config = AutoConfig.from_pretrained(model)
            self.tokenizer = AutoTokenizer.from_pretrained(model)
        except (OSError, ValueError) as exc:
            raise _load_error(model, exc) from None
        self.family = family or detect_family(config.model_type, model, type(self.tokenizer).__name__)
        self.device = select_device(device)
        dtype = torch.float32
        if precision == "bf16" or (precision == "auto" and self.device.type == "cuda" and torch.cuda.is_bf16_supported()):
            dtype = torch.bfloat16
        elif precision == "fp16":
            dtype = torch.float16
        elif precision not in ("auto", "fp32", "bf16"):
            raise PolyirError(f"--precision must be auto, fp32, bf16 or fp16, not {precision!r}")
        try:
            self.model = AutoModelForSeq2SeqLM.from_pretrained(model, torch_dtype=dtype).to(self.device).eval()
        except (OSError, ValueError) as exc:
            raise _load_error(model, exc) from None
        self.precision = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
        self._finish_setup(batch_size, max_input_length, max_new_tokens, num_beams)

    def translate(self, sentences: Sequence[str], source: str, target: str) -> list[str]:
        """Translations of ``sentences`` (in order) from ``source`` into ``target``."""
        import torch

        if not sentences:
            return []
        texts, forced = self.prepare(sentences, source, target)
        lengths = [len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=self.max_input_length)["input_ids"]]
        out: list[str] = [""] * len(texts)
        extra: dict[str, Any] = {}
        if forced is not None:
            extra["forced_bos_token_id"] = self.tokenizer.convert_tokens_to_ids(forced)
        for batch in length_batches(lengths, self.batch_size):
            enc = self.tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, truncation=True,
                                 max_length=self.max_input_length).to(self.device)
            with torch.inference_mode():
                generated = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, num_beams=self.num_beams,
                                                do_sample=False, **extra)
            for i, text in zip(batch, self.tokenizer.batch_decode(generated, skip_special_tokens=True)):
                out[i] = " ".join(text.split())
        return out


class CTranslate2Translator(_Codes):
    """A CTranslate2 model folder (tokenizer files beside the model)."""

    def __init__(self, model: str, *, family: str | None = None, device: str = "auto", precision: str = "auto",
                 batch_size: int = 16, max_input_length: int = 256, max_new_tokens: int = 256,
                 num_beams: int = 1) -> None:
        try:
            import ctranslate2
        except ImportError:
            raise PolyirError(
                "--engine ctranslate2 needs the ctranslate2 package: pip install ctranslate2"
                " (or use --engine transformers)"
            ) from None
        from transformers import AutoTokenizer

        if not (Path(model) / "model.bin").is_file():
            raise PolyirError(f"--model {model}: not a CTranslate2 model folder (no model.bin)")
        self.model_id = model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
        except (OSError, ValueError) as exc:
            raise _load_error(model, exc) from None
        import json

        config = json.loads((Path(model) / "config.json").read_text(encoding="utf-8")) \
            if (Path(model) / "config.json").is_file() else {}
        self.family = family or detect_family(str(config.get("model_type", "")), model, type(self.tokenizer).__name__)
        compute = {"auto": "default", "fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}.get(precision, precision)
        self.translator = ctranslate2.Translator(model, device="cuda" if device in ("auto", "cuda") and
                                                 ctranslate2.get_cuda_device_count() else "cpu",
                                                 compute_type=compute)
        self.precision = precision
        self._finish_setup(batch_size, max_input_length, max_new_tokens, num_beams)

    def translate(self, sentences: Sequence[str], source: str, target: str) -> list[str]:
        """Translations of ``sentences`` (in order) from ``source`` into ``target``."""
        if not sentences:
            return []
        texts, forced = self.prepare(sentences, source, target)
        tokens = [self.tokenizer.convert_ids_to_tokens(self.tokenizer.encode(t, truncation=True,
                                                                            max_length=self.max_input_length))
                  for t in texts]
        results = self.translator.translate_batch(
            tokens, target_prefix=[[forced]] * len(tokens) if forced else None, max_batch_size=self.batch_size,
            batch_type="examples", beam_size=self.num_beams, max_decoding_length=self.max_new_tokens,
        )
        out = []
        for r in results:
            hyp = r.hypotheses[0][1:] if forced else r.hypotheses[0]
            text = self.tokenizer.decode(self.tokenizer.convert_tokens_to_ids(hyp), skip_special_tokens=True)
            out.append(" ".join(text.split()))
        return out


def load_translator(model: str, *, engine: str = "transformers", **options: Any) -> Translator:
    """A translator for ``model`` (a folder or hub id) with ``engine`` transformers or ctranslate2."""
    path = Path(model).expanduser()
    if not path.exists() and (model.startswith((".", "/", "~")) or model.count("/") > 1):
        raise PolyirError(f"--model {model}: no such model folder (give a folder or a hub id such as"
                          " facebook/nllb-200-distilled-600M)")
    if engine == "transformers":
        if Path(model).expanduser().exists() and not (Path(model).expanduser() / "config.json").is_file():
            raise PolyirError(f"--model {model}: the folder has no config.json (not a transformers model)")
        return Seq2SeqTranslator(str(Path(model).expanduser()) if Path(model).expanduser().exists() else model,
                                 **options)
    if engine == "ctranslate2":
        return CTranslate2Translator(model, **options)
    raise PolyirError(f"--engine must be transformers or ctranslate2, not {engine!r}")
