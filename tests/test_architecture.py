"""The layering the README's architecture section draws: engines below a facade that never sees
a driver, no import cycles, and modules small enough to read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import gostore

PACKAGE = Path(gostore.__file__).parent
MAX_LINES = 520  # "about 500": a module past this is split, not grown


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _runtime_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of the package imported at run time (not under ``if TYPE_CHECKING``), including
    imports inside functions: a cycle through a lazy import is still a cycle."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            imported.add(base)
            imported.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in imported if m in known and m != name}


def test_the_package_has_no_import_cycle() -> None:
    modules = _modules()
    graph = {name: _runtime_imports(name, path, set(modules)) for name, path in modules.items()}
    # The parent package imports its submodules' names; an edge to a package's __init__ from
    # its own submodule is what Python resolves first, so it is not a cycle to report.
    for name, edges in graph.items():
        edges -= {p for p in edges if name.startswith(p + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt):], nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, f"import cycles: {cycles}"


def test_only_the_engines_and_raw_baselines_import_a_database_driver() -> None:
    """The facade never sees a driver; the benchmark's raw baselines (raw APSW, raw psycopg)
    are the one other place allowed to, since measuring the driver alone is their job."""
    drivers = {"apsw", "psycopg", "psycopg_pool"}
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module.split(".")[0]]
            for driver in drivers.intersection(names):
                allowed = name.startswith(("gostore.engine.", "gostore.bench."))
                assert allowed, f"{name} imports {driver}"


def test_no_module_grows_past_about_500_lines() -> None:
    long = {
        name: n
        for name, path in _modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"split these modules: {long}"
