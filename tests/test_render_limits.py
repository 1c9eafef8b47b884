"""render's limits: a template that asks for unbounded work or output is refused quickly with a
TemplateError naming the limit, before the work is done; the limits can be raised and lowered
per call; ordinary templates render exactly as plain Jinja2 renders them."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import jinja2.sandbox
import pytest

import gostore
from gostore import RenderLimits, Store, TemplateError, _render

QUICK = 2.0  # seconds: every refusal below must come well within this


@pytest.fixture
def g(store: Store) -> Store:
    store.set_many("g", {"a": "1", "name": "gostore", "size": "10"})
    return store


def refused(store: Store, template: str, **limits: Any) -> tuple[str, float]:
    """Render ``template`` expecting a TemplateError; return its message and the time taken."""
    started = time.perf_counter()
    with pytest.raises(TemplateError) as info:
        store.render(template, "g", limits=RenderLimits(**limits) if limits else None)
    return str(info.value), time.perf_counter() - started


# The patterns found to freeze or exhaust the process, and their neighbours; each with the
# limit that must stop it.
DENIALS = [
    ("{{ 7 ** (10 ** 9) }}", "max_int_bits"),
    ("{{ 7 ** (10 ** 7) }}", "max_int_bits"),
    ("{{ 2 ** (2 ** 4000) }}", "max_int_bits"),
    ("{% set x = 10 ** 1000 %}{{ x * x * x * x * x }}", "max_int_bits"),
    ("{{ 'a' * 10 ** 10 }}", "max_repeat_size"),
    ("{{ 10 ** 10 * 'a' }}", "max_repeat_size"),
    ("{{ [0] * 10 ** 9 }}", "max_repeat_size"),
    ("{{ (1, 2) * 10 ** 9 }}", "max_repeat_size"),
    # a list of one big string repeated is small in memory, but not once printed
    ("{% set s = 'a' * 1000000 %}{{ [s] * 1000 }}", "max_repeat_size"),
    ("{% set ns = namespace(x=[[0] * 1000]) %}{% for i in range(30) %}{% set ns.x = ns.x + ns.x %}"
     "{% endfor %}", "max_repeat_size"),
    ("{{ [1]|batch(10 ** 9, 'x')|list }}", "max_repeat_size"),
    ("{{ '{:>1000000000}'.format('a') }}", "max_format_width"),
    ("{{ '{:>{w}}'.format('a', w=10 ** 9) }}", "max_format_width"),
    ("{{ '{:.1000000000f}'.format(1) }}", "max_format_width"),
    ("{{ '{x:>1000000000}'.format_map({'x': 1}) }}", "max_format_width"),
    ("{{ '%*d' % (10 ** 9, 1) }}", "max_format_width"),
    ("{{ '%.1000000000d' % 1 }}", "max_format_width"),
    ("{{ '%(x)1000000000s' % {'x': 1} }}", "max_format_width"),
    ("{{ '%*d'|format(10 ** 9, 1) }}", "max_format_width"),
    ("{{ 'a'.ljust(10 ** 9) }}", "max_format_width"),
    ("{{ 'a'.zfill(10 ** 9) }}", "max_format_width"),
    ("{{ 'a'|center(10 ** 9) }}", "max_format_width"),
    ("{{ 'a'|indent(10 ** 9, true) }}", "max_format_width"),
    ("{{ 5|round(-10 ** 9) }}", "max_format_width"),  # round(5, -n) computes 10**n
    ("{{ lipsum(n=10 ** 7) }}", "max_loop_iterations"),
    ("{{ lipsum(1, min=10 ** 7, max=10 ** 7 + 1) }}", "max_loop_iterations"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
     "max_loop_iterations"),
    # loops over lists, not ranges, are counted too
    ("{% set x = range(100000)|list %}{% for i in x %}{% for j in x %}{% endfor %}{% endfor %}",
     "max_loop_iterations"),
    ("{{ range(10 ** 12)|length }}", "max_loop_iterations"),
    ("{{ [1]|slice(10 ** 9)|list }}", "max_loop_iterations"),
    ("{% set s = 'a' * 1000000 %}{% for i in range(11) %}{{ s }}{% endfor %}", "max_output_chars"),
    ("{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
     "{% endfor %}", "max_output_chars"),
    ("{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
     "{% endfor %}", "max_output_chars"),
    ("{% macro m() %}{% for i in range(1000) %}{{ 'x' * 100000 }}{% endfor %}{% endmacro %}"
     "{{ m()|length }}", "max_output_chars"),
    ("{% set b %}{% for i in range(1000) %}{{ 'x' * 100000 }}{% endfor %}{% endset %}",
     "max_output_chars"),
    # nested literals: each level is small to build, the whole enormous to print
    ("{% set s = 'a' * 100000 %}{% set a = [s, s, s, s, s, s, s, s, s, s] %}"
     "{% set b = [a, a, a, a, a, a, a, a, a, a] %}{{ [b, b, b, b, b, b, b, b, b, b] }}",
     "max_output_chars"),
    ("{% set s = 'a' * 1000000 %}{{ [s, s, s, s, s, s, s, s, s, s, s]|join }}",
     "max_output_chars"),
    ("{% set s = 'a' * 1000000 %}{{ ''.join([s, s, s, s, s, s, s, s, s, s, s]) }}",
     "max_output_chars"),
    ("{% set s = 'a' * 100000 %}{% set a = [s, s, s, s, s, s, s, s, s, s] %}"
     "{{ [a, a, a, a, a, a, a, a, a, a, a]|tojson }}", "max_output_chars"),
    ("{{ ('a' * 100000)|replace('', 'b' * 1000) }}", "max_output_chars"),
    ("{{ ('a' * 100000).replace('', 'b' * 1000) }}", "max_output_chars"),
    ("{{ ('\t' * 100000).expandtabs(1000) }}", "max_output_chars"),
    ("{{ ('x\n' * 100000)|indent(1000, true) }}", "max_output_chars"),
    ("{% set s = 'a' * 1000000 %}{{ '%s%s%s%s%s%s%s%s%s%s%s' % (s, s, s, s, s, s, s, s, s, s,"
     " s) }}", "max_output_chars"),
    ("{% set s = 'a' * 1000000 %}{{ '{}{}{}{}{}{}{}{}{}{}{}'.format(s, s, s, s, s, s, s, s, s,"
     " s, s) }}", "max_output_chars"),
]  # fmt: skip


@pytest.mark.parametrize(("template", "limit"), DENIALS)
def test_unbounded_template_is_refused_quickly_naming_the_limit(
    g: Store, template: str, limit: str
) -> None:
    message, elapsed = refused(g, template)
    assert elapsed < QUICK
    assert message.startswith("store.render group='g': ")
    assert f"{limit}=" in message
    assert f"RenderLimits({limit}=...)" in message  # says how to raise it


def test_recursive_loop_iterations_are_counted(g: Store) -> None:
    # Only the outer loop's iterable passes through the loop statement; loop(children) is
    # counted where it is called.
    template = (
        "{% for i in range(10) recursive %}{{ loop(range(10)) if loop.depth < 4 }}{% endfor %}"
    )
    assert g.render(template, "g", limits=RenderLimits(max_loop_iterations=11_110)) == ""
    message, elapsed = refused(g, template, max_loop_iterations=11_109)
    assert "max_loop_iterations=11109" in message
    assert elapsed < QUICK


def test_refusal_says_what_was_asked_for(g: Store) -> None:
    message, _ = refused(g, "{{ 7 ** (10 ** 9) }}")
    assert "7 ** 1000000000 would need 2807354922 bits" in message
    message, _ = refused(g, "{{ '%*d' % (10 ** 9, 1) }}")
    assert "width 1000000000" in message


def test_slow_template_stops_at_the_timeout(g: Store) -> None:
    # Loop limit raised out of the way: only the deadline can stop this one.
    many = {"max_loop_iterations": 10**12, "timeout": 0.3}
    template = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    message, elapsed = refused(g, template, **many)
    assert "timeout=0.3" in message
    assert 0.3 <= elapsed < QUICK


def test_refused_power_does_not_freeze_another_threads_get(g: Store) -> None:
    # Computed, 7 ** (10 ** 7) holds the GIL for seconds; refused, it must not be computed.
    stop = threading.Event()
    slowest = [0.0]
    reads = [0]

    def reader() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            assert g.get("g", "a") == "1"
            slowest[0] = max(slowest[0], time.perf_counter() - started)
            reads[0] += 1
            time.sleep(0.001)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        time.sleep(0.05)
        for _ in range(20):
            with pytest.raises(TemplateError, match="max_int_bits"):
                g.render("{{ 7 ** (10 ** 7) }}", "g")
        time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    assert reads[0] > 0
    assert slowest[0] < 0.5


LEGITIMATE_BUT_BIG = [
    # (template, expected output, the limit that refuses it by default and a value that lets it)
    ("{{ 'ab' * 600000 }}", "ab" * 600_000, "max_repeat_size", 2_000_000),
    ("{{ 2 ** 5000 }}", str(2**5000), "max_int_bits", 6_000),
    ("{{ '{:>20000}'.format('a') }}", "a".rjust(20_000), "max_format_width", 20_000),
    ("{% for i in range(1500) %}{% for j in range(1000) %}{% endfor %}{% endfor %}ok", "ok",
     "max_loop_iterations", 2_000_000),
    ("{% for i in range(11) %}{{ 'x' * 1000000 }}{% endfor %}", "x" * 11_000_000,
     "max_output_chars", 12_000_000),
]  # fmt: skip


@pytest.mark.parametrize(("template", "expected", "limit", "raised"), LEGITIMATE_BUT_BIG)
def test_raised_limit_lets_a_bigger_template_through(
    g: Store, template: str, expected: str, limit: str, raised: int
) -> None:
    message, _ = refused(g, template)
    assert f"{limit}=" in message
    assert g.render(template, "g", limits=RenderLimits(**{limit: raised})) == expected


SMALL = [
    ("{{ name }}", "max_output_chars", 6),
    ("{{ '-' * 20 }}", "max_repeat_size", 19),
    ("{{ 2 ** 20 }}", "max_int_bits", 19),
    ("{{ '%5s' % name }}", "max_format_width", 4),
    ("{% for c in name %}{{ c }}{% endfor %}", "max_loop_iterations", 6),
    ("{{ name ~ name }}", "max_output_chars", 13),
]


@pytest.mark.parametrize(("template", "limit", "lowered"), SMALL)
def test_lowered_limit_refuses_a_small_template(
    g: Store, template: str, limit: str, lowered: int
) -> None:
    assert g.render(template, "g")  # fine at the defaults
    message, _ = refused(g, template, **{limit: lowered})
    assert f"{limit}={lowered}" in message


def test_lowered_limit_at_the_exact_size_still_renders(g: Store) -> None:
    assert g.render("{{ name }}", "g", limits=RenderLimits(max_output_chars=7)) == "gostore"
    assert g.render("{{ '-' * 20 }}", "g", limits=RenderLimits(max_repeat_size=20)) == "-" * 20


def test_each_render_has_its_own_budget(g: Store) -> None:
    # 600,000 iterations twice: over the limit together, under it each.
    template = "{% for i in range(600) %}{% for j in range(999) %}{% endfor %}{% endfor %}ok"
    assert g.render(template, "g") == "ok"
    assert g.render(template, "g") == "ok"


def test_threads_render_with_their_own_limits(g: Store) -> None:
    results: dict[str, object] = {}

    def render(name: str, limits: RenderLimits | None) -> None:
        try:
            for _ in range(50):
                results[name] = g.render("{% for i in range(100) %}{{ i }}{% endfor %}", "g",
                                         limits=limits)  # fmt: skip
        except TemplateError as exc:
            results[name] = exc

    threads = [
        threading.Thread(target=render, args=("tight", RenderLimits(max_loop_iterations=99))),
        threading.Thread(target=render, args=("default", None)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert isinstance(results["tight"], TemplateError)
    assert results["default"] == "".join(map(str, range(100)))


ORDINARY = [
    "{{ name }} is {{ size }}",
    "{{ name|upper }}|{{ name|title }}|{{ name|center(15) }}|{{ name|truncate(5) }}",
    "{% for c in name %}{{ loop.index }}{{ c }}{{ ',' if not loop.last }}{% endfor %}",
    "{% for i in range(3) %}{% for j in range(i) %}{{ i }}{{ j }} {% endfor %}{% endfor %}",
    "{% for k, v in {'x': 1, 'y': 2}|dictsort %}{{ k }}={{ v }};{% else %}none{% endfor %}",
    "{% for x in [] %}{{ x }}{% else %}empty{% endfor %}",
    "{% for x in [[1, [2, [3]]]] recursive %}<{% if x is iterable %}{{ loop(x) }}"
    "{% else %}{{ x }}{% endif %}>{% endfor %}",
    "{% macro row(k, v='-') %}{{ k ~ ': ' ~ v }}\n{% endmacro %}{{ row('a', a) }}{{ row('b') }}",
    "{% macro box() %}[{{ caller() }}]{% endmacro %}{% call box() %}{{ name }}{% endcall %}",
    "{% set header %}== {{ name }} =={% endset %}{{ header }}|{{ header|length }}",
    "{% filter upper %}{{ name }} {{ size }}{% endfilter %}",
    "{{ '-' * 20 }}|{{ [1, 2] * 2 }}|{{ (1,) + (2,) }}|{{ 'a' + 'b' }}|{{ 3 * 4 }}",
    "{{ 2 ** 10 }}|{{ 2 ** -1 }}|{{ 2.5 ** 2 }}|{{ 7 // 2 }}|{{ 7 % 3 }}|{{ 10 / 4 }}",
    "{{ '%-8s|%5.2f|%03d|%x|%%' % (name, 3.14159, 7, 255) }}",
    "{{ '%(n)s-%(s)s' % {'n': name, 's': size} }}|{{ '%*d' % (6, 42) }}",
    "{{ '{:>10}|{:<6}|{:^7}|{:08.3f}|{:,}'.format(name, size, 'x', 3.14159, 1234567) }}",
    "{{ '{n} {s}'.format_map({'n': name, 's': size}) }}|{{ '{0}{0}'.format(a) }}",
    "{{ '%s=%s'|format(name, size) }}|{{ name.ljust(10) }}|{{ size.zfill(5) }}",
    "{{ name|replace('o', '0') }}|{{ name.replace('o', '00', 1) }}|{{ ' a b '.split()|join(',') }}",
    "{{ [3, 1, 2]|sort|join('-') }}|{{ [1, 2, 3]|sum }}|{{ [[1], [2]]|sum(start=[]) }}",
    "{{ range(10)|batch(3, 0)|list }}|{{ range(7)|slice(3)|list }}|{{ 3.14159|round(2) }}",
    "{{ 'a\nb'|indent(2, true) }}|{{ 'x\ty'.expandtabs(4) }}|{{ {'k': [1, 'v']}|tojson }}",
    "{{ [1, 'two', (3,), {'f': 4}, none, true, 1.5] }}|{{ range(3) }}|{{ 10 ** 30 }}",
    "{% set ns = namespace(total=0) %}{% for i in range(5) %}{% set ns.total = ns.total + i %}"
    "{% endfor %}{{ ns.total }}",
    "{% set c = cycler('odd', 'even') %}{% for i in range(3) %}{{ c.next() }} {% endfor %}",
    "{% set j = joiner(', ') %}{% for i in range(3) %}{{ j() }}{{ i }}{% endfor %}",
    "{% autoescape true %}{{ '<b>' ~ name }}{{ '{}'.format('<i>') }}{% endautoescape %}<p>",
    "  {%- if size|int > 5 %} big {% else %} small {% endif -%}  \n",
    "{{ missing }}|{{ missing|default('d') }}|{{ name if missing is undefined }}",
]


def _plain_jinja(strict: bool) -> jinja2.sandbox.ImmutableSandboxedEnvironment:
    # The environment gostore had before it counted anything.
    return jinja2.sandbox.ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined if strict else jinja2.Undefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


@pytest.mark.parametrize("template", ORDINARY)
def test_ordinary_template_renders_as_plain_jinja_does(g: Store, template: str) -> None:
    expected = _plain_jinja(False).from_string(template).render(g.get_all("g"))
    assert g.render(template, "g") == expected
    if "missing" not in template:
        expected = _plain_jinja(True).from_string(template).render(g.get_all("g"))
        assert g.render(template, "g", strict=True) == expected


def test_compiled_template_is_cached_and_shared_across_limits(g: Store) -> None:
    template = "{{ name }} cached {{ size }}"
    g.render(template, "g")
    before = _render._compile.cache_info()
    g.render(template, "g", limits=RenderLimits(max_output_chars=1000))
    g.render(template, "g", limits=RenderLimits(timeout=1.0))
    after = _render._compile.cache_info()
    assert after.hits == before.hits + 2
    assert after.misses == before.misses


def test_limits_default_and_are_frozen() -> None:
    limits = RenderLimits()
    assert limits == RenderLimits(
        max_output_chars=10_000_000,
        max_loop_iterations=1_000_000,
        max_repeat_size=1_000_000,
        max_int_bits=4_096,
        max_format_width=10_000,
        timeout=5.0,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.timeout = 10.0  # type: ignore[misc]
    assert gostore.RenderLimits is RenderLimits


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(RenderLimits)])
@pytest.mark.parametrize(("value", "error"), [
    (0, ValueError), (-1, ValueError), (True, TypeError), ("10", TypeError), (None, TypeError),
])  # fmt: skip
def test_limits_refuse_values_that_are_not_positive_numbers(
    field: str, value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match=f"RenderLimits: {field}"):
        RenderLimits(**{field: value})


def test_limits_refuse_nan_timeout_and_float_counts() -> None:
    with pytest.raises(ValueError, match="timeout"):
        RenderLimits(timeout=float("nan"))
    with pytest.raises(TypeError, match="max_loop_iterations"):
        RenderLimits(max_loop_iterations=1.5)  # type: ignore[arg-type]
    assert RenderLimits(timeout=0.25).timeout == 0.25


def test_render_refuses_limits_of_the_wrong_type(g: Store) -> None:
    with pytest.raises(TypeError, match=r"store\.render: limits must be a gostore\.RenderLimits"):
        g.render("{{ name }}", "g", limits={"max_output_chars": 5})  # type: ignore[arg-type]
