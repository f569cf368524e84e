"""Language codes of machine-translation model families, from polyir's canonical codes.

Each family names languages its own way:

* ``nllb`` (NLLB-200): FLORES-200 codes, ISO 639-3 + script (``deu_Latn``, ``zho_Hant``); a few
  languages use an individual-language code (``arb_Arab``, ``swh_Latn``, ``pes_Arab``, ...).
  The tokenizer's ``src_lang`` is the source code, generation starts with the target code.
* ``m2m100`` (M2M100): ISO 639-1 where it exists, as tokens ``__de__`` (``src_lang`` takes ``de``).
* ``marian`` (MarianMT / OPUS-MT): a one-pair model takes no code; a multi-target model wants
  ``>>xxx<<`` (ISO 639-3 or 639-1, whichever its vocabulary holds) before the source text.
* ``madlad`` (MADLAD-400, T5): ``<2xx>`` (BCP-47, ``<2de>``, ``<2zh>``) before the source text.

Which code a model accepts is checked against its tokenizer's vocabulary: a language the model does
not know is an ``UnknownLanguageError`` naming the model, its family and the codes tried.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import langcodes

from polyir.errors import PolyirError, UnknownLanguageError
from polyir.languages import canonical_code

FAMILIES = ("nllb", "m2m100", "marian", "madlad")

# FLORES-200 uses these codes where ISO 639-3 + usual script is not the code (macrolanguages).
_FLORES = {
    "ar": "arb_Arab", "zh": "zho_Hans", "zh-hant": "zho_Hant", "sw": "swh_Latn", "fa": "pes_Arab",
    "ms": "zsm_Latn", "et": "est_Latn", "lv": "lvs_Latn", "uz": "uzn_Latn", "sq": "als_Latn",
    "az": "azj_Latn", "om": "gaz_Latn", "mn": "khk_Cyrl", "ps": "pbt_Arab", "yi": "ydd_Hebr",
    "ku": "kmr_Latn", "mg": "plt_Latn", "no": "nob_Latn", "qu": "quy_Latn", "ne": "npi_Deva",
    "tw": "twi_Latn", "ak": "aka_Latn", "sr-latn": "srp_Latn", "gn": "grn_Latn", "ks": "kas_Arab",
}


def detect_family(model_type: str, name: str, tokenizer_class: str = "") -> str:
    """The family of a model from its config's ``model_type``, its name and its tokenizer class."""
    text = f"{name} {tokenizer_class}".lower()
    if "nllb" in text:
        return "nllb"
    if model_type == "m2m_100":
        return "m2m100"
    if model_type == "marian":
        return "marian"
    if "madlad" in text:
        return "madlad"
    raise PolyirError(
        f"cannot tell the translation family of {name!r} (model_type {model_type!r}); pass --family"
        f" {'/'.join(FAMILIES)}"
    )


def _alpha3(code: str) -> str:
    return langcodes.Language.get(code).to_alpha3()


def _script(code: str) -> str:
    return langcodes.Language.get(code).maximize().script or "Latn"


def candidates(family: str, language: str) -> list[str]:
    """The codes ``family`` may name ``language`` (a canonical polyir code) by, most likely first."""
    code = canonical_code(language)
    base = code.split("-")[0]
    if family == "nllb":
        if code in _FLORES:
            return [_FLORES[code]]
        return [f"{_alpha3(base)}_{_script(code)}"]
    if family == "m2m100":
        return [f"__{c}__" for c in dict.fromkeys([code, base])]
    if family == "marian":
        return [f">>{c}<<" for c in dict.fromkeys([_alpha3(base), base, code, f"{_alpha3(base)}_{_script(code)}"])]
    if family == "madlad":
        return [f"<2{c}>" for c in dict.fromkeys([code, base, langcodes.Language.get(code).to_tag()])]
    raise PolyirError(f"unknown translation family {family!r}; use one of {', '.join(FAMILIES)}")


def model_code(family: str, language: str, known: Callable[[str], bool], model: str,
               optional: bool = False) -> str | None:
    """The first candidate code ``known`` accepts; none is an ``UnknownLanguageError``, unless
    ``optional`` (a one-pair Marian model has no language tokens at all): then ``None``."""
    tried = candidates(family, language)
    for c in tried:
        if known(c):
            return c
    if optional:
        return None
    raise UnknownLanguageError(
        f"model {model} ({family}) has no code for language {language!r} (tried {', '.join(tried)});"
        " choose a language the model translates, or another model"
    )


def vocabulary_check(tokenizer: object) -> Callable[[str], bool]:
    """A test of whether a token is in ``tokenizer``'s vocabulary as one piece."""
    vocab = tokenizer.get_vocab()  # type: ignore[attr-defined]
    return lambda token: token in vocab


def language_tokens(tokenizer: object, family: str) -> Sequence[str]:
    """The vocabulary's language tokens of a Marian model (empty for a one-pair model)."""
    if family != "marian":
        return ()
    return [t for t in tokenizer.get_vocab() if t.startswith(">>") and t.endswith("<<")]  # type: ignore[attr-defined]
