"""benchmarks/webnlg_relations.py, the WebNLG -> labelled sentences converter: which span each entity gets, which
triples are literals, and which way a relation points, on a tiny WebNLG-like file written here (no spaCy).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from kgpipe.nlp.labelled import read_labelled
from tests.benchmark_modules import import_benchmark

XML = """<?xml version="1.0" ?>
<benchmark><entries>
  <entry category="Building" eid="Id1" size="4">
    <modifiedtripleset>
      <mtriple>Alan_Bean | birthPlace | Wheeler,_Texas</mtriple>
      <mtriple>Alan_Bean | selectedByNasa | 1963</mtriple>
      <mtriple>Alan_Bean | nickname | "Al"</mtriple>
      <mtriple>Wheeler,_Texas | country | United_States</mtriple>
    </modifiedtripleset>
    <lex lid="Id1">
      <references>
        <reference entity="Alan_Bean" type="name">Alan Bean</reference>
        <reference entity="Wheeler,_Texas" type="name">Wheeler</reference>
        <reference entity="1963" type="name">1963</reference>
        <reference entity="&quot;Al&quot;" type="name">Al</reference>
        <reference entity="Alan_Bean" type="pronoun">He</reference>
        <reference entity="Wheeler,_Texas" type="name">Wheeler</reference>
        <reference entity="United_States" type="description">the United States</reference>
      </references>
      <text>Alan Bean, born in Wheeler, joined NASA in 1963, called Al. He liked Wheeler in the United States.</text>
    </lex>
  </entry>
</entries></benchmark>
"""
# sentence 1: 0..59, sentence 2: 60..end (as a parser would cut it)
SENTENCES = [(0, 59), (60, 98)]


@pytest.fixture(scope="module")
def converter():
    return import_benchmark("_webnlg"), import_benchmark("webnlg_relations")


@pytest.fixture
def text(converter, tmp_path):
    _webnlg, _ = converter
    (tmp_path / "1triples").mkdir()
    (tmp_path / "1triples" / "Building.xml").write_text(XML, encoding="utf-8")
    [entry] = _webnlg.read_webnlg(tmp_path)
    [found] = entry.texts
    assert found.text[SENTENCES[0][0]:SENTENCES[0][1]].endswith("called Al.")
    assert found.text[SENTENCES[1][0]:].startswith("He liked")
    return found


def test_literals_are_quoted_or_numbers(converter) -> None:
    _, conv = converter
    for literal in ('"Al"', '"1927-07-23"', '"13017.0"(minutes)', "1963", "2702.0", "-5", "1,500",
                    "14.2 (square kilometres)"):
        assert conv.is_literal(literal), literal
    for resource in ("Alan_Bean", "103_Colmore_Row", "1634:_The_Baltic_War", "2014–15_Serie_A", "A.C._Cesena"):
        assert not conv.is_literal(resource), resource


def test_spans_are_located_names_and_descriptions_without_literals(converter, text) -> None:
    _, conv = converter
    spans = conv.entity_spans(text)
    first, second = text.text.index("Wheeler"), text.text.index("Wheeler", 30)
    assert spans == {"Alan_Bean": [(0, 9)], "Wheeler,_Texas": [(first, first + 7), (second, second + 7)],
                     "United_States": [(text.text.index("the United"), len(text.text) - 1)]}


def test_each_sentence_gets_each_entity_s_first_span_and_subject_as_head(converter, text) -> None:
    _, conv = converter
    wheeler = text.text.index("Wheeler")
    ner = {(0, 9): "PERSON", (wheeler, wheeler + 7): "DATE"}   # a label the extract stage drops: the fallback
    counts: Counter[str] = Counter()
    one, two = conv.labelled_sentences(text, SENTENCES, ner, frozenset({"PERSON", "GPE"}), counts)
    assert [one.text[e.start:e.end] for e in one.entities] == ["Alan Bean", "Wheeler"]
    assert [e.type for e in one.entities] == ["PERSON", conv.FALLBACK_LABEL]
    assert [(r.head, r.tail, r.type) for r in one.relations] == [(0, 1, "birthPlace")]
    # "He" is no span, so Alan Bean is not in sentence two; Wheeler's second reference is, and points at the US
    assert two.text.startswith("He liked")
    assert [two.text[e.start:e.end] for e in two.entities] == ["Wheeler", "the United States"]
    assert [(r.head, r.tail, r.type) for r in two.relations] == [(0, 1, "country")]
    assert counts["triples: literal"] == 2 and counts["triples: a relation"] == 2


def test_a_triple_split_over_sentences_is_counted_not_written(converter, text) -> None:
    _, conv = converter
    counts: Counter[str] = Counter()
    # Alan Bean alone in the first "sentence": no pair there; Wheeler's first span in the second one is used
    [only] = conv.labelled_sentences(text, [(0, 15), (15, 98)], {}, frozenset(), counts)
    assert [only.text[e.start:e.end] for e in only.entities] == ["Wheeler", "the United States"]
    assert only.entities[0].start == text.text.index("Wheeler") - 15
    assert [(r.head, r.tail, r.type) for r in only.relations] == [(0, 1, "country")]
    assert counts["triples: never in one sentence"] == 1 and counts["triples: a relation"] == 1


def test_records_read_back_through_the_labelled_reader(converter, text, tmp_path) -> None:
    _, conv = converter
    sentences = conv.labelled_sentences(text, SENTENCES, {}, frozenset(), Counter())
    path = tmp_path / "out.jsonl"
    path.write_text("".join(json.dumps(conv.record(s, "x")) + "\n" for s in sentences), encoding="utf-8")
    back = read_labelled(path)
    assert [(b.text, b.entities, b.relations) for b in back] == [(s.text, s.entities, s.relations) for s in sentences]


def test_the_subsample_is_seeded_and_keeps_the_split_order(converter) -> None:
    _, conv = converter
    items = list(range(100))
    a, b, c = (conv.sample_texts(items, 10, seed) for seed in (1, 1, 2))
    assert a == b == sorted(a) and len(set(a)) == 10 and a != c
    assert conv.sample_texts(items, None, 0) == items


def test_extract_webnlg_scores_pairs_by_direction_and_property(converter) -> None:
    from types import SimpleNamespace

    extract_webnlg = import_benchmark("extract_webnlg")
    record = {"names": {"A": {"Alpha"}, "B": {"Beta"}, "C": {"Gamma"}, "D": {"Delta"}},
              "triples": [("A", "p", "B"), ("C", "q", "A"), ("B", "s", "D"), ("A", "r", "1963")]}
    mentions = [{"mention_id": k, "text": text, "sentence": sentence}
                for k, (text, sentence) in enumerate((("Alpha", 0), ("Beta", 0), ("the Gamma", 1), ("Delta", 0)))]
    relations = [{"subject_id": 0, "relation": "p", "object_id": 1},   # right, with the right property
                 {"subject_id": 0, "relation": "q", "object_id": 2},   # the gold pair reversed
                 {"subject_id": 1, "relation": "z", "object_id": 3}]   # right pair, wrong property
    counts = extract_webnlg.score_pairs([record], [SimpleNamespace(mentions=mentions, relations=relations)])
    assert (counts.predicted, counts.gold) == (3, 3)   # the literal's triple has no name for its object
    assert counts.right == {"directed": 2, "undirected": 3, "directed, property right": 1}
    assert counts.found == {"directed": 2, "undirected": 3, "directed, property right": 1}
    assert counts.reachable == 2                       # Gamma and Alpha are in different sentences


def test_extract_webnlg_rows_of_several_models_are_means_with_their_spread() -> None:
    from collections import Counter

    extract_webnlg = import_benchmark("extract_webnlg")
    runs = [extract_webnlg.PairCounts(predicted=10, gold=20, right=Counter(directed=5), found=Counter(directed=5)),
            extract_webnlg.PairCounts(predicted=20, gold=20, right=Counter(directed=10), found=Counter(directed=10))]
    # F1: 2 * 0.5 * 0.25 / 0.75 = 0.333 and 0.5
    row = extract_webnlg.seeds_row("model", "directed", runs)
    assert row == ("| (subject, object) pairs, directed | model (2 models) | 15 | 20 | 0.500 | 0.375 | "
                   "**0.417** (0.333-0.500) |")
    assert extract_webnlg.seeds_row("model", "directed", runs[:1]) == runs[0].row("model", "directed")
