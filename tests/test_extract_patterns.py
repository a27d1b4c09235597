"""Relation patterns: every pattern of the default library on a sentence of its own, what the extractor
adds to every pattern (relative pronouns, coordination, label compatibility), and pattern-file errors that
name the file, the line, the pattern id and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kgpipe.cli import app
from kgpipe.errors import InputError
from kgpipe.nlp.extractor import ExtractOptions, Extractor
from kgpipe.nlp.patterns import LoadedPattern, PatternLibrary, RelationPattern, load_pattern_file, load_patterns
from tests.conftest import REPO

DEFAULT_LIBRARY = load_patterns([REPO / "pipelines" / "patterns"])


def triples(nlp: Any, text: str, patterns: list[RelationPattern] | PatternLibrary) -> set[tuple[str, str, str, str]]:
    library = patterns if isinstance(patterns, PatternLibrary) else PatternLibrary(
        [LoadedPattern(p, "test", None) for p in patterns])
    from kgpipe.nlp.gazetteer import remove_gazetteer

    remove_gazetteer(nlp)
    (result,) = list(Extractor(nlp, ExtractOptions(), library).extract([("d", text)]))
    by_id = {m["mention_id"]: m["text"] for m in result.mentions}
    return {(by_id[r["subject_id"]], r["relation"], by_id[r["object_id"]], r["pattern_id"]) for r in result.relations}


# --- the default library ----------------------------------------------------------------------------------


def test_default_library_covers_the_common_relations_and_every_pattern_has_an_example():
    expected = {"works_for", "employed_by", "born_in", "lives_in", "located_in", "part_of", "founded_by",
                "member_of", "capital_of", "educated_at", "award_received", "spouse_of", "headquartered_in"}
    assert expected <= set(DEFAULT_LIBRARY.relations)
    assert {p.kind for p in DEFAULT_LIBRARY.patterns} == {"dependency", "tokens"}
    assert all(p.examples and p.subject.labels and p.object.labels for p in DEFAULT_LIBRARY.patterns)


@pytest.mark.parametrize("pattern", DEFAULT_LIBRARY.patterns, ids=lambda p: p.id)
def test_each_default_pattern_extracts_exactly_its_example(nlp, pattern):
    for example in pattern.examples:
        found = triples(nlp, example.text, [pattern])
        assert found == {(example.subject, pattern.relation, example.object, pattern.id)}, example.text


def test_relative_pronouns_and_coordination_are_resolved_for_every_pattern(nlp):
    found = {t[:3] for t in triples(nlp, "Albert Einstein, who was born in Ulm, worked for the Swiss Patent Office.",
                                    DEFAULT_LIBRARY)}
    assert found == {("Albert Einstein", "born_in", "Ulm"),
                     ("Albert Einstein", "works_for", "the Swiss Patent Office")}
    found = {t[:3] for t in triples(nlp, "Gordon Moore and Robert Noyce worked for Fairchild Semiconductor.",
                                    DEFAULT_LIBRARY)}
    assert found == {("Gordon Moore", "works_for", "Fairchild Semiconductor"),
                     ("Robert Noyce", "works_for", "Fairchild Semiconductor")}


def test_the_most_confident_pattern_wins_a_triple_found_twice(nlp):
    weak = DEFAULT_LIBRARY.by_id["born_in.passive"].pattern.model_copy(update={"id": "a.weak", "confidence": 0.1})
    strong = weak.model_copy(update={"id": "z.strong", "confidence": 0.95})
    assert {t[3] for t in triples(nlp, "Alan Turing was born in London.", [weak, strong])} == {"z.strong"}


def test_labels_are_compared_through_the_label_map(nlp):
    from spacy.tokens import Span

    born = DEFAULT_LIBRARY.by_id["born_in.passive"].pattern  # PERSON born in GPE/LOC
    extractor = Extractor(nlp, ExtractOptions(keep_unmapped_labels=True),
                          PatternLibrary([LoadedPattern(born, "test", None)]))
    with nlp.select_pipes(disable=["ner"]):
        doc = nlp("Ada Byron was born in London.")

    def relations_with(subject_label: str, object_label: str) -> int:
        doc.ents = [Span(doc, 0, 2, label=subject_label), Span(doc, 5, 6, label=object_label)]
        return len(extractor.extract_doc(doc, "d").relations)

    assert relations_with("PERSON", "GPE") == 1
    assert relations_with("Peop", "Loc") == 1       # a CoNLL04-trained model's labels: same KG types
    assert relations_with("ORG", "GPE") == 0
    assert relations_with("PERSON", "DATE") == 0    # no KG type at all


# --- pattern files --------------------------------------------------------------------------------------

GOOD = """\
patterns:
  - id: lives.verb
    relation: lives_in
    subject: {anchor: who, labels: [PERSON]}
    object: {anchor: where, labels: [GPE]}
    dependency:
      - {RIGHT_ID: verb, RIGHT_ATTRS: {LEMMA: live}}
      - {LEFT_ID: verb, REL_OP: ">", RIGHT_ID: who, RIGHT_ATTRS: {DEP: nsubj}}
      - {LEFT_ID: verb, REL_OP: ">", RIGHT_ID: in, RIGHT_ATTRS: {LOWER: in}}
      - {LEFT_ID: in, REL_OP: ">", RIGHT_ID: where, RIGHT_ATTRS: {DEP: pobj}}
"""

BAD = [  # (what to change in GOOD, line, field named in the error)
    (("LEMMA: live", "LEMA: live"), 7, "dependency[0].RIGHT_ATTRS.LEMA"),
    (("LEFT_ID: in, REL_OP", "LEFT_ID: at, REL_OP"), 10, "dependency[3].LEFT_ID"),
    (('REL_OP: ">", RIGHT_ID: who', 'REL_OP: "=>", RIGHT_ID: who'), 8, "dependency[1].REL_OP"),
    (("anchor: where,", "anchor: place,"), 5, "object.anchor"),
    (("    relation: lives_in\n", ""), 2, "relation"),
    (("labels: [GPE]", "labels: GPE"), 5, "object.labels"),
    (("    dependency:\n", "    tokens: []\n    dependency:\n"), 2, "dependency"),
    (("subject: {anchor: who,", "subject: {anchor: who, label: x,"), 4, "subject.label"),
    (("{RIGHT_ID: verb, RIGHT_ATTRS: {LEMMA: live}}", "{RIGHT_ID: verb, RIGHT_ATTRS: {LEMMA: {INN: [live]}}}"), 7,
     "dependency[0].RIGHT_ATTRS.LEMMA"),
]


@pytest.mark.parametrize(("change", "line", "field"), BAD, ids=[b[2] for b in BAD])
def test_pattern_file_errors_name_file_line_pattern_and_field(tmp_path, change, line, field):
    path = tmp_path / "my_patterns.yaml"
    path.write_text(GOOD.replace(*change), encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_pattern_file(path, display="patterns/my_patterns.yaml")
    message = str(caught.value)
    assert message.startswith(f"patterns/my_patterns.yaml:{line}: pattern 'lives.verb': field '{field}'"), message


def test_token_pattern_anchor_must_be_an_element_index(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text("patterns:\n  - id: t.x\n    relation: r\n    subject: {anchor: 0}\n    object: {anchor: 3}\n"
                    "    tokens: [{ENT_TYPE: GPE}, {ORTH: ','}, {ENT_TYPE: GPE}]\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"tokens.yaml:5: pattern 't.x': field 'object.anchor': '3' is not an index"):
        load_pattern_file(path, display="tokens.yaml")


def test_duplicate_ids_across_files_and_bad_yaml_are_errors(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(InputError, match=r"b.yaml:2: pattern 'lives.verb': field 'id': duplicate id .*a.yaml:2"):
        load_patterns([tmp_path])
    (tmp_path / "b.yaml").write_text("patterns: [\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"b\.yaml:2: invalid YAML"):
        load_patterns([tmp_path / "b.yaml"])
    (tmp_path / "b.yaml").write_text("rules: []\n", encoding="utf-8")
    with pytest.raises(InputError, match="unknown top-level key 'rules'"):
        load_patterns([tmp_path / "b.yaml"])


def test_patterns_check_command(tmp_path):
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["patterns", "check", str(REPO / "pipelines" / "patterns")])
    assert result.exit_code == 0 and f"{len(DEFAULT_LIBRARY)} valid pattern(s)" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("LEMMA: live", "LEMA: live"), encoding="utf-8")
    result = CliRunner().invoke(app, ["patterns", "check", str(bad)])
    assert result.exit_code == InputError.exit_code and "lives.verb" in result.output


def test_written_patterns_load_back_unchanged(tmp_path):
    from kgpipe.nlp.patterns import dump_patterns

    dump_patterns(DEFAULT_LIBRARY.patterns, tmp_path / "copy.yaml", header="a copy")
    again = load_patterns([tmp_path / "copy.yaml"])
    assert again.patterns == DEFAULT_LIBRARY.patterns
    assert (tmp_path / "copy.yaml").read_text(encoding="utf-8").startswith("# a copy\n")


def test_pattern_folder_is_read_in_sorted_order_and_only_yaml(tmp_path):
    for name in ("b.yaml", "a.yml"):
        (tmp_path / name).write_text(GOOD.replace("lives.verb", f"lives.{name[0]}"), encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a pattern file", encoding="utf-8")
    assert [p.id for p in load_patterns([Path(tmp_path)]).patterns] == ["lives.a", "lives.b"]


def test_composition_rules_derive_relations_through_located_in(nlp):
    library = PatternLibrary([DEFAULT_LIBRARY.by_id[i] for i in ("lives_in.live_in", "located_in.passive")])
    plain = Extractor(nlp, ExtractOptions(), library)
    composed = Extractor(nlp, ExtractOptions(compose={("lives_in", "located_in"): "lives_in"}), library)
    text = "Yoshua Bengio lives in Montreal, which is located in Quebec."
    (before,) = list(plain.extract([("d", text)]))
    (after,) = list(composed.extract([("d", text)]))
    names = {m["mention_id"]: m["text"] for m in after.mentions}
    found = {(names[r["subject_id"]], r["relation"], names[r["object_id"]]): r for r in after.relations}
    assert len(after.relations) == len(before.relations) + 1
    derived = found[("Yoshua Bengio", "lives_in", "Quebec")]
    assert derived["pattern_id"] == "lives_in.live_in+located_in.passive"
    assert derived["confidence"] == pytest.approx(0.85 * 0.9)


def test_one_relation_per_pair_keeps_the_most_confident_relation_in_either_direction(nlp):
    born = DEFAULT_LIBRARY.by_id["born_in.passive"].pattern
    lives = born.model_copy(update={"id": "lives.same_path", "relation": "lives_in", "confidence": 0.5})
    library = PatternLibrary([LoadedPattern(p, "test", None) for p in (born, lives)])
    text = "Alan Turing was born in London."
    both = {r["relation"] for r in next(Extractor(nlp, ExtractOptions(), library).extract([("d", text)])).relations}
    assert both == {"born_in", "lives_in"}
    (one,) = list(Extractor(nlp, ExtractOptions(one_relation_per_pair=True), library).extract([("d", text)]))
    assert [(r["relation"], r["pattern_id"]) for r in one.relations] == [("born_in", "born_in.passive")]
    # the reverse direction counts as the same pair
    reverse = born.model_copy(update={"id": "reverse", "relation": "birthplace_of", "confidence": 0.99,
                                      "subject": born.object, "object": born.subject})
    library = PatternLibrary([LoadedPattern(p, "test", None) for p in (born, reverse)])
    (one,) = list(Extractor(nlp, ExtractOptions(one_relation_per_pair=True), library).extract([("d", text)]))
    assert [r["pattern_id"] for r in one.relations] == ["reverse"]


# --- path-shaped patterns are matched by walking the parse ----------------------------------------------------


def test_path_of_accepts_paths_between_the_anchors_and_nothing_else():
    from kgpipe.nlp.paths import path_of

    def node(right: str, left: str | None = None, op: str = ">", **attrs: str) -> dict[str, Any]:
        return {"RIGHT_ID": right, "RIGHT_ATTRS": attrs} | ({"LEFT_ID": left, "REL_OP": op} if left else {})

    born = [node("verb", LEMMA="bear"), node("person", "verb", DEP="nsubjpass"), node("in", "verb", LOWER="in"),
            node("place", "in", DEP="pobj")]
    assert path_of(born, "person", "place") == ("verb", ["person"], ["in", "place"])
    appos = [*born[:2], node("place", "person", DEP="appos")]
    assert path_of(appos, "place", "verb") == ("verb", ["person", "place"], [])
    assert path_of([*born, node("neg", "verb", DEP="neg")], "person", "place") is None        # a node off the path
    assert path_of([*born[:3], node("place", "in", ">>", DEP="pobj")], "person", "place") is None  # another operator
    assert path_of([node("x"), node("a", "x"), node("b", "a"), node("c", "a")], "b", "c") is None  # top is not the LCA
    assert path_of(born, "person", "person") is None


def _distinct_dependency_matches(nlp: Any, library: PatternLibrary, docs: list[Any]) -> list[set[tuple]]:
    """What spaCy's DependencyMatcher finds for each path-shaped pattern, keeping matches whose nodes are
    distinct tokens (it also returns matches that reuse one token for two nodes)."""
    from spacy.matcher import DependencyMatcher

    from kgpipe.nlp.paths import path_of
    from kgpipe.nlp.patterns import _anchor_variants

    matcher = DependencyMatcher(nlp.vocab)
    positions = {}
    for pattern in library.patterns:
        if pattern.dependency and path_of(pattern.dependency, pattern.subject.anchor, pattern.object.anchor):
            ids = [n["RIGHT_ID"] for n in pattern.dependency]
            anchors = {pattern.subject.anchor, pattern.object.anchor}
            matcher.add(pattern.id, _anchor_variants(pattern.dependency, anchors))
            positions[nlp.vocab.strings[pattern.id]] = (pattern.id, ids.index(pattern.subject.anchor),
                                                       ids.index(pattern.object.anchor))
    found = []
    for doc in docs:
        matches = set()
        for key, tokens in matcher(doc):
            if len(set(tokens)) == len(tokens):
                name, s, o = positions[key]
                matches.add((name, tokens[s], tokens[o]))
        found.append(matches)
    return found


def test_the_path_index_finds_what_the_dependency_matcher_finds_on_simple_paths(nlp):
    """The default library plus back-off patterns learned from the texts themselves (dependency labels only,
    the loosest kind) on sentences with several entities and relative clauses: the path index and spaCy's
    DependencyMatcher (restricted to distinct tokens per node) give the same matches, and the extractor's
    matcher uses the index for every path-shaped pattern."""
    from kgpipe.nlp.learn import path_shape
    from kgpipe.nlp.paths import path_of
    from kgpipe.nlp.patterns import RelationMatcher

    texts = ["Albert Einstein, who was born in Ulm, worked for the Swiss Patent Office in Bern.",
             "Marie Curie and Pierre Curie lived in Paris, the capital of France, and taught at the Sorbonne.",
             "Apple, which Steve Jobs founded in Cupertino, hired Tim Cook from Compaq in 1998.",
             "John Wilkes Booth, who shot Abraham Lincoln at Ford's Theatre in Washington, fled to Virginia."]
    docs = list(nlp.pipe(texts))
    learned = []
    for doc in docs:
        for a in doc.ents:
            for b in doc.ents:
                for level in ("dependency", "skeleton", "lemma"):
                    shape = path_shape(a.root, b.root, level, 5) if a.root.i != b.root.i else None
                    if shape is not None:
                        learned.append(RelationPattern(
                            id=f"backoff.{len(learned)}", relation="r", subject={"anchor": "subject"},
                            object={"anchor": "object"}, dependency=shape.to_dependency()))
    # constraints that are not plain equalities go to spaCy's Matcher inside the index
    learned += [RelationPattern(id=f"other.{k}", relation="r", subject={"anchor": "s"}, object={"anchor": "o"},
                                dependency=[{"RIGHT_ID": "v", "RIGHT_ATTRS": {"POS": {"NOT_IN": ["NOUN"]}}},
                                            {"LEFT_ID": "v", "REL_OP": ">", "RIGHT_ID": "s", "RIGHT_ATTRS": subject},
                                            {"LEFT_ID": "v", "REL_OP": ">", "RIGHT_ID": "p", "RIGHT_ATTRS": {}},
                                            {"LEFT_ID": "p", "REL_OP": ">", "RIGHT_ID": "o",
                                             "RIGHT_ATTRS": {"LENGTH": {">=": 4}}}])
                for k, subject in enumerate([{"IS_TITLE": True}, {"DEP": {"REGEX": "^nsubj"}}])]
    library = PatternLibrary([*DEFAULT_LIBRARY.loaded, *[LoadedPattern(p, "test", None) for p in learned]])
    matcher = RelationMatcher(nlp.vocab, library)
    expected = _distinct_dependency_matches(nlp, library, docs)
    path_ids = {p.id for p in library.patterns
                if p.dependency is not None and path_of(p.dependency, p.subject.anchor, p.object.anchor)}
    got = [{(m.pattern.id, m.subject_token, m.object_token) for m in matcher(doc) if m.pattern.id in path_ids}
           for doc in docs]
    assert got == expected
    assert sum(map(len, expected)) > 2 * len(texts)    # the comparison is not vacuous
    assert {"other.0", "other.1"} <= {name for found in expected for name, _, _ in found}
    assert {p.id for p in learned} <= path_ids and len(path_ids) < len(DEFAULT_LIBRARY.patterns) + len(learned)
