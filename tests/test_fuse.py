"""The fuse stage through the runner, on mention/relation tables written by hand (the MENTIONS and RELATIONS
schemas) and small seed tables: seed linking (exact, by context, by similarity), minted ids and their
stability, triple merging, relation alignment, conflicts, the overlap report, and the RDF / GraphML files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd
import pytest
import rdflib
import yaml
from rdflib.namespace import OWL, RDF, RDFS

from kgpipe.artifacts import (
    ENTITIES,
    MENTIONS,
    RELATIONS,
    SEED_ENTITIES,
    SEED_TRIPLES,
    TRIPLES,
    read_table,
    write_table,
)
from kgpipe.errors import InputError
from kgpipe.kg.merge import TripleMerge, functional_conflicts
from kgpipe.runner import run
from kgpipe.vocab import KGPIPE_RELATION, SCHEMA

EX = "http://ex.org/"
OTHER = "http://other.org/"
PERSON, ORG, CITY, COUNTRY = SCHEMA + "Person", SCHEMA + "CollegeOrUniversity", SCHEMA + "City", SCHEMA + "Country"
TYPE_OF = {"PERSON": SCHEMA + "Person", "ORG": SCHEMA + "Organization", "GPE": SCHEMA + "Place"}

# doc id -> (text, [(surface, NER label, gazetteer seed IRI or None), ...], [(subject, relation, object), ...])
DOCS: dict[str, tuple[str, list[tuple], list[tuple]]] = {
    "doc1": ("MIT is in Cambridge, across the river from Boston, close to Harvard.",
             [("MIT", "ORG", EX + "MIT"), ("Cambridge", "GPE", None), ("Boston", "GPE", None),
              ("Harvard", "ORG", EX + "Harvard_University")],
             [("MIT", "located_in", "Cambridge")]),
    "doc2": ("The Massachusetts Institute of Technology (MIT) hired Ada Quill in 1990.",
             [("The Massachusetts Institute of Technology", "ORG", None), ("MIT", "ORG", EX + "MIT"),
              ("Ada Quill", "PERSON", None)],
             [("Ada Quill", "works_for", "The Massachusetts Institute of Technology"),
              ("MIT", "part_of", "The Massachusetts Institute of Technology")]),
    "doc3": ("M.I.T. engineer Ada Quill was born in Copenhagen.",
             [("M.I.T.", "ORG", None), ("Ada Quill", "PERSON", None), ("Copenhagen", "GPE", EX + "Copenhagen")],
             [("Ada Quill", "works_for", "M.I.T."), ("Ada Quill", "born_in", "Copenhagen")]),
    "doc4": ("Cambridge lies on the Cam in England, and the University of Cambridge is located in Cambridge.",
             [("Cambridge", "GPE", None), ("England", "GPE", EX + "England"),
              ("University of Cambridge", "ORG", EX + "University_of_Cambridge")],
             [("University of Cambridge", "located_in", "Cambridge")]),
    "doc5": ("Niels Bohr and his son Aage Bohr were both born in Copenhagen; Bohr senior founded an institute.",
             [("Niels Bohr", "PERSON", EX + "Niels_Bohr"), ("Aage Bohr", "PERSON", EX + "Aage_Bohr"),
              ("Copenhagen", "GPE", EX + "Copenhagen"), ("Bohr", "PERSON", None)],
             [("Aage Bohr", "born_in", "Copenhagen")]),
    "doc6": ("Ada Quill was born in Oslo, according to another biography of Ada Quill.",
             [("Ada Quill", "PERSON", None), ("Oslo", "GPE", None)],
             [("Ada Quill", "born_in", "Oslo")]),
    "doc7": ("Harvard Univ. is also in Cambridge, in the Unted States.",
             [("Harvard Univ.", "ORG", None), ("Cambridge", "GPE", None), ("Unted States", "GPE", None)], []),
}
NEW_DOC = {"doc8": ("Zeta Robotics opened an office in Oslo next to Harvard.",
                    [("Zeta Robotics", "ORG", None), ("Oslo", "GPE", None),
                     ("Harvard", "ORG", EX + "Harvard_University")], [])}

SEED_ENTITY_ROWS = [
    (EX + "MIT", "Massachusetts Institute of Technology", ["MIT", "M.I.T."], [ORG]),
    (EX + "Harvard_University", "Harvard University", ["Harvard"], [ORG]),
    (EX + "University_of_Cambridge", "University of Cambridge", ["Cambridge University"], [ORG]),
    (EX + "Cambridge_England", "Cambridge, England", ["Cambridge", "Cambridge, UK"], [CITY]),
    (EX + "Cambridge_Massachusetts", "Cambridge, Massachusetts", ["Cambridge", "Cambridge, MA"], [CITY]),
    (EX + "England", "England", [], [COUNTRY]),
    (EX + "United_States", "United States", ["USA"], [COUNTRY]),
    (EX + "Niels_Bohr", "Niels Bohr", ["Bohr"], [PERSON]),
    (EX + "Aage_Bohr", "Aage Bohr", [], [PERSON]),
    (EX + "Copenhagen", "Copenhagen", [], [CITY]),
]
SEED_TRIPLE_ROWS = [
    (EX + "MIT", EX + "locatedIn", EX + "Cambridge_Massachusetts"),
    (EX + "Harvard_University", EX + "locatedIn", EX + "Cambridge_Massachusetts"),
    (EX + "University_of_Cambridge", EX + "locatedIn", EX + "Cambridge_England"),
    (EX + "Cambridge_England", EX + "locatedIn", EX + "England"),
    (EX + "Cambridge_Massachusetts", EX + "locatedIn", EX + "United_States"),
    (EX + "Niels_Bohr", EX + "bornIn", EX + "Copenhagen"),
    (EX + "Aage_Bohr", EX + "bornIn", EX + "Copenhagen"),
]
# a second seed file that names Niels Bohr in its own namespace
EXTRA_ENTITY_ROWS = [(OTHER + "Niels_Bohr", "Niels Bohr", [], []),
                     (OTHER + "Bohr_Institute", "Niels Bohr Institute", [], [])]
EXTRA_TRIPLE_ROWS = [(OTHER + "Niels_Bohr", OTHER + "worksFor", OTHER + "Bohr_Institute")]


def mention_rows(docs: dict) -> tuple[list[dict], list[dict]]:
    mentions, relations = [], []
    for doc_id, (text, spans, rels) in docs.items():
        ids: dict[str, str] = {}
        cursor = 0
        for surface, label, seed_iri in spans:
            start = text.index(surface, cursor)
            cursor = start + len(surface)
            mention_id = f"m:{doc_id}:{start}"
            ids.setdefault(surface, mention_id)
            mentions.append({"mention_id": mention_id, "doc_id": doc_id, "sentence": 0, "start_char": start,
                             "end_char": cursor, "text": surface, "label": label, "kg_type": TYPE_OF[label],
                             "source": "gazetteer" if seed_iri else "ner", "seed_iri": seed_iri})
        for n, (subject, relation, obj) in enumerate(rels):
            relations.append({"relation_id": f"r:{doc_id}:{n}", "subject_id": ids[subject], "relation": relation,
                              "relation_iri": KGPIPE_RELATION + relation, "object_id": ids[obj], "doc_id": doc_id,
                              "sentence_start": 0, "sentence_end": len(text), "pattern_id": f"{relation}.test",
                              "confidence": 0.9 if relation != "born_in" else 0.8})
    return mentions, relations


def write_inputs(root: Path, docs: dict, *, extra_seed: bool = False) -> None:
    mentions, relations = mention_rows(docs)
    (root / "in").mkdir(parents=True, exist_ok=True)
    write_table(mentions, root / "in/mentions.parquet", MENTIONS)
    write_table(relations, root / "in/relations.parquet", RELATIONS)
    entities = [{"iri": i, "label": la, "aliases": al, "types": ty, "sources": ["seed.ttl"]}
                for i, la, al, ty in SEED_ENTITY_ROWS]
    triples = [{"head": h, "relation": r, "tail": t, "source": "seed.ttl"} for h, r, t in SEED_TRIPLE_ROWS]
    if extra_seed:
        entities += [{"iri": i, "label": la, "aliases": al, "types": ty, "sources": ["extra.tsv"]}
                     for i, la, al, ty in EXTRA_ENTITY_ROWS]
        triples += [{"head": h, "relation": r, "tail": t, "source": "extra.tsv"} for h, r, t in EXTRA_TRIPLE_ROWS]
    write_table(entities, root / "in/seed_entities.parquet", SEED_ENTITIES)
    write_table(triples, root / "in/seed_triples.parquet", SEED_TRIPLES)


def fuse(root: Path, force: bool = False, **params: Any) -> dict[str, Any]:
    """Run a one-stage pipeline over root/in and return its outputs."""
    stage = {"type": "fuse", "params": params,
             "deps": {"mentions": "in/mentions.parquet", "relations": "in/relations.parquet",
                      "seed_entities": "in/seed_entities.parquet", "seed_triples": "in/seed_triples.parquet"}}
    pipeline = root / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump({"root": ".", "stages": {"fuse": stage}}), encoding="utf-8")
    run(pipeline, force=force)
    out = root / "artifacts/fuse"
    return {"entities": read_table(out / "entities.parquet", ENTITIES),
            "triples": read_table(out / "triples.parquet", TRIPLES),
            "report": json.loads((out / "fusion_report.json").read_text(encoding="utf-8")), "dir": out}


def entity_of(result: dict, doc_id: str, surface: str) -> str:
    """The entity id a mention was resolved to (through the entities' aliases and the triples is indirect,
    so read it from the entity whose label or aliases contain the surface and whose sources hold the doc)."""
    entities = result["entities"]
    hits = [row.id for row in entities.itertuples()
            if doc_id in list(row.sources) and (surface == row.label or surface in list(row.aliases))]
    assert len(hits) == 1, (doc_id, surface, hits)
    return hits[0]


@pytest.fixture(scope="module")
def fused(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("fuse")
    write_inputs(root, DOCS, extra_seed=True)
    return fuse(root)


def test_mit_variants_merge_and_link_to_the_seed(fused) -> None:
    entities = fused["entities"].set_index("id")
    mit = entities.loc[EX + "MIT"]
    assert mit.label == "Massachusetts Institute of Technology" and mit.seed_iri == EX + "MIT"
    assert mit.mention_count == 4  # MIT twice, The Massachusetts Institute of Technology, M.I.T.
    assert {"MIT", "M.I.T.", "The Massachusetts Institute of Technology"} <= set(mit.aliases)
    assert {"doc1", "doc2", "doc3", "seed.ttl"} <= set(mit.sources)
    assert mit.type == ORG  # the seed's type, more specific than the mention's Organization


def test_the_two_cambridges_stay_apart_by_context(fused) -> None:
    assert entity_of(fused, "doc1", "Cambridge") == EX + "Cambridge_Massachusetts"   # MIT, Harvard nearby
    assert entity_of(fused, "doc4", "Cambridge") == EX + "Cambridge_England"         # England nearby
    assert entity_of(fused, "doc4", "University of Cambridge") == EX + "University_of_Cambridge"
    assert fused["report"]["linking"]["names_to_seed"]["context"] >= 2


def test_similar_people_stay_apart_and_bare_surname_follows_the_seed_alias(fused) -> None:
    niels = entity_of(fused, "doc5", "Niels Bohr")
    assert niels != entity_of(fused, "doc5", "Aage Bohr")
    assert entity_of(fused, "doc5", "Bohr") == niels  # 'Bohr' is Niels's alias in the seed


def test_unknown_entities_get_content_ids_and_similar_names_link_by_similarity(fused) -> None:
    entities = fused["entities"].set_index("id")
    ada = [i for i in entities.index if entities.loc[i, "label"] == "Ada Quill"]
    assert len(ada) == 1 and ada[0].startswith("http://kgpipe.org/entity/Ada_Quill_")
    assert entities.loc[ada[0], "mention_count"] == 3 and entities.loc[ada[0], "type"] == PERSON
    # abbreviations are spelled out before names are compared: 'Harvard Univ.' is Harvard University exactly
    assert entity_of(fused, "doc7", "Harvard Univ.") == EX + "Harvard_University"
    # a misspelt name that no exact seed name matches links by similarity
    assert entity_of(fused, "doc7", "Unted States") == EX + "United_States"
    assert fused["report"]["linking"]["clusters"]["similarity"] == 1


def test_triples_are_rewritten_merged_and_aligned(fused) -> None:
    triples = fused["triples"]
    ada = entity_of(fused, "doc2", "Ada Quill")
    works = triples[(triples["head"] == ada) & (triples["tail"] == EX + "MIT")]
    assert len(works) == 1
    row = works.iloc[0]
    assert row["count"] == 2 and sorted(row["sources"]) == ["doc2", "doc3"] and row["confidence"] == 0.9
    # the text's located_in and the seed's locatedIn are one relation, named as the seed names it
    located = triples[(triples["head"] == EX + "University_of_Cambridge")
                      & (triples["tail"] == EX + "Cambridge_England")]
    assert list(located["relation"]) == [EX + "locatedIn"]
    assert located.iloc[0]["count"] == 2 and sorted(located.iloc[0]["sources"]) == ["doc4", "seed.ttl"]
    assert located.iloc[0]["confidence"] == 1.0  # the best of 0.9 (text) and 1.0 (seed)
    assert fused["report"]["triples"]["self_loops_dropped"] == 1  # MIT part_of The Massachusetts Institute ...


def test_functional_relation_conflicts_are_reported(fused) -> None:
    conflicts = fused["report"]["conflicts"]
    ada = [c for c in conflicts if c["label"] == "Ada Quill"]
    assert len(ada) == 1 and ada[0]["relation"] == EX + "bornIn"
    assert {v["label"] for v in ada[0]["values"]} == {"Copenhagen", "Oslo"}


def test_conflicting_values_are_ranked_by_count_then_confidence_then_tail() -> None:
    merge = TripleMerge()
    for tail, confidence in (("b", 0.5), ("b", 0.4), ("a", 0.9), ("d", 0.90004), ("e", 0.95), ("c", 0.9)):
        merge.add("h", "born", tail, source="s", graph="text", confidence=confidence)
    merge.add("h", "knows", "x", source="s", graph="text", confidence=1.0)   # not functional
    merge.add("h", "knows", "y", source="s", graph="text", confidence=1.0)
    merge.add("g", "born", "a", source="s", graph="text", confidence=1.0)    # one value: no conflict
    conflicts = functional_conflicts(merge, {"born"}, {"a": "A"})
    assert [(c["head"], c["relation"]) for c in conflicts] == [("h", "born")]
    values = conflicts[0]["values"]
    # the confidence is compared as reported (4 decimals): d's 0.90004 ties with a and c, and the tail decides
    assert [v["tail"] for v in values] == ["b", "e", "a", "c", "d"]
    assert values[0]["count"] == 2 and values[0]["confidence"] == 0.5 and values[2]["label"] == "A"


def test_seed_graphs_link_across_files_with_owl_same_as(fused) -> None:
    entities = fused["entities"].set_index("id")
    assert OTHER + "Niels_Bohr" not in entities.index  # one entity, the smaller IRI is its id
    assert fused["report"]["same_as"] == {EX + "Niels_Bohr": [OTHER + "Niels_Bohr"]}
    graph = rdflib.Graph().parse(fused["dir"] / "graph.ttl", format="turtle")
    assert (rdflib.URIRef(EX + "Niels_Bohr"), OWL.sameAs, rdflib.URIRef(OTHER + "Niels_Bohr")) in graph
    # the other file's triple now hangs off the merged entity
    triples = fused["triples"]
    assert ((triples["head"] == EX + "Niels_Bohr") & (triples["relation"] == OTHER + "worksFor")).any()


def test_rdf_and_graphml_parse_back_with_the_same_content(fused) -> None:
    entities, triples = fused["entities"], fused["triples"]
    graph = rdflib.Graph().parse(fused["dir"] / "graph.ttl", format="turtle")
    mit = rdflib.URIRef(EX + "MIT")
    assert graph.value(mit, RDFS.label) == rdflib.Literal("Massachusetts Institute of Technology")
    assert (mit, RDF.type, rdflib.URIRef(ORG)) in graph
    subjects = {str(s) for s in graph.subjects(RDFS.label, None)}
    assert subjects == set(entities["id"])
    edges = {(str(s), str(p), str(o)) for s, p, o in graph if isinstance(o, rdflib.URIRef)
             and p not in (RDF.type, OWL.sameAs)}
    assert edges == set(zip(triples["head"], triples["relation"], triples["tail"], strict=True))
    g = nx.read_graphml(fused["dir"] / "graph.graphml")
    assert g.number_of_nodes() == len(entities) and g.number_of_edges() == len(triples)
    assert g.nodes[EX + "MIT"]["label"] == "Massachusetts Institute of Technology"
    assert g.nodes[EX + "MIT"]["mention_count"] == 4


def test_ids_are_stable_across_reruns_and_when_a_document_is_added(tmp_path: Path) -> None:
    write_inputs(tmp_path, DOCS)
    first = fuse(tmp_path)["entities"]
    again = fuse(tmp_path, force=True)["entities"]
    pd.testing.assert_frame_equal(first, again)
    write_inputs(tmp_path, {**DOCS, **NEW_DOC})
    after = fuse(tmp_path)["entities"].set_index("id")
    touched = {"Oslo", "Zeta Robotics", "Harvard University"}
    for row in first.itertuples():
        if row.label not in touched:
            assert row.id in after.index, row.label
            assert after.loc[row.id, "label"] == row.label
            assert after.loc[row.id, "mention_count"] == row.mention_count
    oslo = first[first["label"] == "Oslo"].iloc[0]
    assert after.loc[oslo.id, "mention_count"] == oslo.mention_count + 1  # same id, one more mention
    assert (after["label"] == "Zeta Robotics").sum() == 1


def test_overlap_numbers_on_two_tiny_graphs(tmp_path: Path) -> None:
    """Seed graph: x-r-y, y-r-z. Text: x-r-y, x-r-w. Nodes {x,y,w} vs {x,y,z}: 2 shared of 4, the smaller
    has 3. Edges: 1 shared of 3, the smaller has 2."""
    rel = EX + "r"
    docs = {"d": ("Xavi met Yuna and Xavi met Wren.", [("Xavi", "PERSON", None), ("Yuna", "PERSON", None),
                                                     ("Wren", "PERSON", None)], [])}
    mentions, _ = mention_rows(docs)
    ids = {m["text"]: m["mention_id"] for m in mentions}
    relations = [{"relation_id": f"r{n}", "subject_id": ids[s], "relation": "r", "relation_iri": rel,
                  "object_id": ids[o], "doc_id": "d", "sentence_start": 0, "sentence_end": 30, "pattern_id": "p",
                  "confidence": 0.5} for n, (s, o) in enumerate([("Xavi", "Yuna"), ("Xavi", "Wren")])]
    (tmp_path / "in").mkdir()
    write_table(mentions, tmp_path / "in/mentions.parquet", MENTIONS)
    write_table(relations, tmp_path / "in/relations.parquet", RELATIONS)
    write_table([{"iri": EX + n, "label": n, "aliases": [], "types": [PERSON], "sources": ["a.ttl"]}
                 for n in ("Xavi", "Yuna", "Zora")], tmp_path / "in/seed_entities.parquet", SEED_ENTITIES)
    write_table([{"head": EX + h, "relation": rel, "tail": EX + t, "source": "a.ttl"}
                 for h, t in [("Xavi", "Yuna"), ("Yuna", "Zora")]], tmp_path / "in/seed_triples.parquet", SEED_TRIPLES)
    report = fuse(tmp_path)["report"]
    (pair,) = report["overlap"]
    assert pair["graphs"] == ["a.ttl", "extract"]
    assert pair["nodes"] == {"shared": 2, "sizes": [3, 3], "jaccard": 0.5, "overlap_coefficient": 0.6667}
    assert pair["edges"] == {"shared": 1, "sizes": [2, 2], "jaccard": 0.3333, "overlap_coefficient": 0.5}


def test_a_graph_from_seed_kgs_alone_fuses(tmp_path: Path) -> None:
    """No text at all (empty mentions and relations, as the WebNLG benchmarks build their KGs): the seed
    entities and triples come out as they went in."""
    rel = EX + "r"
    (tmp_path / "in").mkdir()
    write_table([], tmp_path / "in/mentions.parquet", MENTIONS)
    write_table([], tmp_path / "in/relations.parquet", RELATIONS)
    write_table([{"iri": EX + n, "label": n, "aliases": [], "types": [PERSON], "sources": ["a.tsv"]}
                 for n in ("Xavi", "Yuna", "Zora")], tmp_path / "in/seed_entities.parquet", SEED_ENTITIES)
    write_table([{"head": EX + h, "relation": rel, "tail": EX + t, "source": "a.tsv"}
                 for h, t in [("Xavi", "Yuna"), ("Yuna", "Zora")]], tmp_path / "in/seed_triples.parquet", SEED_TRIPLES)
    out = fuse(tmp_path)
    assert sorted(out["entities"]["id"]) == [EX + n for n in ("Xavi", "Yuna", "Zora")]
    assert sorted(zip(out["triples"]["head"], out["triples"]["tail"], strict=True)) == [
        (EX + "Xavi", EX + "Yuna"), (EX + "Yuna", EX + "Zora")]


def test_relation_to_a_missing_mention_names_the_file_and_row(tmp_path: Path) -> None:
    write_inputs(tmp_path, DOCS)
    relations = read_table(tmp_path / "in/relations.parquet", RELATIONS)
    relations.loc[2, "object_id"] = "m:nowhere"
    write_table(relations, tmp_path / "in/relations.parquet", RELATIONS)
    with pytest.raises(InputError, match=r"relations.parquet \(row 3\).*m:nowhere"):
        fuse(tmp_path)


def test_params_are_validated(tmp_path: Path) -> None:
    from kgpipe.errors import PipelineError

    write_inputs(tmp_path, DOCS)
    with pytest.raises(PipelineError):
        fuse(tmp_path, resolution={"threshold": 0.5, "no_such_knob": 1})
