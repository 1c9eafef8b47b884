"""Hostile input: any Unicode (lone surrogates included), huge strings and non-str values only
ever raise the documented exceptions; a failed call writes nothing and the store stays usable;
templates cannot reach Python internals through the sandbox."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gostore
from gostore import InvalidNamespaceError, NotFoundError, QuotaConfig, TemplateError

settings.register_profile(
    "gostore-hostile",
    deadline=None,
    derandomize=True,
    database=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
hostile = settings.get_profile("gostore-hostile")

# Every code point, lone surrogates included.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
huge_text = st.builds(
    lambda c, n: c * n,
    st.sampled_from(["x", "\x00", "é", "\U0010ffff"]),
    st.integers(10_000, 100_000),
)
not_text = st.one_of(
    st.none(),
    st.integers(),
    st.floats(),
    st.binary(max_size=5),
    st.booleans(),
    st.lists(st.text(max_size=2), max_size=2),
    st.just(object()),
    st.just(b"bytes"),
)
argument = st.one_of(any_text, any_text, huge_text, not_text)


def _surrogate(text: str) -> bool:
    return any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)


def _expected(*args: object) -> set[type[BaseException]]:
    """The exception types allowed for these text arguments (empty: the call must succeed)."""
    wrong_type = any(not isinstance(a, str) for a in args)
    bad_text = any(isinstance(a, str) and _surrogate(a) for a in args)
    if wrong_type and bad_text:
        return {TypeError, ValueError}  # whichever argument is checked first
    if wrong_type:
        return {TypeError}
    if bad_text:
        return {ValueError}
    return set()


def _snapshot(store: gostore.Store) -> dict[str, dict[str, str]]:
    return {group: store.get_all(group) for group in store.groups()}


def _seed(store: gostore.Store) -> None:
    store.set_many("g", {"a": "1", "b": "2"})
    store.set("tenant:cfg", "k", "v")


@pytest.fixture
def seeded() -> Iterator[gostore.Store]:
    with gostore.Store(purge_interval=0) as opened:
        _seed(opened)
        yield opened


Op = Callable[[gostore.Store, Any, Any, Any], object]
OPERATIONS: dict[str, tuple[int, Op]] = {
    # name: (how many of group/key/value it takes, the call)
    "get": (2, lambda s, g, k, v: s.get(g, k)),
    "exists": (2, lambda s, g, k, v: s.exists(g, k)),
    "set": (3, lambda s, g, k, v: s.set(g, k, v)),
    "set_with_ttl": (3, lambda s, g, k, v: s.set_with_ttl(g, k, v, 3600)),
    "delete": (2, lambda s, g, k, v: s.delete(g, k)),
    "delete_group": (1, lambda s, g, k, v: s.delete_group(g)),
    "delete_prefix": (1, lambda s, g, k, v: s.delete_prefix(g)),
    "count": (1, lambda s, g, k, v: s.count(g)),
    "count_all": (1, lambda s, g, k, v: s.count_all(g)),
    "get_all": (1, lambda s, g, k, v: s.get_all(g)),
    "all": (1, lambda s, g, k, v: list(s.all(g))),
    "get_page": (1, lambda s, g, k, v: s.get_page(g, 0, 5)),
    "groups": (1, lambda s, g, k, v: s.groups(g)),
    "groups_iter": (1, lambda s, g, k, v: list(s.groups_iter(g))),
    "get_many": (2, lambda s, g, k, v: s.get_many(g, [k])),
    "set_many": (3, lambda s, g, k, v: s.set_many(g, {k: v})),
    "get_split": (3, lambda s, g, k, v: list(s.get_split(g, k, v))),
    "get_fields": (2, lambda s, g, k, v: list(s.get_fields(g, k))),
    "render": (2, lambda s, g, k, v: s.render(k, g)),
    "watch": (2, lambda s, g, k, v: s.unwatch(s.watch(g, k))),
    "scoped_set": (3, lambda s, g, k, v: s.scoped("t", QuotaConfig(max_bytes=10**9)).set(g, k, v)),
    "scoped_get": (2, lambda s, g, k, v: s.scoped("t").get(g, k)),
    "tx_set": (3, lambda s, g, k, v: _in_transaction(s, lambda tx: tx.set(g, k, v))),
}
WRITES = {"set", "set_with_ttl", "set_many", "scoped_set", "tx_set"}


def _in_transaction(store: gostore.Store, body: Callable[[Any], object]) -> None:
    with store.transaction() as tx:
        tx.set("tx", "before", "written first, then rolled back on failure")
        body(tx)


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_hostile_text_raises_only_documented_errors_and_writes_nothing(
    seeded: gostore.Store, name: str
) -> None:
    arity, call = OPERATIONS[name]

    @settings(hostile, max_examples=25)
    @given(group=argument, key=argument, value=argument)
    def check(group: object, key: object, value: object) -> None:
        args = (group, key, value)[:arity]
        expected = _expected(*args)
        _seed(seeded)  # a successful delete may have emptied it
        before = _snapshot(seeded)
        try:
            call(seeded, group, key, value)
        except NotFoundError:
            assert not expected and name in {"get", "get_split", "get_fields", "scoped_get"}
        except TemplateError:
            assert not expected and name == "render"
        except (TypeError, ValueError) as exc:
            assert type(exc) in expected, f"{name}{args!r:.200} raised {exc!r:.200}"
            assert _snapshot(seeded) == before  # a failed call writes nothing
        else:
            assert not expected, f"{name} accepted {args!r:.200}"
            if name in WRITES:
                assert isinstance(value, str)
                full = f"t:{group}" if name == "scoped_set" else group
                assert seeded.get(full, key) == value  # type: ignore[arg-type]
        seeded.set("canary", "k", "v")  # still usable
        assert seeded.get("canary", "k") == "v"

    check()


ttl_values = st.one_of(
    st.integers(),
    st.floats(),
    st.just(10**30),
    st.just(-(10**30)),
    st.timedeltas(),
    st.none(),
    st.text(max_size=3),
    st.booleans(),
)


@given(ttl=ttl_values)
@settings(hostile)
def test_hostile_ttl_raises_type_or_value_error_and_writes_nothing(ttl: object) -> None:
    with gostore.Store(purge_interval=0) as store:
        try:
            store.set_with_ttl("g", "k", "v", ttl)  # type: ignore[arg-type]
        except TypeError:
            assert isinstance(ttl, bool) or not isinstance(ttl, (int, float, timedelta))
            assert store.count_all() == 0
        except ValueError:
            # NaN and infinities, or an expiry beyond the signed 64-bit millisecond range
            assert isinstance(ttl, (int, float, timedelta))
            if isinstance(ttl, (int, float)) and not (math.isnan(ttl) or math.isinf(ttl)):
                assert abs(ttl) > 9e15
            assert store.count_all() == 0
        else:
            assert isinstance(ttl, (int, float, timedelta)) and not isinstance(ttl, bool)
            seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
            if seconds >= 60:
                assert store.exists("g", "k")
            elif seconds <= 0:  # stored already expired, as go-store does
                assert not store.exists("g", "k")


@given(
    offset=st.one_of(st.integers(), st.floats(), st.none(), st.booleans()),
    limit=st.one_of(st.integers(), st.floats(), st.none(), st.booleans()),
)
@settings(hostile)
def test_get_page_with_hostile_bounds_raises_type_or_value_error(
    seeded: gostore.Store, offset: object, limit: object
) -> None:
    ints = all(isinstance(n, int) and not isinstance(n, bool) for n in (offset, limit))
    try:
        page = seeded.get_page("g", offset, limit)  # type: ignore[arg-type]
    except TypeError:
        assert not ints
    except ValueError:  # offset is checked before limit
        assert any(
            isinstance(n, int) and not isinstance(n, bool) and n < 0 for n in (offset, limit)
        )
    else:
        assert ints
        assert [kv.key for kv in page] == ["a", "b"][offset : offset + limit]  # type: ignore[operator]


@given(namespace=st.one_of(any_text, not_text, st.just("tenant\n"), st.just("ok-Name-9")))
@settings(hostile)
def test_hostile_namespace_raises_invalid_namespace_or_type_error(
    seeded: gostore.Store, namespace: object
) -> None:
    valid = isinstance(namespace, str) and re.fullmatch(r"[a-zA-Z0-9-]+", namespace) is not None
    try:
        scoped = seeded.scoped(namespace)  # type: ignore[arg-type]
    except InvalidNamespaceError:
        assert isinstance(namespace, str) and not valid
    except TypeError:
        assert not isinstance(namespace, str)
    else:
        assert valid and scoped.namespace == namespace


@given(
    template=st.one_of(any_text, st.text(st.sampled_from("{}%#()[]|.'_-+*/ ~abx0_"), max_size=30))
)
@settings(hostile, max_examples=200)
def test_any_template_renders_or_raises_template_error(
    seeded: gostore.Store, template: str
) -> None:
    for strict in (False, True):
        try:
            rendered = seeded.render(template, "g", strict=strict)
        except TemplateError:
            pass
        except ValueError:
            assert _surrogate(template)
        else:
            assert isinstance(rendered, str)
    assert seeded.get_all("g") == {"a": "1", "b": "2"}


@pytest.mark.parametrize("template", [1, None, b"{{ a }}", ["{{ a }}"]])
def test_render_of_a_non_str_template_raises_type_error(
    seeded: gostore.Store, template: object
) -> None:
    with pytest.raises(TypeError):
        seeded.render(template, "g")  # type: ignore[arg-type]


ESCAPES = [
    "{{ a.__class__ }}",
    "{{ a.__class__.__mro__[1].__subclasses__() }}",
    "{{ a['__class__'] }}",
    "{{ a|attr('__class__') }}",
    "{{ a.__len__ }}",
    "{{ ''.__class__.__base__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ lipsum.__globals__['os'].system('true') }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ range.__closure__ }}",
    "{{ dict.__subclasses__() }}",
    "{{ cycler.__dict__ }}",
    "{{ (1).__class__.__mro__ }}",
    "{% for c in ''.__class__.__mro__ %}{{ c }}{% endfor %}",
    "{% set x = a.__class__ %}{{ x }}",
    "{{ a.format.__globals__ }}",
    "{{ a.upper.__self__.__class__ }}",
    '{{ "{0.__init__.__globals__[os].environ}"|attr("format")(cycler) }}',
    '{{ "{x.__class__.__mro__}"|attr("format_map")({"x": a}) }}',
    "{{ '{0.__init__.__globals__}'.format(lipsum) }}",
]


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
@pytest.mark.parametrize("template", ESCAPES)
def test_template_access_to_python_internals_raises_template_error(
    seeded: gostore.Store, template: str, strict: bool
) -> None:
    with pytest.raises(TemplateError):
        seeded.render(template, "g", strict=strict)


def test_templates_cannot_change_the_store_entries(seeded: gostore.Store) -> None:
    # ImmutableSandboxedEnvironment refuses methods that mutate, such as dict.clear().
    with pytest.raises(TemplateError):
        seeded.render("{{ a.__setattr__('x', 1) }}", "g")
    assert seeded.get_all("g") == {"a": "1", "b": "2"}
