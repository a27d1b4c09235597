"""Learned match weights (resolution.learn: em): identifiers in names, comparison levels, EM on a known model,
determinism, the term-frequency adjustment, explain() and the weights' JSON."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kgpipe.errors import InputError
from kgpipe.kg import em
from kgpipe.kg.acronym_runs import AcronymRuns
from kgpipe.kg.comparisons import MISSING, IdentifierColumns
from kgpipe.kg.explain import explain
from kgpipe.kg.identifiers import find_identifiers, isbn13, phone_key, value_identifiers
from kgpipe.kg.learned_weights import ComparisonWeights, LearnedWeights
from kgpipe.kg.resolution_config import EmConfig
from kgpipe.kg.resolve import Record, resolve
from kgpipe.kg.similarity import AttributeRule, ResolutionConfig

NAME_LEVELS = ["exact", ">=0.9", ">=0.75", ">=0.55", ">=0.4", "else"]


def handmade_weights(prior: float = 0.01) -> LearnedWeights:
    return LearnedWeights(prior=prior, comparisons=[
        ComparisonWeights(name="name", levels=NAME_LEVELS, m=[0.6, 0.2, 0.1, 0.05, 0.03, 0.02],
                          u=[0.001, 0.004, 0.02, 0.1, 0.175, 0.7]),
        ComparisonWeights(name="acronym", levels=["agree", "within", "differ"], m=[0.5, 0.4, 0.1],
                          u=[0.005, 0.005, 0.99]),
        ComparisonWeights(name="identifiers", levels=["unique", "agree", "agree+differ", "common", "differ"],
                          m=[0.8, 0.1, 0.03, 0.03, 0.04], u=[0.0005, 0.001, 0.002, 0.05, 0.9465]),
        ComparisonWeights(name="numbers", levels=["same", "share", "differ"], m=[0.8, 0.1, 0.1], u=[0.1, 0.1, 0.8])],
        tf_adjusted=["name"])


# --- identifiers ------------------------------------------------------------------------------------------


def test_model_numbers_are_codes_and_plain_numbers_are_not() -> None:
    found = find_identifiers("Sony Turntable - PSLX350H, 2 speakers, 16GB")
    assert found.codes == {"PSLX350H", "16GB"}
    assert found.numbers == {"2"}
    assert find_identifiers("CTA MR-ENEL9 charger").codes == {"MRENEL9", "ENEL9"}  # joined and its parts
    assert find_identifiers("Apollo 11 and Apollo 8").codes == frozenset()
    assert find_identifiers("Apollo 11 and Apollo 8").numbers == {"11", "8"}
    assert find_identifiers("A1 B2C").codes == frozenset()  # shorter than 4 characters
    assert value_identifiers("HP CD994FN").codes == {"HPCD994FN", "CD994FN"}


def test_isbns_need_a_valid_checksum() -> None:
    assert isbn13("0-306-40615-2") == "9780306406157"       # ISBN-10, read as its ISBN-13
    assert isbn13("978-0-306-40615-7") == "9780306406157"
    assert isbn13("0-306-40615-3") is None                  # checksum wrong
    assert isbn13("978-0-306-40615-8") is None
    assert find_identifiers("ISBN 0-306-40615-2").codes == {"isbn:9780306406157"}
    assert find_identifiers("ISBN 978-0-306-40615-7").codes == find_identifiers("ISBN 0-306-40615-2").codes
    assert not any(c.startswith("isbn:") for c in find_identifiers("ISBN 0-306-40615-3").codes)


def test_phones_compare_their_last_seven_digits() -> None:
    assert phone_key("404/231-1368") == phone_key("(404) 231-1368") == phone_key("+1 404 231 1368") == "2311368"
    assert phone_key("231-13") is None
    assert find_identifiers("la grotta 404/231-1368").codes == {"tel:2311368"}
    assert find_identifiers("la grotta 404/231-1368").numbers == frozenset()  # a phone's digits are not numbers


def test_equal_codes_agree_and_different_codes_of_one_shape_differ() -> None:
    texts = ["Sony Turntable PSLX350H", "Sony PSLX350H turntable", "Sony Turntable PSLX250H", "Sony Turntable 16GB",
             "Sony Turntable"]
    columns = IdentifierColumns.of([find_identifiers(t) for t in texts])
    left, right = np.array([0, 0, 0, 0]), np.array([1, 2, 3, 4])
    assert columns.identifier_levels(left, right).tolist() == [0, 4, MISSING, MISSING]


def test_codes_many_records_carry_are_specifications_not_identifiers() -> None:
    """'1080p' on seven TVs says they are TVs; a model number on one or two says which. Sharing only the common
    code is 'common'; sharing it while the model numbers differ is 'differ'; a shared model number with another
    code of one shape on each side is 'agree+differ'; a model number four records carry is 'agree', one that only
    the two carry 'unique'."""
    texts = [f"Acme LCD HDTV 1080p LC{n}VX" for n in range(20, 27)] + [
        "Acme LCD HDTV 1080p", "Acme LC20VX 1080p LCD", "Acme LC20VX 16GB", "Acme LC20VX 32GB"]
    columns = IdentifierColumns.of([find_identifiers(t) for t in texts], rare=5)
    left, right = np.array([0, 0, 7, 9]), np.array([8, 1, 8, 10])
    assert columns.identifier_levels(left, right).tolist() == [1, 4, 3, 2]
    assert columns.identifier_levels(np.array([1]), np.array([2])).tolist() == [4]  # LC21VX against LC22VX
    only_two = IdentifierColumns.of([find_identifiers(t) for t in [*texts, "Acme LC21VX"]], rare=5)
    assert only_two.identifier_levels(np.array([1, 0]), np.array([11, 8])).tolist() == [0, 1]
    numbers = IdentifierColumns.of([find_identifiers(t) for t in ("iPad 2", "iPad 2", "iPad 3", "iPad 2 3", "iPad")])
    assert numbers.number_levels(np.array([0, 0, 0, 0]), np.array([1, 2, 3, 4])).tolist() == [0, 2, 1, MISSING]


def test_different_model_numbers_keep_products_apart_under_learned_weights() -> None:
    same = explain(Record("a", "Sony Turntable PSLX350H"), Record("b", "Sony PSLX350H Turntable"), handmade_weights())
    other = explain(Record("a", "Sony Turntable PSLX350H"), Record("b", "Sony Turntable PSLX250H"), handmade_weights())
    assert {t.comparison: t.level for t in same.terms}["identifiers"] == "unique"
    assert {t.comparison: t.level for t in other.terms}["identifiers"] == "differ"
    assert same.probability > 0.5 > other.probability


# --- EM -----------------------------------------------------------------------------------------------------


def synthetic(rng: np.random.Generator, count: int, m: list[np.ndarray], u: list[np.ndarray], prior: float
              ) -> np.ndarray:
    """Levels of `count` pairs drawn from a two-class model (independent comparisons given the class)."""
    match = rng.random(count) < prior
    out = np.empty((count, len(m)), dtype=np.int8)
    for k, (mk, uk) in enumerate(zip(m, u, strict=True)):
        out[:, k] = np.where(match, rng.choice(len(mk), count, p=mk), rng.choice(len(uk), count, p=uk))
    return out


def test_em_recovers_known_m_and_prior() -> None:
    rng = np.random.default_rng(7)
    m = [np.array([0.7, 0.2, 0.1]), np.array([0.9, 0.1]), np.array([0.6, 0.3, 0.1])]
    u = [np.array([0.02, 0.08, 0.9]), np.array([0.1, 0.9]), np.array([0.05, 0.15, 0.8])]
    candidates = synthetic(rng, 40_000, m, u, 0.25)
    randoms = synthetic(rng, 40_000, m, u, 0.0)          # random pairs: practically never a match
    u_counted = em.level_shares(randoms, [3, 2, 3], 1e-6)
    fit = em.fit_em(candidates, [3, 2, 3], u_counted, tolerance=1e-7, max_iterations=500)
    assert fit.converged
    assert abs(fit.prior - 0.25) < 0.02
    for learned, true in zip(fit.m, m, strict=True):
        assert np.abs(learned - true).max() < 0.03
    free = em.fit_em(candidates, [3, 2, 3], u_counted, fix_u=False, tolerance=1e-7, max_iterations=500)
    for learned, true in zip(free.u, u, strict=True):
        assert np.abs(learned - true).max() < 0.03


def test_missing_levels_count_nothing() -> None:
    m, u = [np.array([0.8, 0.2]), np.array([0.5, 0.5])], [np.array([0.1, 0.9]), np.array([0.25, 0.75])]
    levels = np.array([[0, MISSING], [MISSING, MISSING]], dtype=np.int8)
    weight = em.match_weight(levels, m, u, 0.5)
    assert weight[0] == pytest.approx(np.log2(8.0))
    assert weight[1] == pytest.approx(0.0)
    assert em.probability(np.array([0.0, 3.0])) == pytest.approx([0.5, 8 / 9])


def test_hash_sample_keeps_a_pair_whatever_else_is_there() -> None:
    codes = np.arange(0, 100_000, 3, dtype=np.int64)
    kept = set(codes[em.hash_sample(codes, 5_000, seed=4)].tolist())
    grown = np.concatenate([codes, np.arange(1, 100_000, 3, dtype=np.int64)])
    kept_grown = set(grown[em.hash_sample(grown, 10_000, seed=4)].tolist())
    assert 4_000 < len(kept) < 6_000
    assert kept <= kept_grown  # the same share of a larger set: every pair kept before is kept again
    assert set(codes[em.hash_sample(codes, 5_000, seed=5)].tolist()) != kept


# --- resolve with learn=em ---------------------------------------------------------------------------------


def product_records() -> list[Record]:
    rng = np.random.default_rng(3)
    brands = ["Sony", "Canon", "Nikon", "Kodak", "Epson", "Lexmark", "Philips", "Garmin"]
    things = ["Turntable", "Camera Battery", "Ink Cartridge", "Projector Lamp", "Remote", "GPS", "Charger", "Lens"]
    out = []
    for i in range(300):
        brand, thing = brands[i % len(brands)], things[(i // len(brands)) % len(things)]
        code = f"{brand[:2].upper()}{100 + i}{'ABCDEFGH'[i % 8]}"
        price = float(rng.integers(10, 500))
        out.append(Record(f"a:{i}", f"{brand} {thing} {code}", "a", attributes={"brand": brand, "price": price}))
        if i % 3:  # two thirds have a counterpart, worded differently
            out.append(Record(f"b:{i}", f"{code} {thing} by {brand}", "b",
                              attributes={"brand": brand.upper(), "price": round(price * 1.05, 2)}))
    return out


CONFIG = ResolutionConfig(learn="em", attributes={"brand": AttributeRule(weight=0.25, kind="exact"),
                                                  "price": AttributeRule(weight=0.25, kind="price")})


def test_resolve_learns_weights_deterministically_and_links_the_products() -> None:
    records = product_records()
    first = resolve(records, CONFIG, one_to_one_sources=("a", "b"))
    again = resolve(list(reversed(records)), CONFIG, one_to_one_sources=("a", "b"))
    assert first.learned is not None and first.learned == again.learned
    assert sorted(map(sorted, first.clusters)) == sorted(map(sorted, again.clusters))
    of = first.cluster_of()
    linked = sum(of[f"a:{i}"] == of[f"b:{i}"] for i in range(300) if i % 3)
    wrong = sum(len(c) > 1 and len({x.split(":")[1] for x in c}) > 1 for c in first.clusters)
    assert linked >= 190 and wrong <= 5
    weights = first.learned.comparison("identifiers")
    assert weights.weight(0) > 3 > 0 > weights.weight(4)  # a shared code for, a different one against
    assert first.stats["em_iterations"] == first.learned.iterations


def test_records_sharing_only_a_rare_code_become_candidates() -> None:
    """Two titles of one drill share nothing but the model number: blocking on names never pairs them; with
    code_blocks the shared code (no other record carries it) makes them a candidate pair, and linked."""
    records = [Record("a:1", "Acme cordless drill kit DR4410X", "a"), Record("b:1", "Zenith power tool set", "b",
                                                                             attributes={"modelno": "DR-4410X"}),
               Record("a:2", "Garden hose reel", "a"), Record("b:2", "Garden hose reel cart", "b")]
    config = ResolutionConfig(learn="em", attributes={"modelno": AttributeRule(weight=0.5, kind="code")},
                              weights_from=handmade_weights(prior=0.05))
    found = resolve(records, config, one_to_one_sources=("a", "b"), keep_candidates=True)
    assert found.stats["code_block_pairs"] == 1 and found.code_pairs is not None and len(found.code_pairs) == 1
    assert found.cluster_of()["a:1"] == found.cluster_of()["b:1"]
    off = resolve(records, config.model_copy(update={"em": EmConfig(code_blocks=False)}),
                  one_to_one_sources=("a", "b"))
    assert off.stats["code_block_pairs"] == 0 and off.cluster_of()["a:1"] != off.cluster_of()["b:1"]


def test_shared_code_pairs_take_only_rare_codes() -> None:
    texts = ["Acme LC20VX"] * 2 + ["Acme LC30VX"] + [f"Acme 1080p TV {i}" for i in range(6)] + ["Acme LC30VX 1080p"]
    columns = IdentifierColumns.of([find_identifiers(t) for t in texts], rare=5)
    left, right = columns.shared_code_pairs()
    assert list(zip(left.tolist(), right.tolist(), strict=True)) == [(0, 1), (2, 9)]  # '1080p' on 7: common


def test_near_equal_values_of_an_exact_attribute_are_close() -> None:
    """'Lexar' against 'Lexar Media' and 'U.S. Robotics' against 'USRobotics': neither equal nor unrelated."""
    records = [Record("a:1", "Lexar JumpDrive 32GB", "a", attributes={"brand": "Lexar"}),
               Record("b:1", "Lexar TwistTurn JumpDrive 32GB", "b", attributes={"brand": "Lexar Media"}),
               Record("a:2", "56K USB FaxModem", "a", attributes={"brand": "U.S. Robotics"}),
               Record("b:2", "56K USB External FaxModem", "b", attributes={"brand": "USRobotics"}),
               Record("b:3", "56K USB Modem", "b", attributes={"brand": "Motorola"})]
    config = ResolutionConfig(learn="em", attributes={"brand": AttributeRule(weight=0.25, kind="exact")})
    weights = handmade_weights().model_copy(update={"comparisons": [*handmade_weights().comparisons,
                                                                    ComparisonWeights(
        name="attribute:brand", levels=["exact", "close", "else"], m=[0.8, 0.15, 0.05], u=[0.1, 0.1, 0.8])]})
    level = {(a, b): {t.comparison: t.level for t in explain(records[a], records[b], weights, config).terms}[
        "attribute:brand"] for a, b in ((0, 1), (2, 3), (2, 4), (0, 0))}
    assert level == {(0, 1): "close", (2, 3): "close", (2, 4): "else", (0, 0): "exact"}


def test_word_overlap_attributes_have_a_band_for_any_shared_word() -> None:
    """'Bob Gerber' against 'Robert H. Gerber' (Jaccard 0.25) shares a word: its own level, not 'else'."""
    from kgpipe.kg.comparisons import comparisons_for

    config = ResolutionConfig(learn="em", attributes={"authors": AttributeRule(weight=0.5, kind="tokens")})
    levels = {c.name: c.levels for c in comparisons_for(config, has_context=False)}
    assert levels["attribute:authors"] == ("exact", ">=0.6", ">=0.3", ">0", "else")
    records = [Record("1", "Informix Online XPS", attributes={"authors": "Bob Gerber"}),
               Record("2", "Informix online XPS", attributes={"authors": "Robert H. Gerber"}),
               Record("3", "Informix online XPS", attributes={"authors": "Jim Gray"})]
    weights = handmade_weights().model_copy(update={"comparisons": [*handmade_weights().comparisons,
                                                                    ComparisonWeights(
        name="attribute:authors", levels=list(levels["attribute:authors"]), m=[0.7, 0.15, 0.05, 0.05, 0.05],
        u=[0.01, 0.01, 0.03, 0.05, 0.9])]})
    said = [{t.comparison: t.level for t in explain(records[0], records[k], weights, config).terms}[
        "attribute:authors"] for k in (1, 2)]
    assert said == [">0", "else"]


def test_weights_are_reused_and_must_fit_the_settings(tmp_path) -> None:
    records = product_records()
    first = resolve(records, CONFIG, one_to_one_sources=("a", "b"))
    assert first.learned is not None
    path = tmp_path / "weights.json"
    first.learned.save(path)
    reused = resolve(records, CONFIG.model_copy(update={"weights_from": str(path)}), one_to_one_sources=("a", "b"))
    assert reused.learned == first.learned
    assert sorted(map(sorted, reused.clusters)) == sorted(map(sorted, first.clusters))
    with pytest.raises(InputError, match="do not fit"):
        resolve(records, ResolutionConfig(learn="em", weights_from=first.learned), one_to_one_sources=("a", "b"))


def test_learned_weights_round_trip_through_json(tmp_path) -> None:
    weights = handmade_weights()
    assert LearnedWeights.from_json(weights.to_json()) == weights
    weights.save(tmp_path / "w.json")
    assert LearnedWeights.load(tmp_path / "w.json") == weights
    (tmp_path / "bad.json").write_text('{"comparisons": []}')
    with pytest.raises(InputError, match=r"bad\.json"):
        LearnedWeights.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="one value per level"):
        ComparisonWeights(name="x", levels=["a", "b"], m=[1.0], u=[0.5, 0.5])


def test_fixed_stays_the_default() -> None:
    assert ResolutionConfig().learn == "fixed"
    records = [Record("1", "MIT"), Record("2", "Massachusetts Institute of Technology"), Record("3", "Harvard")]
    result = resolve(records)
    assert result.learned is None and "em_iterations" not in result.stats


# --- term frequencies and explain ---------------------------------------------------------------------------


def test_an_exact_match_on_a_frequent_name_weighs_less() -> None:
    corpus = [Record(f"s{i}", "John Smith", attributes={"city": f"town {i}"}) for i in range(30)]
    corpus += [Record(f"o{i}", f"Person Number {i}") for i in range(30)]
    corpus += [Record("q1", "Xavier Quonset", attributes={"city": "a"}),
               Record("q2", "Xavier Quonset", attributes={"city": "b"})]
    config = ResolutionConfig(learn="em", attributes={"city": AttributeRule(weight=0.25, kind="exact")})
    weights = handmade_weights()
    weights = weights.model_copy(update={"comparisons": [*weights.comparisons, ComparisonWeights(
        name="attribute:city", levels=["exact", "close", "else"], m=[0.85, 0.05, 0.1], u=[0.05, 0.05, 0.9])]})
    common = explain(corpus[0], corpus[1], weights, config, corpus)
    rare = explain(corpus[-2], corpus[-1], weights, config, corpus)
    name_weight = {id(e): {t.comparison: t for t in e.terms}["name"] for e in (common, rare)}
    assert name_weight[id(common)].level == name_weight[id(rare)].level == "exact"
    assert name_weight[id(common)].tf_adjusted and name_weight[id(rare)].tf_adjusted
    assert name_weight[id(common)].u == pytest.approx(30 / 62)
    assert name_weight[id(common)].weight < name_weight[id(rare)].weight
    assert common.probability < rare.probability


def test_explain_terms_add_up_to_the_total() -> None:
    why = explain(Record("a", "Sony Turntable PSLX350H 2"), Record("b", "Sony PSLX350H Turntable 2"),
                  handmade_weights())
    assert why.prior_weight + sum(t.weight for t in why.terms) == pytest.approx(why.total)
    assert why.probability == pytest.approx(2 ** why.total / (1 + 2 ** why.total))
    text = why.text()
    assert "identifiers" in text and "unique" in text and f"{why.total:.2f}" in text
    assert why.to_dict()["terms"][0]["comparison"] == "name"


def test_u_from_the_candidates_undoes_the_bias_blocking_puts_in_u() -> None:
    """Blocking on names keeps pairs whose brand agrees far more often than random pairs' do, matching or not:
    with u counted on random pairs EM takes those agreements for matches and inflates the prior; with u fitted on
    the candidates (started from their level shares) and the prior bounded by one-to-one linkage it recovers the
    candidates' m, u and prior."""
    rng = np.random.default_rng(11)
    sizes = [3, 2, 3]
    m = [np.array([0.75, 0.2, 0.05]), np.array([0.9, 0.1]), np.array([0.7, 0.2, 0.1])]
    u_candidates = [np.array([0.05, 0.25, 0.7]), np.array([0.4, 0.6]), np.array([0.03, 0.17, 0.8])]
    u_random = [np.array([0.001, 0.01, 0.989]), np.array([0.02, 0.98]), np.array([0.01, 0.09, 0.9])]
    candidates = synthetic(rng, 60_000, m, u_candidates, 0.03)
    old = em.fit_em(candidates, sizes, em.level_shares(synthetic(rng, 60_000, m, u_random, 0.0), sizes, 1e-6),
                    max_iterations=500)
    assert old.prior > 0.1  # the old estimator: brand agreement read as matches
    # one-to-one linkage: 1,500 nodes on the smaller side, so at most 1,500 / 60,000 pairs match
    fit = em.fit_em(candidates, sizes, em.level_shares(candidates, sizes, 1e-6), prior=0.0125, fix_u=False,
                    max_iterations=2000, tolerance=1e-7, max_prior=0.05)
    assert fit.converged
    assert abs(fit.prior - 0.03) < 0.005
    for learned, true in zip(fit.m, m, strict=True):
        assert np.abs(learned - true).max() < 0.07
    for learned, true in zip(fit.u, u_candidates, strict=True):
        assert np.abs(learned - true).max() < 0.02


def test_the_prior_stays_under_the_one_to_one_bound() -> None:
    side = np.array([0, 0, 1, 1, 1, 1])
    left, right = np.array([0, 0, 1, 1]), np.array([2, 3, 4, 5])
    assert em.linkage_prior_bound(left, right, side) == pytest.approx(2 / 4)
    rng = np.random.default_rng(2)
    m, u = [np.array([0.9, 0.1]), np.array([0.8, 0.2])], [np.array([0.1, 0.9]), np.array([0.2, 0.8])]
    fit = em.fit_em(synthetic(rng, 5_000, m, u, 0.5), [2, 2], u, prior=0.01, max_prior=0.2)
    assert fit.prior <= 0.2 + 1e-12


# --- deterministic-rule prior and rule sessions ------------------------------------------------------------


def three_class(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs of products blocked on names: 3% matches, 25% the same product line (names and brands
    alike, model numbers different), the rest unrelated. Comparisons: name (exact, close, else), identifiers
    (agree, differ), brand (same, else). Returns the levels and which pairs match."""
    kinds = rng.choice(3, count, p=[0.03, 0.25, 0.72])
    params = [  # per kind: name, identifiers, brand level probabilities
        ([0.5, 0.4, 0.1], [0.95, 0.05], [0.9, 0.1]),
        ([0.01, 0.6, 0.39], [0.01, 0.99], [0.95, 0.05]),
        ([0.001, 0.05, 0.949], [0.001, 0.999], [0.2, 0.8])]
    out = np.empty((count, 3), dtype=np.int8)
    for kind, probs in enumerate(params):
        rows = kinds == kind
        for k, p in enumerate(probs):
            out[rows, k] = rng.choice(len(p), rows.sum(), p=p)
    return out, kinds == 0


def test_rule_prior_counts_the_pairs_a_rule_accepts_at_its_recall() -> None:
    levels = np.array([[0, 1], [1, 0], [0, 0], [1, 1], [2, 1], [2, 1], [1, -1], [2, 1]], dtype=np.int8)
    prior, sure = em.rule_prior(levels, [0, 1], recall=0.75, floor=1e-6)
    assert sure.tolist() == [True, True, True, False, False, False, False, False]
    assert prior == pytest.approx(3 / 0.75 / 8)


def test_rule_sessions_find_what_matches_look_like_where_one_em_finds_the_product_line() -> None:
    """One EM over all candidates takes the product line (a quarter of the pairs, names and brands alike) for
    the matching class, so different model numbers look common among matches; sessions over the pairs an
    exact name or a shared identifier accepts learn that matches share their model number."""
    rng = np.random.default_rng(5)
    levels, match = three_class(rng, 60_000)
    sizes, decisive = [3, 2, 2], [0, 1]
    shares = em.level_shares(levels, sizes, 1e-6)
    prior, _ = em.rule_prior(levels, decisive, 0.7, 1e-6)
    sessions = em.fit_rule_sessions(levels, sizes, shares, decisive, prior)
    one = em.fit_em(levels, sizes, shares, prior=0.05, fix_u=False, max_iterations=500)
    assert sessions.m[1][1] < 0.25 < 0.5 < one.m[1][1]  # different model numbers: rare among matches, or not
    assert one.prior > 0.1 > sessions.prior

    def f1(fit: em.EmFit) -> float:
        predicted = em.match_weight(levels, fit.m, fit.u, fit.prior) > 0
        tp = (predicted & match).sum()
        return 2 * tp / (predicted.sum() + match.sum())

    assert f1(sessions) > 0.85 > 0.5 > f1(one)


def test_u_leaves_the_matches_out_and_m_is_monotone() -> None:
    """Among candidates an exact name is mostly matches: u counted on all of them makes it say little; u of
    the pairs that do not match does not. m is pooled where a closer band would say less than a looser one."""
    rng = np.random.default_rng(9)
    levels, match = three_class(rng, 40_000)
    sizes = [3, 2, 2]
    shares = em.level_shares(levels, sizes, 1e-6)
    true_m, true_u = em.level_shares(levels[match], sizes, 1e-6), em.level_shares(levels[~match], sizes, 1e-6)
    u = em.non_match_u(levels, sizes, true_m, shares, float(match.mean()))
    assert shares[0][0] > 1.5 * true_u[0][0]
    assert abs(u[0][0] - true_u[0][0]) < 0.3 * true_u[0][0]
    m = em.monotone_m(np.array([0.5, 0.1, 0.3, 0.1]), np.array([0.01, 0.02, 0.03, 0.94]))
    ratio = m / np.array([0.01, 0.02, 0.03, 0.94])
    assert (np.diff(ratio) <= 1e-12).all() and m.sum() == pytest.approx(1.0)
    assert ratio[1] == pytest.approx(ratio[2]) == pytest.approx(0.4 / 0.05)


def test_records_without_a_name_are_not_paired_by_their_empty_name() -> None:
    """Address rows (a street, no name) share the empty name: under learn=em they are no candidates of each
    other, where a shared street would otherwise link them."""
    attrs = {"phone": AttributeRule(weight=0.5, kind="phone"), "street": AttributeRule(weight=0.25, kind="address")}
    records = []
    for i in range(40):
        records.append(Record(f"a:{i}", f"Cafe Number {i}", "a", attributes={"phone": f"212-555-{1000 + i}"}))
        records.append(Record(f"b:{i}", f"Cafe Number {i}", "b", attributes={"phone": f"212/555-{1000 + i}"}))
        records.append(Record(f"a:s{i}", "", "a", attributes={"street": f"{i} Main St."}))
        records.append(Record(f"b:s{i}", "", "b", attributes={"street": f"{i} Main St."}))
    result = resolve(records, ResolutionConfig(learn="em", attributes=attrs), one_to_one_sources=("a", "b"))
    of = result.cluster_of()
    assert all(of[f"a:{i}"] == of[f"b:{i}"] for i in range(40))
    assert all(of[f"a:s{i}"] != of[f"b:s{i}"] for i in range(40))


def names_and_context(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of distinct names (no exact level, as when each distinct name is one node) with a context
    comparison: a sixth match. Matches: name mostly in the first band, context mostly shared; non-matches the
    other way round."""
    match = rng.random(n) < 1 / 6
    name = np.where(match, rng.choice([1, 2, 3, 4], n, p=[0.4, 0.3, 0.2, 0.1]),
                    rng.choice([1, 2, 3, 4], n, p=[0.02, 0.1, 0.3, 0.58]))
    context = np.where(match, rng.choice([0, 1, 2], n, p=[0.3, 0.6, 0.1]),
                       rng.choice([0, 1, 2], n, p=[0.03, 0.17, 0.8]))
    return np.stack([name, context], axis=1).astype(np.int8), match


def test_a_near_exact_name_is_the_rule_where_no_name_is_exact() -> None:
    """No pair has an exact name: the rule accepts the first band instead (rule_levels), its sessions train
    the context, and the prior is fitted (fit_prior), not held at the rule's guess."""
    rng = np.random.default_rng(3)
    levels, match = names_and_context(rng, 30_000)
    sizes = [5, 3]
    shares = em.level_shares(levels, sizes, 1e-6)
    assert not em.rule_prior(levels, [0], 0.7, 1e-6)[1].any()
    guess, sure = em.rule_prior(levels, [0], 0.7, 1e-6, rule_levels=[1])
    assert sure.tolist() == (levels[:, 0] == 1).tolist()
    fit = em.fit_rule_sessions(levels, sizes, shares, [0], guess, rule_levels=[1], fit_prior=True)
    held = em.fit_rule_sessions(levels, sizes, shares, [0], guess, rule_levels=[1])
    assert fit.trained == held.trained == (1,)
    assert held.prior == pytest.approx(guess) and abs(fit.prior - guess) > 0.01
    true_m = em.level_shares(levels[match], sizes, 1e-6)
    assert np.abs(fit.m[1] - true_m[1]).max() < 0.08   # the context's m, from the near-exact names' pairs


def test_one_comparison_em_stays_where_it_starts_and_starts_from_given_responsibilities() -> None:
    """Names alone: one comparison says anything, and a mixture of one comparison is not identified, so EM
    ends near its start. responsibility_start makes the start another scorer's view of the pairs."""
    rng = np.random.default_rng(4)
    levels, match = names_and_context(rng, 20_000)
    levels = levels[:, :1]
    sizes = [5]
    said = np.where(match, 0.9, 0.1)
    m, u, prior = em.responsibility_start(levels, sizes, said, 1e-6)
    assert prior == pytest.approx(said.mean())
    assert m[0] == pytest.approx(em.level_shares(levels, sizes, 1e-6, said)[0])
    assert u[0] == pytest.approx(em.level_shares(levels, sizes, 1e-6, 1 - said)[0])
    started = em.fit_em(levels, sizes, u, prior=prior, m=m, max_iterations=500)
    default = em.fit_em(levels, sizes, em.level_shares(levels, sizes, 1e-6), prior=0.1, max_iterations=500)
    assert abs(started.prior - default.prior) > 0.05   # the same data, two fits: where each started
    assert abs(started.prior - prior) < abs(default.prior - prior)


def test_names_alone_learn_from_the_hand_set_scores_deterministically() -> None:
    names = ["Univ. of Maryland", "University of Maryland", "University of Maryland, College Park",
             "Univ Maryland College Park", "Stanford University", "Stanford Univ.", "Stanford University, CA",
             "IBM Almaden Research Center", "IBM Almaden Research Ctr.", "Almaden Research Center, IBM"]
    records = [Record(str(i), name) for i, name in enumerate(names)]
    first = resolve(records, ResolutionConfig(learn="em"))
    again = resolve(list(reversed(records)), ResolutionConfig(learn="em"))
    assert first.learned == again.learned
    levels = resolve(records, ResolutionConfig(learn="em", em=EmConfig(start="levels")))
    assert levels.learned is not None and first.learned is not None
    assert levels.learned.prior != first.learned.prior      # the start is the hand-set scorer's view
    same = first.cluster_of()
    assert same["0"] == same["1"] and same["4"] == same["5"] and same["0"] != same["4"]


def test_a_fit_on_a_handful_of_pairs_is_shrunk_towards_the_random_pairs_and_a_large_one_is_not() -> None:
    sizes = [3]                                              # exact, close, else
    levels = np.array([[0], [0], [0], [0], [2], [2]], dtype=np.int8)
    random_u = [np.array([0.001, 0.01, 0.989])]
    # what EM makes of six pairs where no non-matching one has a different name: 'else' at u's floor
    fit = em.EmFit(m=[np.array([0.5, 0.0001, 0.4999])], u=[np.array([0.5, 0.499, 1e-6])], prior=0.6,
                          iterations=1, converged=True)

    def ratio(found: em.EmFit) -> np.ndarray:
        return np.log2(found.m[0] / found.u[0])

    assert ratio(fit)[2] > 10                                # a completely different name: evidence of a match
    small = em.shrunk(fit, levels, sizes, random_u, 2.0)
    assert ratio(small)[2] < 0 < ratio(small)[0]
    many = em.shrunk(fit, np.repeat(levels, 10_000, axis=0), sizes, random_u, 2.0)
    assert np.allclose(many.u[0], fit.u[0], atol=1e-3) and np.allclose(many.m[0], fit.m[0], atol=1e-3)
    assert em.shrunk(fit, levels, sizes, random_u, 0.0) is fit


# --- acronyms inside longer names ---------------------------------------------------------------------------


def test_an_acronym_is_within_a_name_a_run_of_whose_words_spells_it() -> None:
    names = ["MIT", "Lincoln Labs, Massachusetts Institute of Technology", "Dept. of Computer Science, UIUC",
             "University of Illinois at Urbana-Champaign", "UC Riverside", "University of California, Riverside",
             "MIT Lincoln Laboratory", "Stanford University"]
    keys = ["mit", "lincoln laboratory massachusetts institute technology", "department computer science uiuc",
            "university illinois at urbana champaign", "uc riverside", "university california riverside",
            "mit lincoln laboratory", "stanford university"]
    runs = AcronymRuns.of(names, keys)
    left, right = np.array([0, 2, 4, 0, 0, 7]), np.array([1, 3, 5, 7, 6, 3])
    assert runs.within(left, right).tolist() == [True, True, False, False, False, False]
    # 'UC' is too short to say anything; 'MIT' against 'MIT Lincoln Laboratory': a word both have (the name score's);
    # 'Stanford University' against 'University of Illinois...' has no acronym to spell
    assert runs.said(left, right).tolist() == [True, True, False, True, False, False]


def test_the_acronym_comparison_has_a_within_level() -> None:
    why = explain(Record("a", "MIT"), Record("b", "Lincoln Labs, Massachusetts Institute of Technology"),
                  handmade_weights())
    assert {t.comparison: t.level for t in why.terms}["acronym"] == "within"
    why = explain(Record("a", "MIT"), Record("b", "Massachusetts Institute of Technology"), handmade_weights())
    assert {t.comparison: t.level for t in why.terms}["acronym"] == "agree"
    why = explain(Record("a", "MIT"), Record("b", "Lincoln Labs, Stanford University"), handmade_weights())
    assert {t.comparison: t.level for t in why.terms}["acronym"] == "differ"


def test_names_alone_hold_the_name_weights_where_em_is_not_identified() -> None:
    """Names alone (no rule session trains anything): the name comparison's m and u stay those of the hand-set
    scorer's view whatever the iterations allowed, and so does the prior (with the name held, it is what would
    drift); EM fits the acronym's m, converging."""
    names = ["MIT", "M.I.T.", "Massachusetts Institute of Technology", "Lincoln Labs, Massachusetts Institute of "
             "Technology", "Dept. of EECS, MIT", "Stanford University", "Stanford Univ.", "Stanford University, CA",
             "Dept. of Computer Science, Stanford University", "Univ. of Maryland", "University of Maryland",
             "University of Maryland, College Park", "IBM Almaden Research Center", "IBM Almaden Research Ctr.",
             "Almaden Research Center, IBM", "CMU", "Carnegie Mellon University", "Carnegie Mellon Univ., Pittsburgh"]
    records = [Record(str(i), name) for i, name in enumerate(names)]
    few = resolve(records, ResolutionConfig(learn="em", em=EmConfig(max_iterations=3)))
    many = resolve(records, ResolutionConfig(learn="em"))
    assert few.learned is not None and many.learned is not None
    assert many.learned.converged
    assert few.learned.comparisons[0].m == many.learned.comparisons[0].m
    assert few.learned.comparisons[0].u == many.learned.comparisons[0].u
    assert few.learned.prior == many.learned.prior    # held at the hand-set view
    start = resolve(records, ResolutionConfig(learn="em", em=EmConfig(max_iterations=1)))
    assert start.learned is not None
    assert start.learned.comparison("acronym").m != many.learned.comparison("acronym").m   # fitted
    again = resolve(list(reversed(records)), ResolutionConfig(learn="em"))
    assert again.learned == many.learned


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.lists(st.integers(-1, 7), max_size=400))
def test_unique_rows_are_numpys_distinct_rows_in_its_order(width: int, values: list[int]) -> None:
    levels = np.array(values[:len(values) // width * width], dtype=np.int8).reshape(-1, width)
    patterns, counts = em.unique_rows(levels)
    expected, expected_counts = np.unique(levels, axis=0, return_counts=True)
    assert patterns.dtype == levels.dtype
    assert patterns.tolist() == expected.tolist()
    assert counts.tolist() == expected_counts.tolist()


def _learned_scorer(records: list[Record]):
    """The learned scorer's table of `records` (weights not yet learned), its node table and nodes, built the
    way resolve() builds them."""
    from kgpipe.engine.local import LocalExecutor
    from kgpipe.kg.learned_scoring import learned_table
    from kgpipe.kg.resolve import RecordColumns, build_nodes, featurize_names, node_table, record_keys

    config = ResolutionConfig(learn="em")
    executor = LocalExecutor.in_process("test")
    columns = RecordColumns.of(records)
    nodes = build_nodes(columns, record_keys(columns.names, config, executor), config, None)
    table = node_table(nodes, featurize_names(list(nodes.spellings), config, keys=list(nodes.names),
                                              executor=executor), config, None)
    return learned_table(table, nodes), table, nodes


def test_levels_from_the_fixed_scores_name_signals_are_the_levels_computed_afresh() -> None:
    """learn_weights reads the sample's name signals off the fixed scorer's scores instead of computing them
    again: the levels must be the same either way."""
    names = ["MIT", "Massachusetts Institute of Technology", "Lincoln Labs, MIT", "Sony PSLX350H Turntable",
             "Sony Turntable - PSLX350H", "Sony Turntable PSLX300", "Apollo 11", "Apollo 8", "IBM Almaden, CA"]
    scorer, table, nodes = _learned_scorer([Record(str(i), name) for i, name in enumerate(names)])
    left, right = np.triu_indices(len(nodes), 1)
    afresh = scorer.levels(left, right)
    assert len(np.unique(afresh[:, 0])) >= 3   # names in several bands: the comparison below says something
    assert np.array_equal(scorer.levels(left, right, table.score(left, right)), afresh)


def test_pairs_of_incompatible_types_take_no_part_in_learning() -> None:
    """The type rule decides pairs of incompatible types (they never match): weights learned on candidates that
    include such pairs are those learned without them. Counted in, 'Cambridge' the city against 'Cambridge' the
    university would teach that a near-exact name seldom matches."""
    from kgpipe.kg.learned_scoring import learn_weights
    from kgpipe.vocab import SCHEMA

    person, place, org = SCHEMA + "Person", SCHEMA + "Place", SCHEMA + "Organization"
    rows = [("Niels Bohr", person), ("N. Bohr", person), ("Bohr", place), ("Marie Curie", person),
            ("Curie", person), ("Curie Institute", org), ("Cambridge", place), ("Cambridge, MA", place),
            ("University of Cambridge", org), ("Cambridge University", org), ("Washington", place),
            ("George Washington", person), ("University of Washington", org), ("Washington University", org)]
    scorer, table, nodes = _learned_scorer([Record(str(i), name, type=kind) for i, (name, kind) in enumerate(rows)])
    left, right = np.triu_indices(len(nodes), 1)
    ok = table.types_compatible(left, right)
    assert (~ok).sum() >= 20 and ok.sum() >= 20
    assert (scorer.levels(left[~ok], right[~ok])[:, 0] <= 2).any()   # some look alike by name
    with_them = learn_weights(scorer, left, right, nodes.node_of)
    without = learn_weights(scorer, left[ok], right[ok], nodes.node_of)
    assert with_them == without
    assert with_them.pairs == int(ok.sum())
