"""Entity linking: exact, normalised and fuzzy aliases, type agreement, prior, NIL."""

from __future__ import annotations

import pytest

from kgpipe.lm.linker import EntityLinker

S = "http://schema.org/"
ENTITIES = [
    {"id": "ex:MIT", "label": "Massachusetts Institute of Technology", "type": S + "CollegeOrUniversity",
     "aliases": ["MIT", "M.I.T."], "mention_count": 9},
    {"id": "ex:Cambridge_MA", "label": "Cambridge, Massachusetts", "type": S + "City",
     "aliases": ["Cambridge"], "mention_count": 4},
    {"id": "ex:Cambridge_UK", "label": "Cambridge", "type": S + "City", "aliases": [], "mention_count": 2},
    {"id": "ex:University_of_Cambridge", "label": "University of Cambridge", "type": S + "CollegeOrUniversity",
     "aliases": ["Cambridge"], "mention_count": 7},
    {"id": "ex:Schrodinger", "label": "Erwin Schrödinger", "type": S + "Person", "aliases": [], "mention_count": 3},
]


@pytest.fixture(scope="module")
def linker() -> EntityLinker:
    return EntityLinker(ENTITIES)


def test_keys_are_the_fuse_stages_normalised_names(linker) -> None:
    """One normalisation for fusion and linking: 'M.I.T.' and 'MIT' meet on one key."""
    assert linker.normalize("M.I.T.") == "mit" and linker.normalize("  Erwin   SCHRÖDINGER ") == "erwin schrodinger"


def test_exact_then_normalised_then_fuzzy(linker) -> None:
    assert (linker.link("MIT").entity_id, linker.link("MIT").method) == ("ex:MIT", "exact")
    assert (linker.link("m.i.t").entity_id, linker.link("m.i.t").method) == ("ex:MIT", "normalized")
    fuzzy = linker.link("Erwin Schroedinger")
    assert fuzzy is not None and (fuzzy.entity_id, fuzzy.method) == ("ex:Schrodinger", "fuzzy")


def test_type_agreement_and_prior_rank_ambiguous_aliases(linker) -> None:
    org = linker.candidates("Cambridge", S + "Organization")
    assert org[0].entity_id == "ex:University_of_Cambridge"
    assert all(c.kg_type != S + "City" or c.score < org[0].score for c in org)
    place = linker.candidates("Cambridge", S + "Place")
    assert {c.entity_id for c in place} == {"ex:Cambridge_MA", "ex:Cambridge_UK"}  # the university is excluded
    assert place[0].entity_id == "ex:Cambridge_MA"    # the higher prior wins between equals
    assert linker.link("Cambridge", S + "Person") is None


def test_nil_when_nothing_passes(linker) -> None:
    assert linker.link("Bletchley Park") is None
    assert linker.candidates("") == []
