"""The Jinja environment of the report's templates (``polyir/report/templates/*.html.j2``).

Autoescaped, with one change to Jinja's default: every ``{{ value }}`` is escaped as :func:`html.escape`
does (``&quot;``, ``&#x27;``) and ``None`` prints nothing; :class:`markupsafe.Markup` (HTML a template
rendered, e.g. a macro's output) passes as it is.
"""

from __future__ import annotations

import json
from functools import lru_cache
from html import escape
from typing import Any

import jinja2
from markupsafe import Markup

from polyir.report.format import fmt, is_number, p_value, signed


def esc(value: Any) -> Markup:
    """Escaped text of any value (None -> empty); Markup stays as it is."""
    if value is None:
        return Markup("")
    if hasattr(value, "__html__"):
        return Markup(value.__html__())
    return Markup(escape(str(value), quote=True))


def as_json(obj: Any) -> str:
    """A value as indented JSON (a string stays as it is), for ``<pre>`` blocks."""
    return obj if isinstance(obj, str) else json.dumps(obj, indent=2, ensure_ascii=False, default=str)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The templates' environment: package templates, strict undefined names, html.escape on output."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("polyir.report", "templates"),
        autoescape=True,
        finalize=esc,  # html.escape semantics; the autoescape after it leaves Markup alone
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(fmt=fmt, signed=signed, p=p_value, json=as_json)
    env.tests["numeric_text"] = is_number
    return env


def render(template: str, **context: Any) -> Markup:
    """Render one template to HTML (as Markup, so that an enclosing template does not escape it)."""
    return Markup(environment().get_template(template).render(**context))
