"""The sentences a fused triple comes from: an index over extract's relations keyed by the fused entities they
link (relations -> mentions -> mention_entities), so that each triple's evidence is one dictionary look-up.

Used by kgpipe.provenance (one triple, from a notebook) and by the explorer (every triple of an entity page).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class TextEvidence:
    """One sentence stating a triple: offsets index the document's text; spans are relative to the sentence."""

    relation_id: str
    doc_id: str
    document: str | None          # the source file of the document (None: documents table not found)
    sentence: str | None
    sentence_start: int
    subject_id: str
    object_id: str
    subject: str                  # the mentions' text
    object: str
    subject_span: tuple[int, int]
    object_span: tuple[int, int]
    subject_label: str            # the mentions' NER / gazetteer labels
    object_label: str
    relation: str                 # the text relation name (works_for, ...)
    pattern_id: str
    confidence: float

    @property
    def method(self) -> str:
        """'model' for a relation classifier's row (pattern_id 'model:<name>'), else 'pattern'."""
        return "model" if self.pattern_id.startswith("model:") else "pattern"


def text_relation_iri(relation: str, relation_iri: Any, aligned: Mapping[str, str]) -> str:
    """The fused relation a text relation row became (extract's relation_iri, else the default map, then the
    fuse stage's alignment to seed relations), as fuse computes it."""
    from kgpipe.vocab import DEFAULT_RELATION_MAP, KGPIPE_RELATION

    iri = relation_iri if isinstance(relation_iri, str) and relation_iri else \
        DEFAULT_RELATION_MAP.get(relation, KGPIPE_RELATION + relation)
    return aligned.get(iri, iri)


def aligned_relations(fusion_report: Path | None) -> dict[str, str]:
    """The fuse stage's alignment of text relations to seed relations, from its report (empty if none)."""
    if fusion_report is None or not fusion_report.exists():
        return {}
    report = json.loads(fusion_report.read_text(encoding="utf-8"))
    return dict(report.get("linking", {}).get("relations_aligned", {}) or {})


class EvidenceIndex:
    """extract's relations grouped by the (subject entity, object entity) pair their mentions resolved to."""

    def __init__(self, relations: pd.DataFrame, mentions: pd.DataFrame, mention_entities: pd.DataFrame,
                 aligned: Mapping[str, str], documents: pd.DataFrame | None = None) -> None:
        self.relations = relations.reset_index(drop=True)
        self.mentions = mentions.set_index("mention_id")
        entity_of = dict(zip(mention_entities["mention_id"], mention_entities["entity_id"], strict=True))
        heads = self.relations["subject_id"].map(entity_of)
        tails = self.relations["object_id"].map(entity_of)
        fused = [text_relation_iri(r, i, aligned) for r, i in
                 zip(self.relations["relation"], self.relations["relation_iri"], strict=True)]
        self._fused = fused
        keyed = self.relations.assign(_head=heads.fillna(""), _tail=tails.fillna(""))
        self._by_pair: dict[tuple[str, str], Any] = (
            keyed.groupby(["_head", "_tail"], sort=False).indices if len(keyed) else {})
        self.documents = documents.set_index("doc_id") if documents is not None else None
        self.doc_ids = frozenset(self.relations["doc_id"])

    def for_triple(self, head: str, relation: str, tail: str, sources: list[str] | None = None
                   ) -> list[TextEvidence]:
        """The relation rows that became (head, relation, tail), from the documents among `sources` (fuse's
        sources of the triple; None: any document)."""
        rows = self._by_pair.get((head, tail))
        if rows is None:
            return []
        wanted = set(sources) if sources is not None else None
        out = []
        for i in rows:
            if self._fused[i] != relation:
                continue
            row = self.relations.iloc[int(i)]
            if wanted is not None and row["doc_id"] not in wanted:
                continue
            out.append(self.evidence(row))
        return out

    def evidence(self, row: Any) -> TextEvidence:
        """One relation row (a row of extract's relations table) with its sentence and mentions."""
        start, end = int(row["sentence_start"]), int(row["sentence_end"])
        subject, obj = self.mentions.loc[row["subject_id"]], self.mentions.loc[row["object_id"]]
        document = sentence = None
        if self.documents is not None and row["doc_id"] in self.documents.index:
            doc = self.documents.loc[row["doc_id"]]
            document, sentence = str(doc["source"]), str(doc["text"])[start:end]
        return TextEvidence(
            relation_id=str(row["relation_id"]), doc_id=str(row["doc_id"]), document=document, sentence=sentence,
            sentence_start=start, subject_id=str(row["subject_id"]), object_id=str(row["object_id"]),
            subject=str(subject["text"]), object=str(obj["text"]),
            subject_span=(int(subject["start_char"]) - start, int(subject["end_char"]) - start),
            object_span=(int(obj["start_char"]) - start, int(obj["end_char"]) - start),
            subject_label=str(subject["label"]), object_label=str(obj["label"]),
            relation=str(row["relation"]), pattern_id=str(row["pattern_id"]), confidence=float(row["confidence"]))

    def by_relation_id(self, relation_id: str) -> TextEvidence | None:
        hits = self.relations.index[self.relations["relation_id"] == relation_id]
        return self.evidence(self.relations.iloc[int(hits[0])]) if len(hits) else None
