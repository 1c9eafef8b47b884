"""Packaging stays consistent: what the sdist and the wheel take in, the compiled module's
source and stub, and the wheel-build settings. Cheap static checks of the source tree; building
and installing the wheels is CI's job (.github/workflows/wheels.yml). Skipped outside the
source tree, as when cibuildwheel runs the suite against an installed wheel."""

from __future__ import annotations

import ast
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from setuptools.command.egg_info import FileList

import gostore

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - pytest itself depends on tomli before 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYX = "_speedups/_speedups.pyx"

pytestmark = pytest.mark.skipif(
    not (ROOT / "setup.py").is_file() or not (ROOT / "MANIFEST.in").is_file(),
    reason="needs the source tree",
)

# Never in an sdist: caches, VCS, virtualenvs, build output.
_PRUNED = re.compile(r"^(\..*|__pycache__|build|dist|.*\.egg-info|venv)$")
_JUNK = re.compile(r".*(\.py[cod]|\.db-wal|\.db-shm)$")


def _tree_files(top: Path) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if not _PRUNED.match(d)]
        for name in filenames:
            yield Path(dirpath, name).relative_to(ROOT).as_posix()


@pytest.fixture(scope="module")
def manifest_files() -> set[str]:
    """The files MANIFEST.in adds to the sdist, evaluated by setuptools against this tree."""
    file_list = FileList()
    file_list.allfiles = sorted(_tree_files(ROOT))
    for line in (ROOT / "MANIFEST.in").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            file_list.process_template_line(line)
    return set(file_list.files)


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def test_sdist_ships_the_cython_source_and_no_generated_or_compiled_files(
    manifest_files: set[str],
) -> None:
    assert PYX in manifest_files
    built = {f for f in manifest_files if f.endswith((".c", ".so", ".pyd"))}
    assert built == set()


def test_sdist_ships_every_test_and_example_file(manifest_files: set[str]) -> None:
    # Wheels are built and tested from the sdist, so a data file missing here fails only there.
    wanted = {
        f
        for top in ("tests", "examples")
        for f in _tree_files(ROOT / top)
        if not _JUNK.match(f)
    }
    assert wanted, "tests/ should not be empty"
    assert wanted - manifest_files == set()


def test_extension_is_built_from_the_pyx_the_sdist_ships() -> None:
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    extensions = [
        (ast.literal_eval(node.args[0]), ast.literal_eval(node.args[1]))
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "Extension"
    ]
    assert extensions == [("gostore._speedups", [PYX])]
    assert (ROOT / PYX).is_file()


def test_wheel_ships_typing_files_and_leaves_out_sources(pyproject: dict[str, Any]) -> None:
    setuptools = pyproject["tool"]["setuptools"]
    assert {"py.typed", "*.pyi"} <= set(setuptools["package-data"]["gostore"])
    assert {"*.pyx", "*.c"} <= set(setuptools["exclude-package-data"]["gostore"])
    package = ROOT / "src" / "gostore"
    assert (package / "py.typed").is_file()
    assert (package / "_speedups.pyi").is_file()


def _pyx_names(source: str) -> set[str]:
    names = set(re.findall(r"^def (\w+)\(", source, re.MULTILINE))
    classes = re.findall(r"^cdef class (\w+).*?:\n((?:[ \t]+.*\n|\n)*)", source, re.MULTILINE)
    for cls, body in classes:
        names.add(cls)
        names.update(f"{cls}.{m}" for m in re.findall(r"^    def (\w+)\(", body, re.MULTILINE))
    # Public names and the special methods of public classes (private classes are not stubbed).
    def public(part: str) -> bool:
        return not part.startswith("_") or part.endswith("__")

    return {n for n in names if all(public(part) for part in n.split("."))}


def _stub_names(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            methods = [m.name for m in node.body if isinstance(m, ast.FunctionDef)]
            names.update(f"{node.name}.{m}" for m in methods)
    return names


def test_stub_declares_exactly_the_public_names_of_the_pyx() -> None:
    pyx = _pyx_names((ROOT / PYX).read_text(encoding="utf-8"))
    stub = _stub_names((ROOT / "src" / "gostore" / "_speedups.pyi").read_text(encoding="utf-8"))
    assert {"decode_group", "decode_pairs", "WatcherIndex", "WatcherIndex.match"} <= pyx
    assert stub == pyx


def test_version_matches_pyproject(pyproject: dict[str, Any]) -> None:
    assert gostore.__version__ == pyproject["project"]["version"]


def _classifier_versions(pyproject: dict[str, Any]) -> set[str]:
    prefix = "Programming Language :: Python :: 3."
    return {
        "3." + c.removeprefix(prefix)
        for c in pyproject["project"]["classifiers"]
        if c.startswith(prefix)
    }


def test_wheels_and_ci_cover_every_supported_python(pyproject: dict[str, Any]) -> None:
    versions = _classifier_versions(pyproject)
    assert min(versions, key=lambda v: tuple(map(int, v.split(".")))) == "3.10"
    assert pyproject["project"]["requires-python"] == ">=3.10"
    build = pyproject["tool"]["cibuildwheel"]["build"].split()
    assert sorted(build) == sorted(f"cp{v.replace('.', '')}-*" for v in versions)
    workflow = (ROOT / ".github" / "workflows" / "tests.yml").read_text(encoding="utf-8")
    matrix = re.search(r"^\s+python-version: \[(.*)\]$", workflow, re.MULTILINE)
    assert matrix is not None
    assert set(re.findall(r'"(3\.\d+)"', matrix.group(1))) == versions


def test_each_wheel_runs_the_suite_with_the_compiled_module_required(
    pyproject: dict[str, Any],
) -> None:
    cibw = pyproject["tool"]["cibuildwheel"]
    assert cibw["test-environment"] == {"GOSTORE_REQUIRE_SPEEDUPS": "1"}
    assert cibw["test-extras"] == ["test"]
    assert {"tests", "examples", "pyproject.toml"} <= set(cibw["test-sources"])
    assert cibw["test-command"].startswith("python -m pytest tests")
    # Free-threaded builds stay off until the .pyx is declared freethreading_compatible.
    assert "cp3??t-*" in cibw["skip"].split()
