"""Learning from labelled sentences: pattern induction from shortest dependency paths (kept by smoothed
training precision), the pattern file it writes being usable by the extract stage, and `kgpipe ner train`
producing a model folder the stage loads through `spacy_model: FOLDER`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kgpipe.cli import app
from kgpipe.errors import InputError
from kgpipe.nlp.labelled import read_labelled
from kgpipe.nlp.learn import LearnOptions, learn_patterns, path_shape
from kgpipe.nlp.patterns import load_patterns
from tests.test_extract import nlp, run_extract  # noqa: F401  (nlp: the session's spaCy model fixture)


def sentence(text: str, entities: list[tuple[int, int, str]], relations: list[tuple[int, int, str]] = ()
             ) -> dict[str, Any]:  # type: ignore[assignment]
    tokens = text.split()
    return {"tokens": tokens, "entities": [{"start": s, "end": e, "type": t, "text": " ".join(tokens[s:e])}
                                           for s, e, t in entities],
            "relations": [{"head": h, "tail": t, "type": r} for h, t, r in relations]}


TINY = [
    sentence("Ann Lee works for Acme Corp .", [(0, 2, "Peop"), (4, 6, "Org")], [(0, 1, "Work_For")]),
    sentence("Bob Stone works for Zenith Labs .", [(0, 2, "Peop"), (4, 6, "Org")], [(0, 1, "Work_For")]),
    sentence("Carla Diaz works for Orbit Inc. today .", [(0, 2, "Peop"), (4, 6, "Org")], [(0, 1, "Work_For")]),
    sentence("Hal Kim lives in Boston .", [(0, 2, "Peop"), (4, 5, "Loc")], [(0, 1, "Live_In")]),
    sentence("Ian Moss lives in Denver .", [(0, 2, "Peop"), (4, 5, "Loc")], [(0, 1, "Live_In")]),
    # the same path with and without the relation: 1 of 2, smoothed 2/4 < 0.6, not kept
    sentence("Jo Park joined Umbrella Corp .", [(0, 2, "Peop"), (3, 5, "Org")], [(0, 1, "Work_For")]),
    sentence("Kim Wu joined Hooli Inc. protests .", [(0, 2, "Peop"), (3, 5, "Org")]),
    # never related
    sentence("Fay Gold visited Globex Corp .", [(0, 2, "Peop"), (3, 5, "Org")]),
    sentence("Gil Ray visited Initech Corp .", [(0, 2, "Peop"), (3, 5, "Org")]),
]


@pytest.fixture()
def tiny_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in TINY), encoding="utf-8")
    return path


def test_shortest_path_between_entity_heads_generalises_over_lemmas(nlp):
    doc = nlp("Ann Lee worked for Acme Corp.")
    lee, corp = doc[1], doc[5]
    shape = path_shape(lee, corp, "lemma", max_edges=4)
    assert shape.to_dependency() == [
        {"RIGHT_ID": "root", "RIGHT_ATTRS": {"LEMMA": "work"}},
        {"LEFT_ID": "root", "REL_OP": ">", "RIGHT_ID": "subject", "RIGHT_ATTRS": {"DEP": "nsubj"}},
        {"LEFT_ID": "root", "REL_OP": ">", "RIGHT_ID": "object_0", "RIGHT_ATTRS": {"DEP": "prep", "LEMMA": "for"}},
        {"LEFT_ID": "object_0", "REL_OP": ">", "RIGHT_ID": "object", "RIGHT_ATTRS": {"DEP": "pobj"}},
    ]
    function = path_shape(lee, corp, "function", max_edges=4).to_dependency()
    assert function[0]["RIGHT_ATTRS"] == {"POS": "VERB"} and function[2]["RIGHT_ATTRS"]["LEMMA"] == "for"
    assert path_shape(lee, corp, "lemma", max_edges=2) is None


def test_learning_keeps_precise_paths_and_drops_ambiguous_ones(nlp, tiny_file):
    patterns, report = learn_patterns(nlp, read_labelled(tiny_file), LearnOptions(min_precision=0.6, min_support=2))
    lemmas = {(p.relation, p.stats["level"]): {n["RIGHT_ATTRS"].get("LEMMA") for n in p.dependency}
              for p in patterns}
    assert {"work", "for"} <= lemmas[("Work_For", "lemma")] and {"live", "in"} <= lemmas[("Live_In", "lemma")]
    assert not any("join" in lem or "visit" in lem for lem in lemmas.values())
    work = next(p for p in patterns if p.relation == "Work_For" and p.stats["level"] == "lemma")
    assert work.stats["support"] == work.stats["matches"] == 3 and work.confidence == pytest.approx(0.8)
    assert (work.subject.labels, work.object.labels) == (("Peop",), ("Org",))
    assert report.coverage["Work_For"] == (3, 4) and report.coverage["Live_In"] == (2, 2)


def test_learned_pattern_file_drives_the_extract_stage(tmp_path, tiny_file):
    out = tmp_path / "learned" / "conll.yaml"
    result = CliRunner().invoke(app, ["patterns", "learn", str(tiny_file), str(out), "--min-support", "2",
                                      "--relation", "Work_For=works_for", "--relation", "Live_In=lives_in"])
    assert result.exit_code == 0, result.output
    library = load_patterns([out])
    assert set(library.relations) == {"works_for", "lives_in"}
    assert out.read_text(encoding="utf-8").startswith("# Learned by `kgpipe patterns learn` from tiny.jsonl")
    _, mentions, relations = run_extract(tmp_path / "run", [("d", "Jane Smith works for Microsoft. "
                                                                  "John Brown lives in Chicago.")],
                                         seeds=None, patterns=out)
    texts = mentions.set_index("mention_id")["text"]
    found = {(texts[r.subject_id], r.relation, texts[r.object_id]) for r in relations.itertuples()}
    assert found == {("Jane Smith", "works_for", "Microsoft"), ("John Brown", "lives_in", "Chicago")}
    assert relations["pattern_id"].str.startswith("learned.").all()


def test_malformed_labelled_data_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(TINY[0]) + "\n" + '{"tokens": ["a"], "entities": [{"start": 0, "end": 5}]}\n',
                    encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.jsonl:2: not a labelled sentence"):
        read_labelled(path)


def test_ner_train_writes_a_model_the_stage_can_load(tmp_path, tiny_file):
    model = tmp_path / "models" / "tiny_ner"
    result = CliRunner().invoke(app, ["ner", "train", str(tiny_file), str(model), "--dev", str(tiny_file),
                                      "--epochs", "2", "--max-minutes", "1"])
    assert result.exit_code == 0, result.output
    meta = json.loads((model / "meta.json").read_text(encoding="utf-8"))
    assert meta["kgpipe_training"]["labels"] == ["Loc", "Org", "Peop"]
    assert meta["kgpipe_training"]["epochs_run"] == 2 and meta["kgpipe_training"]["best_epoch"] in (1, 2)
    result, mentions, _ = run_extract(tmp_path / "run", [("d", "Ann Lee works for Acme Corp in Boston.")],
                                      seeds=None, patterns=None, model=model)  # deps.model: a tracked folder
    assert result.summaries["extract"]["model"] == meta["name"]
    _, by_param, _ = run_extract(tmp_path / "run2", [("d", "Ann Lee works for Acme Corp in Boston.")],
                                 seeds=None, patterns=None, spacy_model=str(model))
    assert by_param.equals(mentions)
    from kgpipe.nlp.models import load_model

    trained = load_model(str(model))
    assert {"Peop", "Org", "Loc"} <= set(trained.get_pipe("ner").labels)
    assert trained.pipe_names == ["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "ner"]
    assert set(mentions["label"]) <= set(trained.get_pipe("ner").labels)
