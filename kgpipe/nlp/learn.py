"""Learning relation patterns from labelled sentences: for every ordered pair of gold entities, the shortest
dependency path between their head tokens, generalised over lemmas, becomes a candidate DependencyMatcher
pattern; candidates whose smoothed precision on the training pairs, (right + 1) / (matches + 2), passes a
threshold are kept, with that estimate as their confidence.

Three generalisations of the path's inner tokens are tried: `lemma` (lemma + dependency label, e.g. work
-prep-> for), `function` (lemmas kept only for function words, content words reduced to their POS) and
`skeleton` (function-word lemmas, content words by their dependency label alone), so that "X, president
of Y" and "X, director of Y" can share one pattern where that stays precise. Anchors are constrained by
their dependency label only; their entity labels come from the training pair's types.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kgpipe.nlp.labelled import LabelledSentence, entity_spans, make_doc
from kgpipe.nlp.patterns import RelationPattern, Side

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Token

log = logging.getLogger(__name__)

LEVELS = ("lemma", "function", "skeleton")
FUNCTION_POS = frozenset({"ADP", "PART", "AUX", "CCONJ", "SCONJ", "DET", "PRON", "PUNCT"})
NodeKey = tuple[tuple[str, str], ...]  # sorted (attribute, value) pairs of one pattern node


@dataclass(frozen=True)
class LearnOptions:
    min_precision: float = 0.6     # smoothed training precision (support + 1) / (matches + 2) at least this
    min_support: int = 1           # ... and right at least this many times
    max_path_edges: int = 4        # longer paths are too specific to recur
    levels: tuple[str, ...] = LEVELS
    relation_names: Mapping[str, str] = field(default_factory=dict)  # training label -> pattern relation
    id_prefix: str = "learned"


@dataclass
class LearnReport:
    sentences: int = 0
    pairs: int = 0
    related_pairs: int = 0
    paths_too_long: int = 0
    candidates: int = 0
    kept: int = 0
    coverage: dict[str, tuple[int, int]] = field(default_factory=dict)  # relation -> (covered, total)


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
        if level == "lemma" or token.pos_ in FUNCTION_POS:
            attrs["LEMMA"] = token.lemma_
        elif level == "function":
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


def learn_patterns(nlp: Language, sentences: Sequence[LabelledSentence], options: LearnOptions | None = None,
                   *, progress: Callable[[int, int], None] | None = None
                   ) -> tuple[list[RelationPattern], LearnReport]:
    """Induce patterns from labelled sentences, parsed with nlp (its NER is not used)."""
    options = options or LearnOptions()
    report = LearnReport(sentences=len(sentences))
    counts: dict[tuple[str, PathShape, str, str], Counter[str | None]] = defaultdict(Counter)
    positives: dict[tuple[str, PathShape, str, str], set[tuple[int, int, int]]] = defaultdict(set)
    totals: Counter[str] = Counter()
    disabled = [name for name in nlp.pipe_names if name not in ("tok2vec", "tagger", "morphologizer",
                                                                "attribute_ruler", "lemmatizer", "parser")]
    docs = (make_doc(nlp, s) for s in sentences)
    with nlp.select_pipes(disable=disabled):
        for number, (sentence, doc) in enumerate(zip(sentences, nlp.pipe(docs, batch_size=64), strict=True)):
            spans = entity_spans(doc, sentence)
            gold = {(r.head, r.tail): r.type for r in sentence.relations}
            for r in sentence.relations:
                totals[r.type] += 1
            for i, a in enumerate(spans):
                for j, b in enumerate(spans):
                    if i == j or a is None or b is None or a.root.i == b.root.i:
                        continue
                    report.pairs += 1
                    label = gold.get((i, j))
                    report.related_pairs += label is not None
                    for level in options.levels:
                        shape = path_shape(a.root, b.root, level, options.max_path_edges)
                        if shape is None:
                            report.paths_too_long += level == options.levels[0]
                            continue
                        key = (level, shape, sentence.entities[i].type, sentence.entities[j].type)
                        counts[key][label] += 1
                        if label is not None:
                            positives[key].add((number, i, j))
            if progress is not None:
                progress(number + 1, len(sentences))
    report.candidates = len(counts)

    kept: list[tuple[int, float, RelationPattern, set[tuple[int, int, int]], str]] = []
    for key, counter in counts.items():
        level, shape, subject_type, object_type = key
        related = [(n, lab) for lab, n in counter.items() if lab is not None]
        if not related:
            continue
        support, label = max(related)
        matches = sum(counter.values())
        precision = support / matches
        # additive (Laplace) smoothing: a path seen once and right once scores 2/3, not 1.0
        estimate = (support + 1) / (matches + 2)
        if support < options.min_support or estimate < options.min_precision:
            continue
        relation = options.relation_names.get(label, label)
        pattern = RelationPattern(
            id="pending", relation=relation, confidence=round(estimate, 3),
            subject=Side(anchor="subject", labels=(subject_type,)),
            object=Side(anchor="object", labels=(object_type,)),
            dependency=tuple(shape.to_dependency()),
            stats={"support": support, "matches": matches, "precision": round(precision, 4), "level": level,
                   "trained_on": label})
        kept.append((support, estimate, pattern, set(positives[key]), label))
    kept.sort(key=lambda k: (-k[0], -k[1], k[2].relation, str(k[2].dependency)))
    patterns = []
    covered: dict[str, set[tuple[int, int, int]]] = defaultdict(set)
    per_relation: Counter[str] = Counter()
    seen: set[tuple[str, str, str, str]] = set()
    for support, precision, pattern, pairs, label in kept:
        # levels coincide on paths without content words: keep one copy
        identity = (pattern.relation, str(pattern.dependency), pattern.subject.labels[0], pattern.object.labels[0])
        if identity in seen:
            continue
        seen.add(identity)
        per_relation[pattern.relation] += 1
        covered[label] |= pairs
        patterns.append(pattern.model_copy(update={
            "id": f"{options.id_prefix}.{pattern.relation}.{per_relation[pattern.relation]:03d}"}))
    report.kept = len(patterns)
    report.coverage = {label: (len(covered.get(label, ())), total) for label, total in sorted(totals.items())}
    return patterns, report


def describe(report: LearnReport) -> str:
    lines = [f"{report.sentences} sentences, {report.pairs} ordered entity pairs ({report.related_pairs} related), "
             f"{report.candidates} candidate patterns, {report.kept} kept"]
    for label, (covered, total) in report.coverage.items():
        lines.append(f"  {label}: the kept patterns cover {covered} of {total} training relations")
    return "\n".join(lines)

