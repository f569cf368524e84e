"""An exported model (ONNX Runtime or OpenVINO) behind polyir's Encoder interface.

``polyir export`` writes a folder holding the graph (tokens -> pooled, normalised sentence
embedding: the whole sentence-transformers pipeline, a de-biasing projection included), the
tokenizer, and ``polyir_export.json`` (backend, quantization, graph inputs, the encoder settings,
the source model, a sha256 of the graph file). This module loads such a folder as an
:class:`ExportedEncoder`: prefixes, max lengths, truncation and the longest-first batching are
those of :meth:`Encoder.encode`, so every command that takes a model runs an exported folder.

Pooling and normalisation are part of the graph; asking for other values is refused. The
precision is fixed at export (fp32 or int8), so ``precision`` must be left at ``fp32``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from polyir.errors import PolyirError
from polyir.models.encoder import Encoder, EncoderSettings, Kind, Precision

EXPORT_FILE = "polyir_export.json"
EXPORT_FORMAT = "polyir.export/1"
BACKENDS = ("onnx", "openvino")


Feeds = dict[str, np.ndarray]


class Runtime(Protocol):
    """Runs the exported graph: token arrays in, [batch, dim] float32 embeddings out.

    ``__call__`` runs one batch with every thread (a server's request: the lowest latency);
    ``run_many`` runs many and hands each result to ``done(i, embeddings)``, in any order (a
    corpus: the highest throughput)."""

    input_names: list[str]

    def __call__(self, feeds: Feeds) -> np.ndarray: ...

    def run_many(self, batches: Iterable[Feeds], done: Callable[[int, np.ndarray], None]) -> None: ...


def run_one_by_one(run: Callable[[Feeds], np.ndarray], batches: Iterable[Feeds],
                   done: Callable[[int, np.ndarray], None]) -> None:
    """``Runtime.run_many`` as a plain loop: each batch through ``run`` in turn."""
    for i, feeds in enumerate(batches):
        done(i, run(feeds))


def default_threads() -> int:
    """Threads for the runtime: torch's setting, so ``polyir --threads N`` and OMP_NUM_THREADS apply."""
    import torch

    return max(1, int(torch.get_num_threads()))


class OnnxRuntimeSession:
    """An ONNX Runtime CPU session over ``model.onnx`` (all graph optimisations on)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a dependency of polyir
            raise PolyirError("running an ONNX export needs onnxruntime: pip install onnxruntime") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise PolyirError(f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0]}); export it again") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name

    def __call__(self, feeds: Feeds) -> np.ndarray:
        return self.session.run([self.output_name], feeds)[0]

    def run_many(self, batches: Iterable[Feeds], done: Callable[[int, np.ndarray], None]) -> None:
        """One batch after another (ONNX Runtime's intra-op threads already use every core)."""
        run_one_by_one(self, batches, done)


RUNTIME_CACHE_CAPACITY = 1000
"""OpenVINO CPU kernel-cache entries (per node and input shape) an exported encoder keeps."""


class OpenVinoSession:
    """An OpenVINO CPU model over ``model.xml`` (+ ``model.bin``), compiled for one batch at a time with
    every thread (``__call__``: a server's requests; at load, so a broken export fails there) and, on first
    use, for many batches in parallel streams (``run_many``: a corpus to encode), as OpenVINO's THROUGHPUT
    hint sets them up (2 streams of 1 thread on 2 cores: 1.34× a whole XQuAD-R evaluation, +1.9 GB peak).

    The two give the same vectors: a text's vector does not depend on the stream that computes it
    (``tests/test_export.py``). ``streams`` fixes the throughput model's stream count (1 runs
    ``run_many`` on the single-batch model); None lets the hint choose."""

    def __init__(self, path: Path, threads: int | None = None, streams: int | None = None) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise PolyirError(
                f"{path.parent} is an OpenVINO export; running it needs openvino: pip install openvino"
            ) from exc
        if streams is not None and streams < 1:
            raise PolyirError(f"streams must be at least 1, got {streams}")
        self.path = path
        self.threads = threads or default_threads()
        self.streams = streams
        self._core = ov.Core()
        try:
            self._model = self._core.read_model(str(path))
        except RuntimeError as exc:
            raise PolyirError(f"{path}: OpenVINO cannot read it ({str(exc).splitlines()[0]}); export it again") from None
        self.input_names = [p.get_any_name() for p in self._model.inputs]
        self._compiled: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._compile("latency")  # a broken export fails at load, not at the first request

    def _compile(self, mode: str) -> Any:
        """The compiled model for ``mode`` ("latency" or "throughput"), compiled once."""
        with self._lock:
            if mode not in self._compiled:
                # DYNAMIC_QUANTIZATION_GROUP_SIZE 0: the CPU plugin must not quantize activations per call, or
                # a text's vector would depend on the texts batched with it (the server's answers would change).
                # CPU_RUNTIME_CACHE_CAPACITY 1000 (default 5000): the plugin keeps kernels per input shape, and
                # a server sees many shapes; 5000 entries grew a static-int8 server past 3 GB (docs/decisions.md)
                config: dict[str, Any] = {
                    "INFERENCE_NUM_THREADS": self.threads, "INFERENCE_PRECISION_HINT": "f32",
                    "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0, "CPU_RUNTIME_CACHE_CAPACITY": RUNTIME_CACHE_CAPACITY,
                }
                if mode == "throughput":
                    config["PERFORMANCE_HINT"] = "THROUGHPUT"
                    if self.streams is not None:
                        config["NUM_STREAMS"] = self.streams
                else:
                    config["PERFORMANCE_HINT"] = "LATENCY"
                try:
                    self._compiled[mode] = self._core.compile_model(self._model, "CPU", config)
                except RuntimeError as exc:
                    raise PolyirError(
                        f"{self.path}: OpenVINO cannot compile it ({str(exc).splitlines()[0]}); export it again"
                    ) from None
            return self._compiled[mode]

    def __call__(self, feeds: Feeds) -> np.ndarray:
        compiled = self._compile("latency")
        return np.asarray(compiled.create_infer_request().infer(feeds)[compiled.outputs[0]])

    def run_many(self, batches: Iterable[Feeds], done: Callable[[int, np.ndarray], None]) -> None:
        """The batches through an ``AsyncInferQueue`` over the throughput model's streams: the next batch
        is tokenized while the streams run the previous ones."""
        import openvino as ov

        if self.streams == 1:
            return run_one_by_one(self, batches, done)
        compiled = self._compile("throughput")
        jobs = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        queue = ov.AsyncInferQueue(compiled, jobs)
        failures: list[BaseException] = []

        def finished(request: Any, i: int) -> None:
            try:
                done(i, np.array(request.get_output_tensor(0).data))  # a copy: the request's buffer is reused
            except BaseException as exc:  # raised again in the caller's thread below
                failures.append(exc)

        queue.set_callback(finished)
        try:
            for i, feeds in enumerate(batches):
                if failures:
                    break
                queue.start_async(feeds, i)
        finally:
            queue.wait_all()
        if failures:
            raise failures[0]


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(folder: Path) -> dict[str, Any]:
    """The folder's ``polyir_export.json``, checked for the keys a load needs."""
    path = folder / EXPORT_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolyirError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise PolyirError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); export the model again") from None
    if not isinstance(info, dict) or info.get("format") != EXPORT_FORMAT:
        raise PolyirError(f"{path}: not a polyir export manifest (format {EXPORT_FORMAT!r} expected); export the model again")
    for key in ("backend", "model_file", "inputs", "dim", "settings", "sha256"):
        if key not in info:
            raise PolyirError(f"{path}: key {key!r} is missing; export the model again")
    if info["backend"] not in BACKENDS:
        raise PolyirError(f"{path}: unknown backend {info['backend']!r} (known: {', '.join(BACKENDS)})")
    return info


class ExportedEncoder(Encoder):
    """Encode with an exported graph; the same texts give the same vectors as the source Encoder
    (within 1e-4 for fp32 exports; int8 exports trade a little accuracy for speed)."""

    def __init__(self, runtime: Runtime, tokenizer: Any, settings: EncoderSettings, *, spec: str,
                 info: dict[str, Any], folder: Path) -> None:
        import torch

        self.st = ()  # no torch modules (nothing for training, merging or de-biasing to split)
        self.settings = settings
        self.spec = spec
        self.device = torch.device("cpu")
        self.centering = None
        self.runtime = runtime
        self.info = info
        self.folder = folder
        self._tokenizer = tokenizer
        self._digest: dict[str, str] = {}  # shared by copies from with_settings

    # ------------------------------------------------------------------ facts
    @property
    def dim(self) -> int:
        return int(self.info["dim"])

    @property
    def backend(self) -> str:
        return str(self.info["backend"])

    @property
    def quantize(self) -> str | None:
        return self.info.get("quantize")

    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def transformer(self):
        raise PolyirError(f"{self.spec} is an exported ({self.backend}) model: train, merge or de-bias its source model")

    def with_settings(self, **changes) -> ExportedEncoder:
        """The same graph with other prefixes or max lengths (pooling and normalisation are in the graph)."""
        for key in ("pooling", "normalize"):
            if key in changes and changes[key] != getattr(self.settings, key):
                raise PolyirError(
                    f"{self.spec}: {key} is part of the exported graph ({getattr(self.settings, key)!r}); "
                    f"export the source model again to change it"
                )
        enc = ExportedEncoder.__new__(ExportedEncoder)
        enc.__dict__.update(self.__dict__)
        enc.settings = replace(self.settings, **changes)
        return enc

    # ------------------------------------------------------------------ encoding
    def tokenize(self, texts: Sequence[str], kind: Kind) -> dict[str, np.ndarray]:  # type: ignore[override]
        """Prefix, truncate and pad texts as :meth:`Encoder.tokenize` does; int64 arrays for the graph."""
        batch = self._tokenizer(
            [self.settings.prefix(kind) + t for t in texts],
            padding=True,
            truncation=True,
            max_length=self.settings.max_length(kind),
            return_tensors="np",
        )
        feeds = {}
        for name in self.runtime.input_names:
            if name in batch:
                feeds[name] = np.asarray(batch[name], dtype=np.int64)
            elif name == "token_type_ids":
                feeds[name] = np.zeros_like(np.asarray(batch["input_ids"], dtype=np.int64))
            else:
                raise PolyirError(f"{self.folder}: the graph needs input {name!r}, which the tokenizer does not give")
        return feeds

    def embed(self, texts: Sequence[str], kind: Kind):  # type: ignore[override]
        raise PolyirError(f"{self.spec} is an exported model: it encodes but does not train")

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
        """Encode texts to float32 vectors, longest first (as :meth:`Encoder.encode`)."""
        if precision != "fp32":
            done = f"int8 ({self.quantize})" if self.quantize else "fp32"
            raise PolyirError(
                f"{self.spec} is an exported model whose precision was fixed at export ({done}); "
                f"leave --precision at fp32 (got {precision!r}) or export with --quantize int8"
            )
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        prefix = self.settings.prefix(kind)
        lengths = self._tokenizer(
            [prefix + t for t in texts], truncation=True, max_length=self.settings.max_length(kind), return_length=True
        )["length"]
        order = np.argsort(-np.asarray(lengths), kind="stable")
        bar = tqdm(total=len(texts), desc=desc or ("encode queries" if kind == "query" else "encode passages"),
                   unit="text", disable=not show_progress)
        chunks = [order[start : start + batch_size] for start in range(0, len(texts), batch_size)]

        def done(i: int, vectors: np.ndarray) -> None:
            out[chunks[i]] = vectors
            bar.update(len(chunks[i]))

        try:
            if len(chunks) == 1:  # one batch (a server's request): every thread on it
                done(0, self.runtime(self.tokenize([texts[i] for i in chunks[0]], kind)))
            else:
                self.runtime.run_many((self.tokenize([texts[i] for i in idx], kind) for idx in chunks), done)
        finally:
            bar.close()
        return out

    # ------------------------------------------------------------------ identity
    def save(self, path: str | Path) -> Path:
        raise PolyirError(f"{self.spec} is an exported model; `polyir export` writes exported folders")

    def model_digest(self) -> str:
        """sha256 of the graph file, checked once against the one recorded at export."""
        if "sha256" not in self._digest:
            path = self.folder / self.info["model_file"]
            digest = file_sha256(path)
            if digest != self.info["sha256"]:
                raise PolyirError(
                    f"{path}: its sha256 differs from the one recorded in {EXPORT_FILE} (the file was changed "
                    "or damaged); export the model again"
                )
            self._digest["sha256"] = digest
        return self._digest["sha256"]

    def fingerprint(self) -> str:
        """A hash of the graph file and the settings: an export is a model of its own (int8 vectors differ
        from fp32 ones), so indexes and caches made with it are not mixed with its source's."""
        h = hashlib.sha256(json.dumps(asdict(self.settings), sort_keys=True).encode())
        h.update(f"exported:{self.backend}:{self.quantize}:{self.model_digest()}".encode())
        return h.hexdigest()[:16]


def load_exported(folder: str | Path, *, spec: str = "", device: str = "auto", threads: int | None = None,
                  streams: int | None = None,
                  **overrides: Any) -> ExportedEncoder:
    """Load an exported folder; ``overrides`` change prefixes or max lengths (as for any model).

    ``threads``: the runtime's threads (default: torch's setting). ``streams`` (OpenVINO only): parallel
    streams when encoding many batches (None: the runtime's THROUGHPUT hint; 1: one batch at a time)."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    if device not in ("auto", "cpu"):
        raise PolyirError(f"{folder} is an exported model and runs on the CPU; use --device cpu (got {device!r})")
    info = read_manifest(folder)
    model_path = folder / info["model_file"]
    if not model_path.is_file():
        raise PolyirError(f"{model_path}: missing; the exported folder is incomplete (export the model again)")
    try:
        settings = EncoderSettings(**info["settings"])
    except TypeError as exc:
        raise PolyirError(f"{folder / EXPORT_FILE}: bad settings ({exc}); export the model again") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise PolyirError(f"{folder}: cannot load the tokenizer ({str(exc).splitlines()[0]}); export the model again") from None
    runtime: Runtime
    if info["backend"] == "onnx":
        runtime = OnnxRuntimeSession(model_path, threads)
    else:
        runtime = OpenVinoSession(model_path, threads, streams)
    enc = ExportedEncoder(runtime, tokenizer, settings, spec=spec or str(folder), info=info, folder=folder)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return enc.with_settings(**overrides) if overrides else enc
