"""Fuzz the readers of untrusted files (pipeline and pattern files, corpus and seed readers) with hypothesis,
for --minutes per target, outside CI. A finding is an input that makes a reader raise anything but a KgpipeError
or take longer than --slow seconds; each is saved under tests/data/fuzz/<target>/ (replayed by
tests/test_fuzz_regressions.py in `make test`) and listed in docs/benchmarks.md.

Inputs are drawn three ways: raw bytes, a known-good seed input mutated (bytes flipped, spliced, truncated,
repeated), and text built from the format's own punctuation, so the readers get past their first byte.

Usage: python benchmarks/fuzz.py [--minutes 6] [--targets pipeline seed-turtle ...] [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

from tests.fuzz_targets import FUZZ_DATA, SEEDS, TARGETS, check  # noqa: E402

PUNCTUATION = [*"{}[]()<>\"':,;.@#&!%*\\/\n\t =-_?", "\ud800", "\x00", "\u202e", "é", "&amp;", "<!ENTITY",
               "@context", "file://", "http://", "\\u0000"]


def inputs(target: str):  # a hypothesis strategy
    from hypothesis import strategies as st

    seeds = SEEDS[target]

    def mutate(draw_args: tuple[int, bytes, list[tuple[int, int]]]) -> bytes:
        index, noise, edits = draw_args
        data = bytearray(seeds[index % len(seeds)])
        for position, kind in edits:
            if not data:
                break
            at = position % len(data)
            if kind == 0:
                data[at] = noise[at % len(noise)] if noise else 0
            elif kind == 1:
                data[at:at] = noise
            elif kind == 2:
                del data[at:at + 1 + position % 8]
            else:
                data[at:at] = data[at:at + 1 + position % 32] * (1 + position % 50)
        return bytes(data)

    mutated = st.tuples(st.integers(0, 10), st.binary(max_size=16),
                        st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 3)), max_size=8)).map(mutate)
    tokens = st.lists(st.sampled_from(PUNCTUATION) | st.text(max_size=6), max_size=60).map(
        lambda parts: "".join(parts).encode("utf-8", "surrogatepass"))
    return st.binary(max_size=512) | mutated | tokens


class TimeUp(BaseException):
    """Ends a target's run when its minutes are spent."""


def fuzz(target: str, minutes: float, slow: float) -> tuple[int, list[tuple[str, str, Path]]]:
    from hypothesis import HealthCheck, given, settings

    for data in SEEDS[target]:  # imports and model loads happen here, not in the first timed input
        check(target, data)
    findings: list[tuple[str, str, Path]] = []
    seen: set[str] = set()
    runs = Counter()
    deadline = time.monotonic() + 60 * minutes

    @settings(max_examples=10**9, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(inputs(target))
    def one(data: bytes) -> None:
        if time.monotonic() > deadline:
            raise TimeUp  # a BaseException: hypothesis lets it through at once, without shrinking
        runs["n"] += 1
        started = time.perf_counter()
        problem = check(target, data)
        took = time.perf_counter() - started
        if problem is None and took <= slow:
            return
        kind = f"{type(problem).__name__}: {str(problem)[:120]}" if problem is not None else f"slow ({took:.1f} s)"
        # one finding per exception type and the line that raised it
        frame = traceback.extract_tb(problem.__traceback__)[-1] if problem is not None else None
        key = f"{type(problem).__name__}@{frame.filename}:{frame.lineno}" if frame else kind
        if key in seen:
            return
        seen.add(key)
        folder = FUZZ_DATA / target
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}.bin"
        path.write_bytes(data)
        findings.append((target, kind, path))
        print(f"  finding in {target}: {kind} -> {path.relative_to(REPO)}", flush=True)

    with contextlib.suppress(TimeUp):
        one()
    return runs["n"], findings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=6.0, help="per target")
    parser.add_argument("--targets", nargs="*", default=list(TARGETS))
    parser.add_argument("--slow", type=float, default=5.0, help="seconds after which one input counts as a hang")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows, all_findings = [], []
    for target in args.targets:
        print(f"fuzzing {target} for {args.minutes} min", flush=True)
        runs, findings = fuzz(target, args.minutes, args.slow)
        all_findings += findings
        rows.append(f"| {target} | {runs:,} | {len(findings)} |")
    body = "\n".join([
        f"{args.minutes:g} minutes per target, hypothesis (raw bytes, mutated seed inputs, format punctuation).",
        "",
        "| target | inputs tried | new findings |",
        "|---|---|---|",
        *rows,
        "",
        *(f"- {target}: {kind} (`{path.relative_to(REPO)}`)" for target, kind, path in all_findings),
    ])
    write_section("fuzz", "Fuzzing the readers of untrusted files", body,
                  "python benchmarks/fuzz.py " + " ".join(sys.argv[1:]), print_only=args.no_write)


if __name__ == "__main__":
    main()
