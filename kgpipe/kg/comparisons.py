"""Comparison levels of node pairs, what learned match weights (kgpipe.kg.em) are fitted on and applied to.

Each comparison puts a pair in one of a few levels, strongest agreement first; MISSING (-1) where it cannot
say (a value absent on either side), which counts nothing. The comparisons:
  name         the name score (token, n-gram and fuzz signals combined, as kgpipe.kg.similarity computes them)
               cut into bands, one comparison since those signals are strongly correlated; its exact level
               (the same normalised name) is term-frequency adjusted
  acronym      an acronym against the initials of the other name: agree; else an acronym one name is written
               with that a run of the other's words spells (kgpipe.kg.acronym_runs: 'MIT' in 'Lincoln Labs,
               Massachusetts Institute of Technology'): within; differ where either could be said and is not
  identifiers  codes in the names and in `code` attributes (kgpipe.kg.identifiers): a shared code (one no
               other node carries, or a rare one), or different codes of one shape
  numbers      the plain numbers of the names: the same, some shared, none shared
  <attribute>  each attribute rule but `code` ones, in bands of its kind's similarity; an exact attribute
               has a 'close' level between equal and else (kgpipe.kg.value_keys)
  context      overlap of the nodes' contexts, where both have one
Levels are computed for whole arrays of pairs, as the fixed scorer's signals are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kgpipe.kg.acronym_runs import AcronymRuns
from kgpipe.kg.codes import sorted_unique
from kgpipe.kg.features import _csr
from kgpipe.kg.identifiers import Identifiers, code_shape, find_identifiers, value_identifiers
from kgpipe.kg.resolution_config import AttributeRule, ResolutionConfig
from kgpipe.kg.similarity import NodeTable, PairScores, institutions_differ, rowwise_dot
from kgpipe.kg.value_keys import ValueKeys

MISSING = -1
_SOME = 1e-9  # the band of any overlap at all

# similarity bands of attribute kinds, highest first (the level below the last band is 'else')
_BANDS: dict[str, tuple[float, ...]] = {
    "exact": (1.0,), "phone": (1.0,), "postcode": (1.0,), "code": (1.0,),
    "tokens": (1.0, 0.6, 0.3, _SOME), "address": (1.0, 0.6, 0.3, _SOME),   # _SOME: a word shared
    "numeric": (1.0, 0.5),                # 1/(1 + d / scale): equal, within scale
    "price": (0.99, 0.9, 0.7),            # 1 - relative difference: within 1%, 10%, 30%
}
_CONTEXT_BANDS = (0.5, _SOME)


@dataclass(frozen=True)
class Comparison:
    """One comparison: its name and level labels (strongest agreement first; MISSING is not listed), whether its
    first level is term-frequency adjusted, and whether that level nearly decides a match on its own (an exact
    name, a shared identifier, the same phone number): the deterministic rule the prior is estimated with."""

    name: str
    levels: tuple[str, ...]
    tf: bool = False
    decisive: bool = False


def _band_labels(bands: Sequence[float], first: str = "exact") -> tuple[str, ...]:
    labels = [first if b >= 1.0 else ">0" if b == _SOME else f">={b:g}" for b in bands]
    return (*labels, "else")


def comparisons_for(config: ResolutionConfig, has_context: bool) -> list[Comparison]:
    """The comparisons `config` gives (the same order every time: weights are matched to them by position)."""
    out = [Comparison("name", ("exact", *(f">={b:g}" for b in config.em.name_bands), "else"),
                      tf=config.em.tf_adjust, decisive=True)]
    if config.acronyms:
        out.append(Comparison("acronym", ("agree", "within", "differ")))
    out.append(Comparison("identifiers", ("unique", "agree", "agree+differ", "common", "differ"), decisive=True))
    out.append(Comparison("numbers", ("same", "share", "differ")))
    for attr, rule in config.attributes.items():
        if rule.kind == "exact":  # near-equal values too (kgpipe.kg.value_keys): 'Lexar' and 'Lexar Media'
            out.append(Comparison(f"attribute:{attr}", ("exact", "close", "else")))
        elif rule.kind != "code":
            out.append(Comparison(f"attribute:{attr}", _band_labels(_BANDS[rule.kind]), decisive=rule.kind == "phone"))
    if has_context and config.weights.context > 0:
        out.append(Comparison("context", (">=0.5", ">0", "none")))
    return out


def _bands(values: np.ndarray, cuts: Sequence[float]) -> np.ndarray:
    """Level per value: the first cut it reaches (cuts descending), len(cuts) below the last; NaN: MISSING."""
    out = np.full(len(values), len(cuts), dtype=np.int8)
    for level in range(len(cuts) - 1, -1, -1):
        out[values >= cuts[level] - 1e-12] = level
    out[np.isnan(values)] = MISSING
    return out


@dataclass
class IdentifierColumns:
    """Per node: its identifier codes and its plain numbers as sparse rows (nodes x vocabulary), each code's shape
    (codes x shapes) and how many nodes carry each code. A code at most `rare` nodes carry identifies (a model
    number, a phone); one many carry ('16GB', '1080p', 'DDR3') is a specification many things share."""

    codes: Any
    shape_of_code: Any
    numbers: Any
    number_count: np.ndarray
    code_nodes: np.ndarray
    rare: int = 5

    @classmethod
    def of(cls, found: Sequence[Identifiers], rare: int = 5) -> IdentifierColumns:
        def matrix(sets: Sequence[Sequence[str]], vocab: dict[str, int] | None = None, width: int | None = None):
            vocab = {} if vocab is None else vocab
            rows = [i for i, items in enumerate(sets) for _ in items]
            cols = [vocab.setdefault(item, len(vocab)) for items in sets for item in items]
            out = _csr(rows, cols, None, (len(sets), width or max(len(vocab), 1)))
            out.data[:] = 1.0
            return out, vocab

        codes, code_vocab = matrix([sorted(f.codes) for f in found])
        code_list = sorted(code_vocab, key=code_vocab.__getitem__)
        shapes, _ = matrix([[code_shape(c)] for c in code_list], width=None)
        numbers, _ = matrix([sorted(f.numbers) for f in found])
        code_nodes = np.asarray(codes.sum(axis=0)).ravel().astype(np.int64)
        return cls(codes, shapes, numbers, np.diff(numbers.indptr), code_nodes, rare)

    def identifier_levels(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """unique (0): a code shared that no other node carries (a model number is said of one product: among
        the Walmart-Amazon candidates a code two nodes carry is shared by 604 gold pairs and 141 others, one
        that three carry by 24 and 265); agree (1): a rare code shared and no two different codes of one shape;
        agree+differ (2): a rare code shared, and different codes of one shape too; common (3): only common
        codes shared; differ (4): different codes of one shape (a code on each side that the other lacks), no
        rare code shared; MISSING where the codes say nothing."""
        out = np.full(len(left), MISSING, dtype=np.int8)
        if not len(left) or not self.codes.nnz:
            return out
        for start in range(0, len(left), 200_000):
            sl = slice(start, start + 200_000)
            out[sl] = self._levels(left[sl], right[sl])
        return out

    def _levels(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        a, b = self.codes[left], self.codes[right]
        shared = a.multiply(b).tocsr()
        rare_shared = np.asarray(shared.multiply((self.code_nodes <= self.rare)[None, :]).sum(axis=1)).ravel() > 0
        unique = np.asarray(shared.multiply((self.code_nodes == 2)[None, :]).sum(axis=1)).ravel() > 0
        any_shared = _row_any(shared)
        # per shape: codes on each side that the other lacks; a shape with such codes on both sides differs
        only_a, only_b = (a - shared) @ self.shape_of_code, (b - shared) @ self.shape_of_code
        differ = _row_any(only_a.multiply(only_b))
        out = np.full(len(left), MISSING, dtype=np.int8)
        out[any_shared] = 3
        out[differ] = 4
        out[rare_shared] = np.where(differ[rare_shared], 2, 1)
        out[unique] = 0
        return out

    def shared_code_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Node pairs (left < right) that share a rare code (one that 2 to `rare` nodes carry), in code order:
        candidates of their own, whatever their names say ('Kingston 1GB DDR2 SODIMM' and 'Kingston KVR667D2S5
        1G ValueRAM' share only the model number). At most rare * (rare - 1) / 2 pairs a code, so they grow with
        the corpus as its rare codes do."""
        keep = np.flatnonzero((self.code_nodes >= 2) & (self.code_nodes <= self.rare))
        if not len(keep):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        by_code = self.codes[:, keep].tocsc()
        by_code.sort_indices()
        members, sizes = by_code.indices.astype(np.int64), np.diff(by_code.indptr)
        groups = np.repeat(np.arange(len(keep)), sizes)
        n = self.codes.shape[0]
        found = []
        for d in range(1, int(sizes.max())):
            same = groups[:-d] == groups[d:]
            found.append(members[:-d][same] * n + members[d:][same])   # members ascending within a code
        codes = sorted_unique(np.concatenate(found), in_place=True)
        return codes // n, codes % n

    def number_levels(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """same (0), share (1), differ (2) where both names have numbers; MISSING otherwise."""
        out = np.full(len(left), MISSING, dtype=np.int8)
        cl, cr = self.number_count[left], self.number_count[right]
        both = np.flatnonzero((cl > 0) & (cr > 0))
        shared = rowwise_dot(self.numbers, self.numbers, left[both], right[both])
        out[both] = np.where(shared == 0, 2, np.where((shared == cl[both]) & (shared == cr[both]), 0, 1))
        return out


def _row_any(matrix: Any) -> np.ndarray:
    return np.asarray((matrix > 0).sum(axis=1)).ravel() > 0


def node_identifiers(spellings: Sequence[str], name_of: np.ndarray, attributes: Sequence[Mapping[str, Any]],
                     rules: Mapping[str, AttributeRule], rare: int = 5) -> IdentifierColumns:
    """The identifiers of each node: those of its name's original spelling (each read once), with the codes
    of its `code` attributes."""
    by_name = [find_identifiers(text) for text in spellings]
    code_attrs = [attr for attr, rule in rules.items() if rule.kind == "code"]
    found = []
    for node, name in enumerate(name_of.tolist()):
        ids = by_name[name]
        for attr in code_attrs:
            value = attributes[node].get(attr)
            if value is not None and value == value and str(value).strip():
                ids = ids | value_identifiers(str(value))
        found.append(ids)
    return IdentifierColumns.of(found, rare)


def node_value_keys(attributes: Sequence[Mapping[str, Any]], rules: Mapping[str, AttributeRule]
                    ) -> dict[str, ValueKeys]:
    """Per exact attribute, its values' keys for the 'close' level."""
    return {attr: ValueKeys.of([a.get(attr) for a in attributes]) for attr, rule in rules.items()
            if rule.kind == "exact"}


def pair_levels(table: NodeTable, identifiers: IdentifierColumns, comparisons: Sequence[Comparison],
                left: np.ndarray, right: np.ndarray, value_keys: Mapping[str, ValueKeys] | None = None,
                acronyms: AcronymRuns | None = None, scores: PairScores | None = None) -> np.ndarray:
    """(pairs x comparisons) int8 levels of node pairs (left[i], right[i]); value_keys: node_value_keys, for
    the exact attributes' 'close' level, acronyms: the names' AcronymRuns, for the acronym's 'within' level
    (without them those levels are never given); scores: the fixed scorer's PairScores of these pairs, where
    they are at hand (their name signals are not computed again)."""
    cfg, w = table.config, table.config.weights
    ln, rn = table.name_of[left], table.name_of[right]
    if scores is None:
        token, char, ratio, acronym, _ = table.name_scores(ln, rn, separate=True)
    else:
        token, char, ratio, acronym = scores.token, scores.char, scores.fuzz, scores.acronym
    total = w.token + w.char + w.fuzz
    name = (w.token * token + w.char * char + w.fuzz * ratio) / total if total else np.zeros(len(left))
    f = table.features
    if f.head is not None and cfg.institution_mismatch < 1:
        name = np.where(institutions_differ(f, ln, rn), name * cfg.institution_mismatch, name)
    out = np.empty((len(left), len(comparisons)), dtype=np.int8)
    for k, comparison in enumerate(comparisons):
        kind = comparison.name
        if kind == "name":
            level = _bands(name, [2.0, *cfg.em.name_bands])  # 2.0: no score reaches 'exact', set below
            level[ln == rn] = 0
            empty = np.array([not key for key in f.keys], dtype=bool)
            level[empty[ln] | empty[rn]] = MISSING  # a record without a name (only attributes) says nothing here
        elif kind == "acronym":
            said = ((f.as_acronym[ln] >= 0) & (f.initials[rn] >= 0)) | ((f.as_acronym[rn] >= 0) & (f.initials[ln] >= 0))
            within = np.zeros(len(ln), dtype=bool)
            if acronyms is not None:
                said |= acronyms.said(ln, rn)
                within = acronyms.within(ln, rn)
            level = np.where(acronym, 0, np.where(within, 1, np.where(said, 2, MISSING))).astype(np.int8)
        elif kind == "identifiers":
            level = identifiers.identifier_levels(left, right)
        elif kind == "numbers":
            level = identifiers.number_levels(left, right)
        elif kind == "context":
            level = _bands(_context_overlap(table, left, right), _CONTEXT_BANDS)
        else:
            attr = kind.split(":", 1)[1]
            rule = cfg.attributes[attr]
            sim = table._attribute_similarity(rule, table.attribute_columns[attr], left, right)
            level = _bands(sim, _BANDS[rule.kind])
            if rule.kind == "exact":
                level[level == 1] = 2
                if value_keys is not None and attr in value_keys:
                    level[(level == 2) & value_keys[attr].close(left, right)] = 1
        out[:, k] = level
    return out


def _context_overlap(table: NodeTable, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Jaccard of the nodes' contexts; NaN where either has none."""
    out = np.full(len(left), np.nan)
    if table.context is None:
        return out
    both = np.flatnonzero((table.context_size[left] > 0) & (table.context_size[right] > 0))
    lb, rb = left[both], right[both]
    inter = rowwise_dot(table.context, table.context, lb, rb)
    out[both] = inter / (table.context_size[lb] + table.context_size[rb] - inter)
    return out
