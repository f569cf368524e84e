"""polyir export: the exported graph gives torch's vectors, int8 stays close, every model-taking
command runs an exported folder, and bad input is named."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from typer.testing import CliRunner  # noqa: E402

from polyir.cli import app  # noqa: E402
from polyir.errors import PolyirError  # noqa: E402
from polyir.export import export_model  # noqa: E402
from polyir.models.onnx_encoder import EXPORT_FILE, ExportedEncoder  # noqa: E402
from polyir.models.resolve import load_encoder, resolve_spec  # noqa: E402
from polyir.testing import write_tiny_lareqa  # noqa: E402

runner = CliRunner()
TEXTS = [
    "the cat sat on the mat",
    "who was the first emperor of rome ?",
    "der hund",
    "el gato",
    # longer than the query max length below: truncation must match too
    " ".join(["the dog ran in the park with the cat"] * 8),
]


@pytest.fixture(scope="module")
def source(tiny_model_dir, tmp_path_factory):
    """A sentence-transformers folder with prefixes and a short query length (settings the export must carry)."""
    enc = load_encoder(str(tiny_model_dir), device="cpu", query_prefix="query: ", passage_prefix="passage: ",
                       query_max_length=12, passage_max_length=40)
    return enc.save(tmp_path_factory.mktemp("src") / "model")


@pytest.fixture(scope="module")
def exported(source, tmp_path_factory):
    """The fp32 ONNX export, written through the CLI."""
    out = tmp_path_factory.mktemp("export") / "onnx"
    res = runner.invoke(app, ["export", str(source), "--backend", "onnx", "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert "exported" in res.output and "max |Δ|" in res.output
    return out


def test_fp32_export_matches_torch(source, exported):
    torch_enc = load_encoder(str(source), device="cpu")
    onnx_enc = load_encoder(str(exported))
    assert isinstance(onnx_enc, ExportedEncoder) and resolve_spec(str(exported)).kind == "exported"
    assert onnx_enc.settings == torch_enc.settings  # prefixes, max lengths, pooling, normalisation carried
    assert onnx_enc.dim == torch_enc.dim
    for kind in ("query", "passage"):
        ref = torch_enc.encode(TEXTS, kind, show_progress=False)
        got = onnx_enc.encode(TEXTS, kind, show_progress=False, batch_size=2)
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    info = json.loads((exported / EXPORT_FILE).read_text())
    assert info["check"]["max_abs_diff"] <= 1e-4 and info["quantize"] is None
    assert info["source"]["fingerprint"] == torch_enc.fingerprint()


def test_export_has_its_own_fingerprint_and_settings_overrides(source, exported):
    torch_enc = load_encoder(str(source), device="cpu")
    onnx_enc = load_encoder(str(exported))
    assert onnx_enc.fingerprint() == load_encoder(str(exported)).fingerprint()  # stable
    assert onnx_enc.fingerprint() != torch_enc.fingerprint()  # an index of one does not take the other's queries
    longer = load_encoder(str(exported), query_max_length=64)
    assert longer.settings.query_max_length == 64
    ref = load_encoder(str(source), device="cpu", query_max_length=64).encode(TEXTS[-1:], "query", show_progress=False)
    np.testing.assert_allclose(longer.encode(TEXTS[-1:], "query", show_progress=False), ref, atol=1e-4)
    with pytest.raises(PolyirError, match="pooling is part of the exported graph"):
        onnx_enc.with_settings(pooling="cls")
    with pytest.raises(PolyirError, match="precision was fixed at export"):
        onnx_enc.encode(TEXTS, "query", precision="bf16", show_progress=False)
    with pytest.raises(PolyirError, match="runs on the CPU"):
        load_encoder(str(exported), device="cuda")


def test_int8_per_channel_export_is_close(source, tmp_path):
    torch_enc = load_encoder(str(source), device="cpu")
    result = export_model(torch_enc, tmp_path / "int8", quantize="int8", optimize=False)
    assert result.quantize == "int8" and result.min_cosine > 0.99
    info = json.loads((tmp_path / "int8" / EXPORT_FILE).read_text())
    assert info["quantization"]["per_channel"] is True
    onnx_enc = load_encoder(str(tmp_path / "int8"))
    for kind in ("query", "passage"):
        ref = torch_enc.encode(TEXTS, kind, show_progress=False)
        got = onnx_enc.encode(TEXTS, kind, show_progress=False)
        assert ((ref * got).sum(axis=1) > 0.99).all()
        # the ranking of the texts against the first one is kept
        assert np.array_equal(np.argsort(-(ref @ ref[0])), np.argsort(-(got @ got[0])))


def test_index_search_and_evaluate_run_on_the_export(exported, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"id": f"en-{i}", "language": "en", "text": t} for i, t in enumerate(TEXTS[:3])]
    rows += [{"id": "de-0", "language": "de", "text": "der hund"}, {"id": "es-0", "language": "es", "text": "el gato"}]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    idx = tmp_path / "idx"
    res = runner.invoke(app, ["index", "--model", str(exported), "--corpus", str(corpus), "--output", str(idx),
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["search", str(idx), "the cat sat on the mat", "--k", "2", "--json"])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.output)["hits"]
    enc = load_encoder(str(exported))  # the hits are the exported model's own ranking
    scores = enc.encode([r["text"] for r in rows], "passage", show_progress=False) @ enc.encode(
        ["the cat sat on the mat"], "query", show_progress=False)[0]
    assert [h["id"] for h in hits] == [rows[i]["id"] for i in np.argsort(-scores)[:2]]
    assert hits[0]["score"] == pytest.approx(float(scores.max()), abs=1e-5)
    from fastapi.testclient import TestClient

    from polyir.serve.app import create_app

    with TestClient(create_app(idx)) as client:  # serve loads the exported model recorded in the index
        r = client.post("/search", json={"query": "the cat sat on the mat", "k": 2})
        assert r.status_code == 200 and [h["id"] for h in r.json()["hits"]] == [h["id"] for h in hits]
    data = tmp_path / "data"
    write_tiny_lareqa(data / "xquad-r", ["en", "de"])
    out = tmp_path / "res.json"
    res = runner.invoke(app, ["evaluate", "--model", str(exported), "--dataset", "xquad-r", "--data-dir", str(data),
                              "--languages", "en,de", "--output", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert 0 <= result["metrics"]["mul_map"] <= 1 and result["model"] == str(exported)


def test_bad_input_is_named(source, exported, tmp_path):
    res = runner.invoke(app, ["export", str(source), "--backend", "tensorrt", "--output", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown --backend 'tensorrt'" in res.output
    res = runner.invoke(app, ["export", str(source), "--quantize", "int4", "--output", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown --quantize 'int4'" in res.output
    res = runner.invoke(app, ["export", str(tmp_path / "missing"), "--output", str(tmp_path / "x")])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = runner.invoke(app, ["export", str(source), "--output", str(exported)])  # already an export there
    assert res.exit_code == 2 and "--overwrite" in res.output
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    (broken / EXPORT_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(PolyirError, match=r"polyir_export.json: not valid JSON"):
        load_encoder(str(broken))
    shutil.rmtree(broken)
    shutil.copytree(exported, broken)
    (broken / "model.onnx").unlink()
    with pytest.raises(PolyirError, match=r"model.onnx: missing"):
        load_encoder(str(broken))
    shutil.rmtree(broken)
    shutil.copytree(exported, broken)
    with open(broken / "model.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(PolyirError, match=r"model.onnx: onnxruntime cannot load it"):
        load_encoder(str(broken))
    shutil.rmtree(broken)
    shutil.copytree(exported, broken)
    info = json.loads((broken / EXPORT_FILE).read_text())
    (broken / EXPORT_FILE).write_text(json.dumps({**info, "sha256": "0" * 64}), encoding="utf-8")
    with pytest.raises(PolyirError, match="sha256 differs"):
        load_encoder(str(broken)).fingerprint()
    with pytest.raises(PolyirError, match="already an exported model"):
        export_model(load_encoder(str(exported)), tmp_path / "again")


def test_openvino_export_matches_torch(source, tmp_path):
    pytest.importorskip("openvino", reason="openvino is not installed (optional: pip install openvino)")
    torch_enc = load_encoder(str(source), device="cpu")
    export_model(torch_enc, tmp_path / "ov", backend="openvino", optimize=False)
    ov_enc = load_encoder(str(tmp_path / "ov"))
    assert ov_enc.backend == "openvino" and (tmp_path / "ov" / "model.xml").is_file()
    ref = torch_enc.encode(TEXTS, "passage", show_progress=False)
    np.testing.assert_allclose(ov_enc.encode(TEXTS, "passage", show_progress=False), ref, atol=1e-4, rtol=0)


def test_openvino_streams_give_the_same_vectors_in_the_texts_order(source, tmp_path):
    """Many batches run in parallel streams (run_many), one batch on the single-request model: each text's
    vector lands in its own row and equals what one stream, or the text alone, gives."""
    pytest.importorskip("openvino", reason="openvino is not installed (optional: pip install openvino)")
    from polyir.models.onnx_encoder import load_exported

    export_model(load_encoder(str(source), device="cpu"), tmp_path / "ov", backend="openvino", optimize=False)
    texts = TEXTS * 3  # 15 texts, batches of 2: 8 batches through the queue
    two = load_exported(tmp_path / "ov", streams=2).encode(texts, "passage", show_progress=False, batch_size=2)
    one = load_exported(tmp_path / "ov", streams=1).encode(texts, "passage", show_progress=False, batch_size=2)
    np.testing.assert_allclose(two, one, atol=1e-6, rtol=0)
    auto = load_exported(tmp_path / "ov")
    alone = np.stack([auto.encode([t], "passage", show_progress=False)[0] for t in texts])
    np.testing.assert_allclose(auto.encode(texts, "passage", show_progress=False, batch_size=2), alone, atol=1e-6, rtol=0)
    assert np.abs(two[0] - two[5]).max() < 1e-6 and np.abs(two[0] - two[1]).max() > 1e-3  # equal texts, rows kept
    with pytest.raises(PolyirError, match="streams must be at least 1"):
        load_exported(tmp_path / "ov", streams=0)

    def failing(i, vectors):
        raise RuntimeError("full disk")

    runtime = load_exported(tmp_path / "ov", streams=2).runtime  # an error in a stream's callback reaches the caller
    feeds = auto.tokenize(TEXTS[:2], "passage")
    with pytest.raises(RuntimeError, match="full disk"):
        runtime.run_many([feeds] * 4, failing)


def test_openvino_int8_export_is_close(source, tmp_path):
    """OpenVINO's int8 is NNCF's per-channel weight compression of the converted (fused) graph."""
    pytest.importorskip("openvino", reason="openvino is not installed (optional: pip install openvino)")
    pytest.importorskip("nncf", reason="nncf is not installed (optional: pip install nncf)")
    torch_enc = load_encoder(str(source), device="cpu")
    result = export_model(torch_enc, tmp_path / "ov8", backend="openvino", quantize="int8")
    info = json.loads((tmp_path / "ov8" / EXPORT_FILE).read_text())
    assert info["backend"] == "openvino" and info["quantize"] == "int8"
    assert info["quantization"]["method"].startswith("nncf") and info["quantization"]["per_channel"] is True
    assert 'element_type="i8"' in (tmp_path / "ov8" / "model.xml").read_text()  # the weights are int8
    assert result.min_cosine > 0.99
    ov_enc = load_encoder(str(tmp_path / "ov8"))
    ref = torch_enc.encode(TEXTS, "passage", show_progress=False)
    got = ov_enc.encode(TEXTS, "passage", show_progress=False)
    assert ((ref * got).sum(axis=1) > 0.99).all()
    assert np.array_equal(np.argsort(-(ref @ ref[0])), np.argsort(-(got @ got[0])))
    alone = np.stack([ov_enc.encode([t], "passage", show_progress=False)[0] for t in TEXTS])
    assert np.abs(alone - got).max() < 1e-5  # a text's vector does not depend on its batch (the server's answers)
    with pytest.raises(PolyirError, match="--per-tensor applies to --backend onnx only"):
        export_model(torch_enc, tmp_path / "ov8pt", backend="openvino", quantize="int8", per_channel=False)
    assert not (tmp_path / "ov8pt").exists()


def test_openvino_static_int8_is_calibrated_close_and_batch_independent(source, tmp_path):
    """--calibrate: NNCF's static int8 (activations too), calibrated on a dataset's queries and passages."""
    pytest.importorskip("openvino", reason="openvino is not installed (optional: pip install openvino)")
    pytest.importorskip("nncf", reason="nncf is not installed (optional: pip install nncf)")
    data = tmp_path / "data"
    write_tiny_lareqa(data / "mlqa-r", ["en", "de"])
    out = tmp_path / "ovs"
    res = runner.invoke(app, ["export", str(source), "--backend", "openvino", "--quantize", "int8",
                              "--calibrate", "mlqa-r", "--calibration-size", "12", "--calibration-languages", "en,de",
                              "--data-dir", str(data), "--smooth-quant-alpha", "0.5",
                              "--output", str(out)])
    assert res.exit_code == 0, res.output
    info = json.loads((out / EXPORT_FILE).read_text())
    assert info["quantization"]["activations"].startswith("int8")
    assert info["quantization"]["smooth_quant_alpha"] == 0.5
    calib = info["quantization"]["calibration"]
    assert calib["source"] == "mlqa-r" and calib["queries"] == 6 and calib["passages"] == 6
    assert "FakeQuantize" in (out / "model.xml").read_text() or 'element_type="u8"' in (out / "model.xml").read_text()
    ref = load_encoder(str(source), device="cpu").encode(TEXTS, "passage", show_progress=False)
    enc = load_encoder(str(out))
    got = enc.encode(TEXTS, "passage", show_progress=False)
    assert ((ref * got).sum(axis=1) > 0.98).all()
    alone = np.stack([enc.encode([t], "passage", show_progress=False)[0] for t in TEXTS])
    assert np.abs(alone - got).max() < 1e-5


def test_calibrate_needs_openvino_int8_and_a_known_dataset(source, tmp_path):
    res = runner.invoke(app, ["export", str(source), "--backend", "onnx", "--quantize", "int8",
                              "--calibrate", "mlqa-r", "--output", str(tmp_path / "x")])
    assert res.exit_code == 2 and "--calibrate" in res.output and "--backend openvino" in res.output
    assert not (tmp_path / "x").exists()
    pytest.importorskip("nncf", reason="nncf is not installed (optional: pip install nncf)")
    res = runner.invoke(app, ["export", str(source), "--backend", "openvino", "--quantize", "int8",
                              "--calibrate", "no-such-set", "--data-dir", str(tmp_path), "--output", str(tmp_path / "y")])
    assert res.exit_code == 2 and "no-such-set" in res.output
    assert not (tmp_path / "y").exists()


def test_smooth_quant_alpha_reaches_nncf_and_bad_values_are_refused(source, tmp_path):
    """--smooth-quant-alpha changes the quantized graph; out of range or without --calibrate it is refused
    before any work."""
    pytest.importorskip("nncf", reason="nncf is not installed (optional: pip install nncf)")
    base = ["export", str(source), "--backend", "openvino", "--quantize", "int8"]
    res = runner.invoke(app, [*base, "--smooth-quant-alpha", "0.5", "--output", str(tmp_path / "a")])
    assert res.exit_code == 2 and "--smooth-quant-alpha applies to static int8 only" in res.output
    res = runner.invoke(app, [*base, "--calibrate", "mlqa-r", "--smooth-quant-alpha", "1.5", "--output", str(tmp_path / "b")])
    assert res.exit_code == 2 and "[0, 1]" in res.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    data = tmp_path / "data"
    write_tiny_lareqa(data / "mlqa-r", ["en", "de"])
    graphs = {}
    for alpha in ("-1", "0.9"):
        out = tmp_path / f"sq{alpha}"
        res = runner.invoke(app, [*base, "--calibrate", "mlqa-r", "--calibration-size", "12", "--calibration-languages", "en,de",
                                  "--data-dir", str(data),
                                  "--smooth-quant-alpha", alpha, "--output", str(out)])
        assert res.exit_code == 0, res.output
        graphs[alpha] = (out / "model.bin").read_bytes()
    assert graphs["-1"] != graphs["0.9"]  # SmoothQuant rescaled the weights
