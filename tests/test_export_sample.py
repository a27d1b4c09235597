"""The export stage's files for the sample pipeline, read back with their users' libraries: the vectors and ids
are the vectors stage's (embed's rows first, unchanged, then the inductive ones, flagged), the graphs hold
exactly the fused entities and triples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import kgpipe


@pytest.fixture(scope="module")
def exported(sample_pipeline: Path) -> dict:
    return {"folder": kgpipe.artifact_path(sample_pipeline, "export.export"),
            "entities": kgpipe.load_artifact(sample_pipeline, "fuse.entities"),
            "triples": kgpipe.load_artifact(sample_pipeline, "fuse.triples"),
            "embeddings": kgpipe.load_embeddings(kgpipe.artifact_path(sample_pipeline, "vectors.entity_vectors")),
            "trained": kgpipe.load_embeddings(kgpipe.artifact_path(sample_pipeline, "embed.entity_embeddings")),
            "relations": kgpipe.load_embeddings(kgpipe.artifact_path(sample_pipeline,
                                                                     "embed.relation_embeddings"))}


@pytest.mark.parametrize("kind", ["entities", "relations"])
def test_embedding_files_hold_the_embed_stage_vectors(exported: dict, kind: str) -> None:
    import torch
    from gensim.models import KeyedVectors
    from safetensors import safe_open

    source = exported["embeddings" if kind == "entities" else "relations"]
    assert len(set(source.ids)) == len(source.ids)
    folder = exported["folder"] / kind
    id_map = json.loads((folder / "ids.json").read_text())
    assert id_map["ids"] == source.ids and np.array_equal(np.load(folder / "vectors.npy"), source.vectors)
    with safe_open(str(folder / "embeddings.safetensors"), framework="numpy") as handle:
        assert json.loads(handle.metadata()["ids"]) == source.ids
        assert np.array_equal(handle.get_tensor("entity_embeddings"), source.vectors)
    kv = KeyedVectors.load_word2vec_format(str(folder / "embeddings.w2v.txt"), binary=False)
    assert kv.index_to_key == ["_".join(i.split()) for i in source.ids]
    assert np.allclose(kv.vectors, source.vectors, rtol=1e-6, atol=1e-7)
    layer = torch.nn.Embedding(*source.vectors.shape)
    layer.load_state_dict(torch.load(folder / "embedding.pt", weights_only=True))
    assert json.loads((folder / "vocab.json").read_text())["ids"] == source.ids
    assert torch.equal(layer.weight.detach(), torch.from_numpy(source.vectors))
    again = kgpipe.load_embeddings(folder / "embeddings.parquet")
    assert again.ids == source.ids and np.array_equal(again.vectors, source.vectors)


def test_every_entity_exported_with_its_inductive_flag(exported: dict) -> None:
    emb, trained, folder = exported["embeddings"], exported["trained"], exported["folder"] / "entities"
    n = len(trained)
    assert sorted(emb.ids) == sorted(exported["entities"]["id"]), "a vector for every fused entity"
    assert emb.ids[:n] == trained.ids and np.array_equal(emb.vectors[:n], trained.vectors)
    assert emb.inductive == [False] * n + [True] * (len(emb) - n) and len(emb) > n
    table = pd.read_parquet(folder / "embeddings.parquet")
    assert list(table["inductive"]) == emb.inductive
    for name in ("ids.json", "vocab.json"):
        assert json.loads((folder / name).read_text())["inductive"] == emb.inductive
    assert kgpipe.load_embeddings(folder / "embeddings.safetensors").inductive == emb.inductive
    assert "inductive" not in json.loads((exported["folder"] / "relations" / "ids.json").read_text())


def test_projector_metadata_carries_label_and_type(exported: dict) -> None:
    folder = exported["folder"] / "entities"
    meta = pd.read_csv(folder / "metadata.tsv", sep="\t", keep_default_na=False, quoting=3)
    vectors = np.loadtxt(folder / "vectors.tsv", delimiter="\t", dtype=np.float32, ndmin=2)
    emb = exported["embeddings"]
    assert list(meta.columns) == ["label", "type", "id", "inductive"] and list(meta["id"]) == emb.ids
    assert list(meta["inductive"]) == emb.inductive
    assert np.allclose(vectors, emb.vectors, rtol=1e-6)
    type_of = exported["entities"].set_index("id")["type"].fillna("")
    assert list(meta["type"]) == [type_of[i] for i in emb.ids] and (meta["type"] != "").mean() > 0.9


def test_graph_files_hold_the_fused_graph(exported: dict) -> None:
    import networkx as nx
    import rdflib

    folder = exported["folder"] / "graph"
    entities, triples = exported["entities"], exported["triples"]
    fused = set(zip(triples["head"], triples["relation"], triples["tail"], strict=True))
    for name, fmt in (("graph.ttl", "turtle"), ("graph.nt", "nt")):
        rdf = rdflib.Graph().parse(folder / name, format=fmt)
        edges = {(str(s), str(p), str(o)) for s, p, o in rdf if isinstance(o, rdflib.URIRef)}
        assert fused <= edges, f"{name} misses fused triples"
    graph = nx.read_graphml(folder / "graph.graphml", force_multigraph=True)
    assert set(graph.nodes) == set(entities["id"])
    assert {(u, d["relation"], v) for u, v, d in graph.edges(data=True)} == fused
    nodes = pd.read_csv(folder / "nodes.csv", keep_default_na=False)
    rels = pd.read_csv(folder / "relationships.csv")
    assert set(nodes["id:ID"]) == set(entities["id"]) and nodes[":LABEL"].str.startswith("Entity").all()
    assert set(zip(rels[":START_ID"], rels["relation_iri"], rels[":END_ID"], strict=True)) == fused
    assert len(rels) == len(triples) and rels[":TYPE"].str.fullmatch(r"[A-Z0-9_]+").all()


def test_export_command_writes_the_chosen_formats(sample_pipeline: Path, exported: dict, tmp_path: Path) -> None:
    from gensim.models import KeyedVectors
    from typer.testing import CliRunner

    from kgpipe.cli import app

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["export", "--format", "word2vec", "--format", "neo4j", "--out", str(out),
                                      "--pipeline", str(sample_pipeline)])
    assert result.exit_code == 0, result.output
    assert "wrote 4 file(s) in 2 format(s)" in result.output.replace("\n", " ")
    kv = KeyedVectors.load_word2vec_format(str(out / "entities/embeddings.w2v.txt"))
    assert np.allclose(kv.vectors, exported["embeddings"].vectors, rtol=1e-6, atol=1e-7)
    assert sorted(p.name for p in (out / "graph").iterdir()) == ["nodes.csv", "relationships.csv"]
    bad = CliRunner().invoke(app, ["export", "--format", "hdf5", "--out", str(out), "--pipeline",
                                   str(sample_pipeline)])
    assert bad.exit_code == 2 and "hdf5" in bad.output
