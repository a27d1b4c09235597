"""Looking at a pipeline's results from Python and notebooks: artifact paths, the trained link-prediction model,
a triple's provenance back to its sentences, the fusion report and training history as tables, ego networks.

Everything takes a pipeline (file, path or loaded Pipeline) and finds the artifacts it needs by their role
(kgpipe.roles: what an output holds, whichever stage made it), so it works for any pipeline whose stages produce
them, not only pipelines/default.yaml.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgpipe.config import Pipeline, as_pipeline
from kgpipe.errors import ArtifactError, InputError
from kgpipe.kg.iri import local_name
from kgpipe.roles import Role, existing_output, find_output, output_of, stage_for

if TYPE_CHECKING:
    import pandas as pd

    from kgpipe.embed.predict import LinkPredictor


def artifact_path(pipeline: str | Path | Pipeline, name: str) -> Path:
    """The path of a pipeline output named 'stage.out' (it must exist: run the pipeline first)."""
    from kgpipe.inspect import resolve_artifact

    return resolve_artifact(name, as_pipeline(pipeline))


def _existing(pipe: Pipeline, path: Path, what: str) -> Path:
    if not path.exists():
        raise ArtifactError(f"{pipe.rel(path)} ({what}) does not exist yet",
                            hint=f"run the pipeline first: kgpipe run {pipe.path}")
    return path


def load_model(source: str | Path | Pipeline, device: str = "cpu") -> LinkPredictor:
    """The embed stage's saved model for link prediction: predict_tails(head, relation, k) and
    predict_heads(relation, tail, k), entities and relations by id or label. `source`: the model folder, or
    a pipeline (the output of role 'model': the embed stage's)."""
    from kgpipe.embed.predict import LinkPredictor

    folder = Path(source) if not isinstance(source, Pipeline) else None
    if folder is None or not folder.is_dir():
        pipe = as_pipeline(source)
        folder = find_output(pipe, Role.MODEL)
    return LinkPredictor.load(folder, device=device)


# --- provenance ------------------------------------------------------------------------------------------

PROVENANCE_COLUMNS = ("kind", "source", "document", "sentence", "subject", "object", "relation", "pattern_id",
                      "confidence", "relation_id", "subject_id", "object_id")


def _triple_parts(triple: Any, relation: str | None, tail: str | None) -> tuple[str, str, str]:
    if relation is not None and tail is not None:
        return str(triple), relation, tail
    if isinstance(triple, Mapping) or hasattr(triple, "keys"):
        return str(triple["head"]), str(triple["relation"]), str(triple["tail"])
    if hasattr(triple, "head") and hasattr(triple, "relation") and hasattr(triple, "tail") \
            and not callable(triple.head):
        return str(triple.head), str(triple.relation), str(triple.tail)
    try:
        head, rel, obj = triple
    except (TypeError, ValueError):
        raise InputError("a triple is (head, relation, tail): a tuple, a dict or a row of fuse's triples table",
                         hint="e.g. kgpipe.provenance(pipeline, ('Albert Einstein', 'bornIn', 'Ulm'))") from None
    return str(head), str(rel), str(obj)


def _resolve_entity(name: str, entities: pd.DataFrame) -> str:
    """An entity id from its id, label or alias (a name several entities share must be given as an id)."""
    if (entities["id"] == name).any():
        return name
    for column in ("label", "aliases"):
        hits = entities["id"][entities[column] == name] if column == "label" else entities["id"][
            entities[column].map(lambda names: name in list(names))]
        if len(hits) == 1:
            return str(hits.iloc[0])
        if len(hits) > 1:
            raise InputError(f"'{name}' names {len(hits)} entities", hint="give one of their ids: "
                             + ", ".join(sorted(hits)[:10]))
    from rapidfuzz import process

    close = [m for m, _, _ in process.extract(name, entities["label"].tolist(), limit=3)]
    raise InputError(f"no entity with id, label or alias '{name}'",
                     hint=f"did you mean {', '.join(map(repr, close))}?" if close else None)


def _resolve_relation(name: str, relations: list[str]) -> str:
    if name in relations:
        return name
    hits = sorted({r for r in relations if local_name(r) == name or local_name(r).casefold() == name.casefold()})
    if len(hits) == 1:
        return hits[0]
    raise InputError(f"no relation '{name}' in the fused graph" if not hits else f"'{name}' names {len(hits)} "
                     "relations", hint="one of: " + ", ".join(sorted({local_name(r) for r in relations})))


def provenance(pipeline: str | Path | Pipeline, triple: Any, relation: str | None = None,
               tail: str | None = None) -> pd.DataFrame:
    """Where a fused triple comes from: one row per sentence that states it (kind 'text': the document, the
    sentence, the subject and object mentions, the pattern and its confidence) and one per seed graph that
    holds it (kind 'seed'). Follows the ids: triples -> relations -> mentions -> documents.

    The triple: (head, relation, tail) with entities by id, label or alias and the relation by IRI or local
    name; or a dict / row of fuse's triples table.

    >>> kgpipe.provenance("pipelines/default.yaml", ("Albert Einstein", "bornIn", "Ulm"))   # doctest: +SKIP
    """
    import pandas as pd

    from kgpipe.artifacts import DOCUMENTS, ENTITIES, MENTION_ENTITIES, MENTIONS, RELATIONS, TRIPLES, read_table

    pipe = as_pipeline(pipeline)
    fuse = stage_for(pipe, Role.TRIPLES)   # its deps lead back to the mentions and relations
    entities = read_table(find_output(pipe, Role.ENTITIES), ENTITIES)
    triples = read_table(find_output(pipe, Role.TRIPLES), TRIPLES)
    head_name, relation_name, tail_name = _triple_parts(triple, relation, tail)
    head_id, tail_id = _resolve_entity(head_name, entities), _resolve_entity(tail_name, entities)
    relation_iri = _resolve_relation(relation_name, triples["relation"].unique().tolist())
    found = triples[(triples["head"] == head_id) & (triples["relation"] == relation_iri)
                    & (triples["tail"] == tail_id)]
    if found.empty:
        known = triples[triples["head"] == head_id]
        raise InputError(f"no triple ({head_id}, {relation_iri}, {tail_id}) in the fused graph",
                         hint=f"{head_id} has {len(known)} triple(s); relations: "
                              + (", ".join(sorted({local_name(r) for r in known["relation"]})) or "none"))
    sources = list(found["sources"].iloc[0])

    rows: list[dict[str, Any]] = []
    doc_ids: set[str] = set()
    mentions_path = fuse.deps.get("mentions", (None,))[0]
    relations_path = fuse.deps.get("relations", (None,))[0]
    links = output_of(pipe, Role.MENTION_ENTITIES)
    if links is not None and mentions_path is not None and relations_path is not None:
        from kgpipe.evidence import EvidenceIndex, aligned_relations

        relations = read_table(_existing(pipe, relations_path, "fuse's relations dep"), RELATIONS)
        relations = relations[relations["doc_id"].isin(sources)]
        doc_ids = set(relations["doc_id"])
        documents_path = documents_of(pipe, mentions_path)
        index = EvidenceIndex(
            relations, read_table(_existing(pipe, mentions_path, "fuse's mentions dep"), MENTIONS),
            read_table(_existing(pipe, links[0].outs[links[1]], "mention entities"), MENTION_ENTITIES),
            aligned_relations(existing_output(pipe, Role.FUSION_REPORT)),
            read_table(_existing(pipe, documents_path, "documents"), DOCUMENTS) if documents_path else None)
        rows += [{"kind": "text", "source": e.doc_id, "document": e.document, "sentence": e.sentence,
                  "subject": e.subject, "object": e.object, "relation": e.relation, "pattern_id": e.pattern_id,
                  "confidence": e.confidence, "relation_id": e.relation_id, "subject_id": e.subject_id,
                  "object_id": e.object_id} for e in index.for_triple(head_id, relation_iri, tail_id, sources)]
    text_sources = {r["source"] for r in rows} | doc_ids
    # fuse records a text triple's doc_id and a seed triple's seed file among its sources
    rows += [{"kind": "seed", "source": source, "document": source} for source in sources
             if source not in text_sources]
    return pd.DataFrame(rows, columns=list(PROVENANCE_COLUMNS))


def documents_of(pipe: Pipeline, mentions_path: Path) -> Path | None:
    """The documents table the mentions were extracted from: the extract stage's `documents` dep, else the
    ingest stage's output (None if the pipeline has neither)."""
    producer = next((s for s in pipe.stages.values() if mentions_path in s.outs.values()), None)
    paths = list(producer.deps.get("documents", ())) if producer is not None else []
    if not paths:
        try:
            paths = [find_output(pipe, Role.DOCUMENTS, exists=False)]
        except InputError:
            return None
    return paths[0]


# --- the fusion report, training history and ego networks as tables and graphs ----------------------------


@dataclass
class FusionSummary:
    """The fuse stage's report as tables: the largest merges (entities with most mentions and their names),
    the overlap between source graphs (nodes and edges: shared, Jaccard, overlap coefficient), conflicts."""

    largest_merges: pd.DataFrame
    overlap: pd.DataFrame
    conflicts: pd.DataFrame
    report: dict[str, Any]


def _report(source: Any, role: Role) -> dict[str, Any]:
    import json

    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source) if not isinstance(source, Pipeline) else None
    if path is None or path.suffix != ".json":
        pipe = as_pipeline(source)
        path = find_output(pipe, role)
    return json.loads(path.read_text(encoding="utf-8"))


def fusion_summary(source: Any) -> FusionSummary:
    """`source`: a pipeline, a fusion_report.json path, or the report already loaded (a dict)."""
    import pandas as pd

    report = _report(source, Role.FUSION_REPORT)
    merges = [{"label": m.get("label"), "id": m["id"], "mentions": m["mentions"], "names": len(m["names"]),
               "surface forms": ", ".join(f"{n['text']} ({n['count']})" for n in m["names"])}
              for m in report.get("merges", {}).get("largest", [])]
    overlap = [{"graph_a": o["graphs"][0], "graph_b": o["graphs"][1],
                **{f"{part}_{key}": o[part][key] for part in ("nodes", "edges")
                   for key in ("shared", "jaccard", "overlap_coefficient")}}
               for o in report.get("overlap", [])]
    conflicts = [{"head": c.get("label") or c["head"], "relation": local_name(c["relation"]),
                  "values": "; ".join(f"{v.get('label') or v['tail']} ({v['count']}x, {', '.join(v['sources'])})"
                                      for v in c["values"])}
                 for c in report.get("conflicts", [])]
    return FusionSummary(
        pd.DataFrame(merges, columns=["label", "id", "mentions", "names", "surface forms"]),
        pd.DataFrame(overlap, columns=["graph_a", "graph_b"] + [f"{p}_{k}" for p in ("nodes", "edges")
                                                                 for k in ("shared", "jaccard",
                                                                           "overlap_coefficient")]),
        pd.DataFrame(conflicts, columns=["head", "relation", "values"]), report)


def training_history(source: Any) -> pd.DataFrame:
    """Per epoch: the training loss and, where early stopping evaluated, the validation metric (NaN elsewhere).
    `source`: a pipeline, the embed stage's metrics.json path, or its content."""
    import pandas as pd

    training = _report(source, Role.EMBED_METRICS).get("training", {})
    losses = training.get("losses", [])
    metric = (training.get("early_stopping") or {}).get("metric", "mrr")
    frame = pd.DataFrame({"epoch": range(1, len(losses) + 1), "loss": losses})
    validation = {v["epoch"]: v.get(metric) for v in training.get("validation", [])}
    frame[f"validation_{metric}"] = frame["epoch"].map(validation).astype(float)
    return frame


def stage_timings(pipeline: str | Path | Pipeline) -> pd.DataFrame:
    """Per stage of the last run, from the lock file: when it started, how long it took, and the measurements
    it returned under `timings` (e.g. fuse's seconds and peak MB per resolution step), one column each. These
    live in the lock file, not in the artifacts, so that equal inputs give byte-identical artifacts."""
    import pandas as pd

    from kgpipe.lockfile import LockFile
    from kgpipe.runner import Workspace

    pipe = as_pipeline(pipeline)
    lock = LockFile.read(Workspace(pipe).lock_path).stages
    rows = []
    for name, stage in pipe.stages.items():
        entry = lock.get(name)
        if entry is None:
            continue
        row: dict[str, Any] = {"stage": name, "type": stage.type.name, "started_at": entry.started_at,
                               "duration_s": entry.duration_s}
        timings = entry.summary.get("timings")
        row.update(_flat_numbers(timings if isinstance(timings, dict) else {}))
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["stage", "type", "started_at", "duration_s"])


def _flat_numbers(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(_flat_numbers(value, name))
        else:
            flat[name] = value
    return flat


def ego_graph(graph: Any, entity: str, radius: int = 1, max_nodes: int = 40) -> Any:
    """The neighbourhood of an entity (by node id or `label` attribute) in a graph from kgpipe.load_graph, edges
    in both directions; beyond max_nodes the best-connected neighbours are kept."""
    import networkx as nx

    node = entity if entity in graph else None
    if node is None:
        hits = [n for n, label in graph.nodes(data="label") if label == entity]
        if len(hits) != 1:
            raise InputError(f"no node with id or label '{entity}'" if not hits else
                             f"'{entity}' labels {len(hits)} nodes", hint="pass the node id")
        node = hits[0]
    ego = nx.ego_graph(graph, node, radius=radius, undirected=True)
    if ego.number_of_nodes() > max_nodes:
        keep = sorted((n for n in ego if n != node), key=lambda n: (-graph.degree(n), str(n)))[:max_nodes - 1]
        ego = ego.subgraph([node, *keep])
    return ego.copy()
