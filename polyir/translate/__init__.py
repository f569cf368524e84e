"""``polyir translate``: make a parallel QA corpus by machine translation (see ``pipeline`` for the rules)."""

from polyir.translate.engine import Translator, load_translator
from polyir.translate.inputs import read_input
from polyir.translate.pipeline import TranslateOptions, TranslateReport, translate_corpus

__all__ = ["Translator", "load_translator", "read_input", "TranslateOptions", "TranslateReport", "translate_corpus"]
