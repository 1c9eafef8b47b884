"""gostore's comparison benchmark: gostore (compiled and pure) against raw APSW and a
go-store-equivalent Go harness, on go-store's own benchmarks.

It is a separate part of the package: the store never imports it, and ``gostore bench`` loads
it only when that command runs. ``python -m gostore.bench`` runs it too.

* ``workloads`` (with ``fixtures`` and ``gostore_only``): what is measured, shared with the
  pytest-benchmark files of ``benchmarks/``;
* ``runner``: how it is measured, and the command line (:func:`main`);
* ``report``: the results table, the targets and their verdicts;
* ``goharness``: finding, building and running the Go harness of a checkout;
* ``procs``: child processes that never outlive the run.
"""

from __future__ import annotations

from .runner import main

__all__ = ("main",)
