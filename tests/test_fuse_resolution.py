"""Entity resolution as a library (kgpipe.kg.*): normalisation, acronyms, names that must stay apart, the
chaining guard, anchors, one-to-one linkage, order independence, blocking and the quality metrics."""

from __future__ import annotations

import random

import numpy as np
import pytest

from kgpipe.kg.blocking import block_names
from kgpipe.kg.cluster import _carry_averages, average_link, cluster_nodes, connected_components
from kgpipe.kg.evaluate import bcubed, pairwise_prf, purity
from kgpipe.kg.features import soft_bits
from kgpipe.kg.normalize import (
    NormalizeOptions,
    acronym_definitions,
    acronym_keys,
    acronyms_used,
    normalize_name,
)
from kgpipe.kg.resolve import Record, resolve
from kgpipe.kg.similarity import AttributeRule, ResolutionConfig, featurize_names, rowwise_dot, soft_dot
from kgpipe.vocab import SCHEMA


def partition(result) -> set[frozenset[str]]:
    return {frozenset(c) for c in result.clusters}


def together(result, *ids: str) -> bool:
    of = result.cluster_of()
    return len({of[i] for i in ids}) == 1


# --- normalisation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "key"), [
    ("The Massachusetts Inst. of Technology's", "massachusetts institute of technology"),
    ("M.I.T.", "mit"),
    ("U. C. Berkeley", "uc berkeley"),
    ("AT&T Labs, Inc.", "att laboratory"),
    ("AT & T Labs", "att laboratory"),
    ("Oracle Corp.", "oracle"),
    ("Dr. Marie Curie", "marie curie"),
    ("Prof. Niels Bohr, FRS", "niels bohr"),
    ("ETH Zürich", "eth zurich"),
    ("Maria Skłodowska", "maria sklodowska"),
    ("Bertram Lud&#228;scher", "bertram ludascher"),   # HTML entities, as in ACM's author lists
    ("King's College London", "king college london"),
    ("  UNIVERSITY   of\tWisconsin-Madison ", "university of wisconsin madison"),
    ("the", "the"),                                       # a determiner alone is a name, not nothing
])
def test_normalize_name(raw: str, key: str) -> None:
    assert normalize_name(raw) == key


def test_normalisation_steps_are_configurable() -> None:
    keep = NormalizeOptions(corporate_suffixes=(), honorific_prefixes=(), determiners=(), abbreviations={})
    assert normalize_name("The Oracle Corp.", keep) == "the oracle corp"
    assert normalize_name("Dr. Who", keep) == "dr who"
    assert normalize_name("Zürich", NormalizeOptions(strip_accents=False)) == "zürich"


def test_acronym_keys_and_tokens() -> None:
    assert acronym_keys("Massachusetts Institute of Technology") == {"mit"}
    assert acronym_keys("M.I.T.") == acronym_keys("MIT") == {"mit"}
    assert acronym_keys("Harvard") == set()              # one word is not an acronym of anything
    assert acronyms_used("UC Berkeley, EECS Dept.") == ["uc", "eecs"]
    assert acronym_definitions("University of California, Berkeley") == [("uc", ("university", "california"))]
    assert acronym_definitions("MIT CSAIL") == []       # a part that uses acronyms defines none


# --- resolution -------------------------------------------------------------------------------------


def test_acronym_variants_resolve_to_one_entity() -> None:
    result = resolve([Record("1", "MIT"), Record("2", "the Massachusetts Institute of Technology"),
                      Record("3", "M.I.T."), Record("4", "Massachusetts Inst. of Technology"),
                      Record("5", "Harvard University"), Record("6", "Harvard")])
    assert together(result, "1", "2", "3", "4")
    assert not together(result, "1", "5")
    assert together(result, "5", "6")


def test_acronym_expansion_is_learnt_from_the_names() -> None:
    """'MIT CSAIL' gains the words of 'Massachusetts Institute of Technology' because that name is present."""
    config = ResolutionConfig()
    names = ["MIT CSAIL", "Massachusetts Institute of Technology, CSAIL"]
    features = featurize_names(names, config)
    vocab_hits = features.token_bits[0].multiply(features.token_bits[1]).sum()
    without = featurize_names(names, config.model_copy(update={"expand_acronyms": False}))
    assert vocab_hits > without.token_bits[0].multiply(without.token_bits[1]).sum()


def test_similar_names_stay_apart_by_name_and_by_type() -> None:
    result = resolve([
        Record("niels", "Niels Bohr", type=SCHEMA + "Person"),
        Record("aage", "Aage Bohr", type=SCHEMA + "Person"),
        Record("city", "Cambridge", type=SCHEMA + "City"),
        Record("uni", "University of Cambridge", type=SCHEMA + "CollegeOrUniversity"),
        Record("uni2", "Cambridge University", type=SCHEMA + "CollegeOrUniversity"),
    ])
    assert not together(result, "niels", "aage")
    assert not together(result, "city", "uni") and not together(result, "city", "uni2")
    assert together(result, "uni", "uni2")
    # without types, 'Cambridge' would be taken for the university: the type signal is what splits them
    untyped = resolve([Record(r.id, r.name) for r in [Record("city", "Cambridge"),
                                                      Record("uni", "University of Cambridge")]])
    assert together(untyped, "city", "uni")


def test_context_decides_which_of_two_equally_similar_names_a_mention_joins() -> None:
    """A bare 'Curie' is as close to 'Pierre Curie' as to 'Marie Curie' by name (the two are different
    people: different anchors); the names it co-occurs with decide."""
    pierre_ctx = frozenset({"sorbonne", "piezoelectricity", "jacques curie"})
    marie_ctx = frozenset({"warsaw", "radium", "polonium"})
    for context, expected in ((pierre_ctx, "p"), (marie_ctx, "m")):
        records = [Record("p", "Pierre Curie", context=pierre_ctx, anchor="Pierre"),
                   Record("m", "Marie Curie", context=marie_ctx, anchor="Marie"),
                   Record("c", "Curie", context=context)]
        result = resolve(records)
        assert together(result, "c", expected) and not together(result, "p", "m")


def test_anchors_force_and_forbid_merges() -> None:
    result = resolve([Record("a", "Cambridge", anchor="seed:Cambridge_England"),
                      Record("b", "Cambridge", anchor="seed:Cambridge_Massachusetts"),
                      Record("c", "Cambridge, England", anchor="seed:Cambridge_England"),
                      Record("d", "Sorbonne", anchor="seed:University_of_Paris"),
                      Record("e", "University of Paris", anchor="seed:University_of_Paris")])
    assert not together(result, "a", "b")
    assert together(result, "a", "c")
    assert together(result, "d", "e")          # no string evidence, the anchor alone


def _two_groups_and_a_bridge(k: int, bridge: float):
    """Similarities of k nodes: two tight halves (0.9 inside, 0.1 across) and one pair across the middle at
    `bridge`; with every pair as a candidate (left, right, score)."""
    sim = np.full((k, k), 0.1)
    half = k // 2
    sim[:half, :half] = 0.9
    sim[half:, half:] = 0.9
    sim[half - 1, half] = sim[half, half - 1] = bridge
    np.fill_diagonal(sim, 1.0)
    left, right = np.triu_indices(k, 1)
    return sim, left, right, sim[left, right]


def test_average_link_guard_stops_one_bridge_from_chaining_two_groups() -> None:
    """Two tight groups of four joined by a single strong pair: connected components merge all eight,
    average link keeps the groups apart."""
    k = 8
    sim, left, right, score = _two_groups_and_a_bridge(k, 0.85)
    chained = connected_components(k, left[score >= 0.5], right[score >= 0.5])
    assert len(set(chained.tolist())) == 1
    guarded = average_link(sim, 0.5, np.full(k, -1))
    assert len(set(guarded[:4].tolist())) == 1 and len(set(guarded[4:].tolist())) == 1
    assert guarded[0] != guarded[4]
    labels, stats = cluster_nodes(k, left, right, score, 0.5, scorer=lambda a, b: sim[a, b])
    assert labels[0] != labels[4] and stats.components_split == 1


def test_guard_on_real_names() -> None:
    """A bare surname is similar to both first-name variants; without the guard it chains the families."""
    records = ([Record(f"n{i}", n) for i, n in enumerate(["Niels Bohr", "Niels H. D. Bohr", "N. Bohr"])]
               + [Record(f"a{i}", n) for i, n in enumerate(["Aage Bohr", "Aage N. Bohr", "A. Bohr"])]
               + [Record("bare", "Bohr")])
    chained = resolve(records, ResolutionConfig(guard="none"))
    guarded = resolve(records)
    assert together(chained, "n0", "a0")
    assert not together(guarded, "n0", "a0")


def test_record_linkage_is_one_to_one_across_sources() -> None:
    dblp = [Record("d1", "Query optimization in database systems", source="dblp", attributes={"year": 1999}),
            Record("d2", "Query optimization in database systems", source="dblp", attributes={"year": 2003}),
            Record("d3", "Mining association rules", source="dblp", attributes={"year": 1993})]
    acm = [Record("a1", "Query Optimization in Database Systems.", source="acm", attributes={"year": 2003}),
           Record("a2", "Mining Association Rules between Sets of Items", source="acm", attributes={"year": 1993})]
    config = ResolutionConfig(attributes={"year": AttributeRule(weight=0.5, kind="numeric")})
    result = resolve(dblp + acm, config, one_to_one_sources=("dblp", "acm"))
    assert together(result, "d2", "a1")        # the year breaks the tie between the two DBLP twins
    assert not together(result, "d1", "d2")    # never two records of one source
    assert together(result, "d3", "a2")
    with pytest.raises(ValueError, match="other sources"):
        resolve([*dblp, Record("x", "x", source="other")], one_to_one_sources=("dblp", "acm"))


def test_clusters_do_not_depend_on_record_order() -> None:
    names = ["MIT", "M.I.T.", "Massachusetts Institute of Technology", "Stanford University", "Stanford",
             "Univ. of Stanford", "Bell Labs", "Bell Laboratories", "AT&T Bell Laboratories", "Harvard"]
    records = [Record(str(i), n) for i, n in enumerate(names)]
    shuffled = records[:]
    random.Random(3).shuffle(shuffled)
    assert partition(resolve(records)) == partition(resolve(shuffled))


def test_blocking_proposes_few_pairs_and_keeps_true_ones() -> None:
    """Variants of 300 organisation names: blocking proposes a small share of all pairs, yet nearly every
    pair of variants of one name."""
    rng = random.Random(5)
    stems = sorted({"".join(rng.choice("bcdfgklmnprstvz") + rng.choice("aeiou") for _ in range(3)).capitalize()
                    for _ in range(320)})[:300]
    names, gold = [], []
    for i, stem in enumerate(stems):
        for form in (f"{stem} University", f"Univ. of {stem}", f"University of {stem}, Berlin", f"{stem} Univ"):
            names.append(form)
            gold.append(i)
    config = ResolutionConfig()
    keys = sorted({normalize_name(n) for n in names})
    features = featurize_names(keys, config)
    blocked = block_names(features, config.blocking, config.ngram)
    assert blocked.stats["candidate_pairs"] < 0.05 * blocked.stats["all_pairs"]
    index = {k: i for i, k in enumerate(keys)}
    proposed = {tuple(p) for p in blocked.pairs.tolist()}
    true_pairs = {(min(index[normalize_name(a)], index[normalize_name(b)]),
                   max(index[normalize_name(a)], index[normalize_name(b)]))
                  for i, a in enumerate(names) for j, b in enumerate(names)
                  if i < j and gold[i] == gold[j] and normalize_name(a) != normalize_name(b)}
    assert len(true_pairs & proposed) / len(true_pairs) > 0.95
    result = resolve([Record(str(i), n) for i, n in enumerate(names)])
    assert pairwise_prf(result.labels, gold)["f1"] > 0.9


def test_metrics_on_a_hand_computed_example() -> None:
    pred = ["a", "a", "a", "b", "b"]
    gold = [1, 1, 2, 2, 2]
    # pairs: predicted {01,02,12,34}, gold {01,23,24,34}: 2 shared -> P = 2/4, R = 2/4
    assert pairwise_prf(pred, gold)["precision"] == 0.5 and pairwise_prf(pred, gold)["recall"] == 0.5
    # B-cubed precision: records 0,1: 2/3 each, record 2: 1/3, records 3,4: 1 -> (2/3+2/3+1/3+1+1)/5
    assert bcubed(pred, gold)["precision"] == round((2 / 3 + 2 / 3 + 1 / 3 + 2) / 5, 4)
    assert purity(pred, gold) == 0.8


def test_typos_count_as_the_same_word_and_numbers_must_agree() -> None:
    result = resolve([Record("us", "United States"), Record("typo", "Unted States"),
                      Record("uk", "United Kingdom"), Record("a11", "Apollo 11"), Record("a11b", "Apollo 11 mission"),
                      Record("a8", "Apollo 8")])
    assert together(result, "us", "typo") and not together(result, "us", "uk")
    assert together(result, "a11", "a11b") and not together(result, "a11", "a8")
    without = resolve([Record("us", "United States"), Record("typo", "Unted States"), Record("uk", "United Kingdom")],
                      ResolutionConfig(typo_words=False, weights={"token": 1.0, "char": 0.0, "fuzz": 0.0}))
    assert not together(without, "us", "typo")


def test_oversized_component_is_cut_then_rejoined_by_average_link() -> None:
    """With room for only four nodes per exact re-clustering, a 12-node component (two groups of six and
    one bridge) is cut into pieces; the pieces' clusters are joined back into the two groups, not one."""
    k = 12
    sim, left, right, score = _two_groups_and_a_bridge(k, 0.6)
    labels, stats = cluster_nodes(k, left, right, score, 0.5, scorer=lambda a, b: sim[a, b], max_exact=4)
    assert stats.large_components_cut == 1
    assert len(set(labels[:6].tolist())) == 1 and len(set(labels[6:].tolist())) == 1
    assert labels[0] != labels[6]


def test_soft_dot_equals_the_product_with_the_typo_spread_matrix() -> None:
    """soft_dot reads a few word pairs per name pair instead of the typo-spread rows; the numbers must be
    the same, for whole names and for the parts of names."""
    names = ["University of Helsinki, Department of Computer Science", "Univeristy of Helsinki",
             "Helsinky University", "Departmnet of Computer Sciences, Univ. Helsinki", "Oracle Corporation",
             "Oracle Corporaton, Redwood City", "IBM Almaden Research Center, San Jose", "IBM Almaden Reserch",
             "Computer Science Department", "Department of Computing"]
    features = featurize_names(names, ResolutionConfig())
    assert features.typo_codes is not None and len(features.typo_codes)
    left, right = (a.ravel() for a in np.meshgrid(np.arange(len(names)), np.arange(len(names))))
    expected = rowwise_dot(features.tokens, soft_bits(features), left, right)
    assert np.allclose(soft_dot(features.tokens, left, features, right), expected)
    assert np.allclose(soft_dot(features.tokens, left, features, right, chunk=7), expected)
    assert (expected > 0).sum() > len(names)      # pairs other than a name with itself share credit
    parts = np.repeat(np.arange(features.segments.shape[0]), len(names))
    others = np.tile(np.arange(len(names)), features.segments.shape[0])
    assert np.allclose(soft_dot(features.segments, parts, features, others),
                       rowwise_dot(features.segments, soft_bits(features), parts, others))


def test_cluster_averages_carry_over_merges_by_the_average_link_update() -> None:
    """Clusters A = {0, 1}, B = {2}, D = {3, 4}, E = {5}: after B joins A, the average of A+B against D is
    the exact average over the six cross pairs, computed from the known A-D and B-D averages alone; A+B
    against E is unknown (B-E was never compared) and is left to be sampled."""
    rng = np.random.default_rng(0)
    sim = rng.random((6, 6))
    sim = (sim + sim.T) / 2
    members = {0: [0, 1], 2: [2], 3: [3, 4], 5: [5]}

    def avg(x: list[int], y: list[int]) -> float:
        return float(sim[np.ix_(x, y)].mean())

    pairs = np.array([[0, 2], [0, 3], [2, 3], [0, 5]])
    averages = np.array([avg(members[a], members[b]) for a, b in pairs.tolist()])
    run_labels = np.array(sorted(members))
    run_len = np.array([len(members[c]) for c in run_labels.tolist()])
    codes, carried = _carry_averages(pairs, averages, {2: 0}, run_labels, run_len, 7)
    assert codes.tolist() == [0 * 7 + 3]
    assert carried[0] == pytest.approx(avg([0, 1, 2], [3, 4]))
