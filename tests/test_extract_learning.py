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
from kgpipe.nlp.learn import LearnOptions, _Pair, candidates, cross_validate, learn_patterns, path_shape, predict, rank
from kgpipe.nlp.patterns import load_patterns
from tests.test_extract import run_extract


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


def test_back_off_levels_keep_the_trigger_lemma_then_drop_content_words(nlp):
    doc = nlp("Ann Lee worked as an engineer for Acme Corp.")
    lee, corp = doc[1], doc[8]
    nodes = {level: {n["RIGHT_ID"]: n["RIGHT_ATTRS"] for n in path_shape(lee, corp, level, 6).to_dependency()}
             for level in ("lemma", "trigger", "skeleton", "dependency")}
    assert nodes["trigger"]["root"] == nodes["lemma"]["root"] == {"LEMMA": "work"}
    # below the trigger: function words keep their lemma, content words only their POS (trigger level),
    # their dependency label (skeleton) or nothing but it (dependency level, where even "for" is just ADP)
    inner = [k for k in nodes["lemma"] if k not in ("root", "subject", "object")]
    assert any(nodes["lemma"][k].get("LEMMA") == "for" for k in inner)
    assert all("LEMMA" not in nodes["trigger"][k] or nodes["trigger"][k]["LEMMA"] in ("for", "as")
               for k in inner)
    assert nodes["skeleton"]["root"] == {} and all("POS" not in a for a in nodes["skeleton"].values())
    assert all("LEMMA" not in a for a in nodes["dependency"].values())
    assert all(nodes[level]["subject"] == {"DEP": "nsubj"} for level in nodes)


def _pairs(spec: list[tuple[int, str | None, str]]) -> list[_Pair]:
    """Synthetic pairs: (sentence, gold label or None, path key); every pair is entity 0 -> entity 1."""
    return [_Pair(s, 0, 1, label, (("lemma", key, "Peop", "Org"),)) for s, label, key in spec]  # type: ignore[arg-type]


def test_the_most_confident_pattern_decides_a_pair_in_either_direction():
    pairs = [*_pairs([(0, "Work_For", "works")] * 3),
             _Pair(0, 1, 0, "Kill", (("lemma", "killed", "Org", "Peop"),)),  # type: ignore[arg-type]
             _Pair(1, 1, 0, None, (("lemma", "killed", "Org", "Peop"),))]  # type: ignore[arg-type]
    table = candidates(pairs)
    assert table[("lemma", "works", "Peop", "Org")].estimate == pytest.approx(0.8)
    assert table[("lemma", "killed", "Org", "Peop")].estimate == pytest.approx(0.5)
    sentence_zero = rank([p for p in pairs if p.sentence == 0], table)
    assert predict(sentence_zero, {}, (0.3, 1)) == {(0, 0, 1, "Work_For")}
    assert predict(sentence_zero, {"Work_For": (0.9, 1)}, (0.3, 1)) == {(0, 1, 0, "Kill")}


def test_cross_validation_chooses_thresholds_on_held_out_folds():
    # "works" is right 9 times of 10; "visits" is right 3 times of 10: the held-out folds reward keeping the
    # first and dropping the second, which a fixed threshold of 0.3 would keep
    spec = [(n, "Work_For", "works") for n in range(9)] + [(9, None, "works")]
    spec += [(10 + n, "Work_For" if n < 3 else None, "visits") for n in range(10)]
    chosen, cv = cross_validate(_pairs(spec), 20, folds=5)
    assert cv.folds == 5 and 0.3 < chosen["Work_For"][0] <= 0.85
    assert cv.tuned_f1 >= cv.default_f1 > 0.8
    assert cv.per_relation["Work_For"][0] > 0.8  # held-out precision: "visits" was dropped
    # no path recurs across folds: nothing can be scored, and the thresholds asked for stand
    unseen = _pairs([(n, "Work_For", f"path{n}") for n in range(10)])
    chosen, cv = cross_validate(unseen, 10, folds=5, fallback=(0.65, 2))
    assert chosen == {"Work_For": (0.65, 2)} and cv.tuned_f1 == 0.0


def test_learning_with_cross_validation_records_the_thresholds_it_used(nlp, tiny_file):
    sentences = read_labelled(tiny_file)
    _, fixed = learn_patterns(nlp, sentences, LearnOptions(min_precision=0.6, min_support=2))
    assert fixed.cv is None and fixed.thresholds == {"Live_In": (0.6, 2), "Work_For": (0.6, 2)}
    _, tuned = learn_patterns(nlp, sentences, LearnOptions(cv_folds=3, thresholds={"Live_In": (0.7, 1)}))
    assert tuned.cv is not None and tuned.cv.folds == 3
    assert tuned.thresholds["Live_In"] == (0.7, 1)  # given explicitly: not overridden by the tuning
    assert set(tuned.thresholds) == {"Live_In", "Work_For"}


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


def test_holdout_split_is_seeded_disjoint_and_never_empty():
    from kgpipe.nlp.train import split_holdout

    sentences = [object() for _ in range(20)]  # split_holdout only reorders items
    train, held = split_holdout(sentences, 0.1, seed=3)  # type: ignore[arg-type]
    assert len(held) == 2 and len(train) == 18 and not {id(s) for s in held} & {id(s) for s in train}
    assert split_holdout(sentences, 0.1, seed=3) == (train, held)  # type: ignore[arg-type]
    assert len(split_holdout(sentences[:2], 0.01, seed=0)[1]) == 1  # type: ignore[arg-type]
    assert split_holdout(sentences, 0.0, seed=0)[1] == []  # type: ignore[arg-type]


def test_ner_train_without_dev_stops_early_on_a_held_out_slice_of_train(tmp_path, tiny_file):
    model = tmp_path / "models" / "tiny_ner"
    result = CliRunner().invoke(app, ["ner", "train", str(tiny_file), str(model), "--holdout", "0.25",
                                      "--epochs", "1", "--max-minutes", "1"])
    assert result.exit_code == 0, result.output
    training = json.loads((model / "meta.json").read_text(encoding="utf-8"))["kgpipe_training"]
    assert (training["train_sentences"], training["dev_sentences"]) == (7, 2)
    assert training["validation"].startswith("held-out 0.25 of the training file (2 sentences")
    assert training["dev_ents_f"] is not None


WRONG = sentence("Dan Poe works for Nova Corp .", [(0, 2, "Peop"), (4, 6, "Org")], [(0, 1, "Work_For")])


def _lemma_pattern(patterns, relation="Work_For"):
    return next((p for p in patterns if p.relation == relation and p.stats["level"] == "lemma"), None)


def test_wrong_relations_count_against_the_patterns_that_would_give_them(nlp, tiny_file, tmp_path):
    sentences = read_labelled(tiny_file)
    options = LearnOptions(min_precision=0.6, min_support=2)
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(WRONG) + "\n", encoding="utf-8")
    patterns, report = learn_patterns(nlp, sentences, options, negatives=read_labelled(one))
    work = _lemma_pattern(patterns)
    assert report.negatives == 1 and report.pairs == learn_patterns(nlp, sentences, options)[1].pairs
    assert work.stats["support"] == 3 and work.stats["matches"] == 4 and work.confidence == round(4 / 6, 3)
    # two wrong: smoothed (3 + 1) / (5 + 2) < 0.6, the pattern is no longer kept
    two = tmp_path / "two.jsonl"
    two.write_text(json.dumps(WRONG) + "\n" + json.dumps(WRONG) + "\n", encoding="utf-8")
    assert _lemma_pattern(learn_patterns(nlp, sentences, options, negatives=read_labelled(two))[0]) is None
    # wrong for another relation: Work_For's patterns are untouched; cross-validation never holds negatives out
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({**WRONG, "relations": [{"head": 0, "tail": 1, "type": "Live_In"}]}) + "\n")
    patterns, report = learn_patterns(nlp, sentences, LearnOptions(min_precision=0.6, min_support=2, cv_folds=3),
                                      negatives=read_labelled(other))
    assert report.negatives == 1 and report.cv is not None
    assert _lemma_pattern(patterns).stats["matches"] == 3


def test_patterns_learn_takes_negatives(tmp_path, tiny_file):
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps(WRONG) + "\n" + json.dumps(WRONG) + "\n", encoding="utf-8")
    out = tmp_path / "learned.yaml"
    result = CliRunner().invoke(app, ["patterns", "learn", str(tiny_file), str(out), "--min-support", "2",
                                      "--negatives", str(wrong)])
    assert result.exit_code == 0, result.output
    assert "2 wrong relation(s) counted against them" in result.output
    assert "matches include 2 wrong relation(s) from wrong.jsonl" in out.read_text(encoding="utf-8")
    assert not any("work" in str(p.dependency) for p in load_patterns([out]).patterns
                   if p.stats["level"] == "lemma")
    wrong.write_text("{oops\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["patterns", "learn", str(tiny_file), str(out), "--negatives", str(wrong)])
    assert result.exit_code == 3 and "wrong.jsonl:1: not a labelled sentence" in result.output
