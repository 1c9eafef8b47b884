"""The benchmark's results and how they are reported: the Markdown table of medians and
ratios, the targets they are judged against, and the durability summary.

A quick run (``--quick``: one round of a tiny fixed iteration count) is too short to judge:
its report says so in a header line, marks every ratio as rough (``~0.22``) and prints the
targets without a verdict. Full runs print ``PASS``/``MISS`` for each target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .workloads import APSW, DICT_CURSOR, DURABILITY, LEVELS, WORKLOADS, cases

__all__ = (
    "COMPILED",
    "GO",
    "PURE",
    "ROUGH",
    "Result",
    "Results",
    "Target",
    "fmt",
    "merge",
    "report",
    "targets",
    "to_json",
)

# Columns of the report besides the raw impls: gostore's two modes and the Go harness.
COMPILED, PURE, GO = "compiled", "pure", "go"

ROUGH = (
    "Rough figures: --quick times a tiny fixed number of operations once, so the ratios below "
    "(marked ~) only show the order of magnitude and no target is judged. Run without --quick "
    "for figures to judge by."
)


@dataclass
class Result:
    ns_per_op: float
    rounds: list[float] = field(default_factory=list)
    iterations: int = 0


Results = dict[str, dict[str, Result]]


def merge(*parts: Results) -> Results:
    out: Results = {}
    for part in parts:
        for name, cols in part.items():
            out.setdefault(name, {}).update(cols)
    return out


def fmt(ns: float | None) -> str:
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}" if ns < scale * 100 else f"{ns / scale:.0f} {unit}"
    return f"{ns:.0f} ns"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _r(x: float | None, rough: bool = False) -> str:
    if x is None:
        return "-"
    return f"~{x:.2f}" if rough else f"{x:.2f}"


def _ns(results: Results, name: str, column: str) -> float | None:
    res = results.get(name, {}).get(column)
    return None if res is None else res.ns_per_op


def _gostore(results: Results, name: str) -> float | None:
    """gostore's default mode: compiled when measured, else pure."""
    ns = _ns(results, name, COMPILED)
    return ns if ns is not None else _ns(results, name, PURE)


@dataclass
class Target:
    what: str
    ratio: float | None
    limit: float
    at_least: bool = False  # True: ratio must be >= limit

    @property
    def verdict(self) -> str:
        if self.ratio is None:
            return "n/a"
        ok = self.ratio >= self.limit if self.at_least else self.ratio <= self.limit
        return "PASS" if ok else "MISS"


_HALF = ("Get", "Set", "SetWithTTL", "Delete", "Count_10K", "GetAll")


def targets(results: Results) -> list[Target]:
    """The targets (gostore against go-store and raw APSW, the compiled speed-ups, the cost of
    watchers and quotas) against the measured medians."""
    out: list[Target] = []

    def gs(name: str) -> float | None:
        return _gostore(results, name)

    for name in results:
        w = WORKLOADS.get(name.split("[")[0])
        if w is not None and w.go:
            limit = 0.5 if name in _HALF else 1.0
            out.append(
                Target(
                    f"{name}: gostore / go-store", _ratio(gs(name), _ns(results, name, GO)), limit
                )
            )
    for name in ("Get", "Set"):
        out.append(
            Target(f"{name}: gostore / raw APSW", _ratio(gs(name), _ns(results, name, APSW)), 1.25)
        )
    out.append(
        Target(
            "GetAll: gostore / dict(cursor)",
            _ratio(gs("GetAll"), _ns(results, "GetAll", DICT_CURSOR)),
            0.7,
        )
    )
    for name in ("decode_group_10K", "decode_pairs_10K", "WatcherIndex_match", "Watcher_dispatch"):
        out.append(
            Target(
                f"{name}: pure / compiled (speed-up)",
                _ratio(_ns(results, name, PURE), _ns(results, name, COMPILED)),
                1.5,
                at_least=True,
            )
        )
    out.append(Target("Get_1M / Get", _ratio(gs("Get_1M"), gs("Get")), 1.5))
    many = gs("SetMany_FileBacked")
    out.append(
        Target(
            "Set_FileBacked / (SetMany_FileBacked / 10000)",
            _ratio(gs("Set_FileBacked"), many / 10_000 if many else None),
            20.0,
            at_least=True,
        )
    )
    out.append(Target("Set_10KWatchers / Set", _ratio(gs("Set_10KWatchers"), gs("Set")), 1.2))
    out.append(
        Target("ScopedSet_100K / Set_NewKey", _ratio(gs("ScopedSet_100K"), gs("Set_NewKey")), 2.0)
    )
    return out


def report(results: Results, meta: dict[str, Any]) -> str:
    """The results table, the extra ratios and the targets, as Markdown.

    ``meta["quick"]`` true: the figures are rough (header line, ``~`` ratios, no verdicts).
    """
    rough = bool(meta.get("quick"))
    lines = [ROUGH, ""] if rough else []
    lines += [
        "| benchmark | per | compiled | pure | raw APSW | dict(cursor) | go-store-eq | "
        "gostore/go | gostore/APSW | compiled/pure |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = cases(meta.get("synchronous", "full"))
    order = [n for n in rows if n in results] + [n for n in results if n not in rows]
    for name in order:
        gs = _gostore(results, name)
        per = rows[name].per if name in rows else ""
        lines.append(
            f"| {name} | {per} | {fmt(_ns(results, name, COMPILED))} | "
            f"{fmt(_ns(results, name, PURE))} | {fmt(_ns(results, name, APSW))} | "
            f"{fmt(_ns(results, name, DICT_CURSOR))} | {fmt(_ns(results, name, GO))} | "
            f"{_r(_ratio(gs, _ns(results, name, GO)), rough)} | "
            f"{_r(_ratio(gs, _ns(results, name, APSW)), rough)} | "
            f"{_r(_ratio(_ns(results, name, COMPILED), _ns(results, name, PURE)), rough)} |"
        )
    if rough:
        lines += [
            "",
            "| target (gostore = compiled mode) | rough | limit |",
            "| --- | ---: | ---: |",
        ]
    else:
        lines += [
            "",
            "| target (gostore = compiled mode) | measured | limit | verdict |",
            "| --- | ---: | ---: | --- |",
        ]
    for t in targets(results):
        limit = f"{'>=' if t.at_least else '<='} {t.limit:g}"
        verdict = "" if rough else f" {t.verdict} |"
        lines.append(f"| {t.what} | {_r(t.ratio, rough)} | {limit} |{verdict}")
    lines += [
        "",
        "Durability (file-backed writes at each synchronous level, gostore compiled):",
        "",
    ]
    lines += ["| benchmark | " + " | ".join(LEVELS) + " |", "| --- |" + " ---: |" * len(LEVELS)]
    main_level = meta.get("synchronous", "full")
    for base in DURABILITY:
        cells = []
        for level in LEVELS:
            name = base if level == main_level else f"{base}[{level}]"
            cells.append(fmt(_gostore(results, name)))
        lines.append(f"| {base} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_json(results: Results) -> dict[str, Any]:
    """Every measurement of ``results``, as JSON-ready dicts."""
    return {name: {col: vars(res) for col, res in cols.items()} for name, cols in results.items()}
