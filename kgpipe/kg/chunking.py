"""How the resolution drivers cut their inputs into tasks for an engine (kgpipe.engine): fixed sizes, never
derived from the engine or its worker count.

Every mapped step is chunk-invariant (tests/test_fuse_steps.py), so a size changes no result; fixed sizes keep
progress reports, task counts and per-task memory the same on every engine. Read at call time, so a test can
make them small to get many chunks out of a small input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kgpipe.engine.base import Executor

NAMES = 20_000          # names per task: reading names, their words, their MinHash signatures
PAIRS = 1_000_000       # node pairs per scoring task
NAME_RANGE = 50_000     # names per task when LSH pairs are merged and pruned, by the names they pair
GUARD_PAIRS = 2_000_000  # guard pairs per group of components (one scorer call, one task)
MENTIONS = 20_000       # mentions per task when linking exact names to the seed KG


def spans(total: int, size: int) -> list[slice]:
    """Consecutive slices of at most `size` covering 0..total."""
    return [slice(start, min(start + size, total)) for start in range(0, total, size)]


def flat_map(executor: Executor, fn: Callable[..., list[Any]], items: Iterable[Any], *, shared: tuple[Any, ...],
             what: str, done: Callable[[int], None] | None = None) -> list[Any]:
    """fn(*shared, item) per item through the executor, each returning a list; the lists joined in item order.
    done(k) after the k-th item's result arrives (progress)."""
    out: list[Any] = []
    for count, part in enumerate(executor.map_tasks(fn, items, shared=shared, what=what), 1):
        out.extend(part)
        if done is not None:
            done(count)
    return out

