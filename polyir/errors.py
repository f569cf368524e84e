"""Exceptions polyir raises for bad input; the CLI prints them without a traceback."""


class PolyirError(Exception):
    """Base class: an error a user can fix (bad file, bad option, missing data)."""


class DataFormatError(PolyirError):
    """A data file is malformed; the message names the file and the record."""


class DatasetNotFoundError(PolyirError):
    """A registered dataset is not present locally and cannot be downloaded."""


class UnknownLanguageError(PolyirError):
    """A language code is not known or not present in the data."""


class EmptySelectionError(PolyirError):
    """A selection (languages, queries, pairs) left nothing to work on."""
