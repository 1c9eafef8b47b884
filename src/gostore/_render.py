"""Renders Jinja2 templates over a group's entries in a sandbox, within bounded work and output.

NOTE: jinja2 is imported lazily, on the first render: it is the one import that is not at
the top of a module, because it costs more at start-up than the rest of gostore together and
many programs never render.

NOTE: Jinja2's sandbox keeps a template away from Python's internals, not from the
interpreter's time and memory: ``{{ 7 ** (10 ** 9) }}`` computes for minutes holding the GIL,
``{{ 'a' * 10 ** 10 }}`` asks for 10 GB. Every render therefore runs under a budget
(:class:`RenderLimits`), and every operation whose result can be much larger than its operands
is checked *before* it runs: ``**`` and ``*`` on integers by the size of the result, ``*`` and
``+`` on strings and lists, printf and ``str.format`` widths, padding methods and filters,
``range()``, ``lipsum()``, every ``{% for %}`` iteration, every block of text a template joins,
and the output. A deadline, checked at each loop iteration and call, backs them up.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ._render_limits import (
    BUDGET,
    CHECKED_FILTERS,
    CONTAINERS,
    DEFAULT_LIMITS,
    Budget,
    LimitExceeded,
    RenderLimits,
    check_add,
    check_filter,
    check_format_spec,
    check_multiply,
    check_percent,
    check_power,
    check_str_method,
    checked_lipsum,
    checked_range,
    current_budget,
)
from .errors import TemplateError

if TYPE_CHECKING:
    import jinja2

_CACHED_TEMPLATES = 256  # compiled templates kept; Jinja compilation costs far more than a render


# -- the environment --------------------------------------------------------------------------


@functools.cache
def _environment(strict: bool) -> jinja2.Environment:
    import jinja2.compiler
    import jinja2.exceptions
    import jinja2.nodes
    import jinja2.runtime
    import jinja2.sandbox
    import jinja2.utils
    import markupsafe

    global CONTAINERS
    if jinja2.utils.Namespace not in CONTAINERS:
        CONTAINERS = (*CONTAINERS, jinja2.utils.Namespace)
    nodes = jinja2.nodes

    class _CodeGenerator(jinja2.compiler.CodeGenerator):
        # NOTE: the two things the sandbox has no hook for. A {% for %} iterates through
        # environment.count_loop, so every iteration of every loop is counted; a `~` joins
        # through environment.checked_join, which sizes the result before building it.
        def visit_For(self, node: jinja2.nodes.For, frame: Any) -> None:
            counter = nodes.EnvironmentAttribute("count_loop", lineno=node.lineno)
            iterable = nodes.Call(counter, [node.iter], [], None, None, lineno=node.lineno)
            counted = nodes.For(
                node.target, iterable, node.body, node.else_, node.test, node.recursive,
                lineno=node.lineno,
            )  # fmt: skip
            counted.set_environment(self.environment)
            super().visit_For(counted, frame)

        def visit_Concat(self, node: jinja2.nodes.Concat, frame: Any) -> None:
            if frame.eval_ctx.volatile:
                markup = "context.eval_ctx.volatile"  # as Jinja's own visit_Concat decides
            else:
                markup = str(bool(frame.eval_ctx.autoescape))
            self.write(f"environment.checked_join({markup}, (")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write("))")

    class _Formatter(jinja2.sandbox.SandboxedFormatter):
        # str.format through the sandbox: each field's width and size is checked before it is
        # formatted, and the running total of the result too.
        size = 0

        def vformat(self, format_string: str, args: Any, kwargs: Mapping[str, Any]) -> str:
            self.size = len(format_string)
            return super().vformat(format_string, args, kwargs)

        def format_field(self, value: Any, format_spec: str) -> Any:
            budget = current_budget()
            self.size += check_format_spec(budget, format_spec) + budget.weight(value)
            budget.check_text(self.size, "str.format()")
            return super().format_field(value, format_spec)

    class _EscapeFormatter(_Formatter, jinja2.sandbox.SandboxedEscapeFormatter):
        pass

    class _Sandbox(jinja2.sandbox.ImmutableSandboxedEnvironment):
        code_generator_class = _CodeGenerator
        intercepted_binops = frozenset({"**", "*", "+", "%"})

        # NOTE: Jinja's sandbox answers an unsafe attribute ({{ x.__class__ }}) with an
        # Undefined, which a lenient template renders as "". Refuse it outright instead, so a
        # probe of the sandbox always fails loudly with TemplateError.
        def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
            raise jinja2.exceptions.SecurityError(
                f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
            )

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            budget = current_budget()
            if operator == "**":
                check_power(budget, left, right)
            elif operator == "*":
                check_multiply(budget, left, right)
            elif operator == "+":
                check_add(budget, left, right)
            elif isinstance(left, str):  # "%": printf-style formatting
                check_percent(budget, left, right)
            return self.binop_table[operator](left, right)

        def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
            budget = current_budget()
            budget.check_time()
            if type(obj) is types.BuiltinMethodType and isinstance(
                getattr(obj, "__self__", None), (str, bytes)
            ):
                args = check_str_method(budget, obj, args, kwargs)
            elif isinstance(obj, jinja2.runtime.LoopContext) and args:
                # loop(children) in a recursive loop: count the inner loop's iterations too
                args = (budget.counted(args[0]), *args[1:])
            return super().call(context, obj, *args, **kwargs)

        def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
            # NOTE: Jinja decides which values are str.format/format_map; the wrapper it returns
            # is rebuilt here with the checking formatter (same arguments, same result).
            if super().wrap_str_format(value) is None:
                return None
            text = value.__self__
            formatter: _Formatter
            if isinstance(text, markupsafe.Markup):
                formatter = _EscapeFormatter(self, escape=text.escape)
            else:
                formatter = _Formatter(self)
            is_format_map = value.__name__ == "format_map"

            def wrapper(*args: Any, **kwargs: Any) -> str:
                if is_format_map:
                    if kwargs:
                        raise TypeError("format_map() takes no keyword arguments")
                    if len(args) != 1:
                        raise TypeError(
                            f"format_map() takes exactly one argument ({len(args)} given)"
                        )
                    kwargs, args = args[0], ()
                formatted: str = type(text)(formatter.vformat(text, args, kwargs))
                return formatted  # Markup stays Markup, as in Jinja's own wrapper

            return functools.update_wrapper(wrapper, value)

        def count_loop(self, iterable: Iterable[Any]) -> Iterator[Any]:
            return current_budget().counted(iterable)

        def checked_join(self, markup: bool, parts: tuple[Any, ...]) -> str:
            budget = current_budget()
            budget.check_text(sum(budget.weight(part) for part in parts), "'~'")
            if markup:
                joined: str = jinja2.runtime.markup_join(parts)
                return joined
            return jinja2.runtime.str_join(parts)

        def concat(self, parts: Iterable[str]) -> str:
            # Every block of text the template builds (a macro's output, a {% set %} block,
            # a filter block) is joined here: size it first.
            parts = parts if isinstance(parts, list) else list(parts)
            current_budget().check_text(sum(map(len, parts)), "a block of template text")
            return "".join(parts)

    def finalize(value: Any) -> Any:
        # Every {{ expression }} passes here before it is turned into text; only containers
        # can print much longer than they are (other values are sized where they are made).
        if type(value) is not str and isinstance(value, CONTAINERS):
            budget = current_budget()
            budget.check_text(budget.weight(value), "an expression's text")
        return value

    undefined = jinja2.StrictUndefined if strict else jinja2.Undefined
    # Text output like Go's text/template: no HTML autoescaping.
    environment = _Sandbox(
        undefined=undefined, autoescape=False, keep_trailing_newline=True, finalize=finalize
    )
    environment.globals["range"] = checked_range
    environment.globals["lipsum"] = checked_lipsum
    for name in CHECKED_FILTERS:
        environment.filters[name] = _checked_filter(name, environment.filters[name])
    return environment


def _checked_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    import jinja2

    # Jinja passes the context, eval context or environment first to filters that ask for it.
    passes = getattr(getattr(original, "jinja_pass_arg", None), "name", None)

    def checked(context: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        value, args = check_filter(current_budget(), name, value, args, kwargs)
        if passes == "context":
            return original(context, value, *args, **kwargs)
        if passes == "eval_context":
            return original(context.eval_ctx, value, *args, **kwargs)
        if passes == "environment":
            return original(context.environment, value, *args, **kwargs)
        return original(value, *args, **kwargs)

    functools.update_wrapper(checked, original)  # copies the original's jinja_pass_arg too,
    # so pass_context is applied after it. It also keeps Jinja from running the filter at
    # compile time on constant arguments, where no render's limits apply.
    return jinja2.pass_context(checked)


@functools.lru_cache(maxsize=_CACHED_TEMPLATES)
def _compile(source: str, strict: bool) -> jinja2.Template:
    return _environment(strict).from_string(source)


def render(
    op: str,
    source: str,
    group: str,
    variables: dict[str, str],
    strict: bool,
    limits: RenderLimits | None = None,
) -> str:
    """Render ``source`` with ``variables`` within ``limits`` (None: the defaults); every
    template failure, and every limit exceeded, becomes TemplateError."""
    import jinja2

    if limits is None:
        limits = DEFAULT_LIMITS
    elif not isinstance(limits, RenderLimits):
        raise TypeError(f"{op}: limits must be a gostore.RenderLimits, got {limits!r}")
    budget = Budget(limits)
    token = BUDGET.set(budget)
    try:
        template = _compile(source, strict)
        parts = []
        size = 0
        for part in template.generate(variables):
            size += len(part)
            if size > limits.max_output_chars:
                budget.check_text(size, "the output")
            parts.append(part)
        rendered = "".join(parts)
    except LimitExceeded as exc:
        raise TemplateError.at(op, f"template stopped: {exc}", group) from exc
    except jinja2.TemplateSyntaxError as exc:
        message = f"template syntax error at line {exc.lineno}: {exc.message}"
        raise TemplateError.at(op, message, group) from exc
    except jinja2.UndefinedError as exc:
        raise TemplateError.at(op, f"undefined template variable: {exc.message}", group) from exc
    except jinja2.TemplateError as exc:  # SecurityError and the rest
        raise TemplateError.at(op, f"template error: {exc}", group) from exc
    except Exception as exc:  # a runtime failure inside the template, e.g. 1/0 or "a" + 1
        raise TemplateError.at(op, f"template failed: {type(exc).__name__}: {exc}", group) from exc
    finally:
        BUDGET.reset(token)
    return rendered
