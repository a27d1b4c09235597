"""Acronyms that stand for part of another name, for the learned weights' acronym comparison: 'MIT' against
'Dept. of Mechanical Engineering, Massachusetts Inst. of Technology, Cambridge' (the initials of a run of its
words spell the acronym), 'UCSD' against 'University of California, San Diego', 'SUNY Buffalo' against 'State
University of New York at Buffalo'. The acronym against the whole name's initials is the fixed scorer's
acronym rule; an acronym inside a longer name is the common case in affiliation strings, and the name score
cannot see it (an acronym shares no letters with its words, and is one word against many).

>>> runs = AcronymRuns.of(["MIT", "Lincoln Labs, Massachusetts Institute of Technology", "UCSD, La Jolla",
...                        "University of California, San Diego", "Stanford University"],
...                       ["mit", "lincoln laboratory massachusetts institute technology", "ucsd la jolla",
...                        "university california san diego", "stanford university"])
>>> runs.within(np.array([0, 2, 0, 4]), np.array([1, 3, 4, 1])).tolist()
[True, True, False, False]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kgpipe.kg.features import _ones
from kgpipe.kg.normalize import DEFAULT_OPTIONS, NormalizeOptions, acronyms_used, is_acronym_like, name_tokens
from kgpipe.kg.similarity import rowwise_dot

MIN_LETTERS = 3   # a two-letter acronym ('UC') spells the initials of too many word pairs to say anything
_CAPITALS = re.compile(r"[A-ZÀ-Þ][.&]?[A-ZÀ-Þ]")  # every acronym word has two capitals in a row: 'MIT', 'M.I.T.'


@dataclass
class AcronymRuns:
    """Per name, as sparse rows over one vocabulary of acronyms: the acronyms it is written with (`used`: the
    whole name read as one, or its words written as acronyms: 'uiuc' in 'Dept. of Computer Science, UIUC'), and
    the acronyms of that vocabulary that the initials of a run of its words spell (`spelt`: 'mit' and 'li' for
    'Lincoln Laboratory, Massachusetts Institute of Technology'; runs of at least MIN_LETTERS words)."""

    used: Any
    spelt: Any
    wordy: np.ndarray   # per name: whether it has two words or more (initials to spell an acronym with)

    @classmethod
    def of(cls, spellings: Sequence[str], keys: Sequence[str], options: NormalizeOptions = DEFAULT_OPTIONS
           ) -> AcronymRuns:
        """spellings: an original spelling per name; keys: its normalised key (kgpipe.kg.normalize)."""
        used_lists = [_acronyms(text, key, options) for text, key in zip(spellings, keys, strict=True)]
        vocab: dict[str, int] = {}
        for acronyms in used_lists:
            for acronym in acronyms:
                vocab.setdefault(acronym, len(vocab))
        lengths = sorted({len(a) for a in vocab})
        rows: list[int] = []
        cols: list[int] = []
        wordy = np.zeros(len(keys), dtype=bool)
        for i, key in enumerate(keys):
            initials = "".join(t[0] for t in name_tokens(key, options))
            wordy[i] = len(initials) >= 2
            for size in lengths:   # ascending: none longer than the initials
                if size > len(initials):
                    break
                for start in range(len(initials) - size + 1):
                    column = vocab.get(initials[start:start + size])
                    if column is not None:
                        rows.append(i)
                        cols.append(column)
        used = [[vocab[a] for a in acronyms] for acronyms in used_lists]
        width = (len(keys), max(len(vocab), 1))
        return cls(_ones([i for i, items in enumerate(used) for _ in items], [c for items in used for c in items],
                         width),
                   _ones(rows, cols, width), wordy)   # a run spelt twice in one name counts once

    def said(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Whether a name of the pair is written with an acronym that the other, a name of words, could spell,
        and the two are not written with one acronym (a word both have, which the name score counts)."""
        used = np.diff(self.used.indptr) > 0
        said = (used[left] & self.wordy[right]) | (used[right] & self.wordy[left])
        both = np.flatnonzero(said & used[left] & used[right])
        said[both] = rowwise_dot(self.used, self.used, left[both], right[both]) == 0
        return said

    def within(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Whether an acronym one name of the pair is written with is spelt by a run of the other's words."""
        if not len(left) or not self.used.nnz:
            return np.zeros(len(left), dtype=bool)
        return (rowwise_dot(self.used, self.spelt, left, right) + rowwise_dot(self.spelt, self.used, left, right)) > 0


def _acronyms(text: str, key: str, options: NormalizeOptions) -> list[str]:
    """The acronyms a name is written with, of at least MIN_LETTERS letters: itself read as one, or its words
    written as acronyms."""
    if is_acronym_like(text):
        found = [key.replace(" ", "")]
    elif _CAPITALS.search(text):  # a text without is read no further (most names: 20 times faster)
        found = acronyms_used(text, options)
    else:
        return []
    return [a for a in found if len(a) >= MIN_LETTERS and a.isalpha()]
