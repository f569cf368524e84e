"""polyir translate on a tiny randomly initialised MarianMT model built here (no translation model ships)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polyir.cli import app
from polyir.data.jsonl import read_parallel_jsonl, write_parallel_jsonl
from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
from polyir.errors import DataFormatError, EmptySelectionError, PolyirError, UnknownLanguageError
from polyir.translate import TranslateOptions, load_translator, read_input, translate_corpus
from polyir.translate.codes import candidates, detect_family
from polyir.translate.pipeline import parts_dir
from polyir.translate.segment import assemble, layout

WORDS = ("goethe wrote faust . it was in 1808 . who when where did the poet live weimar is a city"
         " germany ? berlin capital paris france").split()


@pytest.fixture(scope="module")
def tiny_mt(tmp_path_factory) -> Path:
    """A 1-layer MarianMT with a word-level tokenizer holding >>de<< and >>fi<< (a multi-target model)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("mt") / "tiny-marian"
    specials = ["<pad>", "</s>", "<unk>", ">>de<<", ">>fi<<"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys([*specials, *WORDS]))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   additional_special_tokens=[">>de<<", ">>fi<<"], model_max_length=64)
    torch.manual_seed(0)
    config = MarianConfig(vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                          decoder_ffn_dim=32, max_position_embeddings=64, pad_token_id=0, eos_token_id=1,
                          decoder_start_token_id=0, forced_eos_token_id=1)
    model = MarianMTModel(config)
    model.generation_config.min_new_tokens = 2  # random weights: never an empty translation
    model.generation_config.bad_words_ids = [[vocab[t]] for t in ("<unk>", ">>de<<", ">>fi<<")]
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def corpus() -> ParallelQACorpus:
    ctx = "Goethe wrote Faust. It was in 1808. Weimar is a city."
    return ParallelQACorpus("toy", [
        ParallelPair("q1", {"en": QAEntry("Who wrote Faust?", "Goethe wrote Faust.", ctx)}),
        ParallelPair("q2", {"en": QAEntry("When was it?", "It was in 1808.", ctx)}),
        ParallelPair("q3", {"en": QAEntry("Where did the poet live?", "Weimar is a city. Berlin is a city.")}),
        ParallelPair("q4", {"en": QAEntry("What is the capital?", "Paris is a city."),
                            "de": QAEntry("Was ist die Hauptstadt?", "Paris ist eine Stadt.")}),
        ParallelPair("q5", {"de": QAEntry("Wer?", "Goethe.")}),  # no source entry: left out
    ])


def translator(folder: Path):
    return load_translator(str(folder), device="cpu", batch_size=2, max_new_tokens=6)


def test_segments_keep_the_answer_sentence() -> None:
    entry = corpus().pairs[1].entries["en"]
    lay = layout(entry, "en")
    assert lay.segments == ("When was it?", "Goethe wrote Faust.", "It was in 1808.", "Weimar is a city.")
    assert lay.positive == (2, 3) and lay.context == (1, 4)
    out = assemble(lay, ["Q", "A.", "B.", "C."], "de")
    assert out == QAEntry("Q", "B.", "A. B. C.")
    assert assemble(lay, ["Q", "A", "B", "C"], "zh").context == "ABC"


def test_family_codes() -> None:
    assert candidates("nllb", "de") == ["deu_Latn"] and candidates("nllb", "zh-hant") == ["zho_Hant"]
    assert candidates("nllb", "ar") == ["arb_Arab"] and candidates("nllb", "sw") == ["swh_Latn"]
    assert candidates("nllb", "ha") == ["hau_Latn"] and candidates("nllb", "ru") == ["rus_Cyrl"]
    assert candidates("m2m100", "de") == ["__de__"] and candidates("madlad", "fi")[0] == "<2fi>"
    assert candidates("marian", "de")[:2] == [">>deu<<", ">>de<<"]
    assert detect_family("m2m_100", "facebook/nllb-200-distilled-600M") == "nllb"
    assert detect_family("m2m_100", "facebook/m2m100_418M") == "m2m100"
    assert detect_family("t5", "google/madlad400-3b-mt") == "madlad"
    with pytest.raises(PolyirError, match="--family"):
        detect_family("bert", "bert-base")


def test_translate_end_to_end(tiny_mt: Path, tmp_path: Path) -> None:
    out = tmp_path / "toy.de-fi.jsonl"
    report = translate_corpus(corpus(), translator(tiny_mt), out,
                              TranslateOptions(targets=["de", "fi"], shard_size=2, show_progress=False))
    assert not parts_dir(out).exists()
    read = read_parallel_jsonl(out)
    assert [p.pair_id for p in read.pairs] == ["q1", "q2", "q3", "q4"]
    assert report.translated == {"de": 3, "fi": 4} and report.kept_existing == {"de": 1, "fi": 0}
    assert report.cache_hits > 0  # q1 and q2 share their paragraph's sentences
    q2 = read.pairs[1].entries
    assert q2["en"] == corpus().pairs[1].entries["en"]
    assert q2["fi"].positive in q2["fi"].context  # the answer sentence survives as one candidate
    assert read.pairs[3].entries["de"].query == "Was ist die Hauptstadt?"  # the existing entry is kept
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert records[0]["provenance"]["fi"] == {"model": str(tiny_mt), "family": "marian", "source_language": "en"}
    assert "de" not in records[3]["provenance"]


def test_resume_after_a_kill_gives_the_same_file(tiny_mt: Path, tmp_path: Path) -> None:
    options = TranslateOptions(targets=["de", "fi"], shard_size=1, show_progress=False)
    whole = tmp_path / "whole.jsonl"
    translate_corpus(corpus(), translator(tiny_mt), whole, options)
    model = translator(tiny_mt)
    real, calls = model.translate, []

    def dies_on_the_fifth_call(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt  # the run is killed in the middle of shard 2
        return real(*args, **kwargs)

    model.translate = dies_on_the_fifth_call  # type: ignore[method-assign]
    killed = tmp_path / "killed.jsonl"
    with pytest.raises(KeyboardInterrupt):
        translate_corpus(corpus(), model, killed, options)
    assert not killed.exists() and sorted(p.name for p in parts_dir(killed).glob("shard-*")) == [
        "shard-00000.json", "shard-00001.json"]
    report = translate_corpus(corpus(), translator(tiny_mt), killed, options)
    assert report.resumed_shards == 2 and report.shards == 4
    assert killed.read_bytes() == whole.read_bytes()


def test_parts_of_another_run_are_refused(tiny_mt: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    parts_dir(out).mkdir()
    (parts_dir(out) / "manifest.json").write_text('{"format": 1, "model": "other"}', encoding="utf-8")
    with pytest.raises(PolyirError, match="another translation run"):
        translate_corpus(corpus(), translator(tiny_mt), out, TranslateOptions(targets=["de"], show_progress=False))


def test_similarity_filter_drops_and_reports(tiny_mt: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    from polyir.models.encoder import Encoder, EncoderSettings

    encoder = Encoder.from_transformers(tiny_model_dir, EncoderSettings(), spec="tiny", device="cpu")
    out = tmp_path / "filtered.jsonl.gz"
    report = translate_corpus(corpus(), translator(tiny_mt), out,
                              TranslateOptions(targets=["fi"], min_similarity=1.01, show_progress=False),
                              encoder=encoder, filter_model="tiny")
    assert report.filtered == {"fi": 4} and report.dropped_share("fi") == 1.0 and report.translated == {"fi": 0}
    assert all("fi" not in p.entries for p in read_parallel_jsonl(out).pairs)
    kept = translate_corpus(corpus(), translator(tiny_mt), tmp_path / "kept.jsonl",
                            TranslateOptions(targets=["fi"], min_similarity=-1.0, show_progress=False),
                            encoder=encoder, filter_model="tiny")
    assert kept.filtered == {"fi": 0} and kept.translated == {"fi": 4}
    first = json.loads((tmp_path / "kept.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert -1.0 <= first["provenance"]["fi"]["similarity"] <= 1.0


def test_bad_input_is_named(tiny_mt: Path, tmp_path: Path) -> None:
    model = translator(tiny_mt)
    with pytest.raises(UnknownLanguageError, match=r"tiny-marian \(marian\) has no code for language 'sw'"):
        translate_corpus(corpus(), model, tmp_path / "a.jsonl", TranslateOptions(targets=["sw"], show_progress=False))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataFormatError, match="empty.jsonl: no records"):
        read_input(str(empty), "en")
    german = tmp_path / "de.jsonl"
    write_parallel_jsonl(ParallelQACorpus("de", [corpus().pairs[4]]), german)
    with pytest.raises(EmptySelectionError, match="no entry in the source language 'en'"):
        read_input(str(german), "en")
    with pytest.raises(PolyirError, match="no such model folder"):
        load_translator(str(tmp_path / "no-model"))


def test_ctranslate2_missing_is_named(tiny_mt: Path) -> None:
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("ctranslate2 is installed: the missing-package error cannot occur")
    with pytest.raises(PolyirError, match="--engine ctranslate2 needs the ctranslate2 package"):
        load_translator(str(tiny_mt), engine="ctranslate2")


def test_squad_input_keeps_the_answer_sentence(tmp_path: Path) -> None:
    context = "Goethe wrote Faust. It was in 1808. Weimar is a city."
    doc = {"version": "v2.0", "data": [{"title": "G", "paragraphs": [{"context": context, "qas": [
        {"id": "a", "question": "When?", "answers": [{"text": "1808", "answer_start": context.index("1808")}],
         "is_impossible": False},
        {"id": "b", "question": "Never?", "answers": [], "is_impossible": True}]}]}]}
    path = tmp_path / "train-v2.0.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    read = read_input(str(path), "en")
    assert len(read) == 1
    assert read.pairs[0].entries["en"] == QAEntry("When?", "It was in 1808.", context)


def test_cli_translate(tiny_mt: Path, tmp_path: Path) -> None:
    src = tmp_path / "toy.jsonl"
    write_parallel_jsonl(corpus(), src)
    out = tmp_path / "toy.fi.jsonl"
    result = CliRunner().invoke(app, ["translate", str(src), "--to", "fi", "--model", str(tiny_mt), "-o", str(out),
                                      "--max-new-tokens", "6", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "fi: 4 entries" in result.output and read_parallel_jsonl(out).language_sizes()["fi"] == 4
    bad = CliRunner().invoke(app, ["translate", str(src), "--to", "xx9", "--model", str(tiny_mt), "-o",
                                   str(tmp_path / "b.jsonl")])
    assert bad.exit_code == 2 and "xx9" in bad.output
