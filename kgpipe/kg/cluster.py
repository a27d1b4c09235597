"""From scored pairs to clusters: connected components over accepted pairs (scipy's csgraph: a million
edges in C, where networkx's union-find costs several microseconds per edge in Python), then an
anti-chaining guard that re-clusters each component by average link, and a one-to-one matcher for record
linkage between two sources.

Why the guard: with connected components alone, one wrong pair joins two large clusters. Average link only
joins two groups when their members are similar *on average*, so a single bad pair among |A|*|B| cannot.
Nodes carrying different anchors (e.g. seed entities) are never joined; nodes with the same anchor start
in one group. A component too large to score all its pairs is cut at stricter thresholds, its pieces are
clustered exactly, and clusters of different pieces are joined again by average link between connected
clusters.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np

from kgpipe.engine.base import Shared
from kgpipe.kg.codes import find_sorted, sorted_unique
from kgpipe.kg.components import components_local

if TYPE_CHECKING:
    from kgpipe.engine.base import Executor

log = logging.getLogger(__name__)

PairScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


# scipy in-process: the whole graph's components on the local engine (Executor.components), and the
# components inside one large component in the guard's task on any engine
components = components_local
connected_components = components  # the name the benchmarks and older tests use


def average_link(sim: np.ndarray, threshold: float, anchors: np.ndarray,
                 weights: np.ndarray | None = None) -> np.ndarray:
    """Average-link agglomeration of k nodes with a full (k x k) similarity matrix.

    Groups are merged best-first while their average pairwise similarity is at least `threshold`; nodes
    with the same anchor (>= 0) start as one group and groups with different anchors are never merged.
    weights: how many records each node stands for (default 1); averages are over records, so a bare
    'Bohr' said once does not pull 'Harald Bohr' into a group of 'Niels Bohr' said eight times.
    Returns a group label per node (the smallest member index).
    """
    k = len(sim)
    weights = np.ones(k) if weights is None else np.asarray(weights, dtype=np.float64)
    groups: list[list[int]] = []
    seen: dict[int, int] = {}
    for i in range(k):
        a = int(anchors[i])
        if a >= 0 and a in seen:
            groups[seen[a]].append(i)
        else:
            if a >= 0:
                seen[a] = len(groups)
            groups.append([i])
    m = len(groups)
    sizes = np.array([weights[g].sum() for g in groups], dtype=np.float64)
    group_anchor = np.array([anchors[g[0]] for g in groups], dtype=np.int64)
    # average similarity between groups: blocks of sim summed (reduceat, not a BLAS product, which
    # oversubscribes the shared cores from inside a loop over thousands of small components)
    if m == k:
        avg = np.array(sim, dtype=np.float64)[np.ix_([g[0] for g in groups], [g[0] for g in groups])]
    else:
        order = np.concatenate([np.asarray(g) for g in groups])
        starts = np.r_[0, np.cumsum([len(g) for g in groups])[:-1]]
        weighted = sim[np.ix_(order, order)] * np.outer(weights[order], weights[order])
        block = np.add.reduceat(np.add.reduceat(weighted, starts, axis=0), starts, axis=1)
        avg = block / np.outer(sizes, sizes)
    conflict = (group_anchor[:, None] >= 0) & (group_anchor[None, :] >= 0) & (
        group_anchor[:, None] != group_anchor[None, :])
    avg[conflict] = -np.inf
    np.fill_diagonal(avg, -np.inf)
    active = np.ones(m, dtype=bool)
    while True:
        flat = int(np.argmax(avg))
        a, b = divmod(flat, m)
        if not np.isfinite(avg[a, b]) or avg[a, b] < threshold:
            break
        if a > b:
            a, b = b, a
        merged = (sizes[a] * avg[a] + sizes[b] * avg[b]) / (sizes[a] + sizes[b])
        sizes[a] += sizes[b]
        groups[a].extend(groups[b])
        groups[b] = []
        active[b] = False
        if group_anchor[a] < 0:
            group_anchor[a] = group_anchor[b]
        avg[a, :] = merged
        avg[:, a] = merged
        avg[b, :] = -np.inf
        avg[:, b] = -np.inf
        if group_anchor[a] >= 0:
            clash = (group_anchor >= 0) & (group_anchor != group_anchor[a])
            avg[a, clash] = -np.inf
            avg[clash, a] = -np.inf
        avg[~active, a] = -np.inf
        avg[a, ~active] = -np.inf
        avg[a, a] = -np.inf
    labels = np.empty(k, dtype=np.int64)
    for g in groups:
        if g:
            labels[g] = min(g)
    return labels


@dataclass
class ClusterStats:
    components: int = 0
    components_checked: int = 0        # re-clustered by the guard (three or more nodes, or anchor clashes)
    components_split: int = 0          # the guard produced more than one cluster
    large_components_cut: int = 0      # bigger than max_exact: cut at stricter thresholds first
    guard_pairs_scored: int = 0
    extra: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Component:
    """One connected component, the guard's unit of work: its nodes (sorted global ids), their anchors
    (-1: none) and records per node (None: one each), and its accepted edges (global ids) with their scores."""

    members: np.ndarray
    anchors: np.ndarray
    left: np.ndarray
    right: np.ndarray
    score: np.ndarray
    weights: np.ndarray | None = None

    @property
    def pairs(self) -> int:
        """Pairs the guard scores for it when it is clustered exactly."""
        return len(self.members) * (len(self.members) - 1) // 2


@dataclass(frozen=True)
class GuardSettings:
    """threshold: the accepted-edge threshold (a large component is cut above it); group_threshold: the
    average similarity at which two groups join; max_exact: the largest component clustered exactly."""

    threshold: float
    group_threshold: float
    max_exact: int = 1500


@dataclass(frozen=True)
class GuardResult:
    """A component's cluster label per member (the smallest member of its cluster), with what it cost."""

    members: np.ndarray
    labels: np.ndarray
    checked: int = 0       # pieces re-clustered by average link
    split: int = 0         # of those, the ones that came apart (or a pair with clashing anchors)
    cut: int = 0           # 1 when the component was too large and was cut first
    pairs_scored: int = 0


def split_components(labels: np.ndarray, left: np.ndarray, right: np.ndarray, score: np.ndarray,
                     anchors: np.ndarray, weights: np.ndarray | None = None, min_size: int = 2) -> Iterator[Component]:
    """The components of `labels` (a label per node) with at least `min_size` nodes, each with its edges
    (left/right/score: accepted pairs, in their order), in the order of their labels. Made as they are read:
    the guard's tasks take a few groups at a time, and a million components held at once would cost the
    driver gigabytes of small arrays."""
    n = len(labels)
    order = np.argsort(labels, kind="stable")  # nodes of one component together, ascending within it
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]]) if n else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], n] if n else np.zeros(0, np.int64)  # no nodes: no components (not one empty one)
    edge_order = np.argsort(labels[left], kind="stable")
    edge_labels = labels[left][edge_order]
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        if e - s < min_size:
            continue
        members = order[s:e]
        lo, hi = np.searchsorted(edge_labels, [sorted_labels[s], sorted_labels[s] + 1])
        at = edge_order[lo:hi]
        yield Component(members, anchors[members], left[at], right[at], score[at],
                        None if weights is None else weights[members])


class _Sized(Protocol):
    @property
    def pairs(self) -> int: ...


Unit = TypeVar("Unit", bound=_Sized)


def group_components(parts: Iterable[Unit], max_pairs: int) -> Iterator[list[Unit]]:
    """Consecutive components (or pieces) in groups of about `max_pairs` guard pairs: one scorer call per group
    costs far less than one per component (most are three or four nodes). Grouping changes no result."""
    group: list[Unit] = []
    size = 0
    for component in parts:
        group.append(component)
        size += component.pairs
        if size >= max_pairs:
            yield group
            group, size = [], 0
    if group:
        yield group


def guard_components(group: list[Component], scorer: PairScorer, settings: GuardSettings) -> list[GuardResult]:
    """The anti-chaining guard on each component of `group`, independently: a pair with clashing anchors is
    split; three or more nodes are re-clustered by average link over all their pairs (a component larger
    than max_exact is cut at stricter thresholds first, its pieces clustered exactly and joined again).
    The pairs of the whole group are scored in one scorer call."""
    plans: list[tuple[Component, list[np.ndarray]]] = []
    for component in group:
        members = component.members
        if len(members) > settings.max_exact:
            pieces = _cut_large(members, component.left, component.right, component.score, settings.threshold,
                                settings.max_exact)
        else:
            pieces = [members]
        plans.append((component, pieces))
    exact = [piece for component, pieces in plans if len(component.members) >= 3 for piece in pieces
             if len(piece) > 1]
    tri = [np.triu_indices(len(m), 1) for m in exact]
    pl = np.concatenate([m[i] for m, (i, _) in zip(exact, tri, strict=True)]) if exact else np.zeros(0, np.int64)
    pr = np.concatenate([m[j] for m, (_, j) in zip(exact, tri, strict=True)]) if exact else np.zeros(0, np.int64)
    scores = scorer(pl, pr) if len(pl) else np.zeros(0)
    offset = 0
    out = []
    triangles = iter(tri)
    for component, pieces in plans:
        members = component.members
        labels = np.full(len(members), members[0], dtype=np.int64)
        if len(members) < 3:
            a = component.anchors
            clash = len(members) == 2 and a[0] >= 0 and a[1] >= 0 and a[0] != a[1]
            out.append(GuardResult(members, members.copy() if clash else labels, split=int(clash)))
            continue
        checked = split = scored = 0
        for piece in pieces:
            at = np.searchsorted(members, piece)  # members are sorted
            if len(piece) == 1:
                labels[at] = piece[0]
                continue
            i, j = next(triangles)
            labels[at], came_apart = _cluster_piece(piece, i, j, scores[offset:offset + len(i)], component.anchors[at],
                                                    None if component.weights is None else component.weights[at],
                                                    settings)
            offset += len(i)
            scored += len(i)
            checked += 1
            split += came_apart
        cut = int(len(members) > settings.max_exact)
        if cut:
            scored += _merge_component_pieces(component, labels, scorer, settings.group_threshold)
        out.append(GuardResult(members, labels, checked, split, cut, scored))
    return out


def _cluster_piece(piece: np.ndarray, i: np.ndarray, j: np.ndarray, scores: np.ndarray, anchors: np.ndarray,
                   weights: np.ndarray | None, settings: GuardSettings) -> tuple[np.ndarray, bool]:
    """Average link over every pair of one piece (two or more nodes; `scores` of its pairs (i, j), the upper
    triangle in order): a cluster label (the smallest global id of the cluster) per member, and whether the
    piece came apart. A piece whose pairs all reach the threshold, without clashing anchors, stays whole."""
    if scores.min(initial=1.0) >= settings.group_threshold and len(set(anchors[anchors >= 0])) <= 1:
        return np.full(len(piece), piece.min(), dtype=np.int64), False
    sim = np.eye(len(piece))
    sim[i, j] = scores
    sim[j, i] = scores
    local = average_link(sim, settings.group_threshold, anchors, weights)
    return piece[local], len(np.unique(local)) > 1


# --- components too large to cluster exactly, as tasks of their own --------------------------------------
# guard_components does all of a large component in one task; a giant component (hundreds of thousands of
# nodes on chained typo variants) then holds one worker for most of the stage. The same three steps as
# separate tasks: cut it into pieces, cluster the pieces (grouped by pairs, across workers), join the pieces'
# clusters again (one task per component). The same functions, so the same labels.


@dataclass(frozen=True)
class Piece:
    """A piece of a cut component: its members (sorted global ids), their anchors and weights."""

    component: int                 # position of its component among the large ones
    members: np.ndarray
    anchors: np.ndarray
    weights: np.ndarray | None

    @property
    def pairs(self) -> int:
        return len(self.members) * (len(self.members) - 1) // 2


@dataclass(frozen=True)
class Cut:
    """The pieces of one cut component as two arrays (pieces in order, their members one after the other, and
    each piece's size) rather than an array per piece: most pieces are a single node, and a few hundred thousand
    small arrays cost the driver far more than their values."""

    members: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, pieces: list[np.ndarray]) -> Cut:
        return cls(np.concatenate(pieces) if pieces else np.zeros(0, np.int64),
                   np.array([len(p) for p in pieces], dtype=np.int64))

    def pieces(self) -> Iterator[np.ndarray]:
        yield from np.split(self.members, np.cumsum(self.sizes)[:-1]) if len(self.sizes) else ()


def cut_component(settings: GuardSettings, component: Component) -> Cut:
    """_cut_large as an engine task: the pieces of one large component."""
    return Cut.of(_cut_large(component.members, component.left, component.right, component.score, settings.threshold,
                             settings.max_exact))


def cluster_pieces(scorer: PairScorer, settings: GuardSettings, pieces: list[Piece]) -> list[tuple[np.ndarray, bool]]:
    """_cluster_piece on each of a group of pieces as an engine task, their pairs scored in one scorer call."""
    tri = [np.triu_indices(len(p.members), 1) for p in pieces]
    pl = np.concatenate([p.members[i] for p, (i, _) in zip(pieces, tri, strict=True)])
    pr = np.concatenate([p.members[j] for p, (_, j) in zip(pieces, tri, strict=True)])
    scores = scorer(pl, pr)
    out = []
    offset = 0
    for piece, (i, j) in zip(pieces, tri, strict=True):
        out.append(_cluster_piece(piece.members, i, j, scores[offset:offset + len(i)], piece.anchors, piece.weights,
                                  settings))
        offset += len(i)
    return out


def merge_pieces(scorer: PairScorer, settings: GuardSettings, item: tuple[Component, np.ndarray]
                 ) -> tuple[np.ndarray, int]:
    """_merge_component_pieces as an engine task: (a cut component, its labels after the pieces were
    clustered) the item; returns the joined labels and the pairs scored."""
    component, labels = item
    labels = labels.copy()
    scored = _merge_component_pieces(component, labels, scorer, settings.group_threshold)
    return labels, scored


def guard_large(large: list[Component], scorer: PairScorer | Shared[PairScorer], settings: GuardSettings,
                executor: Executor, batch_pairs: int) -> list[GuardResult]:
    """What guard_components gives for components larger than max_exact, as three mapped steps."""
    cuts = list(executor.map_tasks(cut_component, large, shared=(settings,), what="cut large components"))
    labels = [np.full(len(c.members), c.members[0], dtype=np.int64) for c in large]
    checked = [0] * len(large)
    split = [0] * len(large)
    scored = [0] * len(large)

    def pieces() -> Iterator[Piece]:  # made as the groups are sent: the driver holds the groups in flight only
        for number, (component, cut) in enumerate(zip(large, cuts, strict=True)):
            for piece in cut.pieces():
                at = np.searchsorted(component.members, piece)
                if len(piece) == 1:
                    labels[number][at] = piece[0]
                else:
                    yield Piece(number, piece, component.anchors[at],
                                None if component.weights is None else component.weights[at])

    in_flight: collections.deque[list[Piece]] = collections.deque()

    def sent(groups: Iterable[list[Piece]]) -> Iterator[list[Piece]]:
        for group in groups:
            in_flight.append(group)
            yield group

    results = executor.map_tasks(cluster_pieces, sent(group_components(pieces(), batch_pairs)),
                                 shared=(scorer, settings), what="cluster pieces")
    for found in results:
        group = in_flight.popleft()
        for done, (piece_labels, came_apart) in zip(group, found, strict=True):
            number = done.component
            labels[number][np.searchsorted(large[number].members, done.members)] = piece_labels
            checked[number] += 1
            split[number] += came_apart
            scored[number] += done.pairs
    joined = executor.map_tasks(merge_pieces, zip(large, labels, strict=True), shared=(scorer, settings),
                                what="join the pieces of large components")
    return [GuardResult(c.members, final, checked[k], split[k], 1, scored[k] + extra)
            for k, (c, (final, extra)) in enumerate(zip(large, joined, strict=True))]


def _merge_component_pieces(component: Component, labels: np.ndarray, scorer: PairScorer, threshold: float) -> int:
    """_merge_across_pieces on one cut component, in the component's own index space (member positions:
    they keep the order of the global ids, so every tie and sample falls as it would globally). Updates the
    labels (global ids, one per member) in place; returns the pairs scored."""
    members = component.members
    local_labels = np.searchsorted(members, labels)

    def local_scorer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return scorer(members[a], members[b])

    scored = _merge_across_pieces(local_labels, np.searchsorted(members, component.left),
                                  np.searchsorted(members, component.right), local_scorer, threshold,
                                  component.anchors)
    labels[:] = members[local_labels]
    return scored


def _cut_large(nodes: np.ndarray, left: np.ndarray, right: np.ndarray, score: np.ndarray, threshold: float,
               max_size: int) -> list[np.ndarray]:
    """Split one oversized component (nodes sorted; its accepted edges) by raising the edge threshold in
    steps of 0.05 until every piece has at most max_size nodes (pieces that fit are kept as they are)."""
    la = np.searchsorted(nodes, left)
    lb = np.searchsorted(nodes, right)
    active = np.ones(len(nodes), dtype=bool)  # nodes still in a piece that is too big
    out: list[np.ndarray] = []
    level = threshold
    while active.any():
        level = min(1.0, level + 0.05)
        keep = (score >= level) & active[la] & active[lb]
        labels = components(len(nodes), la[keep], lb[keep])
        sizes = np.bincount(labels, minlength=len(nodes))
        done = active & ((sizes[labels] <= max_size) | (level >= 1.0))
        index = np.flatnonzero(done)
        index = index[np.argsort(labels[index], kind="stable")]
        cuts = np.flatnonzero(np.diff(labels[index])) + 1
        out.extend(nodes[part] for part in np.split(index, cuts) if len(part))
        active &= ~done
    return out


def accepted_pairs(left: np.ndarray, right: np.ndarray, score: np.ndarray, threshold: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scored pairs that reach the threshold, with their scores (a filter: any chunking gives the same)."""
    keep = score >= threshold
    return left[keep], right[keep], score[keep]


def anchor_edges(anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges that chain the nodes of each anchor (nodes sharing an anchor belong together whatever their names)."""
    anchored = np.flatnonzero(anchors >= 0)
    order = anchored[np.argsort(anchors[anchored], kind="stable")]
    same = anchors[order[1:]] == anchors[order[:-1]]
    return order[:-1][same], order[1:][same]


def guard_group(scorer: PairScorer, settings: GuardSettings, group: list[Component]) -> list[GuardResult]:
    """guard_components as an engine task: the scorer and settings shared (sent once), a group the item."""
    return guard_components(group, scorer, settings)


def cluster_nodes(n: int, left: np.ndarray, right: np.ndarray, score: np.ndarray, threshold: float, *,
                  anchors: np.ndarray | None = None, guard: bool = True,
                  scorer: PairScorer | Shared[PairScorer] | None = None,
                  max_exact: int = 1500, batch_pairs: int | None = None,
                  group_threshold: float | None = None,
                  weights: np.ndarray | None = None,
                  executor: Executor | None = None) -> tuple[np.ndarray, ClusterStats]:
    """Cluster label per node (smallest node index in the cluster).

    left/right/score: candidate pairs and their scores. anchors: -1 or an anchor id per node (same anchor:
    one cluster; different anchors: never one cluster). scorer: scores arbitrary node pairs, used by the
    guard for the pairs that blocking did not propose (or the executor's Shared of it: the guard's mapped steps
    then send it to the workers once, not once each). group_threshold: the average similarity at which the
    guard joins two groups (default: threshold). weights: records per node, for the guard's averages.
    batch_pairs: guard pairs per group of components (default kgpipe.kg.chunking.GUARD_PAIRS). executor: runs
    the connected components (its own implementation per engine) and the guard, one task per group of
    components (default: in this process).
    """
    from kgpipe.engine.local import LocalExecutor
    from kgpipe.kg import chunking

    executor = executor or LocalExecutor.in_process("resolve")
    settings = GuardSettings(threshold, threshold if group_threshold is None else group_threshold, max_exact)
    anchors = np.full(n, -1, dtype=np.int64) if anchors is None else np.asarray(anchors, dtype=np.int64)
    al, ar, ascore = accepted_pairs(left, right, score, threshold)
    el, er = anchor_edges(anchors)
    first = executor.components(n, np.concatenate([al, el]), np.concatenate([ar, er]))
    stats = ClusterStats(components=len(sorted_unique(first)))
    if not guard or scorer is None:
        if (anchors >= 0).any():
            log.warning("clustering without the guard: anchor conflicts inside components are not split")
        return first, stats
    labels = first.copy()
    batch = chunking.GUARD_PAIRS if batch_pairs is None else batch_pairs
    scorer = scorer if isinstance(scorer, Shared) else executor.share(scorer)
    large: list[Component] = []  # set aside as they pass, for guard_large

    def exact_ones(parts: Iterable[Component]) -> Iterator[Component]:
        for component in parts:
            if len(component.members) > settings.max_exact:
                large.append(component)
            else:
                yield component

    groups = group_components(exact_ones(split_components(first, al, ar, ascore, anchors, weights)), batch)
    for results in executor.map_tasks(guard_group, groups, shared=(scorer, settings), what="anti-chaining guard"):
        for result in results:
            _record(result, labels, stats)
    for result in guard_large(large, scorer, settings, executor, batch):
        _record(result, labels, stats)
    return labels, stats


def _record(result: GuardResult, labels: np.ndarray, stats: ClusterStats) -> None:
    labels[result.members] = result.labels
    stats.components_checked += result.checked
    stats.components_split += result.split
    stats.large_components_cut += result.cut
    stats.guard_pairs_scored += result.pairs_scored


def _merge_across_pieces(labels: np.ndarray, left: np.ndarray, right: np.ndarray, scorer: PairScorer,
                         threshold: float, anchors: np.ndarray, sample: int = 16, rounds: int = 3) -> int:
    """After a large component was cut into pieces and each re-clustered, join clusters that accepted pairs
    connect when their average similarity over cross pairs reaches the threshold: average link again,
    evaluated only between connected clusters. Averages over more than `sample` cross pairs are estimated
    from a sample (a fixed seed: the same input gives the same result). After each round of merges the
    averages already known carry over by average link's own update (A+B against D is the size-weighted mean
    of A against D and B against D), so a pair of clusters is sampled only when one of its parts was never
    compared. Updates labels in place; returns the pairs scored."""
    scored = 0
    nodes = sorted_unique(np.concatenate([left, right]))
    rng = np.random.default_rng(12345)
    base = len(labels) + 1  # pair code: smaller label * base + larger label
    known_codes = np.zeros(0, dtype=np.int64)  # sorted
    known_avg = np.zeros(0)
    for _ in range(rounds):
        a, b = labels[left], labels[right]
        cross = a != b
        if not cross.any():
            break
        pairs = np.unique(np.stack([np.minimum(a[cross], b[cross]), np.maximum(a[cross], b[cross])], axis=1), axis=0)
        # clusters as runs of one sorted array
        by_label = nodes[np.argsort(labels[nodes], kind="stable")]
        run_labels, run_start, run_len = np.unique(labels[by_label], return_index=True, return_counts=True)
        run_anchor = np.full(len(run_labels), -1, dtype=np.int64)
        np.maximum.at(run_anchor, np.searchsorted(run_labels, labels[by_label]), anchors[by_label])
        ra = np.searchsorted(run_labels, pairs[:, 0])
        rb = np.searchsorted(run_labels, pairs[:, 1])
        averages = _lookup(known_codes, known_avg, pairs[:, 0] * base + pairs[:, 1])
        clash = (run_anchor[ra] >= 0) & (run_anchor[rb] >= 0) & (run_anchor[ra] != run_anchor[rb])
        averages[clash] = -1.0
        new = np.flatnonzero(np.isnan(averages))
        if len(new):
            sums, counts = _sample_sums(scorer, rng, by_label, run_start[ra[new]], run_len[ra[new]],
                                        run_start[rb[new]], run_len[rb[new]], sample)
            averages[new] = sums / counts
            scored += int(counts.sum())
        into: dict[int, int] = {}  # merged cluster -> the cluster it joined
        touched: set[int] = set()
        for index in np.argsort(-averages, kind="stable").tolist():
            if averages[index] < threshold:
                break
            ca, cb = int(pairs[index, 0]), int(pairs[index, 1])
            if ca in touched or cb in touched:
                continue  # its averages change: next round
            run = rb[index]
            labels[by_label[run_start[run]:run_start[run] + run_len[run]]] = ca
            into[cb] = ca
            touched |= {ca, cb}
        if not into:
            break
        known_codes, known_avg = _carry_averages(pairs[averages >= 0], averages[averages >= 0], into,
                                                 run_labels, run_len, base)
    return scored


def _sample_sums(scorer: PairScorer, rng: np.random.Generator, members: np.ndarray, start_a: np.ndarray,
                 len_a: np.ndarray, start_b: np.ndarray, len_b: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """For each pair of clusters (runs of `members`): the sum of the scores of all their cross pairs when
    there are at most `cap`, else of `cap` random cross pairs; and how many were scored."""
    small = len_a * len_b <= cap
    counts = np.where(small, len_a * len_b, cap)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    pair_of = np.repeat(np.arange(len(counts)), counts)
    k = np.arange(counts.sum()) - starts[pair_of]
    ia = np.where(small[pair_of], k // np.maximum(len_b[pair_of], 1), rng.integers(0, len_a[pair_of]))
    ib = np.where(small[pair_of], k % np.maximum(len_b[pair_of], 1), rng.integers(0, len_b[pair_of]))
    sims = scorer(members[start_a[pair_of] + ia], members[start_b[pair_of] + ib])
    return np.add.reduceat(sims, starts), counts


def _lookup(codes: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """values at query codes found in the sorted codes, NaN elsewhere."""
    out = np.full(len(query), np.nan)
    found, at = find_sorted(codes, query)
    out[found] = values[at[found]]
    return out


def _carry_averages(pairs: np.ndarray, averages: np.ndarray, into: dict[int, int], run_labels: np.ndarray,
                    run_len: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Cluster-pair averages after a round of merges (at least one; each cluster in at most one): the size-weighted
    mean over the parts, kept only where every pair of parts was known. Returns sorted codes and averages."""
    size = run_len[np.searchsorted(run_labels, pairs)]
    weight = size[:, 0] * size[:, 1].astype(np.float64)
    merged_from = np.array(sorted(into), dtype=np.int64)
    merged_to = np.array([into[c] for c in merged_from.tolist()], dtype=np.int64)
    flat = pairs.ravel()
    moved, at = find_sorted(merged_from, flat)
    mapped = np.where(moved, merged_to[at], flat).reshape(pairs.shape)
    keep = mapped[:, 0] != mapped[:, 1]
    lo, hi = np.minimum(mapped[keep, 0], mapped[keep, 1]), np.maximum(mapped[keep, 0], mapped[keep, 1])
    codes, group = np.unique(lo * base + hi, return_inverse=True)
    total = np.bincount(group, weights=weight[keep] * averages[keep], minlength=len(codes))
    mass = np.bincount(group, weights=weight[keep], minlength=len(codes))
    parts = np.bincount(group, minlength=len(codes))
    targets = np.sort(merged_to)
    expected = (1 + np.isin(codes // base, targets)) * (1 + np.isin(codes % base, targets))
    complete = parts == expected
    return codes[complete], total[complete] / mass[complete]


def one_to_one(n: int, left: np.ndarray, right: np.ndarray, score: np.ndarray, threshold: float,
               side: np.ndarray) -> np.ndarray:
    """Record linkage between two sources: a maximum-weight one-to-one matching of the pairs that reach
    the threshold (scipy's linear_sum_assignment on each connected piece). side: 0 or 1 per node; pairs
    within one side are ignored. Returns a cluster label per node (matched pairs share one)."""
    from scipy.optimize import linear_sum_assignment

    keep = (score >= threshold) & (side[left] != side[right])
    l0 = np.where(side[left[keep]] == 0, left[keep], right[keep])
    r1 = np.where(side[left[keep]] == 0, right[keep], left[keep])
    s = score[keep]
    labels = np.arange(n, dtype=np.int64)
    if not len(s):
        return labels
    comp_of_pair = components(n, l0, r1)[l0]
    order = np.argsort(comp_of_pair, kind="stable")
    starts = np.flatnonzero(np.r_[True, comp_of_pair[order][1:] != comp_of_pair[order][:-1]])
    ends = np.r_[starts[1:], len(order)]
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        idx = order[a:b]
        rows, row_of = np.unique(l0[idx], return_inverse=True)
        cols, col_of = np.unique(r1[idx], return_inverse=True)
        weights = np.zeros((len(rows), len(cols)))
        weights[row_of, col_of] = s[idx]
        ri, ci = linear_sum_assignment(weights, maximize=True)
        for r, c in zip(ri.tolist(), ci.tolist(), strict=True):
            if weights[r, c] >= threshold:
                labels[cols[c]] = labels[rows[r]] = min(rows[r], cols[c])
    return labels
