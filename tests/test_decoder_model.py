"""KnowledgeDecoder on a tiny random LLaMA: without knowledge it is the base model exactly (hidden states and
greedy generation); knowledge prefix slots reach only the top layers, so cached lower states give the same
result; the LM stays frozen (LoRA excepted); align adds mapped vectors at mention tokens; save and load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kgpipe.errors import InputError, KgpipeError
from kgpipe.lm.decoder_model import DecoderInjectionConfig, KnowledgeDecoder, attention_bias
from kgpipe.lm.decoders import load_decoder, resolve_decoder
from kgpipe.lm.knowledge import KnowledgeTable
from kgpipe.lm.projection import LinearMap
from tests.tiny_encoder import make_tiny_llama

ENTITIES = ["ex:Curie", "ex:Warsaw", "ex:Paris"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("llama"))


def build(folder: Path, mode: str = "prefix", *, relations: bool = False, **options) -> tuple[KnowledgeDecoder, object]:
    base, tokenizer = load_decoder(resolve_decoder(str(folder)))
    torch.manual_seed(1)
    storage = options.pop("storage", "float32")
    knowledge = KnowledgeTable(ENTITIES, torch.randn(3, 8), storage)
    relation_table = KnowledgeTable(["ex:bornIn", "ex:capitalOf"], torch.randn(2, 6), storage) if relations else None
    linear = LinearMap(torch.randn(8, 32), torch.zeros(32)) if mode == "align" else None
    config = DecoderInjectionConfig(mode=mode, prefix_layers=options.pop("prefix_layers", 2), **options)
    return KnowledgeDecoder(base, knowledge, config, relations=relation_table, linear_map=linear), tokenizer


def batch(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def test_without_knowledge_it_is_the_base_model(tiny: Path, one_torch_thread) -> None:
    for mode in ("prefix", "align"):
        decoder, tokenizer = build(tiny, mode)
        ids, mask = batch(tokenizer, ["Marie Curie was born in Warsaw.", "Paris"])
        ours = decoder(ids, mask).last_hidden_state
        theirs = decoder.base.model(input_ids=ids, attention_mask=mask).last_hidden_state
        real = mask.bool()
        assert torch.allclose(ours[real], theirs[real], atol=1e-5)
        rows = torch.full_like(ids, -1)
        assert torch.equal(decoder(ids, mask, entity_rows=rows).last_hidden_state, ours)


def test_greedy_generation_matches_the_library(tiny: Path, one_torch_thread) -> None:
    decoder, tokenizer = build(tiny)
    ids, _ = batch(tokenizer, ["marie curie was born in"])
    expected = decoder.base.generate(ids, max_new_tokens=6, do_sample=False, eos_token_id=None)[0, ids.shape[1]:]
    rows = torch.tensor([[-1, 0, 0, -1, -1, -1, -1]])
    assert decoder.generate(ids, rows, max_new_tokens=6, knowledge=False) == expected.tolist()


def test_the_prefix_reaches_only_the_top_layers_and_cached_states_give_the_same_output(tiny: Path,
                                                                                       one_torch_thread) -> None:
    decoder, tokenizer = build(tiny, relations=True)
    ids, mask = batch(tokenizer, ["Marie Curie was born in Warsaw.", "Paris"])
    rows = torch.full_like(ids, -1)
    rows[0, 1:3], rows[0, 6] = 0, 1
    rows[1, 1] = 2
    plain = decoder(ids, mask).last_hidden_state
    enhanced = decoder(ids, mask, entity_rows=rows).last_hidden_state
    assert not torch.allclose(plain[0], enhanced[0], atol=1e-4)
    # only the layers from resume_layer on see the knowledge: the states entering it are the plain ones
    assert decoder.resume_layer == 2
    states = decoder.states_below(ids, mask)
    assert torch.allclose(decoder.forward_from(states, mask, rows), enhanced, atol=1e-6)
    # a relation slot is one more key/value per top layer
    with_relation = decoder.forward_from(states, mask, rows, torch.tensor([0, -1]))
    assert not torch.allclose(with_relation[0], enhanced[0], atol=1e-4)
    assert torch.allclose(with_relation[1], enhanced[1], atol=1e-6)  # no relation there: unchanged


def test_generation_with_knowledge_uses_the_cache_correctly(tiny: Path, one_torch_thread) -> None:
    decoder, tokenizer = build(tiny)
    torch.manual_seed(3)
    with torch.no_grad():  # a prefix strong enough to change what comes next
        decoder.prefix.out.weight.normal_(std=2.0)
    ids, _ = batch(tokenizer, ["marie curie was born in"])
    rows = torch.tensor([[-1, 0, 0, -1, -1, -1, -1]])
    produced = decoder.generate(ids, rows, max_new_tokens=5)
    # the same tokens, computed without a cache: the whole sequence again at each step
    sequence = ids
    for token in produced:
        full_rows = torch.cat([rows, torch.full((1, sequence.shape[1] - rows.shape[1]), -1)], dim=1)
        with torch.no_grad():
            assert int(decoder.logits(sequence, entity_rows=full_rows)[0, -1].argmax()) == token
        sequence = torch.cat([sequence, torch.tensor([[token]])], dim=1)
    assert produced != decoder.generate(ids, rows, max_new_tokens=5, knowledge=False)


def test_only_the_adapter_and_lora_train(tiny: Path, one_torch_thread) -> None:
    decoder, tokenizer = build(tiny, lora_rank=4)
    ids, mask = batch(tokenizer, ["Marie Curie was born in Warsaw."])
    rows = torch.full_like(ids, -1)
    rows[0, 1:3] = 0
    decoder.train()
    decoder(ids, mask, entity_rows=rows).last_hidden_state.pow(2).mean().backward()
    trained = {name for name, p in decoder.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(name.startswith("prefix.") for name in trained)
    lora = {name for name in trained if "lora_" in name}
    assert lora and all(".layers.2." in name or ".layers.3." in name for name in lora)  # the top two only
    assert not [name for name in trained if name.startswith("base.") and "lora_" not in name]
    assert not decoder.base.training


def test_align_adds_mapped_vectors_at_mention_tokens(tiny: Path, one_torch_thread) -> None:
    decoder, tokenizer = build(tiny, "align")
    ids, mask = batch(tokenizer, ["Marie Curie was born in Warsaw."])
    rows = torch.full_like(ids, -1)
    rows[0, 6] = 1
    embeds = decoder._input_states(ids, rows)
    plain = decoder.base.get_input_embeddings()(ids)
    assert torch.equal(embeds[0, :6], plain[0, :6])
    assert torch.allclose(embeds[0, 6] - plain[0, 6], decoder.projection(decoder.knowledge.lookup(torch.tensor(1))))
    assert decoder.resume_layer is None
    with pytest.raises(KgpipeError, match="prefix mode"):
        decoder.states_below(ids, mask)


def test_save_and_load_give_the_same_model(tiny: Path, tmp_path: Path, one_torch_thread) -> None:
    decoder, tokenizer = build(tiny, relations=True, lora_rank=2, storage="int8")
    with torch.no_grad():
        for name, parameter in decoder.named_parameters():
            if "lora_B" in name:
                parameter.normal_()  # LoRA B starts at zero: make it count
    ids, mask = batch(tokenizer, ["Marie Curie was born in Warsaw."])
    rows = torch.full_like(ids, -1)
    rows[0, 1:3] = 0
    relation = torch.tensor([1])
    expected = decoder(ids, mask, rows, relation).last_hidden_state
    folder = decoder.save_pretrained(tmp_path / "model", base=resolve_decoder(str(tiny)))
    with pytest.raises(InputError, match="not a packaged model"):
        KnowledgeDecoder.from_pretrained(folder)
    loaded, _ = KnowledgeDecoder.from_pretrained(folder, base=str(tiny))
    assert torch.allclose(loaded(ids, mask, rows, relation).last_hidden_state, expected, atol=1e-6)
    assert loaded.config.base == {"package": None, "file": tiny.name, "sha256": None}
    assert loaded.knowledge.storage == "int8" and loaded.relations is not None
    with pytest.raises(InputError, match=r"no kgpipe_decoder\.json"):
        KnowledgeDecoder.from_pretrained(tmp_path)


def test_attention_bias_hides_padding_future_tokens_and_absent_slots() -> None:
    bias = attention_bias(torch.tensor([[1, 1, 0]]), past=1, prefix_mask=torch.tensor([[1.0, 0.0]]))
    visible = (bias[0, 0] == 0).int().tolist()
    #            slot0 slot1 past t0 t1 t2
    assert visible == [[1, 0, 1, 1, 0, 0],
                       [1, 0, 1, 1, 1, 0],
                       [1, 0, 1, 1, 1, 0]]
