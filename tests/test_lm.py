"""Sub-word alignment, knowledge tables, the closed-form map and the knowledge-enhanced encoder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

from kgpipe.errors import KgpipeError
from kgpipe.lm.alignment import encode_with_spans, tokens_for_span
from kgpipe.lm.encoder import InjectionConfig, KnowledgeEnhancedEncoder, resolve_base_model
from kgpipe.lm.knowledge import KnowledgeTable, quantize_int8
from kgpipe.lm.projection import fit_linear_map, label_embeddings


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_base_model("all-MiniLM-L6-v2"))


@pytest.fixture
def tiny_bert(tmp_path: Path) -> tuple[BertModel, str]:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    model = BertModel(config).eval()
    model.save_pretrained(tmp_path / "tiny")
    return model, str(tmp_path / "tiny")


def _covered(tokenizer, text: str, start: int, end: int) -> str:
    encoded = tokenizer(text, return_offsets_mapping=True)
    tokens = tokens_for_span(encoded["offset_mapping"], start, end)
    offsets = encoded["offset_mapping"]
    return text[offsets[tokens[0]][0]:offsets[tokens[-1]][1]]


@pytest.mark.parametrize("text,mention", [
    ("She moved to Zürich in 1905.", "Zürich"),
    ("He taught at M.I.T. for years.", "M.I.T."),
    ("Erwin Schrödinger's equation", "Erwin Schrödinger"),
    ("(Caltech) was founded", "Caltech"),
    ("AT&T Bell Laboratories, New Jersey", "AT&T Bell Laboratories"),
])
def test_span_maps_to_exactly_its_subword_tokens(tokenizer, text: str, mention: str) -> None:
    start = text.index(mention)
    assert _covered(tokenizer, text, start, start + len(mention)) == mention


def test_special_tokens_and_whitespace_never_align(tokenizer) -> None:
    encoded = tokenizer("a  b", return_offsets_mapping=True)
    offsets = encoded["offset_mapping"]
    assert tokens_for_span(offsets, 1, 3) == []          # only the spaces between a and b
    assert 0 not in tokens_for_span(offsets, 0, 4)        # [CLS]
    assert len(offsets) - 1 not in tokens_for_span(offsets, 0, 4)  # [SEP]


def test_long_text_is_windowed_without_misaligned_spans(tokenizer) -> None:
    filler = "The committee met again and discussed the budget at length. " * 40
    text = "Marie Curie opened the meeting. " + filler + "Niels Bohr closed it."
    spans = [(0, 11), (text.index("Niels Bohr"), text.index("Niels Bohr") + 10), (31, 32)]  # last: a space
    windows = encode_with_spans(tokenizer, text, spans, max_length=64, stride=16)
    assert len(windows) > 5 and all(len(w.input_ids) <= 64 for w in windows)
    found = {}
    for w in windows:
        for span, tokens in w.span_tokens.items():
            found[span] = tokenizer.decode([w.input_ids[t] for t in tokens])
    assert found == {0: "marie curie", 1: "niels bohr"}


def test_slow_tokenizer_is_refused() -> None:
    class Slow:
        is_fast = False

    with pytest.raises(KgpipeError, match="not a fast tokenizer"):
        encode_with_spans(Slow(), "x", [(0, 1)])


def test_int8_round_trip_error_is_within_half_a_step_and_saves_memory() -> None:
    torch.manual_seed(1)
    vectors = torch.randn(100, 64) * torch.linspace(0.1, 10, 100)[:, None]
    codes, scales = quantize_int8(vectors)
    error = (codes.float() * scales[:, None] - vectors).abs()
    assert bool((error <= scales[:, None] / 2 + 1e-6).all())
    ids = [f"e{i}" for i in range(100)]
    full, half, small = (KnowledgeTable(ids, vectors, s) for s in ("float32", "float16", "int8"))
    assert half.nbytes == full.nbytes // 2 and small.nbytes == 100 * 64 + 100 * 4
    rows = torch.tensor([[3, 99], [0, 50]])
    assert torch.allclose(small.lookup(rows), full.lookup(rows), atol=float(scales.max()) / 2 + 1e-6)
    assert small.rows_of(["e3", None, "nope"]) == [3, -1, -1]


def test_least_squares_recovers_a_known_linear_map() -> None:
    torch.manual_seed(2)
    x = torch.randn(300, 8)
    weight, bias = torch.randn(8, 16), torch.randn(16)
    fitted = fit_linear_map(x, x @ weight + bias + 1e-4 * torch.randn(300, 16))
    assert torch.allclose(fitted.weight, weight, atol=1e-3) and torch.allclose(fitted.bias, bias, atol=1e-3)


def test_orthogonal_map_recovers_a_scaled_rotation() -> None:
    torch.manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(16, 16))
    rotation = q[:8] * 2.5                                  # orthonormal rows, scaled
    x = torch.randn(200, 8)
    fitted = fit_linear_map(x, x @ rotation + 1.0, orthogonal=True)
    assert torch.allclose(fitted.weight, rotation, atol=1e-4) and torch.allclose(fitted.bias, torch.ones(16), atol=1e-4)
    with pytest.raises(ValueError, match="kg_dim"):
        fit_linear_map(torch.randn(10, 20), torch.randn(10, 8), orthogonal=True)


def _inputs(tokenizer, text: str, mention: str, row: int) -> dict:
    encoded = tokenizer(text, return_offsets_mapping=True, return_tensors="pt")
    start = text.index(mention)
    rows = torch.full_like(encoded["input_ids"], -1)
    rows[0, tokens_for_span(encoded["offset_mapping"][0].tolist(), start, start + len(mention))] = row
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "entity_rows": rows}


@pytest.mark.parametrize("mode", ["align", "fusion"])
def test_encoder_keeps_base_behaviour_without_entities_and_changes_mentions(tokenizer, tiny_bert, mode) -> None:
    base, path = tiny_bert
    torch.manual_seed(4)
    knowledge = KnowledgeTable(["ex:Curie", "ex:Paris"], torch.randn(2, 12))
    linear_map = fit_linear_map(torch.randn(20, 12), torch.randn(20, 32)) if mode == "align" else None
    encoder = KnowledgeEnhancedEncoder(BertModel.from_pretrained(path), knowledge,
                                       InjectionConfig(mode=mode, base_model=path, layers=[1]), linear_map).eval()
    inputs = _inputs(tokenizer, "Marie Curie worked in Paris.", "Curie", 0)
    plain = base(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
    with torch.no_grad():
        none = encoder(inputs["input_ids"], inputs["attention_mask"]).last_hidden_state
        enhanced = encoder(**inputs).last_hidden_state
    assert enhanced.shape == plain.shape
    assert torch.allclose(none, plain, atol=1e-6)
    mention = inputs["entity_rows"][0] >= 0
    assert (enhanced[0, mention] - plain[0, mention]).abs().max() > 1e-3


def test_fusion_trains_only_its_own_modules_when_the_base_is_frozen(tokenizer, tiny_bert) -> None:
    _, path = tiny_bert
    encoder = KnowledgeEnhancedEncoder(BertModel.from_pretrained(path), KnowledgeTable(["a"], torch.randn(1, 12)),
                                       InjectionConfig(mode="fusion", base_model=path, layers=[0, -1]))
    assert encoder.config.layers == [0, 2]
    encoder(**_inputs(tokenizer, "Ada wrote code.", "Ada", 0)).last_hidden_state.sum().backward()
    trained = {n for n, p in encoder.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert trained and all(n.startswith("fusion.") for n in trained)
    assert {n.split(".")[1] for n in trained} == {"0", "2"}


@pytest.mark.parametrize("layers", [[0, 2], [1], [2]])
def test_resuming_above_the_frozen_layers_gives_the_full_forward(tokenizer, tiny_bert, layers) -> None:
    """states_below + forward_from (the training shortcut) equal one full forward, padding included, and the
    base model is whole again afterwards."""
    _, path = tiny_bert
    torch.manual_seed(6)
    encoder = KnowledgeEnhancedEncoder(BertModel.from_pretrained(path), KnowledgeTable(["a", "b"], torch.randn(2, 12)),
                                       InjectionConfig(mode="fusion", base_model=path, layers=layers)).eval()
    with torch.no_grad():
        for p in encoder.fusion.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    texts = [("Ada Lovelace met Babbage in London.", "Ada Lovelace", 0), ("Bob.", "Bob", 1)]
    encoded = tokenizer([t for t, _, _ in texts], return_offsets_mapping=True, padding=True, return_tensors="pt")
    rows = torch.full_like(encoded["input_ids"], -1)
    for i, (text, mention, row) in enumerate(texts):
        start = text.index(mention)
        rows[i, tokens_for_span(encoded["offset_mapping"][i].tolist(), start, start + len(mention))] = row
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    with torch.no_grad():
        full = encoder(ids, mask, entity_rows=rows).last_hidden_state
        resumed = encoder.forward_from(encoder.states_below(ids, mask), mask, rows)
        again = encoder(ids, mask, entity_rows=rows).last_hidden_state
    real = mask.bool()
    assert encoder.resume_layer == min(layers)
    assert torch.allclose(resumed[real], full[real], atol=1e-5)
    assert torch.equal(again, full) and len(encoder.base.encoder.layer) == 3
    plain = encoder.base(input_ids=ids, attention_mask=mask).last_hidden_state
    assert (full[rows >= 0] - plain[rows >= 0]).abs().max() > 1e-3


@pytest.mark.parametrize("mode,storage", [("align", "float32"), ("fusion", "int8"), ("align", "float16")])
def test_save_and_load_give_identical_outputs(tokenizer, tiny_bert, tmp_path, mode, storage) -> None:
    _, path = tiny_bert
    torch.manual_seed(5)
    knowledge = KnowledgeTable(["ex:a", "ex:b"], torch.randn(2, 12), storage)
    linear_map = fit_linear_map(torch.randn(20, 12), torch.randn(20, 32)) if mode == "align" else None
    config = InjectionConfig(mode=mode, base_model=path, storage=storage, layers=[1], combine="replace",
                             embedding_artifact="emb.parquet", embedding_sha256="abc")
    encoder = KnowledgeEnhancedEncoder(BertModel.from_pretrained(path), knowledge, config, linear_map).eval()
    if mode == "fusion":
        with torch.no_grad():
            for p in encoder.fusion.parameters():
                p.add_(torch.randn_like(p) * 0.1)   # trained weights, not the initial ones
    inputs = _inputs(tokenizer, "The b entity is here.", "b entity", 1)
    encoder.save_pretrained(tmp_path / "km", tokenizer=tokenizer)
    loaded = KnowledgeEnhancedEncoder.from_pretrained(tmp_path / "km")
    with torch.no_grad():
        assert torch.equal(encoder(**inputs).last_hidden_state, loaded(**inputs).last_hidden_state)
    assert loaded.config.embedding_sha256 == "abc" and loaded.knowledge.ids == ["ex:a", "ex:b"]
    assert (tmp_path / "km/tokenizer/tokenizer.json").exists()


def test_real_minilm_align_encoder(tokenizer) -> None:
    """Integration: the packaged all-MiniLM-L6-v2, an E-BERT map fitted on entity labels."""
    base = AutoModel.from_pretrained(resolve_base_model("all-MiniLM-L6-v2")).eval()
    labels = ["Marie Curie", "Paris", "Warsaw", "Sorbonne", "Pierre Curie", "Nobel Prize", "France", "Poland",
              "physics", "chemistry", "radium", "polonium"]
    torch.manual_seed(6)
    kg = torch.randn(len(labels), 24)
    anchors = label_embeddings(labels, tokenizer, base.get_input_embeddings().weight.detach())
    assert anchors.shape == (len(labels), 384)
    encoder = KnowledgeEnhancedEncoder(base, KnowledgeTable(labels, kg), InjectionConfig(mode="align"),
                                       fit_linear_map(kg, anchors, ridge=1e-3)).eval()
    inputs = _inputs(tokenizer, "Marie Curie was born in Warsaw.", "Warsaw", labels.index("Warsaw"))
    with torch.no_grad():
        plain = base(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
        enhanced = encoder(**inputs).last_hidden_state
    assert enhanced.shape == plain.shape == (1, inputs["input_ids"].shape[1], 384)
    mention = inputs["entity_rows"][0] >= 0
    assert (enhanced[0, mention] - plain[0, mention]).norm() > 0.1 * plain[0, mention].norm()
