"""The seed-KG gazetteer: labels from seed types, shared names, single-word names (the verb "born" is not
Max Born), case-insensitive multi-word names, and how seed names override or yield to NER spans.

Uses the session's cached spaCy model (see tests/test_extract.py's `nlp` fixture); every test installs
its own gazetteer, replacing the previous one.
"""

from __future__ import annotations

from typing import Any

import pytest

from kgpipe.nlp.extractor import ExtractOptions, Extractor, GazetteerOptions, build_extractor
from kgpipe.nlp.gazetteer import build_entries, label_for_types
from kgpipe.vocab import DEFAULT_LABEL_MAP, SCHEMA
from tests.test_extract import CITY, PERSON, SAMPLE, UNIVERSITY, seed

COUNTRY, AWARD = SCHEMA + "Country", "http://kgpipe.org/sample/Award"
STOCK_LABELS = ("PERSON", "ORG", "GPE", "LOC", "FAC", "NORP", "DATE")


def mentions(nlp: Any, text: str, seeds: list[dict[str, Any]], **gazetteer: Any) -> dict[str, dict[str, Any]]:
    """text -> mention row, with a gazetteer of `seeds` installed on nlp."""
    extractor, _ = build_extractor(nlp, seed_entities=seeds, gazetteer=GazetteerOptions(**gazetteer))
    (result,) = list(extractor.extract([("d", text)]))
    for m in result.mentions:
        assert text[m["start_char"]:m["end_char"]] == m["text"]
    return {m["text"]: m for m in result.mentions}


# --- entries ------------------------------------------------------------------------------------------


def test_labels_come_from_seed_types_through_the_label_map_and_hierarchy():
    assert label_for_types([CITY], DEFAULT_LABEL_MAP, STOCK_LABELS) == ("GPE", CITY)
    assert label_for_types([UNIVERSITY], DEFAULT_LABEL_MAP, STOCK_LABELS) == ("ORG", UNIVERSITY)
    assert label_for_types([AWARD], DEFAULT_LABEL_MAP, STOCK_LABELS) == ("AWARD", AWARD)
    assert label_for_types(["http://ex.org/Unknown", PERSON], DEFAULT_LABEL_MAP, STOCK_LABELS) == ("PERSON", PERSON)
    assert label_for_types(["http://ex.org/Unknown"], DEFAULT_LABEL_MAP, STOCK_LABELS) is None
    # a model trained on CoNLL04 labels gets its own label for the same type
    assert label_for_types([PERSON], DEFAULT_LABEL_MAP, ("Peop", "Loc", "Org")) == ("Peop", PERSON)
    assert label_for_types([CITY], DEFAULT_LABEL_MAP, ("Peop", "Loc", "Org")) == ("Loc", CITY)


def test_shared_names_go_to_the_entity_they_label_else_stay_unlinked_or_are_dropped():
    seeds = [seed("Berkeley", "Berkeley", [CITY]), seed("UC_Berkeley", "UC Berkeley", [UNIVERSITY], ["Berkeley"]),
             seed("Wash_State", "Washington State", [SCHEMA + "State"], ["Washington"]),
             seed("Wash_Univ", "Washington University", [UNIVERSITY], ["Washington"]),
             seed("J_Smith_1", "J. Smith", [PERSON], ["Smith"]), seed("J_Smith_2", "Jo Smith", [PERSON], ["Smith"]),
             seed("Untyped", "Nowhere Land", []), seed("Tiny", "X", [CITY])]
    entries, stats = build_entries(seeds, DEFAULT_LABEL_MAP, preferred_labels=STOCK_LABELS)
    by_name = {e.name: e for e in entries}
    assert by_name["Berkeley"].iri == SAMPLE + "Berkeley"        # the city's label beats the university's alias
    assert "Washington" not in by_name and "washington" in [n.lower() for n in stats.ambiguous_names]
    assert (by_name["Smith"].iri, by_name["Smith"].label) == (None, "PERSON")  # two people: no link, still a name
    assert by_name["Nowhere Land"].label is None and stats.untyped_entities == 1
    assert "X" not in by_name  # shorter than min_alias_chars


# --- single-word names ------------------------------------------------------------------------------------

BORN = [seed("Max_Born", "Max Born", [PERSON], ["Born"]), seed("Alan_Turing", "Alan Turing", [PERSON], ["Turing"]),
        seed("Breslau", "Breslau", [CITY])]


@pytest.mark.parametrize("ignore_case", [True, False])
def test_born_the_verb_is_not_max_born(nlp, ignore_case):
    text = ("Max Born was born in Breslau. Born in Paris, he was not. "
            "Turing was elected a Fellow of the Royal Society. Everyone is born somewhere.")
    found = mentions(nlp, text, BORN, ignore_case=ignore_case)
    born = [m for m in found.values() if m["seed_iri"] == SAMPLE + "Max_Born"]
    assert [m["text"] for m in born] == ["Max Born"]
    assert "born" not in found and "Born" not in found
    # "Turing" is tagged VBG here, but "ture" is no English verb: a mis-tagged name, still found
    assert found["Turing"]["seed_iri"] == SAMPLE + "Alan_Turing" and found["Turing"]["source"] == "gazetteer"


def test_single_word_names_need_their_exact_case(nlp):
    found = mentions(nlp, "The turing test was named after Turing.", BORN)
    assert "turing" not in found and found["Turing"]["seed_iri"] == SAMPLE + "Alan_Turing"


def test_multi_word_names_match_in_any_case_only_where_configured(nlp):
    seeds = [seed("University_of_Paris", "University of Paris", [UNIVERSITY], ["the Sorbonne"])]
    text = "She studied at the university of paris and later at the Sorbonne."
    relaxed = mentions(nlp, text, seeds, ignore_case=True)
    assert relaxed["university of paris"]["seed_iri"] == SAMPLE + "University_of_Paris"
    assert relaxed["the Sorbonne"]["seed_iri"] == SAMPLE + "University_of_Paris"
    assert relaxed["the Sorbonne"]["label"] == "ORG"  # the stock NER says PRODUCT; the seed type wins
    strict = mentions(nlp, text, seeds, ignore_case=False)
    assert all(m["seed_iri"] is None for t, m in strict.items() if "paris" in t.lower())
    assert strict["the Sorbonne"]["seed_iri"] == SAMPLE + "University_of_Paris"


# --- override or yield --------------------------------------------------------------------------------------

CITIES = [seed("Copenhagen", "Copenhagen", [CITY]), seed("Denmark", "Denmark", [COUNTRY]),
          seed("Bern", "Bern", [CITY]), seed("Patent_Office", "Swiss Patent Office", [SCHEMA + "Organization"]),
          seed("Marie_Curie", "Marie Curie", [PERSON], ["Curie"])]


def test_override_seed_names_replace_ner_spans_and_labels(nlp):
    found = mentions(nlp, "Copenhagen is the capital of Denmark.", CITIES, mode="override")
    # the stock NER reads Copenhagen as ORG; the seed entity is a City
    assert (found["Copenhagen"]["label"], found["Copenhagen"]["source"], found["Copenhagen"]["kg_type"]) == (
        "GPE", "gazetteer", CITY)
    found = mentions(nlp, "He worked at the Swiss Patent Office in Bern.", CITIES, mode="override")
    assert "the Swiss Patent Office" not in found  # the NER span only adds "the"
    assert found["Swiss Patent Office"]["seed_iri"] == SAMPLE + "Patent_Office"
    assert found["Bern"]["source"] == "gazetteer"  # a city the NER missed


def test_yield_keeps_ner_spans_and_fills_only_gaps(nlp):
    found = mentions(nlp, "Copenhagen is the capital of Denmark.", CITIES, mode="yield")
    copenhagen = found["Copenhagen"]
    assert (copenhagen["label"], copenhagen["source"]) == ("ORG", "ner")
    assert copenhagen["seed_iri"] == SAMPLE + "Copenhagen"  # same extent: the NER mention is linked
    found = mentions(nlp, "He worked at the Swiss Patent Office in Bern.", CITIES, mode="yield")
    assert found["the Swiss Patent Office"]["source"] == "ner" and found["the Swiss Patent Office"]["seed_iri"] is None
    assert found["Bern"]["source"] == "gazetteer" and found["Bern"]["seed_iri"] == SAMPLE + "Bern"


def test_a_longer_ner_name_is_not_cut_down_to_a_seed_alias(nlp):
    found = mentions(nlp, "Ève Curie wrote a biography of her mother.", CITIES, mode="override")
    assert "Ève Curie" in found and found["Ève Curie"]["seed_iri"] is None and "Curie" not in found


def test_without_seed_entities_the_gazetteer_is_removed(nlp):
    build_extractor(nlp, seed_entities=CITIES)
    assert "kgpipe_gazetteer" in nlp.pipe_names
    extractor, facts = build_extractor(nlp)
    assert "kgpipe_gazetteer" not in nlp.pipe_names and "kgpipe_gazetteer" not in facts["pipes"]
    assert isinstance(extractor, Extractor) and extractor.options == ExtractOptions()
