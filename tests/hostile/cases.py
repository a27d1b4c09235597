"""Bookkeeping of the hostile-input suite: every case says what it feeds kgpipe and which outcome it asserts.

`docs/hostile_inputs.md` is the table of all cases; `python -m tests.hostile.cases` rewrites it and
`test_table.py` fails when it is out of date, so the table always says what the suite checks.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# What a hostile input may lead to; a case asserts exactly one of these.
OUTCOMES = {
    "skipped": "skipped and reported (file, line or row, reason); the rest of the input is used",
    "error": "a clear error: documented exit code, file and line or row, what to do; no traceback",
    "refused": "refused before anything runs or is written (confinement, limits)",
    "handled": "handled correctly: the output is valid and right",
    "recovered": "the workspace recovers: leftovers cleaned, a damaged file discarded, the next run succeeds",
}
AREAS = ("corpus", "seed", "pipeline", "lock", "workspace", "output", "embed", "extract", "cli")


@dataclass(frozen=True)
class Case:
    """One hostile input and the outcome class its test asserts."""

    id: str
    area: str
    what: str
    outcome: str
    exit_code: int | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"case {self.id}: outcome {self.outcome!r} is not one of {sorted(OUTCOMES)}")
        if self.area not in AREAS:
            raise ValueError(f"case {self.id}: area {self.area!r} is not one of {AREAS}")


REGISTRY: dict[str, Case] = {}


def register(cases: Iterable[Case]) -> list[Case]:
    """Record cases (ids are unique across the suite) and return them for pytest.mark.parametrize."""
    cases = list(cases)
    for case in cases:
        if case.id in REGISTRY and REGISTRY[case.id] != case:
            raise ValueError(f"hostile case id {case.id!r} is used twice")
        REGISTRY[case.id] = case
    return cases


def parametrize(*cases: Case) -> Any:
    """`@parametrize(Case(...), ...)`: a test run once per case, its argument named `case`."""
    return pytest.mark.parametrize("case", register(cases), ids=lambda c: c.id)


def hostile(id: str, *, area: str, what: str, outcome: str, exit_code: int | None = None) -> Any:
    """Decorator for a test that checks one case."""
    case = register([Case(id, area, what, outcome, exit_code)])[0]

    def mark(test: Any) -> Any:
        test.hostile_case = case
        return test

    return mark


# --- assertions shared by the cases -------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file below folder (hidden ones too), by relative path: what 'untouched' compares."""
    result = {}
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            if path.is_symlink() or not path.is_file():
                continue
            result[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def assert_untouched(before: dict[str, str], folder: Path, *, ignore: tuple[str, ...] = ()) -> None:
    """Every file in `before` still exists with the same bytes (files may be added, never lost or changed)."""
    after = snapshot(folder)
    lost = [p for p in before if p not in after and not p.startswith(ignore)]
    changed = [p for p in before if p in after and after[p] != before[p] and not p.startswith(ignore)]
    assert not lost and not changed, f"lost: {lost[:5]}, changed: {changed[:5]}"


def assert_clear_error(result: Any, exit_code: int, *fragments: str) -> None:
    """A CliRunner result that failed with exit_code, names every fragment, and shows no traceback."""
    output = result.output  # click >= 8.2: stdout and stderr as a terminal shows them
    assert result.exit_code == exit_code, f"exit {result.exit_code}, wanted {exit_code}:\n{output}"
    assert "Traceback" not in output, output
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in:\n{output}"


# --- the table ----------------------------------------------------------------------------------------

TABLE = Path(__file__).resolve().parents[2] / "docs" / "hostile_inputs.md"


def collect() -> dict[str, Case]:
    """Import every test module of the suite so that its cases register."""
    package = importlib.import_module("tests.hostile")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("test_"):
            importlib.import_module(f"{package.__name__}.{info.name}")
    return REGISTRY


def render(cases: dict[str, Case]) -> str:
    counts = {outcome: sum(c.outcome == outcome for c in cases.values()) for outcome in OUTCOMES}
    lines = [
        "# Hostile inputs: the cases `tests/hostile/` checks",
        "",
        "Generated by `python -m tests.hostile.cases` from the suite itself (a test fails when this file is",
        "out of date). Each case is a test that feeds kgpipe the input and asserts its outcome class, and that",
        "what earlier runs produced is untouched.",
        "",
        f"{len(cases)} cases: " + ", ".join(f"{n} {o}" for o, n in counts.items() if n) + ".",
        "",
        "| outcome | meaning |",
        "|---|---|",
        *(f"| {o} | {m} |" for o, m in OUTCOMES.items()),
        "",
        "| area | case | hostile input | outcome | exit |",
        "|---|---|---|---|---|",
    ]
    order = {a: i for i, a in enumerate(AREAS)}
    for case in sorted(cases.values(), key=lambda c: (order[c.area], c.id)):
        what = case.what.replace("|", "\\|")
        exit_code = "" if case.exit_code is None else str(case.exit_code)
        lines.append(f"| {case.area} | `{case.id}` | {what} | {case.outcome} | {exit_code} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # run as a script this file is __main__; the test modules register into the imported module's registry
    from tests.hostile import cases

    found = cases.collect()
    TABLE.write_text(cases.render(found), encoding="utf-8")
    print(f"wrote {TABLE} ({len(found)} cases)")
