"""The entity table an encoder looks KG vectors up in: float32, float16, or int8 with a per-row scale.

int8 stores round(v / s) with s = max|row| / 127, so each element's error is at most s / 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn

Storage = Literal["float32", "float16", "int8"]


def quantize_int8(vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: (codes, scales) with vectors ~= codes * scales[:, None]."""
    scales = vectors.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    codes = torch.round(vectors / scales[:, None]).clamp_(-127, 127).to(torch.int8)
    return codes, scales.to(torch.float32)


class KnowledgeTable(nn.Module):
    """Entity ids and their KG vectors; row 0.. in `ids` order. Lookups always return float32."""

    # Buffers, registered in __init__ by storage (int8: codes and scales; float: weight). Declared here
    # only so that type checkers know them; nn.Module.__getattr__ would type them Tensor | Module.
    codes: torch.Tensor
    scales: torch.Tensor
    weight: torch.Tensor

    def __init__(self, ids: Sequence[str], vectors: torch.Tensor | np.ndarray, storage: Storage = "float32"):
        super().__init__()
        vectors = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise ValueError(f"expected {len(ids)} vectors as a 2-D array, got shape {tuple(vectors.shape)}")
        self.ids = list(ids)
        self.index = {entity: row for row, entity in enumerate(self.ids)}
        self.storage = storage
        self.dim = int(vectors.shape[1])
        if storage == "int8":
            codes, scales = quantize_int8(vectors)
            self.register_buffer("codes", codes)
            self.register_buffer("scales", scales)
        elif storage in ("float32", "float16"):
            self.register_buffer("weight", vectors.to(getattr(torch, storage)))
        else:
            raise ValueError(f"unknown storage '{storage}' (float32, float16, int8)")

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(self, rows: torch.Tensor) -> torch.Tensor:
        """Vectors of rows (any shape of row indices) as float32."""
        if self.storage == "int8":
            return self.codes[rows].to(torch.float32) * self.scales[rows].unsqueeze(-1)
        return self.weight[rows].to(torch.float32)

    def dense(self) -> torch.Tensor:
        return self.lookup(torch.arange(len(self.ids)))

    @property
    def nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.buffers())

    def rows_of(self, entity_ids: Sequence[str | None]) -> list[int]:
        """Row of each entity id; -1 for None or an id the table does not hold."""
        return [self.index.get(e, -1) if e is not None else -1 for e in entity_ids]
