"""Generation training of a knowledge decoder: triples verbalised with the tail as the only target, the head's
KG vector in the slots, so that two heads with the same label but different vectors get their own tails."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kgpipe.lm.decoder_model import DecoderInjectionConfig, KnowledgeDecoder
from kgpipe.lm.decoders import load_decoder, resolve_decoder
from kgpipe.lm.generation import (
    encode_generation,
    first_line,
    relation_words,
    tail_accuracy,
    train_generation,
    verbalise,
)
from kgpipe.lm.knowledge import KnowledgeTable
from kgpipe.lm.task import TrainConfig
from tests.tiny_encoder import make_tiny_llama

LABELS = {"ex:j1": "jordan", "ex:j2": "jordan", "ex:paris": "paris", "ex:rome": "rome"}
TRIPLES = [("ex:j1", "http://x.org/livesIn", "ex:paris"), ("ex:j2", "http://x.org/livesIn", "ex:rome")]


def test_relations_read_as_words() -> None:
    assert relation_words("http://x.org/awardReceived") == "award received"
    assert relation_words("http://x.org/birth_place") == "birth place"
    assert relation_words("http://dbpedia.org/ontology/ISBN_number") == "isbn number"


def test_verbalised_items_predict_only_the_tail(tmp_path: Path) -> None:
    _, tokenizer = load_decoder(resolve_decoder(str(make_tiny_llama(tmp_path / "llama"))))
    verbalised = verbalise([*TRIPLES, ("ex:j1", "http://x.org/r", "ex:nowhere")], LABELS)
    assert len(verbalised) == 2  # no label for the tail: left out
    example = verbalised[0]
    assert (example.prompt, example.target, example.head_span) == ("jordan | lives in ->", " paris", (0, 6))
    (item,) = encode_generation(tokenizer, [example], lambda e: 7, lambda r: 3)
    assert tokenizer.decode([item["input_ids"][p + 1] for p in item["predict_from"]]) == "paris [SEP]"
    assert item["targets"] == [item["input_ids"][p + 1] for p in item["predict_from"]]
    assert [tokenizer.decode([t]) for t, r in zip(item["input_ids"], item["entity_rows"], strict=True) if r == 7] \
        == ["jordan"]
    assert item["relation_row"] == 3
    assert encode_generation(tokenizer, [example], lambda e: 7, max_length=4) == []
    assert first_line(" paris\nand more") == "paris"


def test_the_head_vector_decides_the_tail_when_labels_are_the_same(tmp_path: Path, one_torch_thread) -> None:
    base, tokenizer = load_decoder(resolve_decoder(str(make_tiny_llama(tmp_path / "llama"))))
    torch.manual_seed(0)
    ids = list(LABELS)
    knowledge = KnowledgeTable(ids, torch.randn(len(ids), 8))
    decoder = KnowledgeDecoder(base, knowledge, DecoderInjectionConfig(mode="prefix", prefix_layers=2,
                                                                       adapter_hidden=64))
    examples = verbalise(TRIPLES, LABELS)
    items = encode_generation(tokenizer, examples, knowledge.index.__getitem__)
    losses = train_generation(decoder, items * 4, TrainConfig(epochs=30, batch_size=4, learning_rate=1e-2, seed=0))
    assert losses[-1] < losses[0]  # a random 32-dimension LM's logits are too flat for a low loss; argmax decides
    with_knowledge = tail_accuracy(decoder, tokenizer, examples, LABELS, knowledge.index.__getitem__,
                                   max_new_tokens=3)
    assert with_knowledge.generated == ["paris", "rome"] and with_knowledge.exact == 1.0
    # the same prompt twice: the base alone cannot tell the two heads apart
    without = tail_accuracy(decoder, tokenizer, examples, LABELS, knowledge.index.__getitem__, knowledge=False,
                            max_new_tokens=3)
    assert without.generated[0] == without.generated[1] and without.exact < 1.0


@pytest.mark.parametrize("dropout", [0.0, 1.0])
def test_relation_dropout_decides_whether_the_relation_slot_trains(tmp_path: Path, dropout: float,
                                                                   one_torch_thread) -> None:
    base, tokenizer = load_decoder(resolve_decoder(str(make_tiny_llama(tmp_path / "llama"))))
    torch.manual_seed(0)
    knowledge = KnowledgeTable(list(LABELS), torch.randn(4, 8))
    relations = KnowledgeTable(["http://x.org/livesIn"], torch.randn(1, 4))
    decoder = KnowledgeDecoder(base, knowledge, DecoderInjectionConfig(mode="prefix", prefix_layers=2),
                               relations=relations)
    items = encode_generation(tokenizer, verbalise(TRIPLES, LABELS), knowledge.index.__getitem__,
                              relations.index.__getitem__)
    before = decoder.prefix.relation_in.weight.clone()
    train_generation(decoder, items, TrainConfig(epochs=2, batch_size=2, learning_rate=1e-2), relation_dropout=dropout)
    assert torch.equal(decoder.prefix.relation_in.weight, before) == (dropout == 1.0)
