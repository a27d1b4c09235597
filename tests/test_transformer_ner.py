"""The transformer NER (`kgpipe ner train --transformer`): a context rule learned by a random tiny BERT, exact
character offsets, the model folder as a spaCy pipeline (kgpipe's loader, a fresh interpreter, the extract
stage, plain spacy.load when the entry point is installed), windowing, resuming, errors; one test trains the
packaged MiniLM on the packaged spaCy model for an epoch."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kgpipe.cli import app
from kgpipe.errors import ArtifactError, DependencyMissingError, WorkspaceError
from kgpipe.lm.token_tagger import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    Entity,
    TokenTagger,
    bio_tags,
    decode,
    viterbi,
    windows_for,
    word_shapes,
)
from kgpipe.nlp.labelled import read_labelled
from kgpipe.nlp.models import load_model, ner_labels
from kgpipe.nlp.transformer_ner import FACTORY
from kgpipe.nlp.transformer_train import TransformerTrainOptions, train_transformer_ner
from tests.conftest import REPO
from tests.test_extract import run_extract
from tests.tiny_encoder import make_tiny_bert
from tests.tiny_encoder import write_jsonl as write

PEOPLE = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Niklaus", "Tony"]
PLACES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def tokens_row(person: str, verb: str, place: str, surname: bool) -> dict:
    """'<person> [Smith] <verb> <place> .': the person is Peop; the place is Org after 'joined', Loc after
    'visited' (every name occurs with both verbs, so only the verb tells)."""
    who = [person, "Smith"] if surname else [person]
    tokens = [*who, verb, place, "."]
    return {"tokens": tokens, "entities": [
        {"start": 0, "end": len(who), "type": "Peop"},
        {"start": len(who) + 1, "end": len(who) + 2, "type": "Org" if verb == "joined" else "Loc"}]}


def text_row(person: str, verb: str, place: str) -> dict:
    """Raw text with punctuation glued to the names, entities as character spans."""
    text = f"({person}) {verb} {place}'s office, then left."
    p, q = text.index(person), text.index(place)
    return {"text": text, "entities": [{"start": p, "end": p + len(person), "type": "Peop"},
                                       {"start": q, "end": q + len(place), "type": "Org" if verb == "joined"
                                        else "Loc"}]}


def rows(people: list[str]) -> list[dict]:
    return [tokens_row(person, verb, place, surname=(k + j) % 2 == 0)
            for k, person in enumerate(people) for j, place in enumerate(PLACES) for verb in ("joined", "visited")]


def options(base: Path, **kw) -> TransformerTrainOptions:
    settings = {"base_model": str(base), "epochs": 6, "batch_size": 8, "learning_rate": 3e-3, "holdout": 0.0,
                "head_learning_rate": 1e-2, "warmup": 0.0, "dropout": 0.0, "seed": 1}
    settings.update(kw)
    return TransformerTrainOptions(**settings)


TEXTS = [text_row(p, v, q) for p in PEOPLE[:4] for q in PLACES[:3] for v in ("joined", "visited")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_base) -> Path:
    root = tmp_path_factory.mktemp("tner")
    train = read_labelled(write(root / "train.jsonl", rows(PEOPLE[:7]) + TEXTS))
    report = train_transformer_ner(train, root / "model", options(tiny_base, word_base_ner=True))
    assert report.labels == ["Loc", "Org", "Peop"] and report.best_epoch == 6
    assert report.epochs[-1].loss < 0.1 * report.epochs[0].loss
    return root / "model"


def ents(doc) -> list[tuple[int, int, str]]:
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]


def test_the_model_learns_a_context_rule_for_unseen_names(trained) -> None:
    nlp = load_model(str(trained), cache=False)
    test = read_labelled(write(trained.parent / "test.jsonl", rows(PEOPLE[7:])))
    from kgpipe.nlp.labelled import make_doc

    docs = list(nlp.pipe([make_doc(nlp, s) for s in test], batch_size=16))
    predicted = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in docs]
    gold = [[(e.start, e.end, e.type) for e in s.entities] for s in test]
    assert len(gold) == 36 and predicted == gold          # unseen names, one- and two-word people


def test_offsets_are_exact_character_spans_of_the_gold_mentions(trained) -> None:
    nlp = load_model(str(trained), cache=False)
    for row in TEXTS:
        doc = nlp(row["text"])
        assert ents(doc) == [(e["start"], e["end"], e["type"]) for e in row["entities"]], row["text"]
        assert all(doc.text[s:e] in PEOPLE + PLACES for s, e, _ in ents(doc))


def test_the_folder_is_the_base_spacy_model_with_its_ner_replaced(trained, tiny_base) -> None:
    nlp = load_model(str(trained), cache=False)
    # the stock NER stays, renamed, right before the transformer NER that reads its entities
    assert nlp.pipe_names == ["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "base_ner", "ner"]
    assert type(nlp.get_pipe("ner")).__name__ == "TransformerNer" and ner_labels(nlp) == ("Loc", "Org", "Peop")
    assert type(nlp.get_pipe("base_ner")).__name__ == "EntityRecognizer" and "PERSON" in nlp.get_pipe(
        "base_ner").labels
    doc = nlp("Ada joined Acme .")
    assert doc[1].lemma_ == "join" and doc[1].pos_ == "VERB" and doc[1].dep_     # tagger, parser kept
    config = (trained / "config.cfg").read_text(encoding="utf-8")
    assert f'factory = "{FACTORY}"' in config
    component = trained / "ner"
    assert {p.name for p in component.iterdir()} == {CONFIG_FILE, WEIGHTS_FILE, "tokenizer"}
    saved = json.loads((component / CONFIG_FILE).read_text(encoding="utf-8"))
    assert saved["labels"] == ["Loc", "Org", "Peop"] and saved["base_model"] == tiny_base.name  # a name, never a path
    assert saved["word_shapes"] is True and saved["constrained_decoding"] is True         # the new defaults
    assert saved["word_pos"] is True and saved["pos_tags"][12] == "PROPN"
    assert saved["word_base_ner"] is True and saved["base_ner_types"][13] == "PERSON"
    for path in trained.rglob("*"):  # no absolute path (the folder moves)
        if path.is_file() and path.suffix in (".json", ".cfg", ""):
            assert str(trained.parent) not in path.read_text(encoding="utf-8", errors="replace"), path
    meta = json.loads((trained / "meta.json").read_text(encoding="utf-8"))
    assert meta["kgpipe_training"]["mode"] == "transformer" and meta["kgpipe_training"]["epochs_run"] == 6
    assert not (trained / "checkpoint.pt").exists()


SCRIPT = """
import json, sys
from kgpipe.nlp.models import load_model
nlp = load_model(sys.argv[1])
print(json.dumps([[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in nlp.pipe(json.loads(sys.argv[2]))]))
"""


def test_a_fresh_interpreter_loads_a_moved_folder_offline_with_the_same_entities(trained, tmp_path) -> None:
    texts = [r["text"] for r in TEXTS] + ["Grace Smith visited Hooli .", "Nothing here at all."]
    nlp = load_model(str(trained), cache=False)
    here = [[list(x) for x in ents(doc)] for doc in nlp.pipe(texts)]
    moved = shutil.copytree(trained, tmp_path / "elsewhere")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(moved), json.dumps(texts)], capture_output=True,
                          text=True, env=env, check=True, timeout=120)
    assert json.loads(done.stdout) == here and here[-2] == [[0, 11, "Peop"], [20, 25, "Loc"]]


def test_plain_spacy_load_through_the_entry_point(trained) -> None:
    declared = {e.name for e in importlib.metadata.entry_points(group="spacy_factories")}
    if FACTORY not in declared:
        pytest.skip(f"the installed kgpipe does not declare the spacy_factories entry point {FACTORY} yet "
                    "(pyproject.toml does; reinstall the package to check plain spacy.load)")
    script = ("import json, sys, spacy; nlp = spacy.load(sys.argv[1]); "
              "print(json.dumps([(e.start_char, e.end_char, e.label_) for e in nlp('Ada joined Acme .').ents]))")
    done = subprocess.run([sys.executable, "-c", script, str(trained)], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=True, timeout=120)
    assert json.loads(done.stdout) == [[0, 3, "Peop"], [11, 15, "Org"]]


def test_the_extract_stage_uses_the_folder_as_spacy_model(trained, tmp_path) -> None:
    documents = [("d1", "Ada Smith joined Acme ."), ("d2", "Barbara visited Globex ."),
                 ("d3", "(Alan) joined Initech's office, then left.")]
    result, mentions, _ = run_extract(tmp_path / "run", documents, seeds=None, patterns=None,
                                      spacy_model=str(trained))
    found = {(m.doc_id, m.text, m.label, m.start_char) for m in mentions.itertuples()}
    assert found == {("d1", "Ada Smith", "Peop", 0), ("d1", "Acme", "Org", 17), ("d2", "Barbara", "Peop", 0),
                     ("d2", "Globex", "Loc", 16), ("d3", "Alan", "Peop", 1), ("d3", "Initech", "Org", 14)}
    for m in mentions.itertuples():
        assert dict(documents)[m.doc_id][m.start_char:m.end_char] == m.text
    assert result.summaries["extract"]["mentions_ner"] == 6


def test_words_are_read_once_from_overlapping_windows(tiny_base) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_base))
    words_text = ["Unbelievably", "long", "(", "SENTENCE", ")", "with", "Edsgerdijkstra", "'s", "1990", "words"] * 6
    text = " ".join(words_text)
    spans, position = [], 0
    for word in words_text:
        spans.append((position, position + len(word)))
        position += len(word) + 1
    tags = list(range(len(spans)))
    shapes = word_shapes(text, spans)
    assert len(set(shapes)) == 6
    windows = windows_for(tokenizer, text, spans, max_length=16, stride=4, tags=tags, features={"shape": shapes})
    assert len(windows) > 5 and all(len(w.input_ids) <= 16 for w in windows)
    read = sorted(word for w in windows for word in w.words)
    assert read == list(range(len(spans)))                        # every word exactly once
    encoded = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=16, stride=4,
                        return_overflowing_tokens=True)
    for w in windows:
        offsets = encoded["offset_mapping"][encoded["input_ids"].index(w.input_ids)]
        for word, pos, target, shape in zip(w.words, w.positions, w.targets, w.features["shape"], strict=True):
            assert offsets[pos][0] == spans[word][0] and target == word     # the word's first sub-word
            assert shape == shapes[word]
            assert 0 < pos < len(w.input_ids) - 1                           # never [CLS] / [SEP]
    for w in windows[:-1]:  # a word in the overlap is read from the window where it is further from the edge
        assert max(w.positions) < len(w.input_ids) - 2


def test_decoding_treats_a_stray_inside_tag_as_a_beginning_and_skips_untagged_words() -> None:
    labels = ["Loc", "Peop"]
    b_loc, i_loc, b_peop, i_peop = 1, 2, 3, 4
    assert decode([0, i_loc, i_loc, 0, b_peop, i_loc], labels) == [Entity(1, 3, "Loc"), Entity(4, 5, "Peop"),
                                                                   Entity(5, 6, "Loc")]
    assert decode([b_peop, None, i_peop, 0, b_loc, None, 0], labels) == [Entity(0, 3, "Peop"), Entity(4, 5, "Loc")]
    assert decode([b_peop, b_peop, i_peop], labels) == [Entity(0, 1, "Peop"), Entity(1, 3, "Peop")]
    assert bio_tags(5, [Entity(1, 3, "Peop"), Entity(4, 5, "Loc")], labels) == [0, b_peop, i_peop, 0, b_loc]


def test_an_interrupted_run_resumes_from_its_checkpoint_to_the_same_weights(tmp_path, tiny_base) -> None:
    train = read_labelled(write(tmp_path / "train.jsonl", rows(PEOPLE[:3])))
    settings = options(tiny_base, epochs=3, holdout=0.25)
    whole = train_transformer_ner(train, tmp_path / "whole", settings)

    def interrupt(score) -> None:
        if score.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_transformer_ner(train, tmp_path / "cut", settings, progress=interrupt)
    assert (tmp_path / "cut" / "checkpoint.pt").exists()
    with pytest.raises(WorkspaceError, match="other data or options"):
        train_transformer_ner(train, tmp_path / "cut", options(tiny_base, epochs=3, holdout=0.25, seed=2))
    resumed = train_transformer_ner(train, tmp_path / "cut", settings)
    assert resumed.resumed_after == 1 and [e.epoch for e in resumed.epochs] == [1, 2, 3]
    assert [(e.loss, e.dev_f) for e in resumed.epochs] == [(e.loss, e.dev_f) for e in whole.epochs]
    weights = [(tmp_path / run / "ner" / WEIGHTS_FILE).read_bytes() for run in ("whole", "cut")]
    assert weights[0] == weights[1]                               # deterministic for a seed, resumed or not
    other = train_transformer_ner(train, tmp_path / "other", options(tiny_base, epochs=3, holdout=0.25, seed=2))
    assert (tmp_path / "other" / "ner" / WEIGHTS_FILE).read_bytes() != weights[0] and other.epochs


def test_loading_names_what_is_wrong_with_a_model_folder(trained, tmp_path) -> None:
    with pytest.raises(DependencyMissingError, match="not found"):
        load_model(str(tmp_path / "missing"), cache=False)
    broken = shutil.copytree(trained, tmp_path / "broken")
    (broken / "ner" / WEIGHTS_FILE).write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match=f"{WEIGHTS_FILE}: weights do not match"):
        load_model(str(broken), cache=False)
    (broken / "ner" / CONFIG_FILE).unlink()
    with pytest.raises(DependencyMissingError, match="not a transformer NER folder"):
        load_model(str(broken), cache=False)


def test_ner_train_transformer_command(tmp_path, tiny_base) -> None:
    data = write(tmp_path / "train.jsonl", rows(PEOPLE[:2]))
    out = tmp_path / "model"
    result = CliRunner().invoke(app, ["ner", "train", str(data), str(out), "--transformer", "--base-model",
                                      str(tiny_base), "--epochs", "2", "--holdout", "0.25", "--lr", "3e-3",
                                      "--no-word-shapes"])
    assert result.exit_code == 0, result.output
    assert "epoch   1" in result.output and "epoch   2" in result.output and "validation F" in result.output
    assert "saved epoch" in result.output and (out / "ner" / WEIGHTS_FILE).is_file()
    saved = json.loads((out / "ner" / CONFIG_FILE).read_text(encoding="utf-8"))
    assert saved["word_shapes"] is False and saved["constrained_decoding"] is True
    assert saved["word_pos"] is True and saved["training"]["head_learning_rate"] == 1e-3       # the defaults
    assert saved["word_base_ner"] is False and "[components.base_ner]" not in (out / "config.cfg").read_text()
    other = tmp_path / "other"
    result = CliRunner().invoke(app, ["ner", "train", str(data), str(other), "--transformer", "--base-model",
                                      str(tiny_base), "--epochs", "1", "--holdout", "0", "--no-word-pos",
                                      "--head-lr", "0.02", "--word-base-ner"])
    assert result.exit_code == 0, result.output
    saved = json.loads((other / "ner" / CONFIG_FILE).read_text(encoding="utf-8"))
    assert saved["word_pos"] is False and saved["training"]["head_learning_rate"] == 0.02
    assert saved["word_base_ner"] is True and "[components.base_ner]" in (other / "config.cfg").read_text()
    result = CliRunner().invoke(app, ["ner", "train", str(data), str(other), "--transformer", "--base-model",
                                      str(tiny_base), "--epochs", "1", "--holdout", "0", "--head-lr", "0"])
    assert result.exit_code == 0, result.output
    meta = json.loads((other / "meta.json").read_text(encoding="utf-8"))["kgpipe_training"]
    assert meta["word_pos"] is True and meta["head_learning_rate"] is None                   # 0: the same as --lr


@pytest.mark.parametrize("case", ["missing file", "garbled line", "missing base model"])
def test_ner_train_transformer_errors_name_the_file_and_exit_3(tmp_path, tiny_base, case) -> None:
    data = write(tmp_path / "train.jsonl", rows(PEOPLE[:1]))
    base = str(tiny_base)
    if case == "missing file":
        data = tmp_path / "absent.jsonl"
    elif case == "garbled line":
        data.write_text(data.read_text(encoding="utf-8") + '{"tokens": ["a"], "entities": [{"start": 0}]}\n',
                        encoding="utf-8")
    else:
        base = str(tmp_path / "no-such-encoder")
    result = CliRunner().invoke(app, ["ner", "train", str(data), str(tmp_path / "out"), "--transformer",
                                      "--base-model", base, "--epochs", "1"])
    assert result.exit_code == 3, result.output
    expected = {"missing file": "absent.jsonl", "garbled line": "train.jsonl:13", "missing base model":
                "no-such-encoder"}[case]
    assert expected in result.output
    assert not (tmp_path / "out" / "ner").exists()


def test_the_packaged_minilm_trains_saves_and_loads(tmp_path) -> None:
    train = read_labelled(write(tmp_path / "train.jsonl", rows(PEOPLE[:1])[:6] + TEXTS[:2]))
    report = train_transformer_ner(train, tmp_path / "minilm", TransformerTrainOptions(epochs=1, holdout=0.0,
                                                                                       batch_size=8))
    assert report.best_epoch == 1 and report.labels == ["Loc", "Org", "Peop"]
    nlp = load_model(str(tmp_path / "minilm"), cache=False)
    saved = json.loads((tmp_path / "minilm" / "ner" / CONFIG_FILE).read_text(encoding="utf-8"))
    assert saved["base_model"] == "all-MiniLM-L6-v2" and saved["encoder"]["hidden_size"] == 384
    doc = nlp(TEXTS[0]["text"])
    assert all(doc.text[e.start_char:e.end_char] == e.text for e in doc.ents) and doc[0].pos_


def spans_of(text: str) -> list[tuple[int, int]]:
    """Whitespace-separated words' character spans (as spaCy's tokens of a pre-tokenised text)."""
    spans, position = [], 0
    for word in text.split(" "):
        spans.append((position, position + len(word)))
        position += len(word) + 1
    return spans


def test_word_shapes_of_a_crafted_text() -> None:
    # ids: 0 none; 1 + base shape (lower 0, Title 1, UPPER 2, mixed 3, numeric 4, has-digit 5, punct 6,
    # other 7); + 8 at the start of the text or of a sentence (after a word of '.!?' only)
    text = '" Ada met IBM in 1,990 . the iPhone F-16s cost $ 5 ! McDonald A.B. Paris 東京 ?! x'
    assert word_shapes(text, spans_of(text)) == [
        7, 10, 1, 3, 1, 5, 7, 9, 4, 6, 1, 7, 5, 7, 12, 3, 2, 8, 7, 9]


def test_viterbi_yields_valid_bio_and_the_argmax_when_that_is_valid() -> None:
    import torch

    o, b_loc, i_loc, b_peop, i_peop = range(5)
    valid = torch.tensor([[0.1, 2.0, 0.3, 0.2, 0.1],      # B-Loc
                          [0.1, 0.3, 2.0, 0.2, 0.4],      # I-Loc
                          [3.0, 0.3, 0.2, 0.2, 0.1],      # O
                          [0.1, 0.3, 0.2, 1.0, 0.9],      # B-Peop
                          [0.1, 0.3, 0.2, 0.8, 0.9]]).log_softmax(dim=-1)   # I-Peop
    assert viterbi(valid) == valid.argmax(dim=-1).tolist() == [b_loc, i_loc, o, b_peop, i_peop]
    # argmax: I-Loc first, I-Peop after B-Loc, I-Loc after O: each invalid
    invalid = torch.tensor([[0.0, 1.5, 2.0, 0.0, 0.0],
                            [0.0, 0.0, 1.0, 0.0, 2.0],
                            [2.0, 0.0, 0.0, 0.0, 0.0],
                            [0.0, 0.0, 2.0, 1.0, 0.0]]).log_softmax(dim=-1)
    path = viterbi(invalid)
    assert path == [b_loc, i_loc, o, b_peop]
    for previous, tag in zip([o, *path], path, strict=False):
        assert tag % 2 == 1 or tag == o or previous in (tag - 1, tag)
    scores = torch.randn(40, 7, generator=torch.Generator().manual_seed(3)).log_softmax(dim=-1)
    path = viterbi(scores)
    assert len(path) == 40 and path != scores.argmax(dim=-1).tolist()
    for previous, tag in zip([o, *path], path, strict=False):
        assert tag % 2 == 1 or tag == o or previous in (tag - 1, tag)


def test_prediction_decodes_by_viterbi_only_when_the_config_says_so(tiny_base) -> None:
    import torch

    tagger = TokenTagger.from_base(str(tiny_base), ["Loc", "Peop"], constrained_decoding=True)
    with torch.no_grad():   # scores independent of the words: O 0, B-Loc -10, I-Loc 5, B-Peop 3, I-Peop 0
        tagger.classifier.weight.zero_()
        tagger.classifier.bias.copy_(torch.tensor([0.0, -10.0, 5.0, 3.0, 0.0]))
    text = "one two three four"
    assert tagger.predict([(text, spans_of(text))]) == [[Entity(k, k + 1, "Peop") for k in range(4)]]
    tagger.config.constrained_decoding = False              # argmax: all I-Loc, decoded as one entity
    assert tagger.predict([(text, spans_of(text))]) == [[Entity(0, 4, "Loc")]]


TEXT = "Ada Smith joined Acme in Paris . IBM visited Globex"


def test_save_and_load_keep_word_shapes_decoding_and_predictions(tiny_base, tmp_path) -> None:
    import torch

    tagger = TokenTagger.from_base(str(tiny_base), ["Loc", "Org", "Peop"], features=["shape"],
                                   constrained_decoding=True).eval()
    tagger.save(tmp_path / "model")
    saved = json.loads((tmp_path / "model" / CONFIG_FILE).read_text(encoding="utf-8"))
    assert saved["word_shapes"] is True and saved["constrained_decoding"] is True
    loaded = TokenTagger.load(tmp_path / "model")
    assert (loaded.config.word_shapes, loaded.config.constrained_decoding, loaded.config.shape_dim) == (True, True, 16)
    shapes, saved_shapes = loaded.embedding("shape"), tagger.embedding("shape")
    assert shapes is not None and saved_shapes is not None and torch.equal(shapes.weight, saved_shapes.weight)

    def logits(model: TokenTagger, text: str) -> torch.Tensor:
        with torch.no_grad():
            batch = model.collate(model.windows(text, spans_of(text)))
            return model(batch.input_ids, batch.attention, batch.features)

    assert torch.equal(logits(loaded, TEXT), logits(tagger, TEXT))
    texts = [(TEXT, spans_of(TEXT)), (TEXT.lower(), spans_of(TEXT))]
    assert loaded.predict(texts) == tagger.predict(texts)
    # the uncased tokenizer gives both texts the same ids: only the shapes tell them apart
    assert not torch.allclose(logits(loaded, TEXT), logits(loaded, TEXT.lower()))


def test_a_folder_saved_before_the_options_loads_with_both_off(tiny_base, tmp_path) -> None:
    import torch

    tagger = TokenTagger.from_base(str(tiny_base), ["Loc", "Peop"]).eval()
    tagger.save(tmp_path / "old")
    config = tmp_path / "old" / CONFIG_FILE
    raw = json.loads(config.read_text(encoding="utf-8"))
    for key in ("word_shapes", "shape_dim", "constrained_decoding", "word_pos", "pos_dim", "pos_tags",
                "word_base_ner", "base_ner_dim", "base_ner_types"):
        del raw[key]
    config.write_text(json.dumps(raw), encoding="utf-8")
    loaded = TokenTagger.load(tmp_path / "old")
    assert loaded.config.word_shapes is False and loaded.config.constrained_decoding is False
    assert loaded.config.word_pos is False and loaded.config.word_base_ner is False and loaded.features == ()
    assert all(loaded.embedding(name) is None for name in ("shape", "pos", "base_ner"))
    assert loaded.classifier.in_features == 32
    assert not any(name.startswith(("shape_embedding", "pos_embedding", "base_ner_embedding"))
                   for name in loaded.state_dict())
    texts = [(TEXT, spans_of(TEXT)), (TEXT.lower(), spans_of(TEXT))]
    assert loaded.predict(texts) == tagger.predict(texts)
    with torch.no_grad():   # without shapes the case is invisible
        cased, lower = (loaded(*loaded.collate(loaded.windows(text, spans_of(text)))[:3])
                        for text in (TEXT, TEXT.lower()))
        assert torch.equal(cased, lower)
