"""Near-equal short values (a brand, a maker, a label) for the learned weights' 'close' level of an exact
attribute: the same letters and digits whatever the spacing and punctuation ('U.S. Robotics', 'USRobotics';
'Cooler Master', 'Coolermaster'), or one value the leading words of the other ('Oki Data', 'OKI'; 'Lexar',
'Lexar Media'). Computed for whole arrays of node pairs, as the other comparison levels are.

>>> keys = ValueKeys.of(["U.S. Robotics", "USRobotics", "Lexar Media", "Lexar", "Motorola", None])
>>> keys.close(np.array([0, 2, 2, 0]), np.array([1, 3, 4, 5])).tolist()
[True, True, False, False]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kgpipe.kg.features import _csr
from kgpipe.kg.normalize import fold_text

_WORD = re.compile(r"[^\W_]+")


def value_words(value: Any) -> list[str]:
    """The words of a value, case and accents folded and punctuation dropped ('U.S. Robotics': u, s, robotics);
    none where the value is missing."""
    if value is None or value != value:
        return []
    return _WORD.findall(fold_text(str(value)))


@dataclass
class ValueKeys:
    """Per node: the id of its value's letters and digits run together (-1 where it has none), and as a sparse
    row (nodes x keys) the ids of its leading words run together ('lexar', 'lexarmedia' for 'Lexar Media')."""

    key: np.ndarray
    leading: Any

    @classmethod
    def of(cls, values: Sequence[Any]) -> ValueKeys:
        ids: dict[str, int] = {}
        key = np.full(len(values), -1, dtype=np.int64)
        rows: list[int] = []
        cols: list[int] = []
        for node, value in enumerate(values):
            words = value_words(value)
            if not words:
                continue
            key[node] = ids.setdefault("".join(words), len(ids))
            for end in range(1, len(words) + 1):
                rows.append(node)
                cols.append(ids.setdefault("".join(words[:end]), len(ids)))
        leading = _csr(rows, cols, None, (len(values), max(len(ids), 1)))
        leading.data[:] = 1.0
        return cls(key, leading)

    def close(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Whether each pair's values are near-equal: one's whole key among the other's leading words (their
        own whole key included); False where either is missing."""
        out = np.zeros(len(left), dtype=bool)
        both = np.flatnonzero((self.key[left] >= 0) & (self.key[right] >= 0))
        if not len(both):
            return out
        lb, rb = left[both], right[both]
        a = np.asarray(self.leading[lb, self.key[rb]]).ravel() > 0
        b = np.asarray(self.leading[rb, self.key[lb]]).ravel() > 0
        out[both] = a | b
        return out
