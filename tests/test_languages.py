"""Language codes: every standard form to one canonical code, names, and one-line errors."""

from __future__ import annotations

import pytest

from polyir.errors import UnknownLanguageError
from polyir.languages import (
    LANGUAGE_NAMES,
    canonical_code,
    is_canonical,
    language_name,
    parse_languages,
)


@pytest.mark.parametrize(("tag", "code"), [
    # ISO 639-1 is kept, ISO 639-3 becomes 639-1 where one exists, case does not matter
    ("en", "en"), ("eng", "en"), ("ENG", "en"), ("hau", "ha"), ("tir", "ti"), ("wol", "wo"),
    ("kin", "rw"), ("twi", "tw"), ("run", "rn"), ("lug", "lg"), ("orm", "om"), ("ewe", "ee"),
    # no 639-1 code: 639-3 stays
    ("pcm", "pcm"), ("bem", "bem"), ("fon", "fon"), ("bbj", "bbj"), ("mos", "mos"), ("luo", "luo"),
    # dominant member of a macrolanguage without a 639-1 code of its own: the macrolanguage
    ("arb", "ar"), ("cmn", "zh"), ("swh", "sw"), ("zsm", "ms"), ("kmr", "ku"),
    # region dropped
    ("eng-GB", "en"), ("zho-CN", "zh"), ("pt_BR", "pt"), ("fra-CA", "fr"), ("prs", "fa"),
    # usual script dropped, another script kept (lower case), also when a region implies it
    ("sna-Latn", "sn"), ("zh-Hans", "zh"), ("srp-Cyrl", "sr"), ("snd-Arab", "sd"),
    ("zh-Hant", "zh-hant"), ("zho-TW", "zh-hant"), ("srp-Latn", "sr-latn"), ("pa-PK", "pa-arab"),
    # deprecated codes and aliases
    ("iw", "he"), ("tl", "fil"),
])
def test_every_form_gives_the_canonical_code(tag, code):
    assert canonical_code(tag) == code
    assert is_canonical(code) and canonical_code(code) == code


def test_codes_polyir_wrote_before_are_unchanged():
    # result files and tables written with the old code list keep their keys
    for code in "ar bn de el en es fa fi fr hi id ja ko ru sw te th tr vi yo zh yue fil".split():
        assert canonical_code(code) == code


@pytest.mark.parametrize(("tag", "why"), [
    ("xx", "not an ISO 639-1/639-3 code"), ("zzz", "not an ISO 639-1/639-3 code"), ("12", "not an ISO"),
    ("und", "special code"), ("mul", "special code"), ("zxx", "special code"),
    ("qaa", "private-use"), ("x-klingon", "private-use"), ("", "not an ISO"),
])
def test_codes_no_standard_knows_are_one_line_errors_with_a_hint(tag, why):
    with pytest.raises(UnknownLanguageError) as err:
        canonical_code(tag)
    message = str(err.value)
    assert "\n" not in message and why in message and f"{tag!r}" in message
    assert "sna-Latn" in message  # the hint shows the accepted forms


def test_a_language_name_gets_a_did_you_mean_hint():
    with pytest.raises(UnknownLanguageError, match=r"did you mean 'rw' \(Kinyarwanda\)"):
        canonical_code("Kinyarwanda")


def test_parse_languages_canonicalises_and_deduplicates():
    assert parse_languages("eng,sna-Latn,tir,wol") == ["en", "sn", "ti", "wo"]
    assert parse_languages(["en", "eng", "eng-GB", " de "]) == ["en", "de"]
    assert parse_languages("") is None and parse_languages(None) is None and parse_languages([]) is None
    with pytest.raises(UnknownLanguageError, match=r"^unknown language code\(s\): xx, yy; use ") as err:
        parse_languages("en,xx,yy")
    assert "\n" not in str(err.value)


def test_names_and_the_names_mapping():
    assert language_name("sn") == "Shona" and language_name("sna-Latn") == "Shona"
    assert language_name("zh-hant") == "Chinese (Traditional)"
    assert language_name("not a code") == "not a code"
    # membership means "a canonical code", whether or not the groups table lists it
    assert "bem" in LANGUAGE_NAMES and "zh-hant" in LANGUAGE_NAMES
    assert "eng" not in LANGUAGE_NAMES and "xx" not in LANGUAGE_NAMES and 3 not in LANGUAGE_NAMES
    assert LANGUAGE_NAMES["pcm"] == "Nigerian Pidgin" and LANGUAGE_NAMES.get("xx") is None
    assert {"en", "sn", "pcm"} <= set(LANGUAGE_NAMES) and len(LANGUAGE_NAMES) == len(set(LANGUAGE_NAMES))
