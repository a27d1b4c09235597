"""What the explorer's pages and JSON API show, read from one snapshot: an entity, its triples with their
evidence (50 a page), link predictions, nearest neighbours, its one-hop graph, and search hits."""

from __future__ import annotations

from typing import Any

from kgpipe.errors import InputError
from kgpipe.evidence import TextEvidence
from kgpipe.kg.iri import local_name
from kgpipe.web import models as m
from kgpipe.web.data import Snapshot


class NotFound(InputError):
    """An id that the snapshot does not hold (the API answers 404)."""


def _list(value: Any) -> list[str]:
    return [str(v) for v in value] if value is not None else []



def search(snap: Snapshot, q: str, type: str | None = None, limit: int = 20) -> m.SearchResults:
    entities = snap.entities
    hits = snap.search.search(q, type=type or None, limit=max(1, min(limit, 200)))
    return m.SearchResults(results=[m.SearchHit(
        id=str(entities["id"].iat[h.row]), label=str(entities["label"].iat[h.row]),
        types=[t] if (t := snap.search.types[h.row]) else [], match=h.match,  # type: ignore[arg-type]
        score=h.score, mentions=int(snap.search.mentions[h.row])) for h in hits])


def entity(snap: Snapshot, entity_id: str) -> m.Entity:
    row = snap.entity_row.get(entity_id)
    if row is None:
        raise NotFound(f"no entity with id '{entity_id}' in the fused graph", hint="search for it by label")
    e = snap.entities.iloc[row]
    return m.Entity(id=entity_id, label=str(e["label"]), aliases=_list(e["aliases"]),
                    types=[e["type"]] if isinstance(e["type"], str) and e["type"] else [],
                    seed_iri=e["seed_iri"] if isinstance(e["seed_iri"], str) else None,
                    mentions=int(e["mention_count"]), sources=_list(e["sources"]))


def text_evidence(e: TextEvidence) -> m.Evidence:
    return m.Evidence(doc_id=e.doc_id, sentence=e.sentence, head_span=e.subject_span, tail_span=e.object_span,
                      method=e.method, pattern=e.pattern_id,  # type: ignore[arg-type]
                      confidence=e.confidence, relation_id=e.relation_id)


def triple_evidence(snap: Snapshot, head: str, relation: str, tail: str, sources: list[str]) -> list[m.Evidence]:
    """The sentences stating a triple, then the seed files holding it (fuse lists both among its sources)."""
    index = snap.evidence
    found = index.for_triple(head, relation, tail, sources) if index is not None else []
    text_docs = index.doc_ids if index is not None else frozenset()
    return [text_evidence(e) for e in found] + [m.Evidence(method="seed", seed_file=s) for s in sources
                                                if s not in text_docs]


def triples(snap: Snapshot, entity_id: str, direction: str = "out", page: int = 1) -> m.TriplePage:
    """One page (PAGE_SIZE) of an entity's outgoing (as head) or incoming (as tail) triples."""
    entity(snap, entity_id)  # 404 for an unknown id
    if direction not in ("out", "in"):
        raise InputError(f"direction must be 'out' or 'in', not '{direction}'")
    rows = snap.triple_rows(direction).get(entity_id, ())
    page = max(1, page)
    chosen = rows[(page - 1) * m.PAGE_SIZE: page * m.PAGE_SIZE]
    table = snap.triples
    items = []
    for i in chosen:
        t = table.iloc[int(i)]
        head, relation, tail = str(t["head"]), str(t["relation"]), str(t["tail"])
        items.append(m.Triple(head=m.EntityRef(id=head, label=snap.label(head)), relation=relation,
                              tail=m.EntityRef(id=tail, label=snap.label(tail)),
                              evidence=triple_evidence(snap, head, relation, tail, _list(t["sources"]))))
    return m.TriplePage(total=len(rows), page=page, items=items)


def model_relations(snap: Snapshot, entity_id: str) -> m.Relations:
    """The relations the saved model can predict for (the entity's own relations first)."""
    entity(snap, entity_id)
    info = snap.model_info
    if info is None:
        return m.Relations(relations=[])
    known = list(info.relation_ids)
    own = {str(r) for r in snap.triples["relation"].iloc[list(snap.triple_rows("out").get(entity_id, ()))]}
    return m.Relations(relations=sorted(known, key=lambda r: (r not in own, local_name(r))))


def predictions(snap: Snapshot, entity_id: str, relation: str, k: int = 10) -> m.Predictions:
    """The model's k best tails of (entity, relation, ?); known: the triple is in the fused graph or was a
    training triple."""
    entity(snap, entity_id)
    if snap.model_info is None:
        raise NotFound("no saved link-prediction model", hint="add an embed stage and run the pipeline")
    if entity_id not in snap.model_entities:
        return m.Predictions(relation=relation, items=[])
    predictor = snap.predictor
    assert predictor is not None
    frame = predictor.predict_tails(entity_id, relation, k=max(1, min(k, 100)))
    keys = snap.triple_keys
    rel = predictor.relation_id(relation)
    return m.Predictions(relation=rel, items=[
        m.Prediction(id=str(r.id), label=str(r.label), score=float(r.score),
                     known=bool(r.in_training) or (entity_id, rel, str(r.id)) in keys)
        for r in frame.itertuples(index=False)])


def neighbours(snap: Snapshot, entity_id: str, k: int = 10) -> m.Neighbours:
    """The k nearest entities by cosine similarity of their embeddings."""
    entity(snap, entity_id)
    table = snap.embeddings
    if table is None or entity_id not in snap.embedding_ids:
        return m.Neighbours(items=[])
    return m.Neighbours(items=[m.Neighbour(id=i, label=snap.label(i), similarity=s)
                               for i, _, s in table.most_similar(entity_id, k=max(1, min(k, 100)))])


def graph(snap: Snapshot, entity_id: str, limit: int = 60) -> m.Graph:
    """The entity and up to `limit` neighbours one hop away (both directions), edges labelled by relation."""
    entity(snap, entity_id)
    table = snap.triples
    rows = [*snap.triple_rows("out").get(entity_id, ()), *snap.triple_rows("in").get(entity_id, ())]
    nodes: dict[str, m.GraphNode] = {entity_id: m.GraphNode(id=entity_id, label=snap.label(entity_id),
                                                            type=snap.entity_type(entity_id))}
    edges = []
    for i in rows:
        t = table.iloc[int(i)]
        head, tail = str(t["head"]), str(t["tail"])
        other = tail if head == entity_id else head
        if other not in nodes:
            if len(nodes) > max(1, limit):
                continue
            nodes[other] = m.GraphNode(id=other, label=snap.label(other), type=snap.entity_type(other))
        edges.append(m.GraphEdge(source=head, target=tail, relation=local_name(str(t["relation"]))))
    return m.Graph(center=entity_id, nodes=list(nodes.values()), edges=edges)
