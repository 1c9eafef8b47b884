"""Renders Jinja2 templates over a group's entries in a sandbox.

NOTE: jinja2 is imported lazily, on the first render: it is the one import that is not at
the top of a module, because it costs more at start-up than the rest of gostore together and
many programs never render.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from .errors import TemplateError

if TYPE_CHECKING:
    import jinja2

_CACHED_TEMPLATES = 256  # compiled templates kept; Jinja compilation costs far more than a render


@functools.cache
def _environment(strict: bool) -> jinja2.Environment:
    import jinja2.exceptions
    import jinja2.sandbox

    class _Sandbox(jinja2.sandbox.ImmutableSandboxedEnvironment):
        # NOTE: Jinja's sandbox answers an unsafe attribute ({{ x.__class__ }}) with an
        # Undefined, which a lenient template renders as "". Refuse it outright instead, so a
        # probe of the sandbox always fails loudly with TemplateError.
        def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
            raise jinja2.exceptions.SecurityError(
                f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
            )

    undefined = jinja2.StrictUndefined if strict else jinja2.Undefined
    # Text output like Go's text/template: no HTML autoescaping.
    return _Sandbox(
        undefined=undefined, autoescape=False, keep_trailing_newline=True
    )


@functools.lru_cache(maxsize=_CACHED_TEMPLATES)
def _compile(source: str, strict: bool) -> jinja2.Template:
    return _environment(strict).from_string(source)


def render(op: str, source: str, group: str, variables: dict[str, str], strict: bool) -> str:
    """Render ``source`` with ``variables``; every template failure becomes TemplateError."""
    import jinja2

    try:
        template = _compile(source, strict)
        rendered: Any = template.render(variables)
    except jinja2.TemplateSyntaxError as exc:
        message = f"template syntax error at line {exc.lineno}: {exc.message}"
        raise TemplateError.at(op, message, group) from exc
    except jinja2.UndefinedError as exc:
        raise TemplateError.at(op, f"undefined template variable: {exc.message}", group) from exc
    except jinja2.TemplateError as exc:  # SecurityError and the rest
        raise TemplateError.at(op, f"template error: {exc}", group) from exc
    except Exception as exc:  # a runtime failure inside the template, e.g. 1/0 or "a" + 1
        raise TemplateError.at(op, f"template failed: {type(exc).__name__}: {exc}", group) from exc
    return str(rendered)
