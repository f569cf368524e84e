"""Tiny models for tests and examples: a few-layer BERT with a small word-level vocabulary.

Kept in the package (not only in tests) so that downstream users can test their own pipelines offline.
"""

from __future__ import annotations

import builtins
import errno
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import torch


def build_tiny_model_dir(
    path: Path,
    words: Iterable[str] = (),
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    seed: int = 0,
    dropout: float | None = None,
) -> Path:
    """Write a randomly initialised small BERT + word-level tokenizer as a transformers folder.

    ``dropout`` sets the hidden and attention dropout (``None``: BERT's 0.1). With 0 a training step
    is a deterministic function of the batch, e.g. to compare a 2-process step with a 1-process one.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    base = ["query", "passage", ":", ".", ",", "?"]
    vocab_words = list(dict.fromkeys([*specials, *base, *(w.lower() for w in words)]))
    vocab = {w: i for i, w in enumerate(vocab_words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=128,
        **({} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}),
    )
    model = BertModel(config)  # with pooler, so every load is deterministic
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


_TOPICS = ["cat", "dog", "park", "rome", "berlin", "paris", "madrid", "river", "city", "emperor"]


def build_tiny_lareqa_world(root: Path, languages: Iterable[str] = ("en", "de", "es"), **model_options: Any) -> dict[str, Path]:
    """A tiny MLQA-R (8 paragraphs, for training) and XQuAD-R (3, for testing) under ``root/data``, and a
    tiny BERT knowing every word of them: ``{"root", "data", "model"}``."""
    import re

    languages = list(languages)
    write_tiny_lareqa(root / "data" / "mlqa-r", languages, n_paragraphs=8)
    write_tiny_lareqa(root / "data" / "xquad-r", languages, n_paragraphs=3)
    text = " ".join(p.read_text(encoding="utf-8") for p in (root / "data").rglob("*.json"))
    words = sorted(set(re.findall(r"[a-z0-9]+", text.lower())))
    model = build_tiny_model_dir(root / "bert", words, **{"seed": 0, **model_options})
    return {"root": root, "data": root / "data", "model": model}


def build_tiny_index(folder: Path, encoder: Any, texts: dict[str, list[str]]) -> Path:
    """An index folder of ``texts`` (language -> passages, ids ``<lang>-<i>``) encoded by ``encoder``."""
    from polyir.index.corpus import Passage
    from polyir.index.store import build_index

    passages = [Passage(f"{lang}-{i}", lang, t) for lang, items in texts.items() for i, t in enumerate(items)]
    build_index(folder, passages, encoder, show_progress=False).index.close()
    return folder


def write_tiny_lareqa(
    folder: Path, languages: Iterable[str] = ("en", "de", "es"), n_paragraphs: int = 4
) -> dict[str, Path]:
    """Write a small parallel LAReQA dataset (``{lang}.json``): 3 sentences and 2 questions a paragraph."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for lang in languages:
        paragraphs = []
        for p in range(n_paragraphs):
            topic = _TOPICS[p % len(_TOPICS)]
            sentences = [
                f"{lang} {topic} sat on the mat {p} {s} ." for s in range(3)
            ]
            sentences[1] = f"{lang} the {topic} ran in the park {p} ."
            context = " ".join(sentences)
            breaks, pos = [], 0
            for s in sentences:
                start = context.index(s, pos)
                breaks.append([start, start + len(s)])
                pos = start + len(s)
            qas = [
                {"id": f"p{p}q{k}", "question": f"{lang} who was the {topic} {k} ?",
                 "answers": [{"answer_start": breaks[k][0] + 1, "text": sentences[k][1:4]}]}
                for k in range(2)
            ]
            paragraphs.append({"context": context, "qas": qas, "sentences": sentences,
                               "sentence_breaks": breaks})
        doc = {"version": "1.1", "data": [{"title": "tiny", "paragraphs": paragraphs}]}
        path = folder / f"{lang}.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        out[lang] = path
    return out


# ---------------------------------------------------------------------------- a golden tiny run

GOLDEN_METRICS = ("mo_map", "cr_map", "mul_map", "rank_distance", "mul_hit@1", "mul_hit@10")


def golden_tiny_run(workdir: Path) -> dict:
    """A small deterministic run end to end, and the figures it publishes.

    A seeded tiny BERT is fine-tuned for 4 steps (hybrid batches, dropout on, fp32, one thread) on a
    tiny LAReQA corpus registered as ``mlqa-r``, then the base and the trained model are evaluated
    on a tiny ``xquad-r``; the trained row is tested against the base and rendered as a summary
    table row, with the code ``polyir experiment`` uses. ``tests/data/golden-tiny-run.json`` holds
    these figures; ``tests/test_published.py`` reruns this and compares. Refresh (after a change
    that is meant to move the numbers)::

        python -m polyir.testing golden tests/data/golden-tiny-run.json
    """
    import json
    import re

    from polyir.data.registry import load_task
    from polyir.evaluation.run import EvalOptions, evaluate_encoder
    from polyir.experiment.summary import TABLE_METRICS, _cell, _load, _test
    from polyir.models.resolve import load_encoder
    from polyir.runinfo import versions, write_json
    from polyir.training.config import config_from_dict
    from polyir.training.trainer import train

    workdir = Path(workdir)
    langs = ["en", "de", "es"]
    data = workdir / "data"
    write_tiny_lareqa(data / "mlqa-r", langs, n_paragraphs=8)
    write_tiny_lareqa(data / "xquad-r", langs, n_paragraphs=3)
    texts = " ".join(p.read_text(encoding="utf-8") for p in sorted(data.rglob("*.json")))
    words = sorted(set(re.findall(r"[a-z0-9]+", texts.lower())))
    model = build_tiny_model_dir(workdir / "model", words, seed=0)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # results must not depend on how a reduction is split over threads
    try:
        config = config_from_dict({
            "model": {"spec": str(model), "device": "cpu", "query_max_length": 24, "passage_max_length": 24},
            "data": {"train": [{"source": "mlqa-r", "languages": langs}], "data_dir": str(data), "download": False},
            "validation": {"count": 4, "every": 2, "max_loss_batches": 1},
            "optim": {"lr": 3e-3, "max_steps": 4, "batch_size": 4, "warmup_ratio": 0.0, "precision": "fp32",
                      "freeze_word_embeddings": False},
            "seed": 0,
            "output_dir": str(workdir / "run"),
            "log_every": 1,
            "progress": False,
        })
        result = train(config)
        task = load_task("xquad-r", data_dir=data, languages=langs, download=False)
        options = EvalOptions(precision="fp32", show_progress=False)
        files = {}
        for row, spec in (("base", str(model)), ("trained", str(result.last_dir))):
            enc = load_encoder(spec, device="cpu", query_max_length=24, passage_max_length=24)
            files[row] = workdir / f"{row}.json"
            write_json(files[row], evaluate_encoder(enc, task, options, dataset="xquad-r"))
    finally:
        torch.set_num_threads(threads)

    loaded = {row: _load(path) for row, path in files.items()}
    tests = {m: _test([loaded["trained"]], [loaded["base"]], m, 200, 0) for m in TABLE_METRICS}
    entry = {**loaded["trained"]["metrics"], "n_seeds": 1, "vs_base": tests}
    rows = [json.loads(line) for line in (workdir / "run" / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    return {
        "train_loss": [r["loss"] for r in rows if r["type"] == "train"],
        "validation": [{k: v for k, v in r.items() if k.startswith("val_") or k == "step"}
                       for r in rows if r["type"] == "validation"],
        "test": {row: {m: res["metrics"][m] for m in GOLDEN_METRICS} for row, res in loaded.items()},
        "vs_base": {m: {"diff": t["diff"], "p": t["p"]} for m, t in tests.items()},
        "table_row": "| trained | " + " | ".join(_cell(entry, m) for m in TABLE_METRICS) + " |",
        "_versions": {k: v for k, v in versions().items() if k in ("torch", "transformers", "numpy")},
    }


class FullDiskFile:
    """A file handle on a full disk: every ``write`` fails with ENOSPC; everything else is the real file.
    For tests that check an output is written all-or-nothing (the old file stays, no temporary is left)."""

    def __init__(self, fh: IO[Any]) -> None:
        self.fh = fh

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fh, name)

    def __enter__(self) -> "FullDiskFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()


def full_disk_open(fragment: str = "") -> Callable[..., Any]:
    """An ``open`` for monkeypatching (e.g. ``polyir.atomic.open``): files whose path contains
    ``fragment`` (every file by default) are on a full disk, see :class:`FullDiskFile`."""

    def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        fh = builtins.open(file, mode, *args, **kwargs)
        return FullDiskFile(fh) if fragment in str(file) else fh

    return fake_open


def _main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import tempfile

    from polyir.runinfo import write_json

    parser = argparse.ArgumentParser(prog="python -m polyir.testing")
    sub = parser.add_subparsers(dest="command", required=True)
    golden = sub.add_parser("golden", help="rerun the golden tiny run and write its figures")
    golden.add_argument("output", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        figures = golden_tiny_run(Path(tmp))
    write_json(args.output, figures)
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
