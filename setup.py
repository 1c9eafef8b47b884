"""Build the optional compiled module gostore._speedups; all metadata lives in pyproject.toml.

The extension is optional: without Cython or a C compiler the build prints a boxed warning
and produces a pure-Python install (gostore.SPEEDUPS is then False). It is strict when
CIBUILDWHEEL=1 or GOSTORE_REQUIRE_SPEEDUPS=1, and skipped when GOSTORE_PURE=1 or not on CPython.
"""

import os
import platform
import sys

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


def _warn(reason: object) -> None:
    try:
        import Cython  # noqa: F401
    except ImportError:
        # setuptools then looks for the generated .c instead, which the sdist does not ship.
        reason = f"Cython is not installed ({reason})"
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


if SKIP:
    _run(with_extensions=False)
else:
    try:
        _run(with_extensions=True)
    except BuildFailed as exc:
        if STRICT:
            raise
        _warn(exc.__cause__ or exc)
        _run(with_extensions=False)
