"""Benchmark scripts (benchmarks/*.py) imported by tests. They are scripts, not a package: their folder is on
sys.path only while one is imported (a script that imports a sibling inside a function needs it then too:
import that sibling here first)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def import_benchmark(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))
