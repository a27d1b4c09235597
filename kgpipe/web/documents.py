"""Documents for review: a filtered list, one document with its mentions (spaCy's displaCy, ent style) and the
relations extracted from it, and per-pattern counts with how many of each pattern's relations were marked
wrong."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from kgpipe.evidence import TextEvidence
from kgpipe.html import esc
from kgpipe.web.data import Snapshot
from kgpipe.web.queries import NotFound

DOCS_PAGE_SIZE = 50


@dataclass(frozen=True)
class DocumentRow:
    doc_id: str
    source: str
    mentions: int
    relations: int


@dataclass(frozen=True)
class DocumentList:
    total: int
    page: int
    rows: list[DocumentRow]


@dataclass(frozen=True)
class DocumentView:
    doc_id: str
    source: str
    html: str                       # displaCy's markup (text escaped by spaCy, labels by us)
    relations: list[TextEvidence]


@dataclass(frozen=True)
class PatternRow:
    pattern_id: str
    relation: str
    count: int
    wrong: int
    mean_confidence: float


def list_documents(snap: Snapshot, *, label: str = "", relation: str = "", pattern: str = "",
                   page: int = 1) -> DocumentList:
    """Documents with a mention labelled `label`, a relation named `relation`, a relation from `pattern`
    (each filter optional), in table order."""
    docs = snap.documents
    mentions = snap.mentions if snap.has("mentions") else None
    relations = snap.relations if snap.has("relations") else None
    keep = set(docs["doc_id"])
    if label and mentions is not None:
        keep &= set(mentions.loc[mentions["label"] == label, "doc_id"])
    if relations is not None:
        if relation:
            keep &= set(relations.loc[relations["relation"] == relation, "doc_id"])
        if pattern:
            keep &= set(relations.loc[relations["pattern_id"] == pattern, "doc_id"])
    chosen = docs[docs["doc_id"].isin(keep)]
    page = max(1, page)
    window = chosen.iloc[(page - 1) * DOCS_PAGE_SIZE: page * DOCS_PAGE_SIZE]
    n_mentions = Counter(mentions["doc_id"]) if mentions is not None else Counter()
    n_relations = Counter(relations["doc_id"]) if relations is not None else Counter()
    return DocumentList(len(chosen), page, [DocumentRow(str(d), str(s), n_mentions[d], n_relations[d])
                                            for d, s in zip(window["doc_id"], window["source"], strict=True)])


def document(snap: Snapshot, doc_id: str) -> DocumentView:
    from spacy import displacy

    docs = snap.documents
    hit = docs[docs["doc_id"] == doc_id]
    if hit.empty:
        raise NotFound(f"no document '{doc_id}'", hint="pick one from the documents list")
    text, source = str(hit["text"].iat[0]), str(hit["source"].iat[0])
    ents, end = [], -1
    if snap.has("mentions"):
        mentions = snap.mentions[snap.mentions["doc_id"] == doc_id].sort_values(["start_char", "end_char"])
        for start, stop, label in zip(mentions["start_char"], mentions["end_char"], mentions["label"], strict=True):
            if start >= end:   # displaCy draws non-overlapping spans only: the first of overlapping ones wins
                ents.append({"start": int(start), "end": int(stop), "label": esc(label)})
                end = int(stop)
    markup = displacy.render({"text": text, "ents": ents, "title": None}, style="ent", manual=True, page=False)
    index = snap.evidence
    found: list[TextEvidence] = []
    if index is not None:
        rows = index.relations[index.relations["doc_id"] == doc_id]
        found = [index.evidence(row) for _, row in rows.iterrows()]
    return DocumentView(doc_id, source, markup, found)


def patterns(snap: Snapshot, wrong: Counter[str]) -> list[PatternRow]:
    """Per pattern: its relation, how many relations it gave, how many of those were marked wrong."""
    if not snap.has("relations"):
        return []
    relations = snap.relations
    grouped = relations.groupby("pattern_id", sort=True).agg(
        relation=("relation", "first"), count=("relation_id", "size"), confidence=("confidence", "mean"))
    return [PatternRow(str(pid), str(row["relation"]), int(row["count"]), wrong.get(str(pid), 0),
                       float(row["confidence"]))
            for pid, row in grouped.iterrows()]
