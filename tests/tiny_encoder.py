"""A random tiny BERT saved as a model folder, for tests that fine-tune an encoder (the relation model, the
transformer NER) in seconds: two layers of 32 dimensions with the packaged MiniLM's uncased WordPiece tokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest


def make_tiny_bert(folder: Path, *, seed: int = 0) -> Path:
    """Write the tiny encoder and its fast tokenizer to `folder` (as save_pretrained does) and return it."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from kgpipe.lm.encoder import resolve_base_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model("all-MiniLM-L6-v2"))
    torch.manual_seed(seed)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
              ).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """torch on one thread for the test (the same floats whatever the machine), the count restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """One JSON object per line (the labelled-sentence files the trainers read)."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def feature_tagger(base: Path, feature: str, value: str):
    """A tagger over the tiny encoder whose scores depend on one word feature alone (feature: 'pos' or
    'base_ner'): B-Peop for a word whose feature is `value`, O for any other."""
    import torch

    from kgpipe.lm.token_tagger import TokenTagger

    tagger = TokenTagger.from_base(str(base), ["Peop"], features=[feature]).eval()
    embedding = tagger.embedding(feature)
    assert embedding is not None
    hidden = tagger.encoder.config.hidden_size
    with torch.no_grad():
        tagger.classifier.weight.zero_()
        tagger.classifier.bias.copy_(torch.tensor([1.0, 0.0, -10.0]))      # O, B-Peop, I-Peop
        embedding.weight.zero_()
        embedding.weight[tagger.feature(feature).ids([value])[0], 0] = 1.0
        tagger.classifier.weight[1, hidden] = 10.0                          # B-Peop from that dimension
    return tagger


def make_tiny_llama(folder: Path, *, seed: int = 0, layers: int = 4) -> Path:
    """A random tiny LLaMA-architecture causal LM (32 dimensions, grouped-query attention: 4 heads, 2 key/value
    heads) with the packaged MiniLM's fast tokenizer (its [SEP] as end of sequence), written as a model folder."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from kgpipe.lm.encoder import resolve_base_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model("all-MiniLM-L6-v2"))
    torch.manual_seed(seed)
    LlamaForCausalLM(LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                 max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.sep_token_id, bos_token_id=tokenizer.cls_token_id)
                     ).save_pretrained(folder)
    tokenizer.eos_token = "[SEP]"
    tokenizer.save_pretrained(folder)
    return folder
