"""The transformer NER's stock-NER feature: each word's tag from the base spaCy model's own NER (kept in the
folder as `base_ner`, before `ner`) reaches the model as a fixed id, training reads the tags the folder sets at
inference, the component's entities replace the stock ones, folders without the feature load as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kgpipe.errors import ArtifactError, KgpipeError
from kgpipe.lm.token_tagger import CONFIG_FILE, TokenTagger
from kgpipe.nlp.labelled import make_doc, read_labelled
from kgpipe.nlp.models import load_model, ner_labels
from kgpipe.nlp.transformer_ner import FACTORY, TransformerNer
from kgpipe.nlp.transformer_train import TransformerTrainOptions, _output_pipeline, _sentences, train_transformer_ner
from tests.tiny_encoder import feature_tagger, make_tiny_bert
from tests.tiny_encoder import write_jsonl as write

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WORDS = ["Ada", "met", "Acme", "staff"]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


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
    root = tmp_path_factory.mktemp("stock")
    train = read_labelled(write(root / "train.jsonl", rows()))
    train_transformer_ner(train, root / "model", settings(tiny_base, word_base_ner=True))
    return root / "model"


def test_stock_tags_map_to_fixed_ids_that_reach_the_model(tiny_base) -> None:
    import torch

    tagger = TokenTagger.from_base(str(tiny_base), ["Peop"], word_base_ner=True).eval()
    assert tagger.base_ner_embedding is not None and tagger.base_ner_embedding.num_embeddings == 2 + 2 * 19
    # none, O, the first type, PERSON (14th), a type the list lacks ('other', after the 18 listed)
    assert tagger.base_ner_ids(["", "O", "B-CARDINAL", "I-CARDINAL", "B-PERSON", "I-PERSON", "B-Misc",
                                "I-Misc"]) == [0, 1, 2, 3, 28, 29, 38, 39]
    text = "Unbelievably Ada met Bob"
    spans = [(0, 12), (13, 16), (17, 20), (21, 24)]
    stock = ["O", "B-PERSON", "O", "B-PERSON"]
    windows = tagger.windows(text, spans, base_ner=stock)
    batch = tagger.collate(windows)
    expected = [0] * batch.base_ner.shape[1]
    for position, tag in zip(windows[0].positions, stock, strict=True):
        expected[position] = tagger.base_ner_ids([tag])[0]
    assert batch.base_ner.tolist() == [expected] and windows[0].base_ner == [1, 28, 1, 28]
    with torch.no_grad():
        as_people = tagger(batch.input_ids, batch.attention, batch.shapes, batch.pos, batch.base_ner)
        other = tagger.collate(tagger.windows(text, spans, base_ner=["O", "B-ORG", "O", "B-GPE"]))
        as_others = tagger(other.input_ids, other.attention, other.shapes, other.pos, other.base_ner)
    assert torch.equal(batch.input_ids, other.input_ids) and not torch.allclose(as_people, as_others)
    with pytest.raises(ValueError, match="stock-NER tag"):
        tagger.windows(text, spans)
    with pytest.raises(ValueError, match="stock-NER tag"):
        tagger.predict([(text, spans)], base_ner=[stock[:3]])


def person_tagger(base: Path) -> TokenTagger:
    """A tagger whose scores depend on the stock tag alone: B-Peop where the stock NER says B-PERSON, else O."""
    return feature_tagger(base, "base_ner", "B-PERSON")


def doc_of(words: list[str], stock: list[str] | None):
    import spacy
    from spacy.tokens import Doc

    return Doc(spacy.blank("en").vocab, words=words, ents=stock)


def test_the_components_entities_replace_the_stock_ones(tiny_base, tmp_path) -> None:
    person_tagger(tiny_base).save(tmp_path / "component")
    component = TransformerNer("ner").from_disk(tmp_path / "component")
    doc = component(doc_of(WORDS, ["B-PERSON", "O", "B-ORG", "O"]))
    assert [(e.start, e.end, e.label_) for e in doc.ents] == [(0, 1, "Peop")]
    assert [(t.ent_iob_, t.ent_type_) for t in doc] == [("B", "Peop"), ("O", ""), ("O", ""), ("O", "")]
    # the stock NER finds an entity the model does not tag: nothing is left
    doc = component(doc_of(WORDS, ["O", "O", "B-GPE", "I-GPE"]))
    assert list(doc.ents) == [] and {(t.ent_iob_, t.ent_type_) for t in doc} == {("O", "")}
    with pytest.raises(ArtifactError, match=r"reads the base model's own entities.*'base_ner'") as caught:
        component(doc_of(WORDS, None))                                      # no stock NER ran
    assert str(tmp_path / "component") in str(caught.value) and "--no-word-base-ner" in (caught.value.hint or "")
    assert list(component(doc_of([], None)).ents) == []                      # nothing to read: no error


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


def test_training_reads_the_stock_tags_the_saved_folder_sets_at_inference(trained, tiny_base) -> None:
    sentences = read_labelled(write(trained.parent / "read.jsonl", rows()[:3]))
    training = _output_pipeline("auto", TokenTagger.from_base(str(tiny_base), ["Peop"], word_base_ner=True))
    read = _sentences(training, sentences, {}, base_ner=True)
    nlp = load_model(str(trained), cache=False)
    component = nlp.get_pipe("ner")
    assert isinstance(component, TransformerNer) and component.tagger is not None
    seen: list[list[str]] = []
    predict = component.tagger.predict

    def spy(texts, **kw):
        seen.extend(kw["base_ner"])
        return predict(texts, **kw)

    component.tagger.predict = spy  # type: ignore[method-assign]
    list(nlp.pipe((make_doc(nlp, s) for s in sentences), batch_size=2))
    assert read.base_ner == seen and len(seen) == 3
    assert seen[0][:2] == ["B-PERSON", "I-PERSON"] and all(all(tags) for tags in seen)
    # the gold comes from the labelled sentence, not from the stock entities on the same docs
    assert read.gold[0] == [(0, 2, "Peop"), (3, 4, "Loc")]
    assert _sentences(training, sentences, {}).base_ner is None


def test_a_folder_without_the_feature_loads_and_tags_as_before(tiny_base, tmp_path) -> None:
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
    assert component.tagger.config.word_base_ner is False and component.tagger.base_ner_embedding is None
    assert [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)] == before


def test_a_base_without_its_own_ner_is_refused_for_the_feature(tiny_base, tmp_path) -> None:
    import spacy

    spacy.blank("en").to_disk(tmp_path / "blank")
    train = read_labelled(write(tmp_path / "train.jsonl", rows()))
    options = settings(tiny_base, spacy_base=str(tmp_path / "blank"), word_pos=False, word_base_ner=True)
    with pytest.raises(KgpipeError, match="has no NER of its own") as caught:
        train_transformer_ner(train, tmp_path / "out", options)
    assert "--no-word-base-ner" in (caught.value.hint or "")
    report = train_transformer_ner(train, tmp_path / "out", settings(tiny_base, spacy_base=str(tmp_path / "blank"),
                                                                     word_pos=False, word_base_ner=False))
    assert report.best_epoch == 1
