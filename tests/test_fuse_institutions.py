"""Institution phrases in names: parsing the head word's modifiers, and the scorer reading two names whose
phrases disagree as different institutions while variants of one institution still match."""

from __future__ import annotations

import numpy as np
import pytest

from kgpipe.kg.institution import InstitutionPhrase, institution_core
from kgpipe.kg.resolve import Record, resolve
from kgpipe.kg.similarity import ResolutionConfig, featurize_names, institutions_differ
from tests.test_fuse_scoring import pair_scores


@pytest.mark.parametrize(("name", "expected"), [
    ("City University of Hong Kong", ("university", ("city",), ("hong", "kong"), ())),
    ("Columbia University, New York, NY", ("university", ("columbia",), (), ())),
    ("Dept. of CS, Univ. of British Columbia, Vancouver", ("university", (), ("british", "columbia"), ())),
    ("The University of Texas at Arlington, TX", ("university", (), ("texas",), ("arlington",))),
    ("State University of New York at Buffalo", ("university", ("state",), ("new", "york"), ("buffalo",))),
    # a unit named before the head in the same part: its words are not the institution's
    ("Department of Computer Science University of Maryland, College Park", ("university", (), ("maryland",), ())),
    ("Humboldt-Universität zu Berlin", ("university", ("humboldt",), ("berlin",), ())),
    ("Stanford University InfoLab", ("university", ("stanford",), (), ())),
])
def test_institution_phrases_are_parsed(name: str, expected: tuple) -> None:
    assert institution_core(name) == InstitutionPhrase(*expected)


def test_names_without_a_head_word_have_no_phrase() -> None:
    assert institution_core("IBM Almaden Research Center, San Jose") is None
    assert institution_core("UCLA") is None
    # the head words are configurable: an empty table finds none
    assert institution_core("University of Oslo", heads={}) is None


PAIRS = [
    # different institutions: a modifier one name never says, or qualifiers neither says of the other
    ("City University of Hong Kong", "Department of Computer Science, University of Hong Kong", True),
    ("Columbia University, New York", "University of British Columbia, Vancouver", True),
    ("Arizona State University, Tempe", "Department of Computer Science, University of Arizona", True),
    ("New York University", "York University, Toronto", True),
    ("University of Texas at Arlington", "The University of Texas at Dallas, Richardson, TX", True),
    ("University of California San Diego", "University of California, Los Angeles", True),
    # one institution: the same modifiers in other places, a typo, an unsaid 'of' phrase, an unsaid qualifier
    ("Dept. of CS, University of Maryland, College Park", "University of Maryland at College Park", False),
    ("University of California, San Diego, La Jolla", "University of California San Diego", False),
    ("Hong Kong University, Hong Kong", "Department of Computer Science, University of Hong Kong", False),
    ("University of Wisconsn, Madison", "University of Wisconsin, Madison, WI", False),
    ("Humboldt University", "Humboldt-Universität zu Berlin", False),
    ("University of Texas", "University of Texas at Austin", False),
    # not comparable: no phrase on one side
    ("UCLA", "University of Southern California", False),
]


def test_the_scorer_tells_institutions_apart_and_keeps_variants_together() -> None:
    names = sorted({n for a, b, _ in PAIRS for n in (a, b)})
    index = {n: i for i, n in enumerate(names)}
    features = featurize_names(names, ResolutionConfig(institution_mismatch=0.5))
    left = np.array([index[a] for a, _, _ in PAIRS])
    right = np.array([index[b] for _, b, _ in PAIRS])
    differ = institutions_differ(features, left, right)
    assert differ.tolist() == [expected for _, _, expected in PAIRS]
    assert institutions_differ(features, right, left).tolist() == differ.tolist()  # symmetric
    # off by default of the parameter: no phrases are parsed at all
    assert featurize_names(names, ResolutionConfig(institution_mismatch=1.0)).head is None


def test_the_factor_lowers_only_the_pairs_that_differ() -> None:
    names = ["City University of Hong Kong", "University of Hong Kong", "The University of Hong Kong, China"]
    off = pair_scores(names, [(0, 1), (1, 2)], ResolutionConfig(institution_mismatch=1.0)).score
    on = pair_scores(names, [(0, 1), (1, 2)], ResolutionConfig(institution_mismatch=0.5)).score
    assert on[0] == pytest.approx(0.5 * off[0])
    assert on[1] == pytest.approx(off[1])
    assert off[0] >= 0.55 > on[0]   # without the phrase check, the two would be one entity


def test_resolve_keeps_the_hong_kong_universities_apart() -> None:
    names = ["City University of Hong Kong", "City Univ. of Hong Kong, Kowloon", "University of Hong Kong",
             "Dept. of Computer Science, The University of Hong Kong", "Hong Kong University of Science and "
             "Technology", "HKUST, Clear Water Bay, Hong Kong University of Science & Technology"]
    records = [Record(str(i), name) for i, name in enumerate(names)]
    labels = resolve(records, ResolutionConfig(institution_mismatch=0.5)).labels
    assert labels[0] == labels[1] and labels[2] == labels[3] and labels[4] == labels[5]
    assert len({labels[0], labels[2], labels[4]}) == 3
    merged = resolve(records, ResolutionConfig(institution_mismatch=1.0)).labels
    assert len({merged[0], merged[2], merged[4]}) < 3   # word overlap alone joins some of them
