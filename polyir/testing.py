"""Tiny models for tests and examples: a few-layer BERT with a small word-level vocabulary.

Kept in the package (not only in tests) so that downstream users can test their own pipelines offline.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

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
