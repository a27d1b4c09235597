"""Learning relation patterns from labelled sentences: for every ordered pair of gold entities, the shortest
dependency path between their head tokens, at several levels of generalisation, becomes a candidate
DependencyMatcher pattern over the whole path; candidates whose smoothed training precision,
(right + 1) / (matches + 2), passes a threshold are kept, with that estimate as their confidence.

Generalisation levels of the path's inner tokens (anchors are constrained by dependency label only, their
entity labels come from the training pair's types): `lemma` (every lemma, e.g. work -prep-> for);
`trigger` (the lemma of the path's top word, the trigger, kept; other content words reduced to their POS);
`function` (lemmas kept only for function words, content words by POS); `skeleton` (function-word lemmas,
content words by dependency label alone); `dependency` (dependency labels and POS of function words only).
So "X, president of Y" and "X, director of Y" can share one pattern where that stays precise.

The precision threshold and minimum support can be chosen per relation by k-fold cross-validation on the
training sentences (`cv_folds`; folds are contiguous blocks of the file): patterns are counted on k-1 folds
and scored on the held-out fold the way the extractor applies them (of all the patterns that fire on a pair
of entities, in either direction, the most confident one decides), and the thresholds with the best micro F1
over all folds are kept.

Wrong relations (a negatives file: labelled sentences whose relations are known to be wrong, e.g. the
explorer's corrections) count against the patterns that would give them: each is one more match, never a
right one, of every candidate pattern for that relation whose path joins the pair.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kgpipe.nlp.labelled import LabelledSentence, entity_spans, make_doc
from kgpipe.nlp.patterns import RelationPattern, Side

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Token

log = logging.getLogger(__name__)

LEVELS = ("lemma", "trigger", "function", "skeleton", "dependency")
FUNCTION_POS = frozenset({"ADP", "PART", "AUX", "CCONJ", "SCONJ", "DET", "PRON", "PUNCT"})
PRECISION_GRID = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
SUPPORT_GRID = (1, 2, 3, 4)
NodeKey = tuple[tuple[str, str], ...]  # sorted (attribute, value) pairs of one pattern node


@dataclass(frozen=True)
class LearnOptions:
    min_precision: float = 0.6     # smoothed training precision (support + 1) / (matches + 2) at least this
    min_support: int = 1           # ... and right at least this many times
    max_path_edges: int = 5        # longer paths are too specific to recur (5: best in CV on CoNLL04 train)
    levels: tuple[str, ...] = LEVELS
    relation_names: Mapping[str, str] = field(default_factory=dict)  # training label -> pattern relation
    id_prefix: str = "learned"
    # per training label: (min precision, min support), overriding the two above
    thresholds: Mapping[str, tuple[float, int]] = field(default_factory=dict)
    cv_folds: int = 0              # >= 2: choose the per-relation thresholds by k-fold cross-validation


@dataclass
class LearnReport:
    sentences: int = 0
    pairs: int = 0
    related_pairs: int = 0
    paths_too_long: int = 0
    negatives: int = 0             # wrong relations (from a negatives file) with a path, counted against patterns
    candidates: int = 0
    kept: int = 0
    coverage: dict[str, tuple[int, int]] = field(default_factory=dict)  # relation -> (covered, total)
    thresholds: dict[str, tuple[float, int]] = field(default_factory=dict)  # as used, per training label
    cv: CrossValidation | None = None


@dataclass
class CrossValidation:
    folds: int
    default: tuple[float, int]                      # the best single threshold pair for every relation
    default_f1: float
    tuned_f1: float                                 # micro F1 over the folds with the per-relation choice
    per_relation: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # label -> P, R, F1


@dataclass(frozen=True)
class PathShape:
    """A dependency path as a tree rooted at the lowest common ancestor of the two anchors."""

    root: NodeKey
    subject_branch: tuple[NodeKey, ...]   # from below the root down to the subject anchor
    object_branch: tuple[NodeKey, ...]
    subject_is_root: bool
    object_is_root: bool

    def to_dependency(self) -> list[dict[str, Any]]:
        nodes: list[dict[str, Any]] = [{"RIGHT_ID": "root", "RIGHT_ATTRS": dict(self.root)}]
        for side, branch in (("subject", self.subject_branch), ("object", self.object_branch)):
            left = "root"
            for depth, node in enumerate(branch):
                right = side if depth == len(branch) - 1 else f"{side}_{depth}"
                nodes.append({"LEFT_ID": left, "REL_OP": ">", "RIGHT_ID": right, "RIGHT_ATTRS": dict(node)})
                left = right
        if self.subject_is_root or self.object_is_root:
            rename = "subject" if self.subject_is_root else "object"
            nodes = [{**n, **({"RIGHT_ID": rename} if n["RIGHT_ID"] == "root" else {}),
                      **({"LEFT_ID": rename} if n.get("LEFT_ID") == "root" else {})} for n in nodes]
        return nodes


def _node(token: Token, level: str, *, anchor: bool, is_root: bool) -> NodeKey:
    attrs: dict[str, str] = {}
    if not is_root:
        attrs["DEP"] = token.dep_
    if not anchor:
        function_word = token.pos_ in FUNCTION_POS
        if level == "lemma" or (level == "trigger" and is_root) or (function_word and level != "dependency"):
            attrs["LEMMA"] = token.lemma_
        elif level in ("trigger", "function") or (level == "dependency" and function_word):
            attrs["POS"] = token.pos_
        # level "skeleton": a content word is constrained by its dependency label alone
    return tuple(sorted(attrs.items()))


def path_shape(subject: Token, obj: Token, level: str, max_edges: int) -> PathShape | None:
    """The shortest path between two tokens of one parse as a PathShape, or None if too long/absent."""
    subject_chain = [subject, *subject.ancestors]
    object_chain = [obj, *obj.ancestors]
    object_positions = {t.i: k for k, t in enumerate(object_chain)}
    lca_depth = next((k for k, t in enumerate(subject_chain) if t.i in object_positions), None)
    if lca_depth is None:
        return None
    lca = subject_chain[lca_depth]
    down_to_subject = list(reversed(subject_chain[:lca_depth]))           # below the root, root side first
    down_to_object = list(reversed(object_chain[:object_positions[lca.i]]))
    if len(down_to_subject) + len(down_to_object) > max_edges or (not down_to_subject and not down_to_object):
        return None
    anchors = {subject.i, obj.i}
    return PathShape(
        root=_node(lca, level, anchor=lca.i in anchors, is_root=True),
        subject_branch=tuple(_node(t, level, anchor=t.i in anchors, is_root=False) for t in down_to_subject),
        object_branch=tuple(_node(t, level, anchor=t.i in anchors, is_root=False) for t in down_to_object),
        subject_is_root=lca.i == subject.i, object_is_root=lca.i == obj.i)


Key = tuple[str, PathShape, str, str]  # (level, path, subject type, object type): one candidate pattern


@dataclass(frozen=True)
class _Pair:
    sentence: int
    subject: int           # entity indexes in the sentence
    object: int
    label: str | None      # the gold relation from subject to object, if any
    keys: tuple[Key, ...]  # the candidate patterns that match this pair, one per level
    wrong: str | None = None  # a relation known to be wrong for this pair (negatives file; label is None)


@dataclass(frozen=True)
class _Candidate:
    label: str             # the relation most often right
    support: int
    matches: int           # every pair the path joins, plus the known-wrong pairs of its relation
    estimate: float        # smoothed precision (support + 1) / (matches + 2)


def collect_pairs(nlp: Language, sentences: Sequence[LabelledSentence], options: LearnOptions,
                  report: LearnReport, progress: Callable[[int, int], None] | None = None) -> list[_Pair]:
    """Every ordered pair of gold entities with distinct heads, and its candidate pattern per level."""
    pairs: list[_Pair] = []
    disabled = [name for name in nlp.pipe_names if name not in ("tok2vec", "tagger", "morphologizer",
                                                                "attribute_ruler", "lemmatizer", "parser")]
    docs = (make_doc(nlp, s) for s in sentences)
    with nlp.select_pipes(disable=disabled):
        for number, (sentence, doc) in enumerate(zip(sentences, nlp.pipe(docs, batch_size=64), strict=True)):
            spans = entity_spans(doc, sentence)
            gold = {(r.head, r.tail): r.type for r in sentence.relations}
            for i, a in enumerate(spans):
                for j, b in enumerate(spans):
                    if i == j or a is None or b is None or a.root.i == b.root.i:
                        continue
                    keys = _keys(a, b, sentence, i, j, options, report)
                    pairs.append(_Pair(number, i, j, gold.get((i, j)), keys))
            if progress is not None:
                progress(number + 1, len(sentences))
    report.pairs = len(pairs)
    report.related_pairs = sum(p.label is not None for p in pairs)
    return pairs


def _keys(a: Any, b: Any, sentence: LabelledSentence, i: int, j: int, options: LearnOptions,
          report: LearnReport) -> tuple[Key, ...]:
    """The candidate patterns (one per level) whose path joins the heads of spans a and b."""
    keys = []
    for level in options.levels:
        shape = path_shape(a.root, b.root, level, options.max_path_edges)
        if shape is None:
            report.paths_too_long += level == options.levels[0]
            continue
        keys.append((level, shape, sentence.entities[i].type, sentence.entities[j].type))
    return tuple(keys)


def collect_wrong_pairs(nlp: Language, negatives: Sequence[LabelledSentence], options: LearnOptions,
                        report: LearnReport) -> list[_Pair]:
    """The pairs of a negatives file's relations, each with the relation known to be wrong for it; their
    sentence numbers are negative, so cross-validation never holds them out or scores them."""
    pairs: list[_Pair] = []
    scratch = LearnReport()  # paths too long here are not the training data's
    disabled = [name for name in nlp.pipe_names if name not in ("tok2vec", "tagger", "morphologizer",
                                                                "attribute_ruler", "lemmatizer", "parser")]
    with nlp.select_pipes(disable=disabled):
        docs = nlp.pipe((make_doc(nlp, s) for s in negatives), batch_size=64)
        for number, (sentence, doc) in enumerate(zip(negatives, docs, strict=True)):
            spans = entity_spans(doc, sentence)
            for r in sentence.relations:
                a, b = spans[r.head], spans[r.tail]
                if r.head == r.tail or a is None or b is None or a.root.i == b.root.i:
                    continue
                keys = _keys(a, b, sentence, r.head, r.tail, options, scratch)
                if keys:
                    pairs.append(_Pair(-1 - number, r.head, r.tail, None, keys, wrong=r.type))
    report.negatives = len(pairs)
    return pairs


def candidates(pairs: Iterable[_Pair]) -> dict[Key, _Candidate]:
    """The candidate patterns seen on related pairs, with their counts over all the pairs given (a pair
    known to be wrong for a relation counts as a wrong match of that relation's candidates only)."""
    counts: dict[Key, Counter[str | None]] = defaultdict(Counter)
    wrong: dict[Key, Counter[str]] = defaultdict(Counter)
    for pair in pairs:
        for key in pair.keys:
            if pair.wrong is not None:
                wrong[key][pair.wrong] += 1
            else:
                counts[key][pair.label] += 1
    found = {}
    for key, counter in counts.items():
        related = [(n, lab) for lab, n in counter.items() if lab is not None]
        if not related:
            continue
        support, label = max(related)
        matches = sum(counter.values()) + wrong[key][label]
        # additive (Laplace) smoothing: a path seen once and right once scores 2/3, not 1.0
        found[key] = _Candidate(label, support, matches, (support + 1) / (matches + 2))
    return found


def _passes(candidate: _Candidate, thresholds: Mapping[str, tuple[float, int]], default: tuple[float, int]
            ) -> bool:
    min_precision, min_support = thresholds.get(candidate.label, default)
    return candidate.support >= min_support and candidate.estimate >= min_precision - 1e-9


Ranked = list[list[tuple[_Candidate, tuple[int, int, int, str]]]]


def rank(pairs: Sequence[_Pair], table: Mapping[Key, _Candidate]) -> Ranked:
    """Per unordered pair of entities, the candidates that fire on it in either direction, most confident
    first, each with the relation it would give."""
    groups: dict[tuple[int, int, int], list[tuple[_Candidate, tuple[int, int, int, str]]]] = defaultdict(list)
    for pair in pairs:
        low, high = sorted((pair.subject, pair.object))
        unordered = (pair.sentence, low, high)
        for key in pair.keys:
            candidate = table.get(key)
            if candidate is not None:
                groups[unordered].append((candidate, (pair.sentence, pair.subject, pair.object, candidate.label)))
    # stable sort: among equally confident candidates the first seen (ordered pair, level) wins
    return [sorted(group, key=lambda c: -c[0].estimate) for group in groups.values()]


def predict(ranked: Ranked, thresholds: Mapping[str, tuple[float, int]], default: tuple[float, int]
            ) -> set[tuple[int, int, int, str]]:
    """(sentence, subject, object, relation) the kept patterns give: per unordered pair of entities, the
    most confident kept pattern in either direction decides, as the extractor does."""
    predicted = set()
    for group in ranked:
        for candidate, relation in group:
            if _passes(candidate, thresholds, default):
                predicted.add(relation)
                break
    return predicted


def _micro(predicted: set[tuple[int, int, int, str]], gold: set[tuple[int, int, int, str]]
           ) -> tuple[float, float, float]:
    tp = len(predicted & gold)
    p = tp / len(predicted) if predicted else 0.0
    r = tp / len(gold) if gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def cross_validate(pairs: Sequence[_Pair], n_sentences: int, folds: int,
                   fallback: tuple[float, int] = (0.6, 1)) -> tuple[dict[str, tuple[float, int]], CrossValidation]:
    """Per-relation (min precision, min support) with the best micro F1 over k contiguous folds of the
    sentences:
    first the best single pair for all relations, then each relation's own, one relation at a time with
    the others held (two rounds). Ties, e.g. on data too small to score anything, go to the setting
    closest to `fallback`."""
    # contiguous blocks of the training file, not a shuffle: neighbouring sentences often come from one news
    # story (same names, same phrasing), and a pattern seen in one should not be scored on the other
    fold_of = {sentence: sentence * folds // n_sentences for sentence in range(n_sentences)}
    splits = []
    for k in range(folds):
        held = [p for p in pairs if fold_of.get(p.sentence) == k]
        table = candidates(p for p in pairs if fold_of.get(p.sentence) != k)
        # only the keys of held-out pairs matter; keep the table small
        needed = {key for p in held for key in p.keys}
        splits.append(rank(held, {key: c for key, c in table.items() if key in needed}))
    gold = {(p.sentence, p.subject, p.object, p.label) for p in pairs if p.label is not None}
    labels = sorted({p.label for p in pairs if p.label is not None})
    grid = [(p, s) for p in PRECISION_GRID for s in SUPPORT_GRID]

    def score(thresholds: Mapping[str, tuple[float, int]], default: tuple[float, int]) -> set[tuple]:
        predicted: set[tuple[int, int, int, str]] = set()
        for ranked in splits:
            predicted |= predict(ranked, thresholds, default)
        return predicted

    def closeness(g: tuple[float, int]) -> tuple[float, int]:
        return -abs(g[0] - fallback[0]), -abs(g[1] - fallback[1])

    default = max(grid, key=lambda g: (round(_micro(score({}, g), gold)[2], 9), closeness(g)))
    default_f1 = _micro(score({}, default), gold)[2]
    chosen = dict.fromkeys(labels, default)
    def rank_setting(g: tuple[float, int], lab: str) -> tuple[float, bool, tuple[float, int]]:
        return round(_micro(score({**chosen, lab: g}, default), gold)[2], 9), g == chosen[lab], closeness(g)

    for _ in range(2):
        for label in labels:
            chosen[label] = max(grid, key=functools.partial(rank_setting, lab=label))
    predicted = score(chosen, default)
    per_relation = {lab: _micro({x for x in predicted if x[3] == lab}, {x for x in gold if x[3] == lab})
                    for lab in labels}
    result = CrossValidation(folds, default, round(default_f1, 4), round(_micro(predicted, gold)[2], 4),
                             {lab: (round(p, 4), round(r, 4), round(f, 4))
                              for lab, (p, r, f) in per_relation.items()})
    return chosen, result


def learn_patterns(nlp: Language, sentences: Sequence[LabelledSentence], options: LearnOptions | None = None,
                   *, negatives: Sequence[LabelledSentence] = (),
                   progress: Callable[[int, int], None] | None = None
                   ) -> tuple[list[RelationPattern], LearnReport]:
    """Induce patterns from labelled sentences, parsed with nlp (its NER is not used); the relations of
    `negatives` are wrong ones, counted against the patterns that would give them."""
    options = options or LearnOptions()
    report = LearnReport(sentences=len(sentences))
    pairs = collect_pairs(nlp, sentences, options, report, progress)
    if negatives:
        pairs += collect_wrong_pairs(nlp, negatives, options, report)
    totals = Counter(r.type for s in sentences for r in s.relations)
    default = (options.min_precision, options.min_support)
    thresholds = dict(options.thresholds)
    if options.cv_folds >= 2 and len(sentences) >= options.cv_folds:
        tuned, report.cv = cross_validate(pairs, len(sentences), options.cv_folds, default)
        thresholds = {**tuned, **thresholds}  # thresholds given explicitly win over tuned ones
    report.thresholds = {label: thresholds.get(label, default) for label in sorted(totals)}
    table = candidates(pairs)
    report.candidates = len({key for pair in pairs if pair.wrong is None for key in pair.keys})
    positives: dict[Key, set[tuple[int, int, int]]] = defaultdict(set)
    for pair in pairs:
        if pair.label is not None:
            for key in pair.keys:
                if table.get(key) is not None and table[key].label == pair.label:
                    positives[key].add((pair.sentence, pair.subject, pair.object))

    kept: list[tuple[int, float, RelationPattern, set[tuple[int, int, int]], str]] = []
    for key, candidate in table.items():
        if not _passes(candidate, thresholds, default):
            continue
        level, shape, subject_type, object_type = key
        relation = options.relation_names.get(candidate.label, candidate.label)
        pattern = RelationPattern(
            id="pending", relation=relation, confidence=round(candidate.estimate, 3),
            subject=Side(anchor="subject", labels=(subject_type,)),
            object=Side(anchor="object", labels=(object_type,)),
            dependency=tuple(shape.to_dependency()),
            stats={"support": candidate.support, "matches": candidate.matches,
                   "precision": round(candidate.support / candidate.matches, 4), "level": level,
                   "trained_on": candidate.label})
        kept.append((candidate.support, candidate.estimate, pattern, positives[key], candidate.label))
    kept.sort(key=lambda k: (-k[0], -k[1], k[2].relation, str(k[2].dependency)))
    patterns = []
    covered: dict[str, set[tuple[int, int, int]]] = defaultdict(set)
    per_relation: Counter[str] = Counter()
    seen: set[tuple[str, str, str, str]] = set()
    for _support, _estimate, pattern, positive_pairs, label in kept:
        # levels coincide on paths without content words: keep one copy
        identity = (pattern.relation, str(pattern.dependency), pattern.subject.labels[0], pattern.object.labels[0])
        if identity in seen:
            continue
        seen.add(identity)
        per_relation[pattern.relation] += 1
        covered[label] |= positive_pairs
        patterns.append(pattern.model_copy(update={
            "id": f"{options.id_prefix}.{pattern.relation}.{per_relation[pattern.relation]:03d}"}))
    report.kept = len(patterns)
    report.coverage = {label: (len(covered.get(label, ())), total) for label, total in sorted(totals.items())}
    return patterns, report


def describe(report: LearnReport) -> str:
    lines = [f"{report.sentences} sentences, {report.pairs} ordered entity pairs ({report.related_pairs} related), "
             f"{report.candidates} candidate patterns, {report.kept} kept"
             + (f"; {report.negatives} wrong relation(s) counted against them" if report.negatives else "")]
    if report.cv is not None:
        cv = report.cv
        lines.append(f"  thresholds by {cv.folds}-fold cross-validation on the training sentences: one setting for "
                     f"all relations (min precision {cv.default[0]:g}, min support {cv.default[1]}) gives CV F1 "
                     f"{cv.default_f1:.3f}; per relation {cv.tuned_f1:.3f}")
    for label, (covered, total) in report.coverage.items():
        precision, support = report.thresholds.get(label, (None, None))
        cv_text = ""
        if report.cv is not None and label in report.cv.per_relation:
            p, r, f = report.cv.per_relation[label]
            cv_text = f"; CV P {p:.2f} R {r:.2f} F1 {f:.2f}"
        lines.append(f"  {label}: min precision {precision:g}, min support {support}{cv_text}; the kept patterns "
                     f"cover {covered} of {total} training relations")
    return "\n".join(lines)
