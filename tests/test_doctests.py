"""The examples in kgpipe's docstrings run, and say what they show: a module whose example no longer holds (a
changed comparison, a renamed field) fails here rather than misleading its reader."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kgpipe"
MODULES = sorted(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
                 for path in PACKAGE.rglob("*.py") if ">>> " in path.read_text(encoding="utf-8"))


def test_the_modules_with_examples_are_found() -> None:
    assert {"kgpipe.kg.explain", "kgpipe.kg.normalize", "kgpipe.kg.value_keys"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples fail (run python -m pytest " \
                               f"--doctest-modules {name.replace('.', '/')}.py to see them)"
