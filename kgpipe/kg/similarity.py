"""Pairwise similarity of resolution nodes from several signals, computed for whole arrays of pairs at once:
IDF-weighted token overlap, character n-gram overlap, a rapidfuzz ratio, acronym agreement, agreement of
institution phrases (kgpipe.kg.institution), entity-type compatibility, context overlap and attribute
agreement, combined into one score with configurable weights.

Each node is a name (with its type, pooled context and attributes). Names are featurised once into sparse
matrices (kgpipe.kg.features); a batch of pairs is scored with row-wise sparse products and rapidfuzz's
`cpdist`, so millions of candidate pairs cost seconds, not a Python loop each.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kgpipe.kg.codes import find_sorted
from kgpipe.kg.features import (  # noqa: F401  (featurize_names, typo_word_pairs: re-exported, long imported from here)
    NameFeatures,
    _csr,
    featurize_names,
    typo_word_pairs,
)
from kgpipe.kg.identifiers import phone_key
from kgpipe.kg.name_columns import PHRASE_KINDS
from kgpipe.kg.normalize import fold_text, name_tokens, normalize_name
from kgpipe.kg.resolution_config import (  # noqa: F401  (re-exported: the settings live beside the scorer)
    AttributeRule,
    BlockingConfig,
    NormalizeConfig,
    ResolutionConfig,
    SignalWeights,
)


def _alphanumeric(value: str) -> str | None:
    """Letters and digits only, upper case (a postcode, a model number); None when nothing is left."""
    key = "".join(ch for ch in fold_text(value) if ch.isalnum()).upper()
    return key or None


_KEYED: dict[str, Callable[[str], str | None]] = {"phone": phone_key, "postcode": _alphanumeric,
                                                   "code": _alphanumeric}


def _price(value: Any) -> float:
    """A price as a float ('$1,299.00' reads 1299); NaN when it holds no number."""
    found = re.search(r"\d+(?:\.\d+)?", str(value).replace(",", ""))
    return float(found.group()) if found else math.nan


def _number(value: Any) -> float:
    """A numeric attribute as a float; NaN (absent) when it does not read as a number ('1999' does)."""
    try:
        return float(str(value).strip())
    except ValueError:
        return math.nan


def rowwise_dot(a, b, left: np.ndarray, right: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """sum_k a[left[p], k] * b[right[p], k] for every pair p, in chunks to bound memory."""
    out = np.empty(len(left), dtype=np.float64)
    for start in range(0, len(left), chunk):
        sl = slice(start, start + chunk)
        out[sl] = np.asarray(a[left[sl]].multiply(b[right[sl]]).sum(axis=1)).ravel()
    return out


def soft_dot(weighted, rows: np.ndarray, f: NameFeatures, names: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """`rowwise_dot(weighted, f.soft_bits, rows, names)` without reading `soft_bits`' long rows: a word of
    `weighted[rows[p]]` is credited 1 where `names[p]` has it, plus the typo credit of each of `names[p]`'s
    words one typo from it, at most 1 in all. Names have a few words each, so this compares a few word pairs
    per name pair, where the typo-spread rows hold every neighbour of every word (hundreds at a million
    names). In chunks of pairs, to bound memory."""
    if len(rows) > chunk:
        return np.concatenate([soft_dot(weighted, rows[i:i + chunk], f, names[i:i + chunk], chunk)
                               for i in range(0, len(rows), chunk)])
    bits = f.token_bits
    la = (weighted.indptr[rows + 1] - weighted.indptr[rows]).astype(np.int64)
    lb = (bits.indptr[names + 1] - bits.indptr[names]).astype(np.int64)
    out = np.zeros(len(rows))
    if not len(rows) or not la.sum():
        return out
    first = np.cumsum(la) - la                       # first entry of each pair among all (pair, word) entries
    entry_pair = np.repeat(np.arange(len(rows)), la)
    entry_pos = weighted.indptr[rows][entry_pair] + np.arange(la.sum()) - first[entry_pair]
    word, weight = weighted.indices[entry_pos].astype(np.int64), weighted.data[entry_pos]
    per = lb[entry_pair]                             # (entry, other word) combinations
    combo_entry = np.repeat(np.arange(len(word)), per)
    k = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
    other = bits.indices[bits.indptr[names][entry_pair[combo_entry]] + k].astype(np.int64)
    mine = word[combo_entry]
    credit = (mine == other).astype(np.float64)
    typo_codes, typo_credit, has_typo = f.typo_codes, f.typo_credit, f.has_typo  # all set or all None
    if typo_codes is not None and typo_credit is not None and has_typo is not None and len(typo_codes):
        look = np.flatnonzero((mine != other) & has_typo[mine] & has_typo[other])
        codes = other[look] * bits.shape[1] + mine[look]
        found, at = find_sorted(typo_codes, codes)
        credit[look[found]] = typo_credit[at[found]]
    per_entry = np.minimum(np.bincount(combo_entry, weights=credit, minlength=len(word)), 1.0)
    return np.bincount(entry_pair, weights=weight * per_entry, minlength=len(rows))


def _unmatched_part_mass(f: NameFeatures, names: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Per pair: the token mass of the parts of `names[p]` after its first that share no word (or typo of
    one) with `others[p]`. The first part names the thing ('Google Inc., Mountain View, CA'), so it always
    counts in full: two names that share only a place stay apart."""
    out = np.zeros(len(names))
    count = np.diff(f.segment_start) - 1  # parts after the first
    multi = np.flatnonzero(count[names] > 0)
    if not len(multi):
        return out
    per_pair = count[names[multi]]
    pair_of = np.repeat(multi, per_pair)
    first = np.repeat(f.segment_start[names[multi]] + 1, per_pair)
    offset = np.arange(len(pair_of)) - np.repeat(np.r_[0, np.cumsum(per_pair)[:-1]], per_pair)
    part = first + offset
    hits = soft_dot(f.segments, part, f, others[pair_of])
    out += np.bincount(pair_of, weights=np.where(hits > 0, 0.0, f.segment_mass[part]), minlength=len(names))
    return out


def institutions_differ(f: NameFeatures, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Per pair: whether the names' institution phrases (kgpipe.kg.institution) share a head class and
    disagree: a word before the head or of the 'of' phrase of one is not said anywhere in the other name
    (no word or typo of it there; the name without an 'of' phrase may leave the other's unsaid when both
    have the same words before the head), or both have qualifiers and neither name says a word of the
    other's."""
    out = np.zeros(len(left), dtype=bool)
    head, institution = f.head, f.institution
    if head is None or institution is None:  # institution phrases were not parsed (institution_mismatch 1)
        return out
    both = np.flatnonzero((head[left] >= 0) & (head[left] == head[right]))
    if not len(both):
        return out
    a, b = left[both], right[both]
    pre, post, qualifier = (institution[kind] for kind in PHRASE_KINDS)

    def size(matrix, names: np.ndarray) -> np.ndarray:
        return np.diff(matrix.indptr)[names]

    def unsaid(matrix, names: np.ndarray, others: np.ndarray) -> np.ndarray:
        """Some word of names' phrase part has no credit (a word or typo of it) in the other name."""
        return size(matrix, names) - soft_dot(matrix, names, f, others) > 0.5

    differ = unsaid(pre, a, b) | unsaid(pre, b, a)
    same_pre = (size(pre, a) > 0) & (size(pre, b) > 0) & ~differ
    differ |= unsaid(post, a, b) & ~(same_pre & (size(post, b) == 0))
    differ |= unsaid(post, b, a) & ~(same_pre & (size(post, a) == 0))
    qualified = np.flatnonzero((size(qualifier, a) > 0) & (size(qualifier, b) > 0))
    if len(qualified):
        qa, qb = a[qualified], b[qualified]
        differ[qualified] |= (soft_dot(qualifier, qa, f, qb) == 0) & (soft_dot(qualifier, qb, f, qa) == 0)
    out[both] = differ
    return out


@dataclass
class PairScores:
    """Signals and the combined score for a batch of node pairs (arrays of one length)."""

    token: np.ndarray
    char: np.ndarray
    fuzz: np.ndarray
    acronym: np.ndarray
    name: np.ndarray
    context: np.ndarray       # NaN where either side has no context
    attributes: np.ndarray    # weighted attribute agreement, NaN where no rule applies
    type_ok: np.ndarray
    score: np.ndarray

    def row(self, i: int) -> dict[str, float | bool | None]:
        def plain(value: float) -> float | None:
            return None if math.isnan(value) else round(float(value), 4)
        return {"token": plain(self.token[i]), "char": plain(self.char[i]), "fuzz": plain(self.fuzz[i]),
                "acronym": bool(self.acronym[i]), "context": plain(self.context[i]),
                "attributes": plain(self.attributes[i]), "type_ok": bool(self.type_ok[i]),
                "score": plain(self.score[i])}


class NodeTable:
    """Resolution nodes (a name, a type, pooled context, attributes) and the scorer over their pairs."""

    def __init__(self, features: NameFeatures, name_of: np.ndarray, types: Sequence[str | None],
                 contexts: Sequence[frozenset[str]], attributes: Sequence[Mapping[str, Any]],
                 config: ResolutionConfig, type_parents: Mapping[str, str] | None = None) -> None:
        from kgpipe.vocab import DEFAULT_TYPE_PARENTS, compatible

        self.features = features
        self.name_of = np.asarray(name_of, dtype=np.int64)
        self.config = config
        n = len(self.name_of)
        type_names = sorted({t for t in types if t})
        type_index = {t: i for i, t in enumerate(type_names)}
        self.type_id = np.array([type_index[t] if t else -1 for t in types], dtype=np.int64)
        parents = DEFAULT_TYPE_PARENTS if type_parents is None else type_parents
        # row/column len(type_names) stands for 'no type', compatible with everything
        size = len(type_names) + 1
        self.type_compat = np.ones((size, size), dtype=bool)
        for a, ta in enumerate(type_names):
            for b, tb in enumerate(type_names):
                self.type_compat[a, b] = compatible(ta, tb, parents)
        self.context = None
        if any(contexts):
            vocab: dict[str, int] = {}
            rows = [i for i, ctx in enumerate(contexts) for _ in ctx]
            cols = [vocab.setdefault(item, len(vocab)) for ctx in contexts for item in ctx]
            self.context = _csr(rows, cols, None, (n, max(len(vocab), 1)))
            self.context.data[:] = 1.0
            self.context_size = np.asarray(self.context.sum(axis=1)).ravel()
        self.attribute_columns = {name: self._attribute_column(name, rule, attributes)
                                  for name, rule in config.attributes.items()}

    def __len__(self) -> int:
        return len(self.name_of)

    def _attribute_column(self, name: str, rule: AttributeRule, attributes: Sequence[Mapping[str, Any]]):
        values = [attrs.get(name) for attrs in attributes]
        present = np.array([v is not None and v == v and str(v).strip() != "" for v in values], dtype=bool)
        if rule.kind in _KEYED:  # phone, postcode, code: equal keys (None: no usable value)
            keys = [_KEYED[rule.kind](str(v)) if ok else None for v, ok in zip(values, present, strict=True)]
            key_ids: dict[str, int] = {}
            column = np.array([-1 if k is None else key_ids.setdefault(k, len(key_ids)) for k in keys],
                              dtype=np.int64)
            return column >= 0, column
        if rule.kind in ("numeric", "price"):
            read = _price if rule.kind == "price" else _number
            column = np.array([read(v) if ok else np.nan for v, ok in zip(values, present, strict=True)])
            return present & ~np.isnan(column), column
        if rule.kind == "exact":
            ids: dict[str, int] = {}
            column = np.array([ids.setdefault(fold_text(str(v)).strip(), len(ids)) if ok else -1
                               for v, ok in zip(values, present, strict=True)], dtype=np.int64)
            return present, column
        options = self.config.normalize.options()
        vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        for i, (value, ok) in enumerate(zip(values, present, strict=True)):
            if ok:
                text = " ".join(value) if isinstance(value, list | tuple) else str(value)
                for token in set(name_tokens(normalize_name(text, options), options)):
                    rows.append(i)
                    cols.append(vocab.setdefault(token, len(vocab)))
        matrix = _csr(rows, cols, None, (len(values), max(len(vocab), 1)))
        matrix.data[:] = 1.0
        return present, (matrix, np.asarray(matrix.sum(axis=1)).ravel())

    def _attribute_similarity(self, rule: AttributeRule, column, left: np.ndarray, right: np.ndarray):
        present, values = column
        both = present[left] & present[right]
        sim = np.full(len(left), np.nan)
        if rule.kind == "numeric":
            sim[both] = 1.0 / (1.0 + np.abs(values[left[both]] - values[right[both]]) / rule.scale)
        elif rule.kind == "price":
            a, b = values[left[both]], values[right[both]]
            top = np.maximum(np.abs(a), np.abs(b))
            sim[both] = 1.0 - np.minimum(np.divide(np.abs(a - b), top, out=np.zeros_like(a), where=top > 0), 1.0)
        elif rule.kind == "exact" or rule.kind in _KEYED:
            sim[both] = (values[left[both]] == values[right[both]]).astype(np.float64)
        else:
            matrix, sizes = values
            lb, rb = left[both], right[both]
            inter = rowwise_dot(matrix, matrix, lb, rb)
            union = sizes[lb] + sizes[rb] - inter
            sim[both] = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        return sim

    def name_scores(self, left_names: np.ndarray, right_names: np.ndarray, *, separate: bool = False):
        """Token, n-gram, fuzz and acronym signals of name pairs, and their combination. separate: leave
        acronym agreement and numbers out of the combination (learned weights compare them on their own)."""
        from rapidfuzz import fuzz, process

        f, cfg = self.features, self.config
        # each side's words, credited where the other has the word or a typo of it
        inter = (soft_dot(f.tokens, left_names, f, right_names) + soft_dot(f.tokens, right_names, f, left_names)) / 2
        ml, mr = f.token_mass[left_names], f.token_mass[right_names]
        if cfg.unmatched_part_weight < 1 and f.segments is not None:
            # a part of a name that shares no word with the other name (a street, a city, a sub-unit the
            # other leaves out) counts less than unmatched words inside a part both names speak of
            ml = ml - (1 - cfg.unmatched_part_weight) * _unmatched_part_mass(f, left_names, right_names)
            mr = mr - (1 - cfg.unmatched_part_weight) * _unmatched_part_mass(f, right_names, left_names)
        union = ml + mr - inter
        jaccard = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        smaller = np.minimum(ml, mr)
        overlap = np.minimum(np.divide(inter, smaller, out=np.zeros_like(inter), where=smaller > 0), 1.0)
        token = (1 - cfg.token_containment) * jaccard + cfg.token_containment * overlap
        g_inter = rowwise_dot(f.grams, f.grams, left_names, right_names)
        g_union = f.gram_count[left_names] + f.gram_count[right_names] - g_inter
        char = np.divide(g_inter, g_union, out=np.zeros_like(g_inter), where=g_union > 0)
        if len(left_names):
            keys = np.asarray(f.keys, dtype=object)
            ratio = process.cpdist(list(keys[left_names]), list(keys[right_names]),
                                   scorer=getattr(fuzz, cfg.fuzz_scorer), workers=cfg.workers,
                                   dtype=np.float32).astype(np.float64) / 100.0
        else:
            ratio = np.zeros(0)
        w = cfg.weights
        total = w.token + w.char + w.fuzz
        name = (w.token * token + w.char * char + w.fuzz * ratio) / total if total else np.zeros_like(token)
        acronym = ((f.as_acronym[left_names] >= 0) & (f.as_acronym[left_names] == f.initials[right_names])) | (
            (f.as_acronym[right_names] >= 0) & (f.as_acronym[right_names] == f.initials[left_names]))
        # an acronym against its expansion shares no letters worth counting: agreement stands for the name
        if not separate:
            name = np.where(acronym, np.maximum(name, 1.0), name)
        if not separate and f.numbers is not None and f.numbers.nnz and cfg.number_mismatch < 1:
            count = np.diff(f.numbers.indptr)
            both = (count[left_names] > 0) & (count[right_names] > 0)
            if both.any():
                shared = np.zeros(len(left_names))
                shared[both] = rowwise_dot(f.numbers, f.numbers, left_names[both], right_names[both])
                name = np.where(both & (shared == 0), name * cfg.number_mismatch, name)
        if f.head is not None and cfg.institution_mismatch < 1:
            name = np.where(institutions_differ(f, left_names, right_names), name * cfg.institution_mismatch, name)
        return token, char, ratio, acronym, name

    def types_compatible(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Whether the types of each node pair are compatible (a node without a type is compatible with any)."""
        none = len(self.type_compat) - 1
        tl = np.where(self.type_id[left] >= 0, self.type_id[left], none)
        tr = np.where(self.type_id[right] >= 0, self.type_id[right], none)
        return self.type_compat[tl, tr]

    def score(self, left: np.ndarray, right: np.ndarray) -> PairScores:
        """Score node pairs (two index arrays of equal length)."""
        left = np.asarray(left, dtype=np.int64)
        right = np.asarray(right, dtype=np.int64)
        cfg, w = self.config, self.config.weights
        token, char, ratio, acronym, name = self.name_scores(self.name_of[left], self.name_of[right])
        total = w.name * name
        weight = np.full(len(left), w.name)
        attributes = np.full(len(left), np.nan)
        if self.attribute_columns:
            a_total = np.zeros(len(left))
            a_weight = np.zeros(len(left))
            for attr, rule in cfg.attributes.items():
                sim = self._attribute_similarity(rule, self.attribute_columns[attr], left, right)
                has = ~np.isnan(sim)
                a_total[has] += rule.weight * sim[has]
                a_weight[has] += rule.weight
            any_attr = a_weight > 0
            attributes[any_attr] = a_total[any_attr] / a_weight[any_attr]
            total += a_total
            weight += a_weight
        score = total / weight
        context = np.full(len(left), np.nan)
        if self.context is not None and w.context > 0:
            # shared company is evidence for, but none shared is no evidence against: most mentions of
            # one entity co-occur with different things, so context only moves a score towards 1
            both = (self.context_size[left] > 0) & (self.context_size[right] > 0)
            lb, rb = left[both], right[both]
            inter = rowwise_dot(self.context, self.context, lb, rb)
            union = self.context_size[lb] + self.context_size[rb] - inter
            context[both] = inter / union
            score[both] += w.context * context[both] * (1.0 - score[both])
        type_ok = self.types_compatible(left, right)
        score = np.where(type_ok, score, score * cfg.type_mismatch)
        return PairScores(token, char, ratio, acronym, name, context, attributes, type_ok, score)
