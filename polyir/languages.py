"""Language codes polyir understands, and validation of user-given language lists."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from polyir.errors import EmptySelectionError, UnknownLanguageError

# ISO 639-1 codes (plus a few ISO 639-3 codes common in multilingual IR) with English names.
LANGUAGE_NAMES: dict[str, str] = {
    "af": "Afrikaans", "am": "Amharic", "ar": "Arabic", "az": "Azerbaijani", "be": "Belarusian",
    "bg": "Bulgarian", "bn": "Bengali", "bs": "Bosnian", "ca": "Catalan", "cs": "Czech",
    "cy": "Welsh", "da": "Danish", "de": "German", "el": "Greek", "en": "English",
    "eo": "Esperanto", "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian",
    "fi": "Finnish", "fr": "French", "ga": "Irish", "gl": "Galician", "gu": "Gujarati",
    "ha": "Hausa", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian",
    "hy": "Armenian", "id": "Indonesian", "ig": "Igbo", "is": "Icelandic", "it": "Italian",
    "ja": "Japanese", "jv": "Javanese", "ka": "Georgian", "kk": "Kazakh", "km": "Khmer",
    "kn": "Kannada", "ko": "Korean", "ku": "Kurdish", "ky": "Kyrgyz", "la": "Latin",
    "lo": "Lao", "lt": "Lithuanian", "lv": "Latvian", "mg": "Malagasy", "mk": "Macedonian",
    "ml": "Malayalam", "mn": "Mongolian", "mr": "Marathi", "ms": "Malay", "my": "Burmese",
    "ne": "Nepali", "nl": "Dutch", "no": "Norwegian", "or": "Odia", "pa": "Punjabi",
    "pl": "Polish", "ps": "Pashto", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian",
    "rw": "Kinyarwanda", "sd": "Sindhi", "si": "Sinhala", "sk": "Slovak", "sl": "Slovenian",
    "so": "Somali", "sq": "Albanian", "sr": "Serbian", "sv": "Swedish", "sw": "Swahili",
    "ta": "Tamil", "te": "Telugu", "tg": "Tajik", "th": "Thai", "tl": "Tagalog",
    "tr": "Turkish", "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek", "vi": "Vietnamese",
    "xh": "Xhosa", "yo": "Yoruba", "zh": "Chinese", "zu": "Zulu",
    "fil": "Filipino", "yue": "Cantonese",
}


def parse_languages(value: str | Sequence[str] | None) -> list[str] | None:
    """Turn ``"en,de"`` (or a list) into validated codes; ``None``/empty means "all languages"."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    codes = [c.strip().lower() for c in items if c and c.strip()]
    if not codes:
        return None
    unknown = [c for c in codes if c not in LANGUAGE_NAMES]
    if unknown:
        raise UnknownLanguageError(
            f"unknown language code(s): {', '.join(unknown)}; use ISO 639-1 codes such as en, de, zh"
        )
    seen: list[str] = []
    for c in codes:
        if c not in seen:
            seen.append(c)
    return seen


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
