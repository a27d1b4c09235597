"""Sentence vectors from a BERT-family encoder (the packaged all-MiniLM-L6-v2 by default): mean pooling over
the tokens, L2-normalised, in batches of similar length; equal texts give equal vectors on one thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


class SentenceEncoder:
    """encode(texts) -> (len(texts), hidden) float32; load with SentenceEncoder.load(name or folder)."""

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 64, max_length: int = 128) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length

    @classmethod
    def load(cls, name: str, *, root: Path | None = None, batch_size: int = 64,
             max_length: int = 128) -> SentenceEncoder:
        """A model folder (relative to root where it exists there) or a packaged name (resolve_base_model)."""
        from transformers import AutoModel, AutoTokenizer

        from kgpipe.lm.encoder import resolve_base_model

        in_root = (root / name) if root is not None else None
        path = str(in_root) if in_root is not None and (in_root / "config.json").is_file() else resolve_base_model(name)
        return cls(AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path), batch_size=batch_size,
                   max_length=max_length)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # batches of similar length waste little on padding; the order depends on the texts alone, so equal
        # inputs give equal batches and equal floats
        order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                hidden = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                                    ).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[rows] = pooled.numpy()
                if progress is not None:
                    progress(min(start + self.batch_size, len(order)), len(order))
        return out
