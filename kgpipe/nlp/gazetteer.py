"""The seed-KG gazetteer: a spaCy component that finds the labels and aliases of seed entities
(PhraseMatcher for multi-word names, an exact-case lookup for single words) and merges them with the
statistical NER's entities, carrying each match's seed IRI in Span.kb_id.

Single-word aliases are the dangerous ones ("Born" for Max Born against the verb "born", "Church" for
Alonzo Church): they match only with the alias's exact capitalisation, and only on tokens the tagger reads
as nouns or proper nouns or whose other reading is no English word (spaCy's lemma tables), so "was born
in" and a sentence-initial "Born in Paris, ..." are not mentions, while a mis-tagged "Turing" still is.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span, Token
from spacy.util import filter_spans

from kgpipe.vocab import DEFAULT_TYPE_PARENTS, ancestors

log = logging.getLogger(__name__)

COMPONENT = "kgpipe_gazetteer"
SPANS_KEY = "kgpipe_gazetteer"  # doc.spans group holding the gazetteer's spans that made it into doc.ents
MergeMode = Literal["override", "yield"]


@dataclass(frozen=True)
class GazetteerEntry:
    """One name to look for. label None: an untyped seed entity, which never makes a mention by itself
    but lends its IRI to an NER mention with exactly this span. iri None: a name shared by several seed
    entities of one label (a mention, but no seed link)."""

    name: str
    label: str | None
    iri: str | None
    kg_type: str | None


@dataclass
class GazetteerStats:
    entities: int = 0
    names: int = 0
    ambiguous_names: list[str] = field(default_factory=list)   # dropped: entities of different labels
    shared_names: list[str] = field(default_factory=list)      # kept without a seed IRI
    untyped_entities: int = 0


def label_for_types(types: Sequence[str], label_map: Mapping[str, str],
                    preferred: Iterable[str] = (),
                    parents: Mapping[str, str] = DEFAULT_TYPE_PARENTS) -> tuple[str, str] | None:
    """(spaCy label, the seed type it came from) for a seed entity's types, or None.

    Walks each type up the hierarchy until some label maps to it (City -> Place -> GPE); among labels
    mapping to the same type, one the NER model predicts wins, so gazetteer and NER spans share labels.
    """
    preferred = set(preferred)
    by_type: dict[str, list[str]] = defaultdict(list)
    for label, kg_type in label_map.items():
        by_type[kg_type].append(label)
    for seed_type in types:
        for kg_type in ancestors(seed_type, parents):
            labels = by_type.get(kg_type)
            if labels:
                # label_map order decides among labels the model predicts (GPE before LOC and FAC)
                known = [lab for lab in labels if lab in preferred]
                return (known or labels)[0], seed_type
    return None


def build_entries(seed_entities: Iterable[Mapping[str, Any]], label_map: Mapping[str, str], *,
                  preferred_labels: Iterable[str] = (), ignore_case: bool = True, min_chars: int = 2,
                  parents: Mapping[str, str] = DEFAULT_TYPE_PARENTS,
                  tokenize: Any = str.split) -> tuple[list[GazetteerEntry], GazetteerStats]:
    """Gazetteer entries from seed_entities rows (iri, label, aliases, types).

    A name shared by several entities goes to the one whose main label it is; failing that it is kept
    without an IRI if all share one label, and dropped otherwise (Cambridge the city or the university
    is for the NER and fuse to settle, not a guess here).
    """
    preferred_labels = list(preferred_labels)
    stats = GazetteerStats()
    candidates: dict[str, list[tuple[str, str, str | None, str | None, bool]]] = defaultdict(list)
    for row in seed_entities:
        stats.entities += 1
        labelled = label_for_types(_strings(row.get("types")), label_map, preferred_labels, parents)
        if labelled is None:
            stats.untyped_entities += 1
        label, kg_type = labelled if labelled is not None else (None, None)
        names = [row["label"], *_strings(row.get("aliases"))]
        seen: set[str] = set()
        for position, raw in enumerate(names):
            name = " ".join(str(raw).split())
            if len(name) < min_chars or name in seen:
                continue
            seen.add(name)
            single = len(tokenize(name)) == 1
            key = name if single or not ignore_case else name.lower()
            candidates[key].append((name, row["iri"], label, kg_type, position == 0))
    entries: list[GazetteerEntry] = []
    for key, found in candidates.items():
        iris = {iri for _, iri, _, _, _ in found}
        if len(iris) == 1:
            name, iri, label, kg_type, _ = found[0]
            entries.append(GazetteerEntry(name, label, iri, kg_type))
            continue
        main = [f for f in found if f[4]]
        if len({iri for _, iri, _, _, _ in main}) == 1:
            name, iri, label, kg_type, _ = main[0]
            entries.append(GazetteerEntry(name, label, iri, kg_type))
            continue
        labels = {label for _, _, label, _, _ in found}
        if len(labels) == 1 and None not in labels:
            name, _, label, _, _ = found[0]
            types = {kg_type for *_, kg_type, _ in found}
            entries.append(GazetteerEntry(name, label, None, types.pop() if len(types) == 1 else None))
            stats.shared_names.append(key)
        else:
            stats.ambiguous_names.append(key)
    stats.names = len(entries)
    return entries, stats


def _strings(value: Any) -> list[str]:
    """A list column as read from parquet (numpy array, list or None) as a list of strings."""
    return [] if value is None else [str(v) for v in value]


class SeedGazetteer:
    """spaCy component: seed names found in the Doc, merged into doc.ents after the NER.

    mode "override": a seed name replaces the NER spans it overlaps, except an NER span that contains it
    and extends it by proper nouns ("Ève Curie" keeps its span over the alias "Curie"). mode "yield":
    NER spans stay; seed names fill only the gaps. In both modes an NER span with exactly a seed name's
    extent gets that seed's IRI.
    """

    def __init__(self, nlp: Language, name: str = COMPONENT, *, mode: MergeMode = "override",
                 ignore_case: bool = True, single_token_pos: Sequence[str] = ("PROPN", "NOUN")) -> None:
        self.name = name
        self.vocab = nlp.vocab
        self.tokenizer: Any = nlp.tokenizer  # spaCy types it as a str -> Doc callable; it has .pipe
        self.mode = mode
        self.ignore_case = ignore_case
        self.single_token_pos = frozenset(single_token_pos)
        self.phrase_matcher = PhraseMatcher(nlp.vocab, attr="LOWER" if ignore_case else "ORTH")
        self.single: dict[int, int] = {}  # single-token name (orth hash) -> entry index
        self.entries: list[GazetteerEntry] = []
        self.kg_types: dict[str, str | None] = {}
        self.known_lemmas = _known_lemmas(nlp)

    def set_entries(self, entries: Iterable[GazetteerEntry]) -> None:
        self.entries = list(entries)
        self.kg_types = {e.iri: e.kg_type for e in self.entries if e.iri is not None}
        self.phrase_matcher = PhraseMatcher(self.vocab, attr="LOWER" if self.ignore_case else "ORTH")
        self.single = {}
        docs = self.tokenizer.pipe(entry.name for entry in self.entries)
        for index, (_entry, doc) in enumerate(zip(self.entries, docs, strict=True)):
            if len(doc) == 1:
                self.single[doc[0].orth] = index
            elif len(doc) > 1:
                self.phrase_matcher.add(str(index), [doc])

    def find(self, doc: Doc) -> list[Span]:
        """Seed names in doc, overlapping matches resolved longest first."""
        strings = self.vocab.strings
        spans = [self._span(doc, start, end, int(strings[match_id]))
                 for match_id, start, end in self.phrase_matcher(doc)]
        if self.single and len(doc):
            from spacy.attrs import ORTH

            for i, orth in enumerate(doc.to_array(ORTH).tolist()):  # a C-level pass, tokens only on hits
                index = self.single.get(orth)
                if index is not None and self._reads_as_name(doc[i]):
                    spans.append(self._span(doc, i, i + 1, index))
        return filter_spans(spans)

    def _reads_as_name(self, token: Token) -> bool:
        """A one-word name counts where the tagger reads it as a noun, or where its other reading is not
        a real word: "Born"/VBN has the known verb lemma "bear" (rejected), while "Turing"/VBG has the
        non-word lemma "ture" (a mis-tagged name, accepted)."""
        if token.pos_ in self.single_token_pos:
            return True
        known = self.known_lemmas.get(token.pos_)
        return known is not None and token.lemma_.lower() not in known

    def _span(self, doc: Doc, start: int, end: int, index: int) -> Span:
        entry = self.entries[index]
        return Span(doc, start, end, label=entry.label or "", kb_id=entry.iri or "")

    def __call__(self, doc: Doc) -> Doc:
        found = self.find(doc)
        ner = list(doc.ents)  # sorted and disjoint, so sorted by end as well
        ner_starts, ner_ends = [e.start for e in ner], [e.end for e in ner]
        proper = _ProperNouns(doc)
        by_extent = {(e.start, e.end): e for e in ner}
        from_gazetteer: list[Span] = []
        taken: list[Span] = []
        for g in found:
            twin = by_extent.get((g.start, g.end))
            if g.label_ == "":  # untyped seed entity: only lends its IRI to an identical NER span
                if twin is not None:
                    by_extent[(g.start, g.end)] = Span(doc, g.start, g.end, label=twin.label, kb_id=g.kb_id)
                continue
            if twin is not None:
                if self.mode == "override":
                    by_extent[(g.start, g.end)] = g
                    from_gazetteer.append(g)
                else:
                    by_extent[(g.start, g.end)] = Span(doc, g.start, g.end, label=twin.label, kb_id=g.kb_id)
                continue
            # the NER spans overlapping g, found by bisection: a Doc full of names stays linear
            overlapping = ner[bisect_right(ner_ends, g.start):bisect_left(ner_starts, g.end)]
            if not overlapping:
                taken.append(g)
                continue
            if self.mode == "yield":
                continue
            if any(e.start <= g.start and g.end <= e.end and proper.count(e) > proper.count(g)
                   for e in overlapping):  # a longer name: outer adds a proper noun, not just 'the'
                continue
            for e in overlapping:
                by_extent.pop((e.start, e.end), None)
            taken.append(g)
        chosen = [*by_extent.values(), *taken]
        from_gazetteer.extend(taken)
        doc.ents = filter_spans(chosen)
        kept = {(s.start, s.end) for s in doc.ents}
        doc.spans[SPANS_KEY] = [s for s in from_gazetteer if (s.start, s.end) in kept]
        return doc


def _known_lemmas(nlp: Language) -> dict[str, frozenset[str]]:
    """POS -> the lemmas spaCy's rule lemmatizer knows for it (its lemma_index table, from WordNet);
    empty without such a lemmatizer, and then only the POS decides."""
    if "lemmatizer" not in nlp.pipe_names:
        return {}
    lookups = getattr(nlp.get_pipe("lemmatizer"), "lookups", None)
    if lookups is None or not lookups.has_table("lemma_index"):
        return {}
    table = lookups.get_table("lemma_index")
    known = {}
    for pos in ("noun", "verb", "adj", "adv"):
        if pos in table:
            known[pos.upper()] = frozenset(table[pos])
    return known


class _ProperNouns:
    """Proper nouns in any span of a Doc in constant time (prefix counts, made on first use), so that
    comparing a long NER span with the many seed names inside it does not walk its tokens each time."""

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self._before: list[int] | None = None

    def count(self, span: Span) -> int:
        if self._before is None:
            from itertools import accumulate

            from spacy.attrs import POS
            from spacy.parts_of_speech import PROPN

            flags = (int(pos == PROPN) for pos in self.doc.to_array(POS).tolist())
            self._before = [0, *accumulate(flags)]
        return self._before[span.end] - self._before[span.start]


@Language.factory(COMPONENT, default_config={"mode": "override", "ignore_case": True,
                                             "single_token_pos": ["PROPN", "NOUN"]})
def make_seed_gazetteer(nlp: Language, name: str, mode: MergeMode, ignore_case: bool,
                        single_token_pos: list[str]) -> SeedGazetteer:
    return SeedGazetteer(nlp, name, mode=mode, ignore_case=ignore_case, single_token_pos=single_token_pos)


def install_gazetteer(nlp: Language, entries: Iterable[GazetteerEntry], *, mode: MergeMode = "override",
                      ignore_case: bool = True, single_token_pos: Sequence[str] = ("PROPN", "NOUN")
                      ) -> SeedGazetteer:
    """Add (or replace) the gazetteer as the last component, after the NER it merges with."""
    if COMPONENT in nlp.component_names:
        nlp.remove_pipe(COMPONENT)
    component = nlp.add_pipe(COMPONENT, last=True, config={
        "mode": mode, "ignore_case": ignore_case, "single_token_pos": list(single_token_pos)})
    if not isinstance(component, SeedGazetteer):  # add_pipe is typed as returning any component
        raise TypeError(f"component '{COMPONENT}' is a {type(component).__name__}, not kgpipe's gazetteer")
    component.set_entries(entries)
    return component


def remove_gazetteer(nlp: Language) -> None:
    if COMPONENT in nlp.component_names:
        nlp.remove_pipe(COMPONENT)
