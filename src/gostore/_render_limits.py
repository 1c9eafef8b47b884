"""The budget a template render runs under: :class:`RenderLimits` and the checks that size an
operation's result before it runs (see ``_render.py`` for why)."""

from __future__ import annotations

import builtins
import contextvars
import dataclasses
import math
import time
from collections.abc import Collection, ItemsView, Iterable, Iterator, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class RenderLimits:
    """Bounds on the work and output of one ``render``; going over one raises TemplateError.

    The defaults are far above what a configuration template needs and far below what would
    hurt the process; raise one for a template that legitimately needs more.

    :ivar max_output_chars: characters of rendered text; also of any text the template builds on
        the way (a ``~`` or ``+`` of strings, a ``join``, a filter's result, a ``{% set %}``
        block, a macro's output).
    :ivar max_loop_iterations: ``{% for %}`` iterations in one render, nested and recursive
        loops included; also the longest ``range()`` and the most words ``lipsum()`` may write.
    :ivar max_repeat_size: items (characters of a string; elements of a list, counting nested
        elements and their characters) that one ``*``, ``+`` on lists, or filling ``batch``
        may build.
    :ivar max_int_bits: bits of the largest integer ``**`` or ``*`` may compute.
    :ivar max_format_width: the largest width or precision a template may ask for: in ``%``
        formatting, ``str.format`` and the ``format`` filter, ``center``/``ljust``/``rjust``/
        ``zfill``/``expandtabs``, and the ``center``, ``indent`` and ``round`` filters.
    :ivar timeout: seconds a render may run, checked at each loop iteration and call.

    >>> RenderLimits(max_output_chars=50_000_000).max_output_chars
    50000000
    """

    max_output_chars: int = 10_000_000
    max_loop_iterations: int = 1_000_000
    max_repeat_size: int = 1_000_000
    max_int_bits: int = 4_096
    max_format_width: int = 10_000
    timeout: float = 5.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "timeout":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise TypeError(f"RenderLimits: timeout must be a number, got {value!r}")
                if not value > 0:  # also refuses NaN
                    raise ValueError(f"RenderLimits: timeout must be positive, got {value!r}")
            else:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise TypeError(f"RenderLimits: {field.name} must be an int, got {value!r}")
                if value <= 0:
                    raise ValueError(f"RenderLimits: {field.name} must be positive, got {value}")


DEFAULT_LIMITS = RenderLimits()


class LimitExceeded(Exception):
    """A render went over one of its limits; render() turns it into TemplateError."""

    def __init__(self, limit: str, value: float, what: str) -> None:
        super().__init__(
            f"{what}, over the render limit {limit}={value}; raise it with "
            f"limits=gostore.RenderLimits({limit}=...)"
        )


class Budget:
    """What one render may still spend; the hooks below charge it."""

    __slots__ = ("deadline", "iterations", "limits")

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.timeout
        self.iterations = 0

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded("timeout", self.limits.timeout, "the render ran out of time")

    def charge(self, iterations: int, what: str) -> None:
        self.iterations += iterations
        if self.iterations > self.limits.max_loop_iterations:
            raise LimitExceeded(
                "max_loop_iterations",
                self.limits.max_loop_iterations,
                f"{what} took the render to {self.iterations} iterations",
            )
        self.check_time()

    def counted(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """Iterate ``iterable``, charging each item as one loop iteration."""
        limit = self.limits.max_loop_iterations
        deadline = self.deadline
        monotonic = time.monotonic
        for item in iterable:
            self.iterations += 1
            if self.iterations > limit:
                raise LimitExceeded(
                    "max_loop_iterations", limit, f"loops ran more than {limit} iterations"
                )
            if monotonic() > deadline:
                raise LimitExceeded("timeout", self.limits.timeout, "the render ran out of time")
            yield item

    def check_text(self, size: int, what: str) -> None:
        if size > self.limits.max_output_chars:
            limit = self.limits.max_output_chars
            raise LimitExceeded("max_output_chars", limit, f"{what} would make {size} characters")

    def check_repeat(self, size: int, what: str) -> None:
        if size > self.limits.max_repeat_size:
            limit = self.limits.max_repeat_size
            raise LimitExceeded("max_repeat_size", limit, f"{what} would make {size} items")

    def check_width(self, width: object, what: str) -> None:
        if isinstance(width, int) and abs(width) > self.limits.max_format_width:
            limit = self.limits.max_format_width
            raise LimitExceeded("max_format_width", limit, f"{what} asks for width {width}")

    def check_int_bits(self, bits: float, what: str) -> None:
        if bits > self.limits.max_int_bits:
            limit = self.limits.max_int_bits
            need = "more bits than a float counts" if math.isinf(bits) else f"{int(bits)} bits"
            raise LimitExceeded("max_int_bits", limit, f"{what} would need {need}")

    def weight(self, value: object) -> int:
        """About how many characters ``str(value)`` has, without building it.

        Containers are walked once per distinct object, so a list holding one big list a
        million times costs a million steps, not a million copies; the deadline is checked as
        the walk goes."""
        if isinstance(value, (str, bytes)):
            return len(value)
        if not isinstance(value, CONTAINERS):
            return value.bit_length() // 3 + 2 if isinstance(value, int) else 32
        known: dict[int, int] = {}
        steps = 0

        def walk(obj: object) -> int:
            nonlocal steps
            steps += 1
            if steps % 4096 == 0:
                self.check_time()
            if isinstance(obj, (str, bytes)):
                return len(obj)
            if isinstance(obj, int):
                return obj.bit_length() // 3 + 2  # at least its decimal digits
            if not isinstance(obj, CONTAINERS):
                return 32  # floats, None, Undefined, cyclers, loops...: short reprs
            key = id(obj)
            if key in known:
                return known[key]
            known[key] = 0  # a namespace that holds itself prints as "{...}"
            if isinstance(obj, dict):
                items: Iterable[object] = (x for pair in obj.items() for x in pair)
                size = 4 * len(obj)
            elif isinstance(obj, _ITEMS_VIEW):
                items, size = (x for pair in obj for x in pair), 4 * len(obj) + 12
            elif isinstance(obj, (list, tuple, set, frozenset)):
                items, size = obj, 2 * len(obj) + 12
            elif isinstance(obj, _DICT_VIEWS):
                items, size = obj, 2 * len(obj) + 12
            else:  # jinja2's Namespace prints its attributes' dict
                items, size = [_namespace_attributes(obj)], 12
            for item in items:
                size += walk(item)
            known[key] = size + 2
            return size + 2

        return walk(value)


_ITEMS_VIEW: type[ItemsView[Any, Any]] = type({}.items())
_DICT_VIEWS: tuple[type[Collection[Any]], ...] = (type({}.keys()), type({}.values()), _ITEMS_VIEW)
# Values whose text can be far larger than their memory, as they may repeat one big item;
# jinja2's Namespace is added when jinja2 is imported, by _environment().
CONTAINERS: tuple[type, ...] = (list, tuple, set, frozenset, dict, *_DICT_VIEWS)


def _namespace_attributes(namespace: object) -> dict[str, Any]:
    attributes: dict[str, Any] = object.__getattribute__(namespace, "_Namespace__attrs")
    return attributes


BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "gostore_render_budget", default=None
)


def current_budget() -> Budget:
    # NOTE: every render sets its budget; a hook reached without one (only while Jinja folds
    # constants during compilation) still gets the default limits.
    return BUDGET.get() or Budget(DEFAULT_LIMITS)


# -- checks of single operations -------------------------------------------------------------


def check_power(budget: Budget, base: object, exponent: object) -> None:
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0:
        return  # float results overflow quickly; a negative exponent gives a float
    if abs(base) <= 1:
        return
    try:
        bits = exponent * math.log2(abs(base))
    except OverflowError:  # an exponent beyond float range
        bits = math.inf
    budget.check_int_bits(bits, f"{_short(base)} ** {_short(exponent)}")


def check_multiply(budget: Budget, left: object, right: object) -> None:
    if isinstance(left, int) and isinstance(right, int):
        bits = left.bit_length() + right.bit_length()
        budget.check_int_bits(bits, f"{_short(left)} * {_short(right)}")
        return
    if isinstance(right, (str, bytes, list, tuple)) and isinstance(left, int):
        left, right = right, left
    if isinstance(left, (str, bytes, list, tuple)) and isinstance(right, int) and right > 1:
        if len(left) * right > budget.limits.max_repeat_size:  # refuse before walking items
            budget.check_repeat(len(left) * right, f"{type(left).__name__} * {right}")
        weight = len(left) if isinstance(left, (str, bytes)) else budget.weight(left)
        budget.check_repeat(weight * right, f"{type(left).__name__} * {right}")


def check_add(budget: Budget, left: object, right: object) -> None:
    if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
        budget.check_text(len(left) + len(right), "string + string")
    elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        what = f"{type(left).__name__} + {type(right).__name__}"
        budget.check_repeat(len(left) + len(right), what)
        budget.check_repeat(budget.weight(left) + budget.weight(right), what)


def _percent_widths(budget: Budget, template: str, values: object) -> Iterator[int]:
    """The widths and precisions a printf-style ``template % values`` asks for; ``*`` ones are
    read from ``values`` as Python's own parser would."""
    args = values if isinstance(values, tuple) else (values,)
    index, i, end, specs = 0, 0, len(template), 0
    while True:
        i = template.find("%", i) + 1
        if i == 0 or i >= end:
            return
        specs += 1
        if specs % 4096 == 0:  # a long run of "%%" is read here in Python: mind the time
            budget.check_time()
        if template[i] == "(":  # a mapping key; Python allows nested parentheses in it
            depth = 0
            while i < end:
                depth += (template[i] == "(") - (template[i] == ")")
                i += 1
                if depth == 0:
                    break
        while i < end and template[i] in "-+ #0":
            i += 1
        for part in ("width", "precision"):
            if part == "precision":
                if i >= end or template[i] != ".":
                    break
                i += 1
            if i < end and template[i] == "*":
                i += 1
                if index < len(args) and isinstance(args[index], int):
                    yield abs(args[index])
                index += 1
            else:
                start = i
                while i < end and "0" <= template[i] <= "9":
                    i += 1
                if i - start > 18:  # don't even convert it
                    yield 10**18
                elif i > start:
                    yield int(template[start:i])
        while i < end and template[i] in "hlL":
            i += 1
        if i < end and template[i] != "%":
            index += 1
        i += 1


def check_percent(budget: Budget, template: str, values: object) -> None:
    size = len(template)
    for width in _percent_widths(budget, template, values):
        budget.check_width(width, "%-formatting")
        size += width
    budget.check_text(size + budget.weight(values), "%-formatting")


def check_format_spec(budget: Budget, spec: str) -> int:
    """Refuse a ``format()`` spec with a width or precision over the limit; return its sum."""
    total = 0
    digits = ""
    for char in spec + " ":
        if "0" <= char <= "9":
            digits += char
            if len(digits) > 18:
                budget.check_width(10**18, f"format spec {spec[:40]!r}")
        elif digits:
            budget.check_width(int(digits), f"format spec {spec[:40]!r}")
            total += int(digits)
            digits = ""
    return total


def check_str_method(
    budget: Budget, method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Check a call of a str/bytes method that can build a much longer string; returns the
    arguments to call it with (``join`` gets its items as a list, already counted)."""
    name = method.__name__
    text = method.__self__
    what = f"{type(text).__name__}.{name}()"
    if name in ("ljust", "rjust", "center", "zfill"):
        budget.check_width(args[0] if args else kwargs.get("width"), what)
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        budget.check_width(tabsize, what)
        if isinstance(tabsize, int):
            budget.check_text(len(text) * max(tabsize, 1), what)
    elif name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        if isinstance(old, (str, bytes)) and isinstance(new, (str, bytes)):
            found = text.count(old) if old else len(text) + 1
            budget.check_text(len(text) + found * max(len(new) - len(old), 0), what)
    elif name == "join" and len(args) == 1:
        items = list(args[0])
        budget.check_text(budget.weight(items) + len(text) * len(items), what)
        return (items,)
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        budget.check_text(len(text) * longest, what)
    return args


def _short(number: int) -> str:
    return str(number) if number.bit_length() < 64 else f"<{number.bit_length()}-bit int>"


# -- filters and globals whose arguments can ask for unbounded work ---------------------------

# Filters that turn their input into text: a list holding the same big string a million times
# is small in memory, and enormous once printed.
_TEXT_FILTERS = (
    "capitalize", "e", "escape", "forceescape", "lower", "pprint", "reverse", "safe",
    "string", "striptags", "title", "tojson", "trim", "truncate", "upper", "urlencode",
    "urlize", "wordcount", "wordwrap", "xmlattr",
)  # fmt: skip


def check_filter(
    budget: Budget, name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, tuple[Any, ...]]:
    """Check one filter call; returns the value and arguments to call it with."""
    what = f"the {name!r} filter"

    def arg(position: int, keyword: str, default: Any) -> Any:
        return args[position] if len(args) > position else kwargs.get(keyword, default)

    if name in _TEXT_FILTERS:
        if not isinstance(value, str):
            budget.check_text(budget.weight(value), what)
    elif name == "center":
        budget.check_width(arg(0, "width", 80), what)
        budget.check_text(budget.weight(value), what)
    elif name == "indent":
        width = arg(0, "width", 4)
        width = len(width) if isinstance(width, str) else width
        budget.check_width(width, what)
        if isinstance(width, int):
            size = budget.weight(value)
            lines = value.count("\n") + 1 if isinstance(value, str) else size
            budget.check_text(size + lines * width, what)
    elif name == "format":
        if not isinstance(value, str):
            budget.check_text(budget.weight(value), what)
        check_percent(budget, str(value), kwargs or args)
    elif name == "replace":
        old, new = arg(0, "old", ""), arg(1, "new", "")
        if not isinstance(value, str):
            budget.check_text(budget.weight(value), what)
        text = str(value)
        if isinstance(old, str) and isinstance(new, str):
            found = text.count(old) if old else len(text) + 1
            budget.check_text(len(text) + found * max(len(new) - len(old), 0), what)
        value = text
    elif name == "join":
        separator = arg(0, "d", "")
        sep = len(separator) if isinstance(separator, str) else 32
        if isinstance(value, str):  # joins its characters
            budget.check_text(len(value) * (1 + sep), what)
        else:
            items = list(value)
            budget.check_text(budget.weight(items) + sep * len(items), what)
            value = items
    elif name == "batch":
        if arg(1, "fill_with", None) is not None and isinstance(arg(0, "linecount", 0), int):
            budget.check_repeat(arg(0, "linecount", 0), what)
    elif name == "slice":
        slices = arg(0, "slices", 0)
        if isinstance(slices, int) and slices > 0:
            budget.charge(slices, what)
    elif name == "sum":
        start = arg(1, "start", 0)
        if not isinstance(start, (int, float)):  # adding sequences copies them again each time
            items = list(value)
            budget.check_repeat(len(items) * budget.weight(items), what)
            value = items
    elif name == "round":
        budget.check_width(arg(0, "precision", 0), what)
    return value, args


CHECKED_FILTERS = (*_TEXT_FILTERS, "center", "indent", "format", "replace", "join", "batch",
                    "slice", "sum", "round")  # fmt: skip


def checked_range(*args: int) -> range:
    numbers = range(*args)
    limit = current_budget().limits.max_loop_iterations
    try:
        length = len(numbers)
    except OverflowError:  # longer than sys.maxsize
        length = limit + 1
    if length > limit:
        raise LimitExceeded("max_loop_iterations", limit, f"range() of {length} numbers")
    return numbers


def checked_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    # The keyword names are Jinja's own lipsum()'s, so templates call both the same way.
    from jinja2.utils import generate_lorem_ipsum

    if isinstance(n, int) and isinstance(min, int) and isinstance(max, int) and n > 0:
        current_budget().charge(n * builtins.max(min, max, 0), f"lipsum() of {n} paragraphs")
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)
