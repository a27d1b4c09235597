"""The transformer NER's part-of-speech feature and the head learning rate: POS ids from token.pos_ reach the
model through the spaCy component, survive a save and load, are off for folders saved before them; the
optimiser's parameter groups; a training run whose encoder rate is 0 moves only the new layers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kgpipe.errors import ArtifactError, KgpipeError
from kgpipe.lm.finetune import adamw_with_warmup
from kgpipe.lm.token_tagger import CONFIG_FILE, WEIGHTS_FILE, Entity, TokenTagger
from kgpipe.nlp.labelled import read_labelled
from kgpipe.nlp.transformer_ner import TransformerNer
from kgpipe.nlp.transformer_train import TransformerTrainOptions, train_transformer_ner
from tests.tiny_encoder import feature_tagger, make_tiny_bert
from tests.tiny_encoder import write_jsonl as write

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WORDS = ["Ada", "met", "Bob", "at", "noon"]
NAMES = ["PROPN", "VERB", "PROPN", "ADP", "NOUN"]
COMMON = ["NOUN", "VERB", "NOUN", "ADP", "NOUN"]      # the same words, only their parts of speech differ


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def propn_tagger(base: Path) -> TokenTagger:
    """A tagger whose scores depend on the part of speech alone: B-Peop for a PROPN word, O for any other."""
    return feature_tagger(base, "pos", "PROPN")


def doc_of(words: list[str], pos: list[str] | None):
    import spacy
    from spacy.tokens import Doc

    return Doc(spacy.blank("en").vocab, words=words, pos=pos)


def test_the_component_gives_the_model_each_words_part_of_speech(tiny_base) -> None:
    component = TransformerNer("ner")
    component.tagger = propn_tagger(tiny_base)
    names, common = component(doc_of(WORDS, NAMES)), component(doc_of(WORDS, COMMON))
    assert [(e.start, e.end, e.label_) for e in names.ents] == [(0, 1, "Peop"), (2, 3, "Peop")]
    assert list(common.ents) == []
    assert [(e.start, e.end) for e in list(component.pipe([doc_of(WORDS, COMMON), doc_of(WORDS, NAMES)]))[1].ents] \
        == [(0, 1), (2, 3)]
    with pytest.raises(ArtifactError, match=r"no component before it set token\.pos_"):
        component(doc_of(WORDS, None))
    assert list(component(doc_of([], None)).ents) == []                       # nothing to read: no error


def test_pos_ids_sit_at_each_words_first_sub_word_and_change_the_logits(tiny_base) -> None:
    import torch

    tagger = TokenTagger.from_base(str(tiny_base), ["Peop"], word_pos=True).eval()
    text = "Unbelievably Ada met Bob"
    spans = [(0, 12), (13, 16), (17, 20), (21, 24)]
    pos = ["ADV", "PROPN", "VERB", "PROPN"]
    windows = tagger.windows(text, spans, pos=pos)
    batch = tagger.collate(windows)
    expected = [0] * batch.pos.shape[1]
    for position, tag in zip(windows[0].positions, pos, strict=True):
        expected[position] = tagger.pos_ids([tag])[0]
    assert batch.pos.tolist() == [expected] and windows[0].pos == [3, 13, 17, 13]
    with torch.no_grad():
        as_names = tagger(batch.input_ids, batch.attention, batch.shapes, batch.pos)
        other = tagger.collate(tagger.windows(text, spans, pos=["ADV", "NOUN", "VERB", "NOUN"]))
        as_nouns = tagger(other.input_ids, other.attention, other.shapes, other.pos)
    assert torch.equal(batch.input_ids, other.input_ids) and not torch.allclose(as_names, as_nouns)
    with pytest.raises(ValueError, match="part of speech"):
        tagger.windows(text, spans)
    with pytest.raises(ValueError, match="part of speech"):
        tagger.predict([(text, spans)], pos=[pos[:3]])


def test_save_and_load_keep_the_pos_feature_and_predictions(tiny_base, tmp_path) -> None:
    import torch

    tagger = propn_tagger(tiny_base)
    tagger.save(tmp_path / "model")
    saved = json.loads((tmp_path / "model" / CONFIG_FILE).read_text(encoding="utf-8"))
    assert saved["word_pos"] is True and saved["pos_dim"] == 16 and "PROPN" in saved["pos_tags"]
    loaded = TokenTagger.load(tmp_path / "model")
    assert loaded.config.word_pos is True and loaded.pos_embedding is not None and tagger.pos_embedding is not None
    assert torch.equal(loaded.pos_embedding.weight, tagger.pos_embedding.weight)
    text = " ".join(WORDS)
    spans = [(d.idx, d.idx + len(d)) for d in doc_of(WORDS, None)]
    found = loaded.predict([(text, spans), (text, spans)], pos=[NAMES, COMMON])
    assert found == tagger.predict([(text, spans), (text, spans)], pos=[NAMES, COMMON])
    assert found == [[Entity(0, 1, "Peop"), Entity(2, 3, "Peop")], []]


def names(tagger: TokenTagger, wanted: str) -> set[str]:
    return {n for n, _ in tagger.named_parameters() if n.startswith("encoder.") == (wanted == "encoder")}


def test_the_optimiser_gives_the_new_layers_their_own_rate_only_when_asked(tiny_base) -> None:
    tagger = TokenTagger.from_base(str(tiny_base), ["Peop"], word_shapes=True, word_pos=True)
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


def rows() -> list[dict]:
    people, places = ["Ada", "Alan", "Grace"], ["Acme", "Globex"]
    return [{"tokens": [p, verb, q, "."], "entities": [{"start": 0, "end": 1, "type": "Peop"},
                                                        {"start": 2, "end": 3, "type": "Loc"}]}
            for p in people for q in places for verb in ("joined", "visited")]


def test_with_an_encoder_rate_of_zero_training_moves_only_the_new_layers(tiny_base, tmp_path) -> None:
    from safetensors.torch import load_file

    train = read_labelled(write(tmp_path / "train.jsonl", rows()))
    settings = {"base_model": str(tiny_base), "epochs": 1, "batch_size": 4, "learning_rate": 0.0,
                "holdout": 0.0, "warmup": 0.0, "seed": 1}
    train_transformer_ner(train, tmp_path / "head", TransformerTrainOptions(**settings, head_learning_rate=1e-2))
    train_transformer_ner(train, tmp_path / "same", TransformerTrainOptions(**settings, head_learning_rate=None))
    base = load_file(str(tiny_base / "model.safetensors"))
    for run in ("head", "same"):
        weights = load_file(str(tmp_path / run / "ner" / WEIGHTS_FILE))
        encoder = {n.removeprefix("encoder."): w for n, w in weights.items() if n.startswith("encoder.")}
        assert encoder.keys() == base.keys() and all(encoder[n].equal(base[n]) for n in base)
    moved, kept = (load_file(str(tmp_path / run / "ner" / WEIGHTS_FILE)) for run in ("head", "same"))
    for name in ("classifier.weight", "pos_embedding.weight", "shape_embedding.weight"):
        assert not moved[name].equal(kept[name]), name       # the same initial weights (seed), moved by one


def test_a_base_pipeline_without_a_tagger_is_refused_for_the_pos_feature(tiny_base, tmp_path) -> None:
    import spacy

    spacy.blank("en").to_disk(tmp_path / "blank")
    train = read_labelled(write(tmp_path / "train.jsonl", rows()))
    settings = {"base_model": str(tiny_base), "epochs": 1, "holdout": 0.0, "spacy_base": str(tmp_path / "blank"),
                "word_base_ner": False}       # a blank base has no NER either (see test_transformer_ner_base_ner)
    with pytest.raises(KgpipeError, match="sets no part of speech before its ner") as caught:
        train_transformer_ner(train, tmp_path / "out", TransformerTrainOptions(**settings))
    assert "--no-word-pos" in (caught.value.hint or "")
    report = train_transformer_ner(train, tmp_path / "out", TransformerTrainOptions(**settings, word_pos=False))
    assert report.best_epoch == 1
