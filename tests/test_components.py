"""Connected components (kgpipe/kg/components.py): scipy's labels against networkx, the star reducers against
scipy, and the Ray engine against the local one on the session's two-node cluster (graphs chosen to be hard)."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import networkx as nx
import numpy as np
import pytest

from kgpipe.errors import StageError
from kgpipe.kg.components import (
    RayComponentsStats,
    components_local,
    components_ray,
    labels_from_dataset,
    large_star,
    small_star,
)

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# Ray Data warns about its own deprecated settings each time it builds a DataContext
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


@st.composite
def graphs(draw: Any, max_nodes: int = 40) -> tuple[int, np.ndarray, np.ndarray]:
    n = draw(st.integers(0, max_nodes))
    if n == 0:
        return 0, np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n))
    left = np.array([a for a, _ in pairs], dtype=np.int64)
    right = np.array([b for _, b in pairs], dtype=np.int64)
    return n, left, right


@given(graphs())
@settings(max_examples=300, deadline=None)
def test_components_local_labels_each_component_by_its_smallest_node(graph: tuple[int, Any, Any]) -> None:
    n, left, right = graph
    reference = nx.Graph()
    reference.add_nodes_from(range(n))
    reference.add_edges_from(zip(left.tolist(), right.tolist(), strict=True))
    expected = np.arange(n)
    for component in nx.connected_components(reference):
        expected[list(component)] = min(component)

    labels = components_local(n, left, right)

    assert labels.dtype == np.int64 and labels.shape == (n,)
    assert labels.tolist() == expected.tolist()


def _edge_set(child: np.ndarray, parent: np.ndarray, changed: np.ndarray) -> set[tuple[int, int, int]]:
    return set(zip(child.tolist(), parent.tolist(), changed.tolist(), strict=True))


def test_large_star_links_larger_neighbours_to_the_smallest_of_the_neighbourhood() -> None:
    # node 4 has neighbours 2, 6, 9 (and 4-6 twice): 6 and 9 go to 2; node 2's larger neighbour 4 stays on 2;
    # node 6's larger neighbour 9 goes to min(6, 4, 9) = 4; 9 has no larger neighbour
    u = np.array([4, 4, 4, 6, 9, 4])
    v = np.array([2, 6, 9, 9, 6, 6])
    child, parent, changed = large_star(np.concatenate([u, v]), np.concatenate([v, u]))

    assert _edge_set(child, parent, changed) == {(4, 2, 0), (6, 2, 1), (9, 2, 1), (9, 4, 1)}
    assert len(child) == 4  # 4-6 given twice is reduced once


def test_small_star_links_a_node_and_its_smaller_neighbours_to_the_smallest_one() -> None:
    # 7's smaller neighbours 1, 3, 5: all of 7, 3, 5 go to 1; 8's only smaller neighbour 3 stays
    child = np.array([7, 7, 7, 8, 7])
    parent = np.array([5, 1, 3, 3, 5])
    out_child, out_parent, changed = small_star(child, parent)

    assert _edge_set(out_child, out_parent, changed) == {(7, 1, 0), (3, 1, 1), (5, 1, 1), (8, 3, 0)}
    assert len(out_child) == 4


def _stars_in_process(left: np.ndarray, right: np.ndarray) -> tuple[dict[int, int], int]:
    """components_ray's loop with one partition and no Ray: the reducers' algorithm on its own."""
    child, parent, quiet, steps = left, right, 0, 0
    while quiet < 2:
        assert steps < 200, "large-star/small-star did not converge"
        if steps % 2 == 0:
            child, parent, changed = large_star(np.concatenate([child, parent]), np.concatenate([parent, child]))
        else:
            child, parent, changed = small_star(child, parent)
        steps += 1
        quiet = quiet + 1 if changed.sum() == 0 else 0
    labels = {int(node): int(node) for node in np.concatenate([left, right])}
    labels.update(zip(child.tolist(), parent.tolist(), strict=True))
    return labels, steps


@given(graphs(max_nodes=60), st.integers(-2**62, 2**62), st.integers(1, 2**20))
@settings(max_examples=300, deadline=None)
def test_large_and_small_star_converge_to_the_smallest_id_of_each_component(
        graph: tuple[int, Any, Any], offset: int, stride: int) -> None:
    n, left, right = graph
    # ids far from 0..n-1, negative ones included, in the same order as the nodes they stand for
    ids = offset + stride * np.arange(n, dtype=np.int64)
    labels, _ = _stars_in_process(ids[left], ids[right])

    local = components_local(n, left, right)
    expected = {int(ids[node]): int(ids[local[node]]) for node in np.concatenate([left, right]).tolist()}
    assert labels == expected


def test_a_chain_converges_in_logarithmically_many_steps() -> None:
    n = 100_000
    nodes = np.random.default_rng(1).permutation(n)
    for order in (np.arange(n), nodes):  # ids along the chain in order, and shuffled
        labels, steps = _stars_in_process(order[:-1], order[1:])
        assert set(labels.values()) == {0} and len(labels) == n
        assert steps <= 4 * math.ceil(math.log2(n)), steps


def test_kgpipe_imports_components_without_ray_and_names_the_extra_when_it_is_needed() -> None:
    script = (
        "import sys\n"
        "sys.modules['ray'] = None  # as if Ray were not installed\n"
        "from kgpipe.errors import DependencyMissingError\n"
        "from kgpipe.kg.components import components_local, components_ray\n"
        "print(components_local(3, [0], [2]).tolist())\n"
        "try:\n"
        "    components_ray(None)\n"
        "except DependencyMissingError as exc:\n"
        "    print(exc.exit_code, exc)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "[0, 1, 0]"
    assert done.stdout.splitlines()[1].startswith("7 ") and "pip install 'kgpipe[ray]'" in done.stdout


# ---- the Ray engine against the local one ----

@pytest.fixture(scope="module")
def ray_data(ray_cluster: Any) -> Iterator[Any]:
    import ray
    import ray.data

    if not ray.is_initialized():
        ray.init(address=ray_cluster.address, include_dashboard=False, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars, context.print_on_execution_start
    context.enable_progress_bars, context.print_on_execution_start = False, False
    try:
        yield ray.data
    finally:
        context.enable_progress_bars, context.print_on_execution_start = saved


def _edges(ray_data: Any, left: np.ndarray, right: np.ndarray, blocks: int = 3) -> Any:
    """An edge Dataset in several blocks, so that every node's edges start out spread over blocks."""
    import pyarrow as pa

    left, right = np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)
    pieces = [pa.table({"u": pa.array(a, pa.int64()), "v": pa.array(b, pa.int64())})
              for a, b in zip(np.array_split(left, blocks), np.array_split(right, blocks), strict=True)]
    return ray_data.from_arrow(pieces)


def _rows(ds: Any) -> dict[int, int]:
    rows: dict[int, int] = {}
    for batch in ds.iter_batches(batch_format="numpy"):
        rows.update(zip(batch["node"].tolist(), batch["label"].tolist(), strict=True))
    return rows


def _agree(ray_data: Any, n: int, left: np.ndarray, right: np.ndarray, **kwargs: Any) -> RayComponentsStats:
    stats = RayComponentsStats()
    result = components_ray(_edges(ray_data, left, right), stats=stats, **kwargs)
    rows = _rows(result)
    touched = np.unique(np.concatenate([left, right]))
    local = components_local(n, left, right)
    assert sorted(rows) == touched.tolist()  # one row per node that is in an edge, no more
    assert labels_from_dataset(result, n).tolist() == local.tolist()
    return stats


def test_ray_agrees_on_a_long_chain_in_logarithmically_many_rounds(ray_data: Any) -> None:
    n = 256
    order = np.arange(n)
    rng = np.random.default_rng(2)
    edges = rng.permutation(n - 1)  # the chain 0-1-2-...-n-1, its edges in random order
    strategy = ray_data.DataContext.get_current().shuffle_strategy

    stats = _agree(ray_data, n, order[edges], order[edges + 1])

    assert stats.rounds <= 2 * math.ceil(math.log2(n)), stats
    assert ray_data.DataContext.get_current().shuffle_strategy == strategy  # the caller's setting is kept


def test_ray_agrees_on_a_star_around_a_middle_node(ray_data: Any) -> None:
    leaves = np.array([i for i in range(400) if i != 37])
    _agree(ray_data, 400, np.full(len(leaves), 37), leaves)


def test_ray_agrees_on_many_small_components_whatever_the_partitioning(ray_data: Any) -> None:
    rng = np.random.default_rng(3)
    n = 900
    ids = rng.permutation(n)
    left, right = [], []
    for start in range(0, n, 3):  # 300 components: paths of 2 or 3 nodes, or triangles
        a, b, c = ids[start:start + 3]
        kind = start % 9
        left += [a] + ([b] if kind >= 3 else []) + ([c] if kind == 6 else [])
        right += [b] + ([c] if kind >= 3 else []) + ([a] if kind == 6 else [])
    for partitions in (1, 5):
        _agree(ray_data, n, np.array(left), np.array(right), partitions=partitions)


def test_ray_agrees_with_self_loops_and_duplicate_edges(ray_data: Any) -> None:
    # 9 has only a self-loop; 4-2 is given four times in both directions; 6-6 sits in a component
    left = np.array([9, 4, 2, 4, 2, 6, 6, 3, 5, 7])
    right = np.array([9, 2, 4, 2, 4, 6, 5, 3, 7, 7])
    _agree(ray_data, 12, left, right)


def test_ray_gives_no_rows_for_no_edges(ray_data: Any) -> None:
    empty = np.zeros(0, dtype=np.int64)
    result = components_ray(_edges(ray_data, empty, empty, blocks=1))

    assert result.count() == 0
    assert labels_from_dataset(result, 4).tolist() == [0, 1, 2, 3]


def test_ray_agrees_on_ids_that_are_neither_contiguous_nor_small(ray_data: Any) -> None:
    rng = np.random.default_rng(4)
    n = 300
    ids = np.sort(rng.choice(2**40, size=n, replace=False)) - 2**39  # negative ones too
    left, right = rng.integers(0, n, 200), rng.integers(0, n, 200)

    rows = _rows(components_ray(_edges(ray_data, ids[left], ids[right])))

    local = components_local(n, left, right)  # ids are sorted, so the smallest index is the smallest id
    assert rows == {int(ids[node]): int(ids[local[node]]) for node in np.concatenate([left, right]).tolist()}


def test_ray_stops_with_a_stage_error_when_the_round_cap_is_exceeded(ray_data: Any) -> None:
    chain = np.arange(64)
    with pytest.raises(StageError, match="did not converge in 1 rounds"):
        components_ray(_edges(ray_data, chain[:-1], chain[1:]), max_rounds=1)


def test_ray_names_missing_columns(ray_data: Any) -> None:
    ds = ray_data.from_items([{"a": 1, "b": 2}])
    with pytest.raises(StageError, match="not `u` and `v`"):
        components_ray(ds)
