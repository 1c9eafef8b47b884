"""render: sandboxed Jinja2 over a group's live entries; lenient vs strict
missing variables; every template failure is a TemplateError."""

from __future__ import annotations

import pytest

from gostore import Store, StoreError, TemplateError


@pytest.fixture
def config(store: Store) -> Store:
    store.set_many("config", {"colour": "blue", "size": "10", "html": "<b>&</b>"})
    return store


def test_render_substitutes_group_entries(config: Store) -> None:
    assert config.render("{{ colour }} is {{ size }}", "config") == "blue is 10"


def test_render_without_variables_returns_template(config: Store) -> None:
    assert config.render("plain text\n", "config") == "plain text\n"
    assert config.render("", "config") == ""


def test_render_does_not_escape_html(config: Store) -> None:
    # Text output like go-store's text/template, not HTML.
    assert config.render("{{ html }}", "config") == "<b>&</b>"


def test_render_of_missing_group_sees_no_variables(store: Store) -> None:
    assert store.render("[{{ colour }}]", "nothing") == "[]"


def test_lenient_render_of_missing_variable_is_empty(config: Store) -> None:
    assert config.render("[{{ missing }}]", "config") == "[]"
    assert config.render("[{{ missing }}]", "config", strict=False) == "[]"


def test_strict_render_of_missing_variable_raises_template_error(config: Store) -> None:
    with pytest.raises(TemplateError) as info:
        config.render("[{{ missing }}]", "config", strict=True)
    assert "missing" in str(info.value)
    assert str(info.value).startswith("store.render group='config'")


def test_strict_render_with_all_variables_present(config: Store) -> None:
    assert config.render("{{ colour }}", "config", strict=True) == "blue"


@pytest.mark.parametrize(
    "template",
    ["{{ colour ", "{% if %}", "{% for x in %}{% endfor %}", "{{ }}", "{% endif %}"],
)
def test_render_with_invalid_syntax_raises_template_error(config: Store, template: str) -> None:
    with pytest.raises(TemplateError, match="syntax") as info:
        config.render(template, "config")
    assert isinstance(info.value, ValueError)
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    "template",
    [
        "{{ colour() }}",  # calling a string, as go-store's execution-error test does
        "{{ 1 / 0 }}",
        "{{ size + 1 }}",
        "{{ missing.attribute }}",
    ],
    ids=["call_string", "zero_division", "str_plus_int", "attribute_of_undefined"],
)
def test_render_runtime_error_raises_template_error(config: Store, template: str) -> None:
    with pytest.raises(TemplateError) as info:
        config.render(template, "config")
    assert info.value.__cause__ is not None
    assert str(info.value).startswith("store.render")


@pytest.mark.parametrize(
    "template",
    [
        "{{ colour.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__.__base__.__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_render_is_sandboxed(config: Store, template: str) -> None:
    with pytest.raises(TemplateError):
        config.render(template, "config")


# CVE-2025-27516: up to jinja2 3.1.5, |attr("format") handed out str.format itself, outside the
# sandbox's formatter, and a format field could walk to os.environ.
ATTR_FORMAT_ESCAPES = [
    '{{ "{0.__init__.__globals__[os].environ}"|attr("format")(cycler) }}',
    '{{ ("{0.__init__.__globals__}"|attr("format"))(joiner) }}',
    '{% set f = "{0.__init__.__globals__[os].environ}"|attr("format") %}{{ f(namespace) }}',
    '{{ "{x.__init__.__globals__[os].environ}"|attr("format_map")({"x": cycler}) }}',
]


@pytest.mark.parametrize("template", ATTR_FORMAT_ESCAPES)
def test_attr_format_cannot_reach_the_environment(
    config: Store, template: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOSTORE_RENDER_CANARY", "canary-value")
    with pytest.raises(TemplateError) as info:
        config.render(template, "config")
    assert "canary-value" not in str(info.value)
    assert "unsafe" in str(info.value)


def test_attr_format_on_a_plain_string_still_formats(config: Store) -> None:
    assert config.render('{{ "{}-{}"|attr("format")(colour, size) }}', "config") == "blue-10"


def test_render_cannot_mutate_entries(config: Store) -> None:
    # The immutable sandbox refuses list/dict mutation helpers.
    with pytest.raises(TemplateError):
        config.render("{% set x = [] %}{{ x.append(1) }}", "config")


def test_render_excludes_expired_entries(store: Store) -> None:
    store.set("g", "live", "yes")
    store.set_with_ttl("g", "dead", "no", -1)
    assert store.render("{{ live }}/{{ dead }}", "g") == "yes/"
    with pytest.raises(TemplateError):
        store.render("{{ dead }}", "g", strict=True)


def test_render_with_non_identifier_keys_in_group(store: Store) -> None:
    # Keys that are not Python identifiers (or hold NUL) must not break rendering.
    store.set_many("g", {"with-dash": "1", "日本": "2", "a\x00b": "3", "ok": "4", "": "5"})
    assert store.render("{{ ok }}|{{ 日本 }}", "g") == "4|2"


def test_render_loop_over_values(store: Store) -> None:
    store.set_many("g", {"a": "1", "b": "2"})
    assert store.render("{{ a }}{{ b }}{{ a ~ b }}", "g") == "1212"


def test_template_error_is_a_store_error(config: Store) -> None:
    with pytest.raises(StoreError):
        config.render("{{", "config")


def test_render_same_template_twice_with_changed_data(store: Store) -> None:
    store.set("g", "v", "1")
    assert store.render("{{ v }}", "g") == "1"
    store.set("g", "v", "2")
    assert store.render("{{ v }}", "g") == "2"  # the compiled template cache holds no data


def test_strict_flag_is_keyword_only(config: Store) -> None:
    with pytest.raises(TypeError):
        config.render("{{ colour }}", "config", True)  # type: ignore[call-arg]
