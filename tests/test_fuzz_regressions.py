"""Every input that benchmarks/fuzz.py once found crashing a reader (saved under tests/data/fuzz/<target>/) now
gives a result or a clear KgpipeError; and each target still reads its known-good seed input."""

from __future__ import annotations

import pytest

from tests.fuzz_targets import FUZZ_DATA, SEEDS, TARGETS, check

SAVED = sorted((folder.name, path) for folder in FUZZ_DATA.glob("*") if folder.name in TARGETS
               for path in sorted(folder.glob("*.bin")))


@pytest.mark.parametrize(("target", "path"), SAVED, ids=[f"{t}-{p.stem}" for t, p in SAVED])
def test_a_saved_finding_no_longer_crashes(target: str, path) -> None:
    assert check(target, path.read_bytes()) is None


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_target_reads_its_seed_input(target: str) -> None:
    for data in SEEDS[target]:
        TARGETS[target](data)  # no exception at all: the seed inputs are valid
