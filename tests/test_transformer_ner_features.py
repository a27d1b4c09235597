"""The transformer NER's word features (shape, part of speech, the base model's stock NER), each test run for
every feature it applies to: ids at each word's first sub-word change the logits, values reach the model
through the spaCy component and training as at inference, a missing value is refused, a save and load keeps
them, folders saved before this layout load strictly and tag the same; the stock NER kept in the folder; the
head learning rate (its own rate for the new layers, an encoder rate of 0 moves only them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kgpipe.errors import ArtifactError, KgpipeError
from kgpipe.lm.finetune import adamw_with_warmup
from kgpipe.lm.token_tagger import CONFIG_FILE, WEIGHTS_FILE, Entity, TokenTagger
from kgpipe.nlp.labelled import make_doc, read_labelled
from kgpipe.nlp.models import load_model, ner_labels
from kgpipe.nlp.transformer_ner import FACTORY, TransformerNer
from kgpipe.nlp.transformer_train import TransformerTrainOptions, _output_pipeline, _sentences, train_transformer_ner
from tests.tiny_encoder import feature_tagger, make_tiny_bert
from tests.tiny_encoder import write_jsonl as write

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PASSED = ["pos", "base_ner"]     # the features whose values the caller passes (shape is read from the text)
WORDS = ["Ada", "met", "Bob", "at", "noon"]
# per passed feature: the value that makes feature_tagger say B-Peop, the words' values with both names
# marked, the same words' values with neither, and the config's (flag, dim, vocabulary) fields
VALUES = {
    "pos": ("PROPN", ["PROPN", "VERB", "PROPN", "ADP", "NOUN"], ["NOUN", "VERB", "NOUN", "ADP", "NOUN"],
            ("word_pos", "pos_dim", "pos_tags")),
    "base_ner": ("B-PERSON", ["B-PERSON", "O", "B-PERSON", "O", "O"], ["B-ORG", "O", "B-GPE", "O", "B-TIME"],
                 ("word_base_ner", "base_ner_dim", "base_ner_types")),
}
MISSING = {"pos": (r"no component before it set token\.pos_", "--no-word-pos"),
           "base_ner": (r"reads the base model's own entities.*'base_ner'", "--no-word-base-ner")}
TEXT = "Unbelievably Ada met Bob"
SPANS = [(0, 12), (13, 16), (17, 20), (21, 24)]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def doc_of(words: list[str], feature: str, values: list[str] | None):
    """A Doc of `words` with each word's `feature` (token.pos_, or the stock entities' IOB tags) set."""
    import spacy
    from spacy.tokens import Doc

    vocab = spacy.blank("en").vocab
    return Doc(vocab, words=words, pos=values) if feature == "pos" else Doc(vocab, words=words, ents=values)


def spans_of(words: list[str]) -> tuple[str, list[tuple[int, int]]]:
    spans, position = [], 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + 1
    return " ".join(words), spans


# feature, the text and its passed values (None: read from the text), their ids, and another reading of the
# same sub-words (the uncased tokenizer cannot tell TEXT from its lower case: only the shapes can)
READINGS = [
    ("shape", TEXT, None, [10, 2, 1, 2], TEXT.lower(), None),
    ("pos", TEXT, ["ADV", "PROPN", "VERB", "PROPN"], [3, 13, 17, 13], TEXT, ["ADV", "NOUN", "VERB", "NOUN"]),
    ("base_ner", TEXT, ["O", "B-PERSON", "O", "B-PERSON"], [1, 28, 1, 28], TEXT, ["O", "B-ORG", "O", "B-GPE"]),
]


@pytest.mark.parametrize(("feature", "text", "values", "ids", "other_text", "other_values"), READINGS,
                         ids=[r[0] for r in READINGS])
def test_feature_ids_sit_at_each_words_first_sub_word_and_change_the_logits(
        tiny_base, feature, text, values, ids, other_text, other_values) -> None:
    import torch

    tagger = TokenTagger.from_base(str(tiny_base), ["Peop"], features=[feature]).eval()
    assert [f.name for f in tagger.features] == [feature]
    windows = tagger.windows(text, SPANS, features={feature: values} if values else None)
    batch = tagger.collate(windows)
    assert windows[0].features == {feature: ids} and list(batch.features) == [feature]
    expected = [0] * batch.input_ids.shape[1]
    for position, tag in zip(windows[0].positions, ids, strict=True):
        expected[position] = tag
    assert batch.features[feature].tolist() == [expected]
    assert sum(1 for i in expected if i) == 4 < len(windows[0].input_ids)     # sub-words after the first: 0
    other = tagger.collate(tagger.windows(other_text, SPANS,
                                          features={feature: other_values} if other_values else None))
    with torch.no_grad():
        first = tagger(batch.input_ids, batch.attention, batch.features)
        second = tagger(other.input_ids, other.attention, other.features)
        with pytest.raises(ValueError, match=rf"features\['{feature}'\]"):
            tagger(batch.input_ids, batch.attention, {})
    assert torch.equal(batch.input_ids, other.input_ids) and not torch.allclose(first, second)


@pytest.mark.parametrize("feature", PASSED)
def test_a_missing_or_short_feature_value_list_is_refused(tiny_base, feature) -> None:
    tagger = TokenTagger.from_base(str(tiny_base), ["Peop"], features=[feature])
    what = tagger.feature(feature).what
    values = READINGS[[r[0] for r in READINGS].index(feature)][2]
    with pytest.raises(ValueError, match=f"reads each word's {what}: 4 words, no values"):
        tagger.windows(TEXT, SPANS)
    with pytest.raises(ValueError, match=f"reads each word's {what}: 4 words, 3 values"):
        tagger.predict([(TEXT, SPANS)], features={feature: [values[:3]]})
    with pytest.raises(ValueError, match="1 texts, values of features"):
        tagger.predict([(TEXT, SPANS)], features={feature: [values, values]})
    with pytest.raises(ValueError, match="unknown word features"):
        tagger.windows(TEXT, SPANS, features={feature: values, "lemma": values})
    with pytest.raises(ValueError, match="unknown word features"):
        TokenTagger.from_base(str(tiny_base), ["Peop"], features=[feature, "lemma"])


def test_passed_values_map_to_fixed_ids(tiny_base) -> None:
    tagger = TokenTagger.from_base(str(tiny_base), ["Peop"], features=["shape", "pos", "base_ner"])
    sizes = {name: (e.num_embeddings, e.embedding_dim) for name in ("shape", "pos", "base_ner")
             if (e := tagger.embedding(name)) is not None}
    assert sizes == {"shape": (17, 16), "pos": (21, 16), "base_ner": (2 + 2 * 19, 16)}
    # none, O, the first type, PERSON (14th), a type the list lacks ('other', after the 18 listed)
    assert tagger.feature("base_ner").ids(["", "O", "B-CARDINAL", "I-CARDINAL", "B-PERSON", "I-PERSON", "B-Misc",
                                           "I-Misc"]) == [0, 1, 2, 3, 28, 29, 38, 39]
    assert tagger.feature("pos").ids(["", "ADJ", "PROPN", "SPACE", "propn"]) == [0, 1, 13, 20, 0]


@pytest.mark.parametrize("feature", PASSED)
def test_the_component_passes_each_words_feature_and_refuses_docs_without_it(tiny_base, tmp_path,
                                                                             feature) -> None:
    value, marked, unmarked, _ = VALUES[feature]
    feature_tagger(tiny_base, feature, value).save(tmp_path / "component")
    component = TransformerNer("ner").from_disk(tmp_path / "component")
    names, common = component(doc_of(WORDS, feature, marked)), component(doc_of(WORDS, feature, unmarked))
    assert [(e.start, e.end, e.label_) for e in names.ents] == [(0, 1, "Peop"), (2, 3, "Peop")]
    assert list(common.ents) == []
    piped = list(component.pipe([doc_of(WORDS, feature, unmarked), doc_of(WORDS, feature, marked)]))
    assert [[(e.start, e.end) for e in doc.ents] for doc in piped] == [[], [(0, 1), (2, 3)]]
    match, hint = MISSING[feature]
    with pytest.raises(ArtifactError, match=match) as caught:
        component(doc_of(WORDS, feature, None))
    assert str(tmp_path / "component") in str(caught.value) and hint in (caught.value.hint or "")
    assert list(component(doc_of([], feature, None)).ents) == []              # nothing to read: no error


@pytest.mark.parametrize("feature", PASSED)
def test_save_and_load_keep_the_feature_and_predictions(tiny_base, tmp_path, feature) -> None:
    import torch

    value, marked, unmarked, (flag, dim, vocabulary) = VALUES[feature]
    tagger = feature_tagger(tiny_base, feature, value)
    tagger.save(tmp_path / "model")
    saved = json.loads((tmp_path / "model" / CONFIG_FILE).read_text(encoding="utf-8"))
    assert saved[flag] is True and saved[dim] == 16 and value.removeprefix("B-") in saved[vocabulary]
    loaded = TokenTagger.load(tmp_path / "model")
    assert getattr(loaded.config, flag) is True and [f.name for f in loaded.features] == [feature]
    before, after = tagger.embedding(feature), loaded.embedding(feature)
    assert before is not None and after is not None and torch.equal(before.weight, after.weight)
    text, spans = spans_of(WORDS)
    found = loaded.predict([(text, spans), (text, spans)], features={feature: [marked, unmarked]})
    assert found == tagger.predict([(text, spans), (text, spans)], features={feature: [marked, unmarked]})
    assert found == [[Entity(0, 1, "Peop"), Entity(2, 3, "Peop")], []]


# What every folder saved so far holds for a tagger with all three features: the config's flat fields and
# these weights besides the encoder's (shape, POS, stock-NER columns of the classifier, in that order).
OLD_FIELDS = {"word_shapes", "shape_dim", "word_pos", "pos_dim", "pos_tags", "word_base_ner", "base_ner_dim",
              "base_ner_types"}
OLD_HEAD = {"classifier.weight": (3, 32 + 3 * 16), "classifier.bias": (3,), "shape_embedding.weight": (17, 16),
            "pos_embedding.weight": (21, 16), "base_ner_embedding.weight": (40, 16)}


def test_a_folder_of_the_old_layout_loads_strictly_and_tags_the_same(tiny_base, tmp_path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    torch.manual_seed(5)
    tagger = TokenTagger.from_base(str(tiny_base), ["Peop"], features=["shape", "pos", "base_ner"]).eval()
    hidden = tagger.encoder.config.hidden_size
    with torch.no_grad():   # B-Peop only from the POS embedding's first column: the column order matters
        tagger.classifier.weight.zero_()
        tagger.classifier.bias.copy_(torch.tensor([1.0, 0.0, -10.0]))
        tagger.classifier.weight[1, hidden + 16] = 10.0
        for name in ("shape", "pos", "base_ner"):
            embedding = tagger.embedding(name)
            assert embedding is not None
            embedding.weight.normal_(0.0, 0.01)
        pos = tagger.embedding("pos")
        assert pos is not None
        pos.weight[tagger.feature("pos").ids(["PROPN"])[0], 0] = 1.0
    tagger.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / CONFIG_FILE).read_text(encoding="utf-8"))
    assert set(config) >= OLD_FIELDS and all(config[f] is True for f in ("word_shapes", "word_pos", "word_base_ner"))
    weights = load_file(str(tmp_path / "model" / WEIGHTS_FILE))
    head = {name: tuple(w.shape) for name, w in weights.items() if not name.startswith("encoder.")}
    assert head == OLD_HEAD
    # the folder as the code before WordFeature wrote it: the same keys, in the order its state_dict gave them
    order = ["classifier.weight", "classifier.bias", "shape_embedding.weight", "pos_embedding.weight",
             "base_ner_embedding.weight"]
    save_file({**{n: w for n, w in weights.items() if n.startswith("encoder.")}, **{n: weights[n] for n in order}},
              str(tmp_path / "model" / WEIGHTS_FILE))
    loaded = TokenTagger.load(tmp_path / "model")        # load_state_dict(strict=True): any key off fails
    text, spans = spans_of(WORDS)
    marked, unmarked = VALUES["pos"][1], VALUES["pos"][2]
    given = {"pos": [marked, unmarked], "base_ner": [VALUES["base_ner"][1]] * 2}
    found = loaded.predict([(text, spans), (text, spans)], features=given)
    assert found == tagger.predict([(text, spans), (text, spans)], features=given)
    assert found == [[Entity(0, 1, "Peop"), Entity(2, 3, "Peop")], []]
    with torch.no_grad():
        batch = loaded.collate(loaded.windows(text, spans, features={"pos": marked, "base_ner": VALUES["base_ner"][1]}))
        assert torch.equal(loaded(*batch[:3]), tagger(*batch[:3]))
    renamed = {("embeddings.pos.weight" if n == "pos_embedding.weight" else n): w for n, w in weights.items()}
    save_file(renamed, str(tmp_path / "model" / WEIGHTS_FILE))
    with pytest.raises(ArtifactError, match="weights do not match"):     # strict: the key names are the format
        TokenTagger.load(tmp_path / "model")


# --- training reads the values the folder sets at inference -------------------------------------------------

def rows() -> list[dict]:
    people, places = ["Ada Lovelace", "Alan Turing", "Grace Hopper"], ["Paris", "London"]
    out = []
    for person in people:
        for place in places:
            tokens = [*person.split(), "visited", place, "last", "May", "."]
            out.append({"tokens": tokens, "entities": [{"start": 0, "end": 2, "type": "Peop"},
                                                       {"start": 3, "end": 4, "type": "Loc"}]})
    return out


def settings(base: Path, **kw) -> TransformerTrainOptions:
    return TransformerTrainOptions(**{"base_model": str(base), "epochs": 1, "batch_size": 4, "holdout": 0.0,
                                      "seed": 1, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_base) -> Path:
    """A folder whose NER reads shapes, parts of speech and the stock NER."""
    root = tmp_path_factory.mktemp("stock")
    train = read_labelled(write(root / "train.jsonl", rows()))
    train_transformer_ner(train, root / "model", settings(tiny_base, word_base_ner=True))
    return root / "model"


@pytest.mark.parametrize(("feature", "first"), [("pos", ["PROPN", "PROPN"]), ("base_ner", ["B-PERSON", "I-PERSON"])])
def test_training_reads_the_values_the_saved_folder_sets_at_inference(trained, tiny_base, feature, first) -> None:
    sentences = read_labelled(write(trained.parent / "read.jsonl", rows()[:3]))
    training = _output_pipeline("auto", TokenTagger.from_base(str(tiny_base), ["Peop"], features=PASSED))
    read = _sentences(training, sentences, {}, features=[feature])
    nlp = load_model(str(trained), cache=False)
    component = nlp.get_pipe("ner")
    assert isinstance(component, TransformerNer) and component.tagger is not None
    assert [f.name for f in component.tagger.features] == ["shape", "pos", "base_ner"]
    seen: list[list[str]] = []
    predict = component.tagger.predict

    def spy(texts, **kw):
        seen.extend(kw["features"][feature])
        return predict(texts, **kw)

    component.tagger.predict = spy  # type: ignore[method-assign]
    list(nlp.pipe((make_doc(nlp, s) for s in sentences), batch_size=2))
    assert list(read.features) == [feature] and read.features[feature] == seen and len(seen) == 3
    assert seen[0][:2] == first and all(all(values) for values in seen)
    # the gold comes from the labelled sentence, not from the stock entities on the same docs
    assert read.gold[0] == [(0, 2, "Peop"), (3, 4, "Loc")]
    assert _sentences(training, sentences, {}).features == {}


@pytest.mark.parametrize(("feature", "match", "flag"), [
    ("pos", "sets no part of speech before its ner", "--no-word-pos"),
    ("base_ner", "has no NER of its own", "--no-word-base-ner")])
def test_a_base_pipeline_that_cannot_set_a_feature_is_refused(tiny_base, tmp_path, feature, match, flag) -> None:
    import spacy

    spacy.blank("en").to_disk(tmp_path / "blank")
    train = read_labelled(write(tmp_path / "train.jsonl", rows()))
    on = {"word_pos": feature == "pos", "word_base_ner": feature == "base_ner"}
    with pytest.raises(KgpipeError, match=match) as caught:
        train_transformer_ner(train, tmp_path / "out", settings(tiny_base, spacy_base=str(tmp_path / "blank"), **on))
    assert flag in (caught.value.hint or "")
    report = train_transformer_ner(train, tmp_path / "out", settings(tiny_base, spacy_base=str(tmp_path / "blank"),
                                                                     word_pos=False, word_base_ner=False))
    assert report.best_epoch == 1


# --- the stock NER --------------------------------------------------------------------------------------------

def test_the_components_entities_replace_the_stock_ones(tiny_base) -> None:
    component = TransformerNer("ner")
    component.tagger = feature_tagger(tiny_base, "base_ner", "B-PERSON")
    words = ["Ada", "met", "Acme", "staff"]
    doc = component(doc_of(words, "base_ner", ["B-PERSON", "O", "B-ORG", "O"]))
    assert [(e.start, e.end, e.label_) for e in doc.ents] == [(0, 1, "Peop")]
    assert [(t.ent_iob_, t.ent_type_) for t in doc] == [("B", "Peop"), ("O", ""), ("O", ""), ("O", "")]
    # the stock NER finds an entity the model does not tag: nothing is left
    doc = component(doc_of(words, "base_ner", ["O", "O", "B-GPE", "I-GPE"]))
    assert list(doc.ents) == [] and {(t.ent_iob_, t.ent_type_) for t in doc} == {("O", "")}


def test_the_folder_keeps_the_stock_ner_before_its_own_and_load_model_keeps_both(trained) -> None:
    config = (trained / "config.cfg").read_text(encoding="utf-8")
    assert '[components.base_ner]\nfactory = "ner"' in config and f'factory = "{FACTORY}"' in config
    nlp = load_model(str(trained), cache=False)
    assert nlp.pipe_names[-2:] == ["base_ner", "ner"] and ner_labels(nlp) == ("Loc", "Peop")
    text = "Ada Lovelace visited IBM in Paris last May ."
    with nlp.select_pipes(disable=["ner"]):
        stock = {e.label_ for e in nlp(text).ents}
    assert {"PERSON", "DATE"} <= stock                                  # the stock NER runs in the folder
    assert {e.label_ for e in nlp(text).ents} <= {"Loc", "Peop"}        # and none of its labels come out


def test_a_folder_without_the_stock_feature_loads_and_tags_as_before(tiny_base, tmp_path) -> None:
    train = read_labelled(write(tmp_path / "train.jsonl", rows()))
    train_transformer_ner(train, tmp_path / "old", settings(tiny_base, word_base_ner=False))
    texts = ["Ada Lovelace visited Paris last May .", "Nothing here ."]
    before = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in load_model(str(tmp_path / "old"),
                                                                                  cache=False).pipe(texts)]
    config = tmp_path / "old" / "ner" / CONFIG_FILE
    raw = json.loads(config.read_text(encoding="utf-8"))
    assert raw["word_base_ner"] is False
    for key in ("word_base_ner", "base_ner_dim", "base_ner_types"):        # as saved before the feature
        del raw[key]
    config.write_text(json.dumps(raw), encoding="utf-8")
    nlp = load_model(str(tmp_path / "old"), cache=False)
    assert "base_ner" not in nlp.pipe_names and nlp.pipe_names[-1] == "ner"
    component = nlp.get_pipe("ner")
    assert isinstance(component, TransformerNer) and component.tagger is not None
    assert component.tagger.config.word_base_ner is False and component.tagger.embedding("base_ner") is None
    assert [f.name for f in component.tagger.features] == ["shape", "pos"]
    assert [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)] == before


# --- the head learning rate -----------------------------------------------------------------------------------

def names(tagger: TokenTagger, wanted: str) -> set[str]:
    return {n for n, _ in tagger.named_parameters() if n.startswith("encoder.") == (wanted == "encoder")}


def test_the_optimiser_gives_the_new_layers_their_own_rate_only_when_asked(tiny_base) -> None:
    tagger = TokenTagger.from_base(str(tiny_base), ["Peop"], features=["shape", "pos"])
    by_id = {id(p): n for n, p in tagger.named_parameters()}
    head = {"classifier.weight", "classifier.bias", "shape_embedding.weight", "pos_embedding.weight"}
    assert names(tagger, "head") == head

    optimiser, scheduler = adamw_with_warmup(tagger, 1e-4, 0.01, 0.5, 10, head_learning_rate=1e-3)
    rates: dict[str, float] = {}
    for group in optimiser.param_groups:
        rates.update({by_id[id(p)]: group["initial_lr"] for p in group["params"]})   # peak (lr: warm-up)
    assert len(rates) == sum(len(g["params"]) for g in optimiser.param_groups) == len(by_id)   # each once
    assert {n for n, r in rates.items() if r == 1e-3} == head
    assert {n for n, r in rates.items() if r == 1e-4} == names(tagger, "encoder")
    assert sorted({g["initial_lr"] for g in optimiser.param_groups}) == [1e-4, 1e-3]
    for _ in range(3):                                          # the schedule scales both rates alike
        optimiser.step()
        scheduler.step()
    assert sorted(round(g["lr"] / g["initial_lr"], 9) for g in optimiser.param_groups) == [0.8] * 4

    optimiser, _ = adamw_with_warmup(tagger, 1e-4, 0.01, 0.5, 10)
    assert [g["initial_lr"] for g in optimiser.param_groups] == [1e-4, 1e-4]       # one rate, as before
    assert sum(len(g["params"]) for g in optimiser.param_groups) == len(by_id)


def head_rows() -> list[dict]:
    people, places = ["Ada", "Alan", "Grace"], ["Acme", "Globex"]
    return [{"tokens": [p, verb, q, "."], "entities": [{"start": 0, "end": 1, "type": "Peop"},
                                                        {"start": 2, "end": 3, "type": "Loc"}]}
            for p in people for q in places for verb in ("joined", "visited")]


def test_with_an_encoder_rate_of_zero_training_moves_only_the_new_layers(tiny_base, tmp_path) -> None:
    from safetensors.torch import load_file

    train = read_labelled(write(tmp_path / "train.jsonl", head_rows()))
    common = {"base_model": str(tiny_base), "epochs": 1, "batch_size": 4, "learning_rate": 0.0,
              "holdout": 0.0, "warmup": 0.0, "seed": 1}
    train_transformer_ner(train, tmp_path / "head", TransformerTrainOptions(**common, head_learning_rate=1e-2))
    train_transformer_ner(train, tmp_path / "same", TransformerTrainOptions(**common, head_learning_rate=None))
    base = load_file(str(tiny_base / "model.safetensors"))
    for run in ("head", "same"):
        weights = load_file(str(tmp_path / run / "ner" / WEIGHTS_FILE))
        encoder = {n.removeprefix("encoder."): w for n, w in weights.items() if n.startswith("encoder.")}
        assert encoder.keys() == base.keys() and all(encoder[n].equal(base[n]) for n in base)
    moved, kept = (load_file(str(tmp_path / run / "ner" / WEIGHTS_FILE)) for run in ("head", "same"))
    for name in ("classifier.weight", "pos_embedding.weight", "shape_embedding.weight"):
        assert not moved[name].equal(kept[name]), name       # the same initial weights (seed), moved by one
