"""Packaging stays consistent: what the sdist and the wheel take in, the compiled module's
source and stub, setup.py's choice of what to compile, the published metadata and the
wheel-build settings. Cheap checks of the source tree (the metadata is generated, nothing is
compiled); building and installing the wheels is CI's job (.github/workflows/wheels.yml).
Skipped outside the source tree, as when cibuildwheel runs the suite against an installed wheel.
"""

from __future__ import annotations

import ast
import email
import email.message
import os
import re
import runpy
import subprocess
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
        methods = set(re.findall(r"^    def (\w+)\(", body, re.MULTILINE))
        # Cython's constructor is the class's __init__ to Python; its destructor is not API.
        methods = {"__init__" if m == "__cinit__" else m for m in methods} - {"__dealloc__"}
        names.update(f"{cls}.{m}" for m in methods)
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


def test_both_ci_entry_points_run_the_readme_test_command_with_the_module_required() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "```sh\nbash scripts/test.sh\n```" in readme
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    workflow = (ROOT / ".github" / "workflows" / "tests.yml").read_text(encoding="utf-8")
    for text in (ci_run, workflow):
        assert re.search(r"^\s*(run: )?bash scripts/test\.sh$", text, re.MULTILINE)
        assert re.search(r"GOSTORE_REQUIRE_SPEEDUPS[=:] ?\"?1\"?$", text, re.MULTILINE)
    # .ci/run runs the Go interoperability tests whenever Go is installed.
    assert re.search(
        r"if command -v go .*\n\s+export GOSTORE_GO_TESTS=1\n", ci_run
    ), "GOSTORE_GO_TESTS=1 when go is on PATH"
    assert ".ci/run" in readme and ".github/workflows/tests.yml" in readme


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


# -- setup.py: what it compiles -------------------------------------------------------------------
GENERATED_C = "_speedups/_speedups.c"


@pytest.fixture(scope="module")
def setup_py() -> dict[str, Any]:
    """setup.py's names, loaded without building: it calls setup() only when run as __main__."""
    return runpy.run_path(str(ROOT / "setup.py"), run_name="gostore_setup_under_test")


def _sources(root: Path, c_age_seconds: float | None) -> Path:
    """A .pyx, and a generated .c that many seconds older than it (newer when negative)."""
    pyx = root / PYX
    pyx.parent.mkdir(parents=True, exist_ok=True)
    pyx.write_text("def f():\n    return 1\n", encoding="utf-8")
    if c_age_seconds is not None:
        generated = root / GENERATED_C
        generated.write_text("/* generated */\n", encoding="utf-8")
        pyx_mtime = pyx.stat().st_mtime
        os.utime(generated, (pyx_mtime - c_age_seconds, pyx_mtime - c_age_seconds))
    return root


def test_setup_never_compiles_a_generated_c_older_than_its_pyx(
    setup_py: dict[str, Any], tmp_path: Path
) -> None:
    problem = setup_py["source_problem"](_sources(tmp_path, 60), cython_installed=False)
    assert problem is not None
    assert "Cython is not installed" in problem
    assert f"{GENERATED_C} is older than {PYX}" in problem


def test_setup_compiles_a_generated_c_as_new_as_its_pyx_when_cython_is_missing(
    setup_py: dict[str, Any], tmp_path: Path
) -> None:
    assert setup_py["source_problem"](_sources(tmp_path, 0), cython_installed=False) is None
    assert setup_py["source_problem"](_sources(tmp_path, -60), cython_installed=False) is None


def test_setup_cannot_build_without_cython_or_a_generated_c(
    setup_py: dict[str, Any], tmp_path: Path
) -> None:
    problem = setup_py["source_problem"](_sources(tmp_path, None), cython_installed=False)
    assert problem is not None
    assert "Cython is not installed" in problem


def test_setup_with_cython_compiles_the_pyx_whatever_the_generated_c(
    setup_py: dict[str, Any], tmp_path: Path
) -> None:
    # Cython regenerates an out-of-date .c itself.
    assert setup_py["source_problem"](_sources(tmp_path, 60), cython_installed=True) is None
    assert setup_py["source_problem"](_sources(tmp_path, None), cython_installed=True) is None


@pytest.fixture
def stale_checkout(
    setup_py: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> list[bool]:
    """setup.py's main() on a checkout with a stale .c and no Cython; returns the list of
    ``with_extensions`` values setup() would have been run with (nothing is built)."""
    namespace = setup_py["main"].__globals__
    runs: list[bool] = []
    monkeypatch.setitem(namespace, "__file__", str(_sources(tmp_path, 60) / "setup.py"))
    monkeypatch.setitem(namespace, "SKIP", False)
    monkeypatch.setitem(namespace, "_cython_installed", lambda: False)
    monkeypatch.setitem(namespace, "_run", lambda with_extensions: runs.append(with_extensions))
    return runs


def test_setup_installs_pure_with_a_boxed_warning_rather_than_compile_a_stale_c(
    setup_py: dict[str, Any],
    stale_checkout: list[bool],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(setup_py["main"].__globals__, "STRICT", False)
    setup_py["main"]()
    assert stale_checkout == [False]
    warning = capsys.readouterr().err
    assert "WARNING: the compiled module gostore._speedups could not be built" in warning
    assert "is older than" in warning


def test_strict_setup_fails_rather_than_compile_a_stale_c(
    setup_py: dict[str, Any], stale_checkout: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(setup_py["main"].__globals__, "STRICT", True)
    with pytest.raises(setup_py["BuildFailed"], match="is older than"):
        setup_py["main"]()
    assert stale_checkout == []


# -- the metadata PyPI shows ----------------------------------------------------------------------
_PREPARE_METADATA = (
    "import sys\n"
    "from setuptools import build_meta\n"
    "print(build_meta.prepare_metadata_for_build_wheel(sys.argv[1]))\n"
)


@pytest.fixture(scope="module")
def dist_info(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel's .dist-info as setuptools generates it (no compiling: the metadata does not
    depend on the extension, so GOSTORE_PURE=1 skips it)."""
    out = tmp_path_factory.mktemp("metadata")
    result = subprocess.run(
        [sys.executable, "-c", _PREPARE_METADATA, str(out)],
        cwd=ROOT,
        env={**os.environ, "GOSTORE_PURE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out / result.stdout.splitlines()[-1]


@pytest.fixture(scope="module")
def metadata(dist_info: Path) -> email.message.Message:
    return email.message_from_bytes((dist_info / "METADATA").read_bytes())


def test_metadata_declares_the_eupl_and_ships_its_full_text(
    dist_info: Path, metadata: email.message.Message
) -> None:
    assert metadata["License-Expression"] == "EUPL-1.2"
    assert metadata.get_all("License-File") == ["LICENSE"]
    # A licence expression replaces the old licence classifiers; both is an error on PyPI.
    assert not any(c.startswith("License ::") for c in metadata.get_all("Classifier", []))
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.split("\n", 1)[0].strip() == "EUROPEAN UNION PUBLIC LICENCE v. 1.2"
    assert text.rstrip().endswith("require the production of a new\nEUPL version.")
    assert (dist_info / "licenses" / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()


def test_metadata_classifiers_name_every_python_the_wheels_are_built_for(
    metadata: email.message.Message, pyproject: dict[str, Any]
) -> None:
    classifiers = metadata.get_all("Classifier", [])
    prefix = "Programming Language :: Python :: 3."
    versions = {"3." + c.removeprefix(prefix) for c in classifiers if c.startswith(prefix)}
    assert {"3.10", "3.11", "3.12", "3.13", "3.14"} <= versions
    build = pyproject["tool"]["cibuildwheel"]["build"].split()
    assert sorted(build) == sorted(f"cp{v.replace('.', '')}-*" for v in versions)
    assert metadata["Requires-Python"] == ">=3.10"


def test_metadata_urls_are_the_ones_the_readme_links(metadata: email.message.Message) -> None:
    urls = [entry.split(", ", 1)[1] for entry in metadata.get_all("Project-URL", [])]
    assert urls, "expected at least go-store's URL"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for url in urls:
        assert url.startswith("https://")
        assert f"({url})" in readme
