"""The JSON API's response and request bodies (the contract in docs: ids are entity IRIs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

PAGE_SIZE = 50


class Status(BaseModel):
    snapshot: str
    stale: bool
    stale_stages: list[str]


class SearchHit(BaseModel):
    id: str
    label: str
    types: list[str]
    match: Literal["exact", "alias", "prefix", "fuzzy"]
    score: float
    mentions: int


class SearchResults(BaseModel):
    results: list[SearchHit]


class Entity(BaseModel):
    id: str
    label: str
    aliases: list[str]
    types: list[str]
    seed_iri: str | None
    mentions: int
    sources: list[str]


class EntityRef(BaseModel):
    id: str
    label: str


class Evidence(BaseModel):
    doc_id: str | None = None
    sentence: str | None = None
    head_span: tuple[int, int] | None = None
    tail_span: tuple[int, int] | None = None
    method: Literal["pattern", "model", "seed"]
    pattern: str | None = None
    confidence: float | None = None
    seed_file: str | None = None
    relation_id: str | None = None


class Triple(BaseModel):
    head: EntityRef
    relation: str
    tail: EntityRef
    evidence: list[Evidence]


class TriplePage(BaseModel):
    total: int
    page: int
    page_size: int = PAGE_SIZE
    items: list[Triple]


class Relations(BaseModel):
    relations: list[str]


class Prediction(BaseModel):
    id: str
    label: str
    score: float
    known: bool


class Predictions(BaseModel):
    relation: str
    items: list[Prediction]


class Neighbour(BaseModel):
    id: str
    label: str
    similarity: float


class Neighbours(BaseModel):
    items: list[Neighbour]


class GraphNode(BaseModel):
    id: str
    label: str
    type: str | None


class GraphEdge(BaseModel):
    source: str
    target: str
    relation: str


class Graph(BaseModel):
    center: str
    nodes: list[GraphNode]
    edges: list[GraphEdge]


class MapPoint(BaseModel):
    id: str
    label: str
    type: str | None
    x: float
    y: float


class EmbeddingMap(BaseModel):
    method: Literal["pca", "umap"]
    points: list[MapPoint]


class SparqlRequest(BaseModel):
    query: str = Field(max_length=20_000)


class SparqlCell(BaseModel):
    value: str
    entity_id: str | None


class SparqlResult(BaseModel):
    columns: list[str]
    rows: list[list[SparqlCell]]


class CorrectionRequest(BaseModel):
    relation_id: str = Field(max_length=500)
    verdict: Literal["wrong"] = "wrong"


class RunStage(BaseModel):
    name: str
    type: str
    status: str
    duration_s: float | None
    counts: dict[str, float | int | str | bool | None]
    metrics: dict[str, float | int | str | bool | None]


class Run(BaseModel):
    stages: list[RunStage]
    edges: list[tuple[str, str]]


class ExplainSide(BaseModel):
    """One name of an explained pair: as asked, the mention text it was read as, and where the run put it."""

    asked: str
    text: str
    type: str | None
    mentions: int
    entities: list[EntityRef]


class ExplainTerm(BaseModel):
    """One comparison's part in the match weight: its level, m and u (None where the level is missing) and
    log2(m/u)."""

    comparison: str
    level: str
    m: float | None
    u: float | None
    weight: float
    tf_adjusted: bool


class Explanation(BaseModel):
    """`kgpipe explain HEAD TAIL`: prior_weight + the terms' weights = total; probability from total (times
    type_factor where the types are incompatible)."""

    stage: str
    head: ExplainSide
    tail: ExplainSide
    together: bool
    prior: float
    prior_weight: float
    terms: list[ExplainTerm]
    total: float
    probability: float
    type_factor: float
