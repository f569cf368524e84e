"""Language codes: any standard form in, one canonical polyir code out, and user-given language lists.

Data writes languages as ISO 639-1 (``sn``), ISO 639-3 (``sna``, ``hau``) or BCP-47 tags with a script
or region (``sna-Latn``, ``zho-CN``, ``eng-GB``). :func:`canonical_code` turns each into the one code
polyir uses everywhere (task languages, result files, tables), parsed and normalised by ``langcodes``:

* the shortest standard code of the language: ISO 639-1 where it exists, else ISO 639-3 (``eng`` -> ``en``,
  ``sna-Latn`` -> ``sn``, ``pcm`` -> ``pcm``); an individual language that CLDR files under a
  macrolanguage as its dominant member takes the macrolanguage's code when it has no 639-1 code of its own
  (``arb`` -> ``ar``, ``cmn`` -> ``zh``, ``swh`` -> ``sw``; ``tw`` stays ``tw``);
* the region is dropped (``eng-GB`` -> ``en``, ``zho-CN`` -> ``zh``, ``pt-BR`` -> ``pt``);
* the script is dropped when it is the language's usual one, kept (lower case) when it is not, since the
  text then differs: ``zh-Hans`` -> ``zh`` but ``zh-Hant`` -> ``zh-hant``; ``sr-Cyrl`` -> ``sr`` but
  ``sr-Latn`` -> ``sr-latn``. The script a region implies counts (``zho-TW`` -> ``zh-hant``);
* codes no standard knows (``xx``), private-use codes (``qaa``-``qtz``, ``x-...``) and the special codes
  ``und``, ``mul``, ``mis``, ``zxx`` are an ``UnknownLanguageError`` of one line with a hint.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from importlib import resources

import langcodes

from polyir.errors import EmptySelectionError, UnknownLanguageError

#: Codes that are valid BCP-47 but name no language a text can be in.
SPECIAL_CODES = frozenset({"und", "mul", "mis", "zxx", "root"})
EXAMPLES = "en, deu, sna-Latn, zho-CN (polyir writes them en, de, sn, zh)"


def _private_use(code: str) -> bool:
    return code.startswith("x-") or (len(code) == 3 and "qaa" <= code <= "qtz")


def _hint(tag: str) -> str:
    """``did you mean 'en' (English)?`` when ``tag`` is a language's English name, else examples."""
    try:
        found = langcodes.find(tag)
    except LookupError:
        found = None
    if found is not None and found.language and found.display_name().lower() == tag.strip().lower():
        return f"did you mean {canonical_code(found.to_tag())!r} ({found.display_name()})?"
    return f"use an ISO 639-1/639-3 code or a BCP-47 tag such as {EXAMPLES}"


@lru_cache(maxsize=4096)
def _canonical(tag: str) -> str | None:
    """The canonical code of ``tag``, or None when no standard knows it."""
    if not tag or not langcodes.tag_is_valid(tag):
        return None
    lang = langcodes.Language.get(tag)
    code = lang.language
    if code is None or code in SPECIAL_CODES or _private_use(code) or not lang.is_valid():
        return None
    if len(code) == 3:
        code = lang.prefer_macrolanguage().language or code
    script = lang.maximize().script
    usual = langcodes.Language.get(code).maximize().script
    return f"{code}-{script.lower()}" if script and usual and script != usual else code


def canonical_code(tag: str) -> str:
    """``tag`` (ISO 639-1/639-3 or BCP-47, any case) as polyir's canonical code (module docstring)."""
    clean = str(tag).strip()
    code = _canonical(clean.replace("_", "-"))
    if code is None:
        raise UnknownLanguageError(f"unknown language code {clean!r}: {_why(clean)}; {_hint(clean)}")
    return code


def _why(tag: str) -> str:
    """Why :func:`_canonical` refused ``tag``, in a few words."""
    low = tag.lower().replace("_", "-")
    if low.split("-")[0] in SPECIAL_CODES:
        return "a special code that names no single language"
    if _private_use(low.split("-")[0]) or low.startswith("x-"):
        return "a private-use code, which no standard defines"
    return "not an ISO 639-1/639-3 code nor a BCP-47 tag"


def is_language_code(tag: str) -> bool:
    """True when :func:`canonical_code` accepts ``tag``."""
    return _canonical(str(tag).strip().replace("_", "-")) is not None


def is_canonical(code: str) -> bool:
    """True when ``code`` is already in polyir's canonical form (``en``, ``sn``, ``zh-hant``)."""
    return _canonical(code) == code


@lru_cache(maxsize=4096)
def language_name(code: str) -> str:
    """English name of a code (``sn`` -> ``Shona``, ``zh-hant`` -> ``Chinese (Traditional)``)."""
    if not is_language_code(code):
        return code
    return langcodes.Language.get(canonical_code(code)).display_name()


class _LanguageNames(Mapping[str, str]):
    """Canonical code -> English name, for every code :func:`canonical_code` can return.

    ``code in LANGUAGE_NAMES`` is True for any canonical code (not only listed ones); iteration
    yields the codes of the packaged language-groups table (a finite, curated list).
    """

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and is_canonical(code)

    def __getitem__(self, code: str) -> str:
        if code not in self:
            raise KeyError(code)
        return language_name(code)

    def __iter__(self) -> Iterator[str]:
        return iter(_listed_codes())

    def __len__(self) -> int:
        return sum(1 for _ in self)


@lru_cache(maxsize=1)
def _listed_codes() -> tuple[str, ...]:
    """The canonical codes of the packaged table (``resources/language_groups.csv``), in its order.
    Read here, not through ``polyir.language_groups`` (which builds on this module and checks the table)."""
    text = resources.files("polyir").joinpath("resources", "language_groups.csv").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return tuple(dict.fromkeys(canonical_code(row["code"].strip()) for row in csv.DictReader(lines)))


LANGUAGE_NAMES: Mapping[str, str] = _LanguageNames()


def parse_languages(value: str | Sequence[str] | None) -> list[str] | None:
    """Turn ``"en,sna-Latn"`` (or a list) into canonical codes, first occurrence first; ``None`` or an
    empty list means "all languages". Codes no standard knows are one ``UnknownLanguageError``."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    given = [str(c).strip() for c in items if c is not None and str(c).strip()]
    if not given:
        return None
    unknown = [c for c in given if not is_language_code(c)]
    if unknown:
        shown = ", ".join(unknown)
        hint = _hint(unknown[0]) if len(unknown) == 1 else f"use ISO 639-1/639-3 codes or BCP-47 tags such as {EXAMPLES}"
        raise UnknownLanguageError(f"unknown language code(s): {shown}; {hint}")
    return list(dict.fromkeys(canonical_code(c) for c in given))


def select_languages(
    available: Iterable[str], wanted: Sequence[str] | None, *, source: str
) -> list[str]:
    """Intersect the languages a source has with the ones asked for, failing loudly on gaps."""
    have = sorted(set(available))
    if not have:
        raise EmptySelectionError(f"{source}: holds no language at all")
    if wanted is None:
        return have
    missing = [c for c in wanted if c not in have]
    if missing:
        raise UnknownLanguageError(
            f"{source}: language(s) {', '.join(missing)} not present; available: {', '.join(have)}"
        )
    return list(wanted)
