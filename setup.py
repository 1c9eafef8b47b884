"""Build the optional compiled module gostore._speedups; all metadata lives in pyproject.toml.

The extension is optional: without Cython or a C compiler the build prints a boxed warning
and produces a pure-Python install (gostore.SPEEDUPS is then False). It is strict when
CIBUILDWHEEL=1 or GOSTORE_REQUIRE_SPEEDUPS=1, and skipped when GOSTORE_PURE=1 or not on CPython.
A generated _speedups/_speedups.c older than its .pyx is never compiled.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true"}


STRICT = _flag("CIBUILDWHEEL") or _flag("GOSTORE_REQUIRE_SPEEDUPS")
SKIP = _flag("GOSTORE_PURE") or platform.python_implementation() != "CPython"


class BuildFailed(Exception):
    pass


class optional_build_ext(build_ext):
    """Turn any compile failure into BuildFailed so setup can retry without extensions."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # any toolchain failure means "no compiler"
            raise BuildFailed(exc) from exc

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            raise BuildFailed(exc) from exc


PYX = "_speedups/_speedups.pyx"
GENERATED_C = "_speedups/_speedups.c"


def _cython_installed() -> bool:
    try:
        import Cython  # noqa: F401
    except ImportError:
        return False
    return True


def source_problem(root: Path, cython_installed: bool) -> str | None:
    """Why the extension cannot be built from the sources in ``root``, or None when it can.

    With Cython, the .pyx is compiled (Cython regenerates an out-of-date .c itself). Without it,
    setuptools silently compiles the generated .c next to the .pyx instead. The sdist never
    ships that file, but a checkout keeps the one an earlier build generated, and when it is
    older than the .pyx it holds the code of an earlier .pyx: compiling it would install stale
    code with SPEEDUPS True.
    """
    if cython_installed:
        return None
    pyx, generated = root / PYX, root / GENERATED_C
    if not generated.is_file():
        return f"Cython is not installed, and there is no generated {GENERATED_C} to compile"
    if generated.stat().st_mtime < pyx.stat().st_mtime:
        return (
            f"Cython is not installed, and {GENERATED_C} is older than {PYX} (generated from "
            "an earlier version of it), so it is not compiled"
        )
    return None


def _warn(reason: object) -> None:
    bar = "*" * 75
    print(
        f"\n{bar}\nWARNING: the compiled module gostore._speedups could not be built:\n"
        f"  {reason}\n"
        "gostore is installed in pure-Python mode (gostore.SPEEDUPS is False): it works the\n"
        "same, only slower. Install Cython and a C compiler, then reinstall with\n"
        "pip install --no-cache-dir --force-reinstall gostore to get the speed-ups.\n"
        f"{bar}\n",
        file=sys.stderr,
    )


EXTENSIONS = [Extension("gostore._speedups", ["_speedups/_speedups.pyx"])]


def _run(with_extensions: bool) -> None:
    if with_extensions:
        setup(ext_modules=EXTENSIONS, cmdclass={"build_ext": optional_build_ext})
    else:
        setup(ext_modules=[])


def main() -> None:
    if SKIP:
        _run(with_extensions=False)
        return
    try:
        problem = source_problem(Path(__file__).resolve().parent, _cython_installed())
        if problem is not None:
            raise BuildFailed(problem)
        _run(with_extensions=True)
    except BuildFailed as exc:
        if STRICT:
            raise
        _warn(exc.__cause__ or exc)
        _run(with_extensions=False)


# Both pip (through setuptools' build backend) and `python setup.py` run this file as __main__;
# tests load it under another name to check source_problem() without building.
if __name__ == "__main__":
    main()
