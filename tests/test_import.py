"""Which implementation is in use, and the public API surface."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import gostore
from gostore import _accel

from .conftest import REQUIRE_SPEEDUPS


def test_public_api_is_sorted_and_importable() -> None:
    assert list(gostore.__all__) == sorted(gostore.__all__)
    for name in gostore.__all__:
        assert hasattr(gostore, name)


@pytest.mark.skipif(not REQUIRE_SPEEDUPS or _accel.PURE_REQUESTED, reason="compiled mode only")
def test_compiled_module_is_loaded_when_required() -> None:
    assert gostore.SPEEDUPS is True
    assert _accel.decode_group.__module__ == "gostore._speedups"
    assert _accel.WatcherIndex.__module__ == "gostore._speedups"


def test_pure_mode_is_forced_by_environment() -> None:
    env = {**os.environ, "GOSTORE_PURE": "1"}
    code = "import gostore, gostore._accel as a; print(gostore.SPEEDUPS, a.decode_group.__module__)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "gostore._speedups_py"]


def test_environment_mode_matches_flag() -> None:
    if _accel.PURE_REQUESTED:
        assert gostore.SPEEDUPS is False
