"""The relation-classification task: file reading, encoding with entity rows, training and metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from kgpipe.errors import InputError
from kgpipe.lm.encoder import InjectionConfig, KnowledgeEnhancedEncoder, resolve_base_model
from kgpipe.lm.knowledge import KnowledgeTable
from kgpipe.lm.task import (
    RelationExample,
    SpanPairClassifier,
    TrainConfig,
    accuracy_macro_f1,
    collate,
    encode_examples,
    predict,
    read_examples,
    train_classifier,
)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_base_model("all-MiniLM-L6-v2"))


def example(text: str, subj: str, obj: str, label: str, s_ent=None, o_ent=None) -> RelationExample:
    s, o = text.index(subj), text.index(obj)
    return RelationExample(text, (s, s + len(subj)), (o, o + len(obj)), label, s_ent, o_ent)


def test_task_file_errors_name_the_line(tmp_path: Path) -> None:
    good = {"text": "Ada met Alan.", "subject": [0, 3], "object": [8, 12], "label": "knows"}
    path = tmp_path / "task.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "object": [8, 40]}) + "\n")
    with pytest.raises(InputError, match=r"task.jsonl:3: span \[8, 40\] is outside the text"):
        read_examples(path)
    path.write_text(json.dumps(good) + "\n{oops\n")
    with pytest.raises(InputError, match=r"task.jsonl:2: not a task example"):
        read_examples(path)
    path.write_text(json.dumps(good) + "\n")
    assert read_examples(path)[0].object == (8, 12)


def test_encoding_marks_spans_and_entity_rows_even_for_long_texts(tokenizer) -> None:
    long = "Filler words go here. " * 60 + "Marie Curie was born in Warsaw."
    examples = [example("Marie Curie was born in Warsaw.", "Marie Curie", "Warsaw", "bornIn", "ex:Curie", "ex:W"),
                example(long, "Marie Curie", "Warsaw", "bornIn", "ex:Curie", None)]
    rows = {"ex:Curie": 0, "ex:W": 1}
    items = encode_examples(tokenizer, examples, ["bornIn"], lambda e: rows.get(e, -1), max_length=64)
    assert len(items) == 2 and all(len(i["input_ids"]) <= 64 for i in items)
    for item in items:
        assert tokenizer.decode([item["input_ids"][t] for t in item["subject"]]) == "marie curie"
        assert tokenizer.decode([item["input_ids"][t] for t in item["object"]]) == "warsaw"
        assert {item["entity_rows"][t] for t in item["subject"]} == {0}
    assert {items[0]["entity_rows"][t] for t in items[0]["object"]} == {1}
    assert {items[1]["entity_rows"][t] for t in items[1]["object"]} == {-1}
    batch = collate(items)
    assert batch.input_ids.shape == batch.entity_rows.shape
    assert batch.subject_mask.sum() == sum(len(i["subject"]) for i in items) == 6  # marie, cu, ##rie twice


def test_metrics() -> None:
    assert accuracy_macro_f1([0, 0, 1, 1], [0, 0, 1, 0]) == (0.75, pytest.approx((0.8 + 2 / 3) / 2))


def test_knowledge_lets_a_frozen_encoder_learn_what_text_cannot_tell(tokenizer) -> None:
    """The label depends only on which entity is the subject, and the text is the same for all: the plain
    model is at chance, the fusion model reads the answer from the KG vectors."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64)
    entities = [f"ex:e{i}" for i in range(8)]
    kg = torch.randn(8, 16)
    labels = ["north", "south"]
    north = set(kg[:, 0].argsort()[4:].tolist())  # balanced: a constant answer scores exactly 0.5
    gold = {e: labels[0] if i in north else labels[1] for i, e in enumerate(entities)}
    examples = [example("Someone lives somewhere.", "Someone", "somewhere", gold[e], e, None) for e in entities] * 8
    rows = {e: i for i, e in enumerate(entities)}
    items = encode_examples(tokenizer, examples, labels, lambda e: rows.get(e, -1))
    scores = {}
    for knowledge in (False, True):
        torch.manual_seed(0)
        base = BertModel(config)
        encoder = (KnowledgeEnhancedEncoder(base, KnowledgeTable(entities, kg),
                                            InjectionConfig(mode="fusion", layers=[1])) if knowledge
                   else base.requires_grad_(False))
        model = SpanPairClassifier(encoder, 32, 2, knowledge=knowledge, dropout=0.0)
        train_classifier(model, items, TrainConfig(epochs=30, batch_size=16, learning_rate=1e-2))
        scores[knowledge] = accuracy_macro_f1([i["label"] for i in items], predict(model, items))[0]
    assert scores[True] == 1.0
    assert scores[False] == 0.5


def _losses_of_the_full_loop(model: SpanPairClassifier, items: list, config: TrainConfig) -> list[float]:
    """train_classifier's loop written out without any caching: the whole model runs on every batch."""
    import random

    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    order, rng = list(range(len(items))), random.Random(config.seed)
    steps = (len(items) + config.batch_size - 1) // config.batch_size
    losses = []
    model.train()
    for _ in range(config.epochs):
        rng.shuffle(order)
        total = 0.0
        for step in range(steps):
            batch = collate([items[i] for i in order[step * config.batch_size:(step + 1) * config.batch_size]])
            loss = torch.nn.functional.cross_entropy(model(batch), batch.labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item()
        losses.append(total / steps)
    return losses


def test_a_frozen_encoder_is_run_once_and_trains_like_the_uncached_loop(tokenizer) -> None:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64)
    base = BertModel(config).requires_grad_(False)
    calls = []
    base.register_forward_hook(lambda *args: calls.append(1))
    examples = [example("Ada met Alan in London.", "Ada", "London", label) for label in ("a", "b")] * 6
    items = encode_examples(tokenizer, examples, ["a", "b"], lambda e: -1)
    model = SpanPairClassifier(base, 32, 2, knowledge=False, dropout=0.0)
    torch.manual_seed(1)
    head = {k: v.clone() for k, v in model.head.state_dict().items()}
    cached_losses = train_classifier(model, items, TrainConfig(epochs=3, batch_size=4))
    assert len(calls) == 1                              # 12 examples, one batch of 64, once
    assert not base.training                            # frozen: no dropout while the head trains
    model.head.load_state_dict(head)
    plain_losses = _losses_of_the_full_loop(model, items, TrainConfig(epochs=3, batch_size=4))
    assert cached_losses == pytest.approx(plain_losses, rel=1e-5)


def test_fusion_over_a_frozen_base_runs_the_lower_layers_once_and_trains_like_the_full_loop(tokenizer) -> None:
    """The states below the first fusion layer are computed once; every step then runs only the layers
    above, and the losses equal those of the loop that runs the whole encoder each step."""
    from kgpipe.lm.encoder import InjectionConfig, KnowledgeEnhancedEncoder
    from kgpipe.lm.knowledge import KnowledgeTable

    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=3,
                        num_attention_heads=2, intermediate_size=64)
    base_weights = BertModel(config).state_dict()
    vectors = torch.randn(2, 8)
    examples = [example("Ada met Alan in London.", "Ada", "London", "a", "ex:ada", "ex:london"),
                example("Alan left Paris for good.", "Alan", "Paris", "b", "ex:alan", None)] * 6
    rows = {"ex:ada": 0, "ex:london": 1}
    items = encode_examples(tokenizer, examples, ["a", "b"], lambda e: rows.get(e, -1))

    def build() -> tuple[SpanPairClassifier, list[int]]:
        base = BertModel(config)
        base.load_state_dict(base_weights)
        calls: list[int] = []
        base.encoder.layer[0].register_forward_hook(lambda *args: calls.append(1))
        torch.manual_seed(1)
        encoder = KnowledgeEnhancedEncoder(base, KnowledgeTable(["ex:ada", "ex:london"], vectors),
                                           InjectionConfig(mode="fusion", layers=[1]))
        return SpanPairClassifier(encoder, 32, 2, knowledge=True, dropout=0.0), calls

    model, calls = build()
    losses = train_classifier(model, items, TrainConfig(epochs=3, batch_size=4, learning_rate=1e-2))
    assert len(calls) == 1                               # lower layers: one batch of 12, once
    reference, _ = build()
    expected = _losses_of_the_full_loop(reference, items, TrainConfig(epochs=3, batch_size=4, learning_rate=1e-2))
    assert losses == pytest.approx(expected, rel=1e-4)
    assert losses[-1] < losses[0]
    assert predict(model, items) == predict(reference, items)


def test_cached_lower_states_need_an_encoder_that_can_resume(tokenizer) -> None:
    """A plain encoder (no knowledge layers) has no lower states to cache, and states given for it anyway are
    refused with a KgpipeError, not an AttributeError from deep inside torch."""
    from kgpipe.errors import KgpipeError
    from kgpipe.lm.task import lower_states

    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64)
    model = SpanPairClassifier(BertModel(config), 32, 2, knowledge=False)
    items = encode_examples(tokenizer, [example("Ada met Alan.", "Ada", "Alan", "a")], ["a", "b"], lambda e: -1)
    assert lower_states(model, items) is None
    batch = collate(items)
    with pytest.raises(KgpipeError, match="BertModel cannot resume"):
        model.features(batch, torch.zeros(1, batch.input_ids.shape[1], 32))
    assert model.features(batch).shape == (1, 3 * 32)


def test_a_prefix_decoder_trains_from_cached_lower_states_like_the_full_loop(tokenizer, tmp_path: Path) -> None:
    """The decoder counterpart: a KnowledgeDecoder in prefix mode, the relation named by each example reaching
    its relation slot; the lower layers run once and the losses are those of the uncached loop."""
    from kgpipe.lm.decoder_model import DecoderInjectionConfig, KnowledgeDecoder
    from kgpipe.lm.decoders import load_decoder, resolve_decoder
    from tests.tiny_encoder import make_tiny_llama

    folder = make_tiny_llama(tmp_path / "llama")
    examples = [RelationExample("Ada met Alan in London.", (0, 3), (16, 22), "a", "ex:ada", "ex:london", "ex:r"),
                RelationExample("Alan left Paris for good.", (0, 4), (10, 15), "b", "ex:alan", None, None)] * 6
    rows = {"ex:ada": 0, "ex:london": 1}
    items = encode_examples(tokenizer, examples, ["a", "b"], lambda e: rows.get(e, -1),
                            relation_row=lambda r: 0 if r == "ex:r" else -1)
    assert [i["relation_row"] for i in items[:2]] == [0, -1]
    assert collate(items[1:2]).relation_rows is None and collate(items[:2]).relation_rows.tolist() == [0, -1]

    def build() -> tuple[SpanPairClassifier, list[int]]:
        base, _ = load_decoder(resolve_decoder(str(folder)))
        calls: list[int] = []
        base.model.layers[0].register_forward_hook(lambda *args: calls.append(1))
        torch.manual_seed(1)
        decoder = KnowledgeDecoder(base, KnowledgeTable(["ex:ada", "ex:london"], torch.randn(2, 8)),
                                   DecoderInjectionConfig(mode="prefix", prefix_layers=2),
                                   relations=KnowledgeTable(["ex:r"], torch.randn(1, 4)))
        return SpanPairClassifier(decoder, 32, 2, knowledge=True, dropout=0.0, context="between"), calls

    config = TrainConfig(epochs=3, batch_size=4, learning_rate=1e-2)
    model, calls = build()
    losses = train_classifier(model, items, config)
    assert len(calls) == 1                                # the two lower layers: one batch of 12, once
    reference, _ = build()
    assert losses == pytest.approx(_losses_of_the_full_loop(reference, items, config), rel=1e-4)
    assert predict(model, items) == predict(reference, items)
    assert model.encoder.prefix.relation_in.weight.grad is not None  # the relation slot was trained
