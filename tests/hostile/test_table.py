"""docs/hostile_inputs.md lists exactly the cases this suite checks."""

from __future__ import annotations

from tests.hostile.cases import TABLE, collect, render


def test_the_table_of_cases_is_current() -> None:
    expected = render(collect())
    current = TABLE.read_text(encoding="utf-8") if TABLE.exists() else ""
    assert current == expected, "docs/hostile_inputs.md is out of date: run `python -m tests.hostile.cases`"
