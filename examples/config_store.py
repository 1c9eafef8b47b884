"""Configuration kept in groups, read back whole and rendered into a file with a template.

Run: ``python examples/config_store.py``
"""

from __future__ import annotations

import gostore

NGINX_TEMPLATE = """\
server {
    listen {{ port }};
    server_name {{ host }};
    root {{ root | default("/var/www/html") }};
}"""


def main() -> None:
    with gostore.Store(purge_interval=0) as store:  # ":memory:"; pass a path to keep it
        # One group per component; set_many writes a whole group in one transaction.
        store.set_many("web", {"host": "example.com", "port": "8080"})
        store.set_many("db", {"host": "db.internal", "port": "5432", "replicas": "db-2 db-3"})
        store.set("features", "enabled", "search,dark-mode,,beta")
        print("groups:", store.groups())
        print("web config:", store.get_all("web"))
        print("db port:", store.get("db", "port"))

        # Values are strings; Go-style splitting helps with lists kept in one value.
        print("features:", list(store.get_split("features", "enabled", ",")))
        print("replicas:", list(store.get_fields("db", "replicas")))

        # The group's live entries become template variables (a sandboxed Jinja2 template).
        print("rendered web config:")
        print(store.render(NGINX_TEMPLATE, "web"))

        # A change shows up in the next render.
        store.set("web", "port", "443")
        print("after the port change:", store.render("{{ host }}:{{ port }}", "web"))

        # Missing variables render empty by default; strict=True makes them an error.
        print("lenient render:", repr(store.render("{{ host }}:{{ missing }}", "web")))
        try:
            store.render("{{ host }}:{{ missing }}", "web", strict=True)
        except gostore.TemplateError as exc:
            print("strict render failed:", exc)

        try:
            store.get("web", "timeout")
        except gostore.NotFoundError:
            print("web/timeout is not set; using the default 30")


if __name__ == "__main__":
    main()
