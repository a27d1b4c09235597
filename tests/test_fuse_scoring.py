"""Entity-resolution scoring and blocking details: the abbreviation table, IDF weighting of words, the weight
of name parts the other name leaves unsaid, and the absolute cap on words used for blocking."""

from __future__ import annotations

import random

import numpy as np

from kgpipe.kg.blocking import block_names
from kgpipe.kg.normalize import NormalizeOptions, name_parts, normalize_name
from kgpipe.kg.resolve import Record, resolve
from kgpipe.kg.similarity import NodeTable, ResolutionConfig, featurize_names


def pair_scores(names: list[str], pairs: list[tuple[int, int]], config: ResolutionConfig):
    features = featurize_names(names, config)
    table = NodeTable(features, np.arange(len(names)), [None] * len(names), [frozenset()] * len(names),
                      [{}] * len(names), config)
    left, right = (np.array(side) for side in zip(*pairs, strict=True))
    return table.score(left, right)


def test_abbreviations_are_spelt_out_and_the_table_is_configurable() -> None:
    assert normalize_name("Dept. of Comp. Sci., Univ. of Maryland") == normalize_name(
        "Department of Computer Science, University of Maryland")
    assert normalize_name("Inst. of Tech.") == "institute of technology"
    custom = NormalizeOptions(abbreviations={"hosp": "hospital"})
    assert normalize_name("St. Mary Hosp.", custom) == "st mary hospital"
    assert normalize_name("Univ. of Maryland", custom) == "univ of maryland"  # the table replaces the default
    result = resolve([Record("a", "Massachusetts Gen. Hosp."), Record("b", "Massachusetts General Hospital")],
                     ResolutionConfig(normalize={"abbreviations": {"gen": "general", "hosp": "hospital"}}))
    assert result.labels[0] == result.labels[1]


def test_rare_shared_words_weigh_more_than_common_ones() -> None:
    """Among names where 'University' and 'Department' are everywhere, sharing the rare 'Helsinki' says more
    than sharing the common words."""
    names = [f"University of {town}" for town in ("Oslo", "Bergen", "Turku", "Lund", "Graz", "Pisa", "Gent")]
    names += ["University of Helsinki", "Helsinki University", "Department of Physics, University of Oslo"]
    config = ResolutionConfig(weights={"token": 1.0, "char": 0.0, "fuzz": 0.0})
    scores = pair_scores(names, [(7, 8), (0, 1)], config).token
    assert scores[0] > 0.9          # 'University of Helsinki' ~ 'Helsinki University'
    assert scores[1] < 0.5          # 'University of Oslo' vs 'University of Bergen': only 'University' shared
    features = featurize_names(names, config)
    vocab_weight = features.tokens.toarray()
    helsinki = vocab_weight[7].max()
    university = vocab_weight[0][vocab_weight[1] > 0].max()  # the only word Oslo and Bergen share
    assert helsinki > 1.5 * university
    # without the offset a word every name has weighs nothing: Oslo and Bergen share nothing then
    sharp = pair_scores(names, [(7, 8), (0, 1)], config.model_copy(update={"idf_offset": 0.0})).token
    assert sharp[1] < 0.05 < scores[1] and sharp[0] > 0.9


def test_name_parts_and_unsaid_parts_weigh_less() -> None:
    assert [words for _, words in name_parts("Oracle Corp., Nashua, NH")] == [["oracle"], ["nashua"], ["nh"]]
    names = ["Oracle Corp., Nashua, NH", "Oracle Corp., Redwood Shores, CA", "Sybase Inc., Dublin, CA",
             "Nashua Public Library", "Redwood City Council", "Dublin Airport"]
    plain = pair_scores(names, [(0, 1), (1, 2)], ResolutionConfig(unmatched_part_weight=1.0)).token
    parts = pair_scores(names, [(0, 1), (1, 2)], ResolutionConfig(unmatched_part_weight=0.25)).token
    # the place each Oracle string adds is unsaid by the other, not a contradiction: the pair gains
    assert parts[0] > plain[0] + 0.1
    # a shared place alone ('CA') does not make two companies one: their names are parts both touch
    assert parts[1] < 0.5


def test_common_word_cap_bounds_bucket_sizes() -> None:
    """800 names '<word> University' with a few words reused by many names: an absolute cap on the names a
    shingled word may have leaves those words out of the shingles, so blocking proposes fewer pairs, while
    the pairs of one name's variants are still proposed through their rare words."""
    rng = random.Random(11)
    stems = sorted({"".join(rng.choice("bcdfgklmnprstvz") + rng.choice("aeiou") for _ in range(3))
                    for _ in range(420)})[:400]
    shared = ["Kobalt", "Mirandola", "Pelargon", "Quintara"]
    names = [f"{stem} {shared[i % 4]} University" for i, stem in enumerate(stems)]
    names += [f"{stem} {shared[i % 4]} Univ., Berlin" for i, stem in enumerate(stems)]
    keys = sorted({normalize_name(n) for n in names})
    # no share-based limit here, so that only the absolute cap differs
    capped = ResolutionConfig(blocking={"common_word_share": 1.0, "common_word_names": 60})
    uncapped = ResolutionConfig(blocking={"common_word_share": 1.0, "common_word_names": 1_000_000})
    features = featurize_names(keys, capped)
    with_cap = block_names(features, capped.blocking, capped.ngram)
    without = block_names(features, uncapped.blocking, uncapped.ngram)
    assert with_cap.stats["common_words_unshingled"] > without.stats["common_words_unshingled"]
    assert with_cap.stats["candidate_pairs"] < without.stats["candidate_pairs"]
    index = {k: i for i, k in enumerate(keys)}
    proposed = {tuple(p) for p in with_cap.pairs.tolist()}
    variants = [tuple(sorted((index[normalize_name(names[i])], index[normalize_name(names[i + 400])])))
                for i in range(400)]
    assert sum(v in proposed for v in variants) / len(variants) > 0.95
