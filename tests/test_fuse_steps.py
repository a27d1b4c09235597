"""Resolution as explicit steps (issue 16, item 3): every map step gives the same result on chunks of its input as
on the whole, the guard gives the same labels component by component as on the whole graph, components are
labelled by their smallest node id, and the values a distributed engine ships to workers pickle."""

from __future__ import annotations

import pickle
import random
from collections import Counter
from itertools import pairwise

import numpy as np
import pytest

from kgpipe.kg.blocking import (
    band_hashes,
    band_pairs,
    blocking_signatures,
    common_words,
    lsh_params,
    name_ranks,
    signatures_chunk,
)
from kgpipe.kg.cluster import (
    Component,
    GuardSettings,
    cluster_nodes,
    components,
    group_components,
    guard_components,
    split_components,
)
from kgpipe.kg.features import featurize_names, name_columns_chunk, name_words, read_names
from kgpipe.kg.name_columns import Definitions, NameColumns, Numbered, acronym_expansions, key_ngrams
from kgpipe.kg.nodes import RecordColumns, build_nodes, name_keys, node_pairs
from kgpipe.kg.normalize import acronym_definitions, char_ngrams, normalize_name
from kgpipe.kg.pair_scoring import KnownScores, node_table, score_pairs
from kgpipe.kg.resolve import Record
from kgpipe.kg.similarity import AttributeRule, ResolutionConfig

NAMES = [
    "MIT", "Massachusetts Institute of Technology", "M.I.T.", "MIT CSAIL, Cambridge, MA",
    "Dept. of CS, Univ. of Maryland, College Park", "University of Maryland", "UMD",
    "University of California, Berkeley", "UC Berkeley", "Univ. of California at Berkeley",
    "Harvard University", "Harvard Univ.", "Harvrad University", "IBM Research", "IBM Research 2",
    "IBM Research, 02", "Stanford University, CA", "Stanfrod University", "Stanford Univ. - Palo Alto",
    "Max Planck Institute for Informatics", "MPI Informatics", "Max-Planck-Institut fur Informatik",
    "University of Texas at Austin", "University of Texas at Arlington", "UT Austin",
    "Carnegie Mellon University", "CMU", "Carnegie-Mellon Univ., Pittsburgh", "ETH Zurich",
    "Eidgenossische Technische Hochschule Zurich", "Niels Bohr", "N. Bohr", "Aage Bohr", "Bohr",
    "Microsoft Research Asia", "Microsoft Research, Redmond", "MSR", "Google Inc., Mountain View, CA",
    "Google", "Alphabet Inc.",
]
CHUNKS = [slice(0, 7), slice(7, 23), slice(23, None)]  # arbitrary, uneven


@pytest.fixture(scope="module")
def nodes_and_features():
    config = ResolutionConfig()
    records = [Record(str(i), name) for i, name in enumerate(NAMES)]
    nodes = build_nodes(RecordColumns.of(records), name_keys(NAMES, config.normalize.options()), config)
    features = featurize_names(list(nodes.spellings), config, keys=list(nodes.names))
    return config, nodes, features


def test_nodes_are_the_distinct_node_keys_in_sorted_order() -> None:
    """The columnar build_nodes against its definition, on records that use every column: a node per distinct
    (key, type, anchor, attributes) (plus source and id under one-to-one), numbered in sorted order; a
    node's source and attributes from its last record; contexts pooled."""
    rng = random.Random(3)
    config = ResolutionConfig(attributes={"year": AttributeRule(weight=1.0, kind="exact")})
    spellings = ["MIT", "M.I.T.", "Massachusetts Institute of Technology", "Harvard", "harvard", "Yale"]
    records = [Record(str(i), rng.choice(spellings), source=rng.choice(["a", "b"]),
                      type=rng.choice([None, "", "ORG", "GPE"]), anchor=rng.choice([None, "Q1", "Q2"]),
                      attributes={"year": rng.choice([None, 1999, 2000]), "other": i},
                      context=frozenset(rng.sample(["x", "y", "z"], rng.randint(0, 2)))) for i in range(300)]
    keys = name_keys([r.name for r in records], config.normalize.options())
    for one_to_one in (None, ("a", "b")):
        nodes = build_nodes(RecordColumns.of(records), keys, config, one_to_one)

        def node_key(r: Record, key: str, apart: bool) -> tuple:
            base = (key, r.type or "", r.anchor or "", repr((r.attributes.get("year"),)))
            return base + ((r.source, r.id) if apart else ())

        expected = sorted({node_key(r, k, one_to_one is not None) for r, k in zip(records, keys, strict=True)})
        assert len(nodes) == len(expected) < len(records) or one_to_one
        for i, (r, k) in enumerate(zip(records, keys, strict=True)):
            node = int(nodes.node_of[i])
            assert expected[node] == node_key(r, k, one_to_one is not None)
            assert nodes.keys[node] == k and nodes.names[nodes.name_of_node[node]] == k
        last = {}
        pooled: dict[int, set] = {}
        for i, r in enumerate(records):
            last[int(nodes.node_of[i])] = r
            pooled.setdefault(int(nodes.node_of[i]), set()).update(r.context)
        for node, r in last.items():
            assert (nodes.sources[node], nodes.attributes[node], nodes.types[node], nodes.anchors[node]) == (
                r.source, r.attributes, r.type, r.anchor)
            assert nodes.contexts[node] == pooled[node]
    # without the optional columns: a node per distinct key, empty columns shared rather than one per node
    plain = build_nodes(RecordColumns([r.id for r in records], [r.name for r in records]), keys, config)
    assert list(plain.keys) == sorted(set(keys)) and plain.types == (None,) * len(plain)
    assert plain.contexts[0] is plain.contexts[-1] and plain.attributes[0] is plain.attributes[-1]


def test_name_reading_is_a_map_over_chunks(nodes_and_features) -> None:
    config, nodes, _ = nodes_and_features
    raw, keys = list(nodes.spellings), list(nodes.names)
    options = config.normalize.options()
    whole = read_names(raw, keys, config)
    assert [r for s in CHUNKS for r in read_names(raw[s], keys[s], config)] == whole
    # the readings carry what later steps need: acronym readings, parts, numerals, institution phrases
    assert any(r.as_acronym for r in whole) and any(r.initials for r in whole)
    assert any(r.parts for r in whole) and any(r.numbers for r in whole) and any(r.institution for r in whole)
    expansions = acronym_expansions([Definitions.of(raw, keys, options)], raw, keys, options)
    assert expansions["uc"] == ("university", "california")  # learnt from the names
    chunked = [Definitions.of(raw[s], keys[s], options, s.start) for s in CHUNKS]
    assert acronym_expansions(chunked, raw, keys, options) == expansions
    assert list(acronym_expansions(chunked, raw, keys, options)) == list(expansions)  # same order too
    words = name_words(whole, expansions)
    assert [w for s in CHUNKS for w in name_words(whole[s], expansions)] == words
    assert pickle.loads(pickle.dumps((whole, words))) == (whole, words)  # shipped to workers as they are
    assert any(len(set(w.part_of)) > 1 for w in words)


def _expansions_reference(raw: list[str], keys: list[str], options) -> dict[str, tuple[str, ...]]:
    """The definition: one Counter per initials in name order; the most common (first seen among equals) kept
    when it has at least half of the initials' definitions."""
    seen: dict[str, Counter] = {}
    for name, key in zip(raw, keys, strict=True):
        for initials, words in acronym_definitions(name, options, key):
            seen.setdefault(initials, Counter())[words] += 1
    out = {}
    for initials, counts in seen.items():
        words, count = counts.most_common(1)[0]
        if count * 2 >= sum(counts.values()):
            out[initials] = words
    return out


def test_acronym_expansion_is_the_most_frequent_first_seen_and_unambiguous() -> None:
    """Counted over chunks as over the whole: the most frequent spelling-out of some initials wins, ties go to
    the one seen first, and initials whose winner has less than half of their definitions expand to nothing."""
    config = ResolutionConfig()
    options = config.normalize.options()
    raw = ["Delta Banking Center", "Data Base Center", "Data Base Center, Ohio", "Delta Banking Center, Iowa",
           "Xeno Yak", "Xylo Yard", "Xeno Yak Farm", "Xylo Yard", "Xylo Yard Farm", "Quiet Rock", "Quick Run",
           "Quasi Rat"]
    keys = [normalize_name(r, options) for r in raw]
    whole = acronym_expansions([Definitions.of(raw, keys, options)], raw, keys, options)
    assert whole["dbc"] == ("delta", "banking", "center")   # 2 against 2: the first seen
    assert whole["xy"] == ("xylo", "yard")                   # 2 against 1
    assert "qr" not in whole                                 # 1 of 3: ambiguous
    assert whole == _expansions_reference(raw, keys, options)
    for cut in range(1, len(raw)):
        parts = [Definitions.of(raw[:cut], keys[:cut], options), Definitions.of(raw[cut:], keys[cut:], options, cut)]
        assert acronym_expansions(parts, raw, keys, options) == whole
    rng = random.Random(5)
    words = ["alpha", "beta", "bravo", "gamma", "golf", "delta"]
    raw = [" ".join(rng.choice(words).title() for _ in range(rng.randint(1, 3))) + rng.choice(["", ", Ohio"])
           for _ in range(400)]
    keys = [normalize_name(r, options) for r in raw]
    found = acronym_expansions([Definitions.of(raw[s], keys[s], options, s.start) for s in (
        slice(0, 150), slice(150, 151), slice(151, 400))], raw, keys, options)
    assert found == _expansions_reference(raw, keys, options) and len(found) > 5
    assert list(found) == list(_expansions_reference(raw, keys, options))


def test_name_columns_of_chunks_merge_to_the_columns_of_the_whole(nodes_and_features) -> None:
    config, nodes, _ = nodes_and_features
    raw, keys = list(nodes.spellings), list(nodes.names)
    expansions = {"uc": ("university", "california")}
    whole = name_columns_chunk(config, expansions, (raw, keys))
    merged = NameColumns.merge(name_columns_chunk(config, expansions, (raw[s], keys[s])) for s in CHUNKS)
    for field in vars(whole):
        a, b = getattr(whole, field), getattr(merged, field)
        if isinstance(a, Numbered):
            assert a.vocabulary == b.vocabulary and np.array_equal(a.ids, b.ids) and np.array_equal(a.count, b.count)
        elif isinstance(a, tuple) and a and isinstance(a[0], np.ndarray):
            assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)), field
        elif isinstance(a, np.ndarray):
            assert np.array_equal(a, b), field
        else:
            assert a == b, field
    assert len(whole.vocabulary) < len(whole.words)   # names share words: numbering across chunks matters
    assert whole.heads.vocabulary and whole.acronym_keys.vocabulary and whole.numbers.vocabulary
    assert any(len(x) for x in whole.phrase_words) and whole.is_acronym.any()


def test_ngrams_numbered_per_chunk_merge_to_the_numbering_of_the_whole(nodes_and_features) -> None:
    config, nodes, features = nodes_and_features
    keys = list(nodes.names)
    whole = key_ngrams(keys, config.ngram)
    merged = Numbered.merge([key_ngrams(keys[s], config.ngram) for s in CHUNKS])
    assert merged.vocabulary == whole.vocabulary
    assert np.array_equal(merged.ids, whole.ids) and np.array_equal(merged.count, whole.count)
    assert len(whole.vocabulary) < len(whole.ids)  # names share n-grams: numbering across chunks matters
    # the feature matrix has one row per name with its n-grams
    first = whole.ids[:whole.count[0]]
    assert sorted(whole.vocabulary[i] for i in first) == sorted(set(char_ngrams(keys[0], config.ngram)))
    assert np.array_equal(np.flatnonzero(features.grams[0].toarray()), np.sort(first))


def test_blocking_keys_are_a_map_over_chunks(nodes_and_features) -> None:
    config, _, features = nodes_and_features
    keys, blocking = features.keys, config.blocking
    common = common_words(keys, blocking)
    whole = blocking_signatures(keys, common, blocking, config.ngram)
    assert whole.shape == (len(keys), blocking.num_perm)
    parts = [blocking_signatures(keys[s], common, blocking, config.ngram) for s in CHUNKS]
    assert np.array_equal(np.vstack(parts), whole)


def _pruned_reference(codes: np.ndarray, shared_bands: np.ndarray, n: int, k: int) -> np.ndarray:
    """Cardinality node pruning in one sort over every pair: each name ranks its pairs (as left or right) by
    the bands they share, then the partner's id; a pair stays when either name ranks it in its first k."""
    kept = set()
    for name in range(n):
        mine = [(-int(w), int(c % n if c // n == name else c // n), int(c))
                for c, w in zip(codes, shared_bands, strict=True) if name in (c // n, c % n)]
        kept.update(c for _, _, c in sorted(mine)[:k])
    return np.array(sorted(kept), dtype=np.int64)


@pytest.mark.parametrize("name_range", [1, 7, 50, 10_000])
def test_lsh_pairs_merged_and_pruned_by_ranges_of_names(monkeypatch: pytest.MonkeyPatch, name_range: int) -> None:
    """The bands' pairs counted and pruned range by range of names equal the whole done at once, for ranges
    of one name, uneven ranges and a single range; on both a synthetic input with heavy repeats across bands."""
    from kgpipe.kg import chunking
    from kgpipe.kg.blocking import lsh_candidates

    rng = np.random.default_rng(5)
    n = 60
    bands = []
    for _ in range(6):
        a, b = rng.integers(0, n, 200), rng.integers(0, n, 200)
        a, b = a[a != b], b[a != b]
        bands.append(np.unique(np.minimum(a, b) * n + np.maximum(a, b)))
    every = np.concatenate(bands)
    codes, counts = np.unique(every, return_counts=True)
    monkeypatch.setattr(chunking, "NAME_RANGE", name_range)
    unpruned, before = lsh_candidates(bands, n, 0)
    assert before == len(codes) and np.array_equal(unpruned, codes)
    for k in (1, 3):
        pruned, before = lsh_candidates(bands, n, k)
        assert before == len(codes)
        expected = _pruned_reference(codes, counts, n, k)
        assert 0 < len(expected) < len(codes)
        assert np.array_equal(pruned, expected)


@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 22])
def test_pairs_ordered_by_right_name_as_a_stable_argsort(chunk: int) -> None:
    """The counting sort over chunks of codes gives the stable argsort of the right names, for chunks of one
    code, uneven chunks and a single chunk; names with no pair as right get empty runs."""
    from kgpipe.kg.blocking import order_by_right

    rng = np.random.default_rng(3)
    n = 97
    left, right = rng.integers(0, n, 3000), rng.integers(0, n - 10, 3000)  # the last names are never right
    codes = np.unique(left * n + right)
    by_right, right_start = order_by_right(codes, n, chunk)
    assert np.array_equal(by_right, np.argsort(codes % n, kind="stable"))
    assert np.array_equal(right_start, np.r_[0, np.cumsum(np.bincount(codes % n, minlength=n))])
    assert right_start[-11] == right_start[-1] == len(codes)


def test_lsh_pair_counts_hold_more_bands_than_a_byte() -> None:
    """num_perm goes up to 512, so a pair can share up to 512 bands and its count must not wrap around: names
    0-1 share 300 bands, 1-2 250 and 0-2 200; keeping one pair each, 0 and 1 keep 0-1 and 2 keeps 1-2."""
    from kgpipe.kg.blocking import lsh_candidates

    n = 3
    shared = {0 * n + 1: 300, 1 * n + 2: 250, 0 * n + 2: 200}
    bands = [np.array(sorted(code for code, count in shared.items() if i < count)) for i in range(300)]
    pruned, before = lsh_candidates(bands, n, 1)
    assert before == 3 and pruned.tolist() == [0 * n + 1, 1 * n + 2]


def test_each_band_pairs_the_names_that_agree_on_it(nodes_and_features) -> None:
    config, _, features = nodes_and_features
    keys, blocking = features.keys, config.blocking
    signatures = blocking_signatures(keys, common_words(keys, blocking), blocking, config.ngram)
    n_bands, rows = lsh_params(blocking.lsh_threshold, blocking.num_perm)
    ranks = name_ranks(keys)
    n = len(keys)
    # what the driver keeps: one hash per band and name, made per chunk of names
    hashes = band_hashes(signatures, n_bands, rows)
    common = common_words(keys, blocking)
    chunked = np.hstack([signatures_chunk(common, blocking, config.ngram, (n_bands, rows), keys[s]) for s in CHUNKS])
    assert hashes.shape == (n_bands, n) and np.array_equal(chunked, hashes)
    found = 0
    for band in range(n_bands):
        block = signatures[:, band * rows:(band + 1) * rows]
        result = band_pairs(block, ranks, max_bucket=1000, window=5)
        expected = {a * n + b for a in range(n) for b in range(a + 1, n) if np.array_equal(block[a], block[b])}
        assert set(result.codes.tolist()) == expected and result.oversized == 0
        from_hash = band_pairs(hashes[band], ranks, max_bucket=1000, window=5)
        assert np.array_equal(from_hash.codes, result.codes)
        found += len(expected)
    assert found  # some bands do pair names


def test_pair_scoring_is_a_map_over_chunks_and_pickles(nodes_and_features, monkeypatch: pytest.MonkeyPatch) -> None:
    from kgpipe.kg import chunking

    config, nodes, features = nodes_and_features
    table = node_table(nodes, features, config)
    left, right = node_pairs(np.array([[a, b] for a in range(len(nodes.names)) for b in range(a + 1, len(
        nodes.names))], dtype=np.int64), nodes.name_of_node, len(nodes.names))
    whole = score_pairs(table, left, right)
    assert (whole > 0.9).any() and (whole < 0.3).any()
    bounds = [0, 11, 400, len(left)]
    chunked = np.concatenate([score_pairs(table, left[a:b], right[a:b]) for a, b in pairwise(bounds)])
    assert np.array_equal(chunked, whole)
    # the guard's scorer answers known pairs from the blocking scores and scores the rest; it pickles
    known = slice(0, len(left) // 2)
    scorer = KnownScores(table, left[known], right[known], whole[known] + 1.0, len(nodes))  # +1: marks reuse
    shipped = pickle.loads(pickle.dumps(scorer))
    got = shipped(right, left)  # either orientation of a pair
    assert np.array_equal(got[known], whole[known] + 1.0)
    assert np.array_equal(got[len(left) // 2:], whole[len(left) // 2:])
    monkeypatch.setattr(chunking, "PAIRS", 7)  # the pairs it must score, in chunks of 7
    assert np.array_equal(shipped(right, left), got)
    assert np.array_equal(score_pairs(pickle.loads(pickle.dumps(table)), left, right), whole)


def test_node_pairs_expand_name_pairs_in_the_order_of_a_loop_over_names() -> None:
    """node_pairs (arrays) against the plain loop it replaces: names with one node, with several, with none
    paired, on random input; the same pairs in the same order."""
    rng = np.random.default_rng(11)
    for _ in range(20):
        n_names = int(rng.integers(2, 40))
        per_name = rng.choice([1, 1, 1, 2, 3], size=n_names)
        name_of_node = rng.permutation(np.repeat(np.arange(n_names), per_name))
        a, b = np.triu_indices(n_names, 1)
        pick = rng.random(len(a)) < 0.3
        name_pairs = np.stack([a[pick], b[pick]], axis=1).astype(np.int64)
        nodes_of = [np.flatnonzero(name_of_node == name).tolist() for name in range(n_names)]
        simple = [(nodes_of[x][0], nodes_of[y][0]) for x, y in name_pairs.tolist()
                  if len(nodes_of[x]) == 1 and len(nodes_of[y]) == 1]
        crossed = [(p, q) for x, y in name_pairs.tolist() if len(nodes_of[x]) > 1 or len(nodes_of[y]) > 1
                   for p in nodes_of[x] for q in nodes_of[y]]
        own = [(p, q) for ns in nodes_of for i, p in enumerate(ns) for q in ns[i + 1:]]
        left, right = node_pairs(name_pairs, name_of_node, n_names)
        assert list(zip(left.tolist(), right.tolist(), strict=True)) == simple + crossed + own
        assert left.dtype == np.int64 and right.dtype == np.int64


def test_known_scores_read_pairs_in_any_order(nodes_and_features) -> None:
    """Pairs in code order (as blocking gives them) are kept as given, without a sorted copy; pairs in any other
    order are sorted first; both answer alike, the first score of a pair given twice included."""
    config, nodes, features = nodes_and_features
    table = node_table(nodes, features, config)
    n = len(nodes)
    left, right = np.triu_indices(n, 1)
    scores = np.random.default_rng(3).random(len(left))
    in_order = KnownScores(table, left, right, scores, n)
    assert np.shares_memory(in_order.scores, scores)
    shuffle = np.random.default_rng(4).permutation(len(left))
    twice = np.r_[shuffle, shuffle[:5]]  # five pairs again, with other scores: the first given wins
    shuffled = KnownScores(table, right[twice], left[twice], np.r_[scores[shuffle], scores[shuffle[:5]] + 1], n)
    assert not np.shares_memory(shuffled.scores, scores)
    assert np.array_equal(shuffled(left, right), scores) and np.array_equal(in_order(right, left), scores)


# --- components and the guard ----------------------------------------------------------------------------


class MatrixScorer:
    """Scores from a fixed similarity matrix (module-level, so it pickles like the real scorer)."""

    def __init__(self, sim: np.ndarray) -> None:
        self.sim = sim

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.sim[a, b]


def _giant_component() -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two dense groups (0-5, 6-11) joined by one weak accepted pair; a chain 12-13-...-27 whose neighbours
    are similar but whose ends are not; the chain hangs off group B; then small components and a pair of
    nodes with different anchors. Node ids are shuffled so that components are not runs of ids."""
    rng = np.random.default_rng(5)
    k = 36
    sim = np.full((k, k), 0.05)
    sim[:6, :6] = sim[6:12, 6:12] = 0.9
    sim[5, 6] = sim[6, 5] = 0.55                      # the weak link between the dense groups
    chain = list(range(12, 28))
    for a, b in pairwise(chain):
        sim[a, b] = sim[b, a] = 0.8                   # a-b, b-c, c-d ...: only neighbours alike
    sim[11, 12] = sim[12, 11] = 0.7                   # the chain hangs off group B
    sim[28, 29] = sim[29, 28] = sim[29, 30] = sim[30, 29] = sim[28, 30] = sim[30, 28] = 0.85  # a clean triple
    sim[31, 32] = sim[32, 31] = 0.9                   # a pair, anchored to different entities below
    sim[33, 34] = sim[34, 33] = 0.95                  # a plain pair; 35 alone
    np.fill_diagonal(sim, 1.0)
    anchors = np.full(k, -1, dtype=np.int64)
    anchors[31], anchors[32] = 0, 1
    perm = rng.permutation(k)                         # node i of the story is node perm[i]
    shuffled = np.empty_like(sim)
    shuffled[np.ix_(perm, perm)] = sim
    moved_anchors = np.empty_like(anchors)
    moved_anchors[perm] = anchors
    left, right = np.triu_indices(k, 1)
    return k, shuffled, left, right, shuffled[left, right], moved_anchors


def _by_hand(labels: np.ndarray, left: np.ndarray, right: np.ndarray, score: np.ndarray, anchors: np.ndarray,
             threshold: float) -> list[Component]:
    """Components built from their definition (not by split_components): members with one label, the
    accepted edges inside."""
    accepted = score >= threshold
    out = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            continue
        inside = accepted & np.isin(left, members) & np.isin(right, members)
        out.append(Component(members, anchors[members], left[inside], right[inside], score[inside]))
    return out


@pytest.mark.parametrize("max_exact", [1500, 5])
def test_guard_per_component_gives_the_labels_of_the_whole_graph(max_exact: int) -> None:
    k, sim, left, right, score, anchors = _giant_component()
    scorer = MatrixScorer(sim)
    whole, stats = cluster_nodes(k, left, right, score, 0.5, anchors=anchors, scorer=scorer, max_exact=max_exact)
    first = components(k, left[score >= 0.5], right[score >= 0.5])
    settings = GuardSettings(0.5, 0.5, max_exact)
    one_by_one = first.copy()
    for component in _by_hand(first, left, right, score, anchors, 0.5):
        (result,) = guard_components([component], pickle.loads(pickle.dumps(scorer)), settings)
        one_by_one[result.members] = result.labels
    assert np.array_equal(one_by_one, whole)
    # any grouping of the components: the same labels
    parts = list(split_components(first, left[score >= 0.5], right[score >= 0.5], score[score >= 0.5], anchors))
    regrouped = first.copy()
    for group in group_components(parts[::-1], max_pairs=30):
        for result in guard_components(group, scorer, settings):
            regrouped[result.members] = result.labels
    assert np.array_equal(regrouped, whole)
    # and what the guard did: the giant component came apart, the dense groups stayed whole
    perm = np.random.default_rng(5).permutation(k)
    story = whole[perm]  # label of story node i
    assert len(set(first[perm[:28]].tolist())) == 1          # one giant component before the guard
    assert len(set(story[:6].tolist())) == 1 and len(set(story[6:12].tolist())) == 1
    assert story[0] != story[6] and story[14] != story[25]  # weak link and the chain's ends cut
    assert story[28] == story[29] == story[30] and story[33] == story[34]
    assert story[31] != story[32]                            # different anchors never join
    assert stats.components_split >= 1 and (stats.large_components_cut > 0) == (max_exact < 28)


def test_components_are_labelled_by_their_smallest_node() -> None:
    import networkx as nx

    rng = np.random.default_rng(3)
    n = 300
    left, right = rng.integers(0, n, 220), rng.integers(0, n, 220)
    labels = components(n, left, right)
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(zip(left.tolist(), right.tolist(), strict=True))
    expected = np.empty(n, dtype=np.int64)
    for part in nx.connected_components(graph):
        expected[list(part)] = min(part)
    assert np.array_equal(labels, expected)
    order = rng.permutation(len(left))  # edge order and direction do not matter
    assert np.array_equal(components(n, right[order], left[order]), labels)


def test_records_as_columns_resolve_as_record_objects() -> None:
    """resolve() on RecordColumns (no optional column) equals resolve() on the same records as objects."""
    from kgpipe.kg.resolve import resolve

    records = [Record(str(i), name) for i, name in enumerate(NAMES * 2)]
    as_objects = resolve(records)
    as_columns = resolve(RecordColumns([r.id for r in records], [r.name for r in records]))
    assert np.array_equal(as_objects.labels, as_columns.labels)
    assert list(as_columns.record_ids) == [r.id for r in records]
    assert len(as_columns.clusters) < len(set(NAMES))  # something merged: the comparison is not vacuous


def test_candidate_names_are_kept_only_when_asked() -> None:
    """resolve() drops blocking's name pairs once they are node pairs, unless keep_candidates asks for them;
    the resolution is the same either way."""
    from kgpipe.kg.blocking import block_names
    from kgpipe.kg.resolve import resolve

    records = [Record(str(i), name) for i, name in enumerate(NAMES * 2)]
    dropped = resolve(records)
    kept = resolve(records, keep_candidates=True)
    assert dropped.candidate_names is None and np.array_equal(dropped.labels, kept.labels)
    config = ResolutionConfig()
    nodes = build_nodes(RecordColumns.of(records), name_keys([r.name for r in records], config.normalize.options()),
                        config)
    features = featurize_names(list(nodes.spellings), config, keys=list(nodes.names))
    expected = block_names(features, config.blocking, config.ngram).pairs
    assert kept.candidate_names is not None and len(kept.candidate_names)
    assert np.array_equal(kept.candidate_names, expected)


@pytest.mark.parametrize("learn", ["fixed", "em"])
def test_every_step_reports_its_wall_and_cpu_seconds(learn: str) -> None:
    """resolve()'s stats give wall and CPU seconds per step (learning too with learn=em), both run-dependent:
    the fuse stage keeps them out of its report."""
    from kgpipe.kg.fusion import RUN_DEPENDENT_STATS
    from kgpipe.kg.resolve import resolve

    stats = resolve([Record(str(i), name) for i, name in enumerate(NAMES * 2)], ResolutionConfig(learn=learn)).stats
    steps = ["nodes", "features", "blocking", *(["learning"] if learn == "em" else []), "scoring", "clustering"]
    assert list(stats["seconds"]) == list(stats["cpu_seconds"]) == steps
    assert all(v >= 0 for v in stats["cpu_seconds"].values())
    assert {"seconds", "cpu_seconds", "peak_mb_after"} <= set(RUN_DEPENDENT_STATS)


def test_split_components_of_no_nodes_is_empty() -> None:
    """A KG-only fuse (no text mentions) can hand the guard an empty group: no component, no error."""
    empty = np.zeros(0, np.int64)
    assert list(split_components(empty, empty, empty, np.zeros(0), empty)) == []
