"""The package as a type checker sees it: the public API type-checks under ``mypy --strict``
(tests/typing/), and the stub of the compiled module matches both the pure twin and the
compiled module itself. Skipped when mypy is not installed (it is in the "test" extra)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import gostore

pytest.importorskip("mypy", reason="mypy is not installed")

TYPING_DIR = Path(__file__).parent / "typing"
PACKAGE_DIR = Path(gostore.__file__).parent


def _mypy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_public_api_examples_pass_mypy_strict(tmp_path: Path) -> None:
    # Runs outside the source tree's config; a fresh cache keeps the result independent of
    # earlier runs. Unneeded "type: ignore" comments in the examples are errors under --strict.
    result = _mypy(
        "mypy",
        "--strict",
        "--python-version=3.10",
        f"--cache-dir={tmp_path / 'cache'}",
        str(TYPING_DIR / "basic_typing_examples.py"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _signatures(path: Path) -> dict[str, str]:
    """Public functions and methods of a module file as ``{qualified name: signature}``."""
    found: dict[str, str] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                found[prefix + node.name] = "class"
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, ast.FunctionDef) and (
                not node.name.startswith("_") or node.name == "__init__"
            ):
                returns = ast.unparse(node.returns) if node.returns else ""
                found[prefix + node.name] = f"({ast.unparse(node.args)}) -> {returns}"

    visit(ast.parse(path.read_text(encoding="utf-8")).body, "")
    return found


def test_stub_of_compiled_module_matches_pure_twin_signatures() -> None:
    stub = _signatures(PACKAGE_DIR / "_speedups.pyi")
    twin = _signatures(PACKAGE_DIR / "_speedups_py.py")
    assert set(stub) >= {"decode_group", "decode_pairs", "WatcherIndex", "WatcherIndex.match"}
    assert stub == twin


def test_stub_matches_compiled_module_at_runtime(tmp_path: Path) -> None:
    try:
        from gostore import _speedups  # noqa: F401 - only checks that it was built
    except ImportError:
        pytest.skip("compiled module not built")
    result = _mypy(
        "mypy.stubtest",
        "gostore._speedups",
        f"--allowlist={TYPING_DIR / 'stubtest-allowlist.txt'}",
        "--ignore-unused-allowlist",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
