"""A random tiny BERT saved as a model folder, for tests that fine-tune an encoder (the relation model, the
transformer NER) in seconds: two layers of 32 dimensions with the packaged MiniLM's uncased WordPiece tokenizer.
"""

from __future__ import annotations

from pathlib import Path


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
